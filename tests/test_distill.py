"""Latent consistency distillation: solver steps, the LCD target by hand, training steps, and loading students."""

import json
import math

import pandas as pd
import pytest
import torch
from conftest import write_suite

from lcm_bench.cli.main import main
from lcm_bench.sampling.guidance import guidance_embedding
from lcm_bench.train.distill.frozen_teacher import load_teacher, training_latents
from lcm_bench.train.distill.lcd import (
    ConsistencyStudent,
    LCDConfig,
    draw_batch,
    lcd_loss,
    lcd_student,
    lora_student,
    prediction_and_target,
    skipping_grid,
)
from lcm_bench.train.distill.solvers import SOLVERS


def _alphas():
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0)


def test_second_order_solvers_beat_ddim_on_the_exact_gaussian_ode():
    """Data ~ N(0, v I) has eps(x, t) = sqrt(1 - a) x / (a v + 1 - a) and the ODE flow x_t ~ sqrt(a_t v + 1 - a_t)."""
    alphas, v = _alphas(), 0.05
    x = torch.randn(4, 1, 2, 2, dtype=torch.float64)

    def exact_eps(x, t):
        a = alphas[t].view(-1, 1, 1, 1)
        eps = (1 - a).sqrt() * x / (a * v + 1 - a)
        return eps, (x - (1 - a).sqrt() * eps) / a.sqrt()

    s, t = torch.full((4,), 799), torch.full((4,), 599)
    a_s, a_t = alphas[799], alphas[599]
    truth = x * ((a_t * v + 1 - a_t) / (a_s * v + 1 - a_s)).sqrt()
    errors = {name: (solver(exact_eps, x, s, t, alphas) - truth).abs().max().item() for name, solver in SOLVERS.items()}
    assert errors["dpmsolver"] < errors["ddim"] / 3 and errors["dpmsolver++"] < errors["ddim"] / 3, errors
    assert errors["ddim"] < 0.1 * truth.abs().max().item(), errors


def test_skipping_grid_is_diffusers_ddim_solver_grid():
    assert skipping_grid(20).tolist() == [20 * i - 1 for i in range(1, 51)]
    assert len(skipping_grid(1)) == 1000 and skipping_grid(50)[-1] == 999


@pytest.fixture(scope="module")
def teacher(tiny_sd_path):
    return load_teacher(tiny_sd_path)


@pytest.fixture(scope="module")
def data(teacher):
    return training_latents(teacher, "shapes", 64)


def _batch(teacher, data, config):
    generator = torch.Generator().manual_seed(3)
    return draw_batch(data, teacher, config, generator, teacher.tokenize([""]))


def test_lcd_target_equals_a_hand_computation(teacher, data):
    config = LCDConfig(batch=4, skip=20, solver="ddim", w_embedding_dim=64)
    student = ConsistencyStudent(lcd_student(teacher, 64), ema=True)
    with torch.no_grad():
        for p in student.unet.parameters():
            p.add_(0.01 * torch.randn_like(p))
    student.update_target(0.95)
    batch = _batch(teacher, data, config)
    prediction, target = prediction_and_target(student, teacher, batch, config)

    alphas = teacher.alphas
    s = 20 * (batch["index"] + 1) - 1
    t = (s - 20).clamp(min=0)
    a_s, a_t = alphas[s].view(-1, 1, 1, 1), alphas[t].view(-1, 1, 1, 1)
    z = a_s.sqrt() * batch["latents"] + (1 - a_s).sqrt() * batch["noise"]
    unet = teacher.unet
    with torch.no_grad():
        e_c = unet(z, s, encoder_hidden_states=batch["cond"]).sample
        e_u = unet(z, s, encoder_hidden_states=batch["uncond"]).sample
        w = batch["w"].view(-1, 1, 1, 1)
        eps = (1 + w) * e_c - w * e_u
        x0 = (z - (1 - a_s).sqrt() * eps) / a_s.sqrt()
        previous = a_t.sqrt() * x0 + (1 - a_t).sqrt() * eps
        embedding = torch.cat([guidance_embedding(float(value), 64, 1, torch.float32) for value in batch["w"]])
        e_target = student.target(previous, t, encoder_hidden_states=batch["cond"], timestep_cond=embedding).sample
        e_online = student.unet(z, s, encoder_hidden_states=batch["cond"], timestep_cond=embedding).sample

    def f(x, e, time, a):
        scaled = 10.0 * time.double().view(-1, 1, 1, 1)
        c_skip, c_out = 0.25 / (scaled**2 + 0.25), scaled / (scaled**2 + 0.25).sqrt()
        return (c_skip * x + c_out * (x - (1 - a).sqrt() * e) / a.sqrt()).float()

    torch.testing.assert_close(target, f(previous, e_target, t, a_t), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(prediction, f(z, e_online, s, a_s), rtol=1e-4, atol=1e-4)
    at_zero = (t == 0).nonzero().flatten()
    if len(at_zero):
        torch.testing.assert_close(target[at_zero], previous[at_zero].float(), rtol=1e-5, atol=1e-5)


def test_ema_target_moves_a_twentieth_of_the_way():
    student = ConsistencyStudent(torch.nn.Linear(2, 2), ema=True)
    before = student.target.weight.clone()
    with torch.no_grad():
        student.unet.weight.add_(1.0)
    student.update_target(0.95)
    torch.testing.assert_close(student.target.weight, before + 0.05)


@pytest.mark.parametrize("method", ["lcm", "lcm-lora"])
def test_training_steps_lower_a_fixed_batch_loss(teacher, data, method):
    config = LCDConfig(batch=8, w_embedding_dim=64, lora_rank=4, ema=0.0)
    unet = lcd_student(teacher, 64) if method == "lcm" else lora_student(teacher, config)
    student = ConsistencyStudent(unet, ema=method == "lcm")
    batch = _batch(teacher, data, LCDConfig(batch=8))
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    losses = []
    for _ in range(8):
        if student.target is not None:
            student.update_target(0.0)
        loss = lcd_loss(student, teacher, batch, config)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    if method == "lcm-lora":
        assert all("lora" in name for name, p in student.named_parameters() if p.requires_grad)


TINY_STUDENT = ["--batch", "4", "--n-train", "64", "--w-embedding-dim", "64"]


def _run_tiny_suite(tmp_path, models: str, sampler: str, scale: float):
    suite = write_suite(
        tmp_path,
        f"version: 1\nname: students\nmodels: {models}\nsamplers: [{sampler}]\nsteps: [1, 2]\n"
        f"guidance_scales: [{scale}]\nprompts: [shapes-mini]\nnum_images: 2\n",
    )
    assert main(["run", str(suite), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    return suite, pd.read_csv(tmp_path / "run" / "results.csv")


def test_distilled_students_run_through_the_same_paths_as_real_lcm_checkpoints(tiny_sd_path, tmp_path):
    for method in ("lcm", "lcm-lora"):
        code = main(
            [
                "distill",
                method,
                "--teacher",
                str(tiny_sd_path),
                "--out",
                str(tmp_path / method),
                "--steps",
                "3",
                "--lora-rank",
                "4",
                *TINY_STUDENT,
            ]
        )
        assert code == 0
    index = json.loads((tmp_path / "lcm" / "model_index.json").read_text())
    assert index["_class_name"] == "LatentConsistencyModelPipeline"
    assert (tmp_path / "lcm-lora" / "pytorch_lora_weights.safetensors").is_file()
    card = json.loads((tmp_path / "lcm" / "card.json").read_text())
    assert card["skip"] == 20 and math.isfinite(card["loss_history"][-1][1])
    models = f"""
  - {{name: lcm, path: {tmp_path / "lcm"}}}
  - {{name: lora, path: {tiny_sd_path}, loras: [{tmp_path / "lcm-lora"}]}}"""
    _, results = _run_tiny_suite(tmp_path, models, "lcm", 1.0)
    assert sorted(results["nfe_per_image"].tolist()) == [1, 1, 2, 2]
    assert set(results["status"]) == {"ok"}


def test_distill_rejects_bad_options(tiny_sd_path, tmp_path, capsys):
    assert main(["distill", "lcm", "--teacher", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "--teacher" in capsys.readouterr().err
    assert (
        main(["distill", "lcm", "--teacher", str(tiny_sd_path), "--out", str(tmp_path / "o"), "--solver", "heun"]) == 2
    )
    assert "--solver" in capsys.readouterr().err


def test_progressive_target_makes_one_student_step_land_where_two_teacher_steps_do(teacher, data):
    from lcm_bench.train.distill.frozen_teacher import Conditioned
    from lcm_bench.train.distill.guided import ddim_step, progressive_target

    batch = _batch(teacher, data, LCDConfig(batch=4))
    alphas, steps = teacher.alphas, 4
    previous = Conditioned(lcd_student(teacher, 64).eval(), batch["cond"], torch.zeros(4, 64), alphas)
    t = torch.tensor([999, 749, 499, 249])
    a = alphas[t].view(-1, 1, 1, 1)
    x = a.sqrt() * batch["latents"] + (1 - a).sqrt() * batch["noise"]
    target = progressive_target(previous, x, t, steps)
    with torch.no_grad():
        mid = ddim_step(x, previous.x0(x, t), t, t - 125, alphas)
        two = ddim_step(mid, previous.x0(mid, t - 125), t - 125, t - 250, alphas)
    torch.testing.assert_close(ddim_step(x, target, t, t - 250, alphas), two, rtol=1e-4, atol=1e-4)


def test_guided_distillation_students_load_per_step_count(tiny_sd_path, tmp_path, capsys):
    code = main(
        [
            "distill",
            "guided-distill",
            "--teacher",
            str(tiny_sd_path),
            "--out",
            str(tmp_path / "gd"),
            "--stage1-steps",
            "3",
            "--stage2-steps",
            "2",
            "--start-steps",
            "4",
            "--keep",
            "2,1",
            *TINY_STUDENT,
        ]
    )
    assert code == 0
    assert json.loads((tmp_path / "gd" / "students.json").read_text()) == {"1": "students/1", "2": "unet"}
    suite, results = _run_tiny_suite(tmp_path, f"[{{name: gd, path: {tmp_path / 'gd'}}}]", "guided-distill", 3.0)
    assert sorted(results["nfe_per_image"].tolist()) == [1, 2]
    bad = write_suite(tmp_path, suite.read_text().replace("steps: [1, 2]", "steps: [4]"), "bad.yaml")
    assert main(["run", str(bad), "--out", str(tmp_path / "run2"), "--quiet"]) == 2
    assert "students for steps [1, 2] only, not 4" in capsys.readouterr().err
    assert main(["distill", "guided-distill", "--teacher", str(tiny_sd_path), "--skip", "5"]) == 2
    assert "--skip: not an option of guided-distill" in capsys.readouterr().err


def test_a_suite_distils_its_students_once_with_snapshots(tiny_sd_path, tmp_path, capsys):
    suite = write_suite(
        tmp_path,
        f"""
version: 1
name: ablation
models:
  - name: k10
    distill: {{teacher: {tiny_sd_path}, skip: 10, steps: 4, snapshots: [2, 4], batch: 4, n_train: 64,
              w_embedding_dim: 64}}
samplers: [lcm]
steps: [2]
guidance_scales: [3.0]
prompts: [shapes-mini]
num_images: 2
metrics: [attribute_accuracy]
""",
    )
    assert main(["validate", str(suite)]) == 0
    assert "students to distil on the first run: k10@2, k10@4" in capsys.readouterr().out
    assert main(["run", str(suite), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert sorted(results["model"]) == ["k10@2", "k10@4"]
    assert (tmp_path / "run" / "plots" / "attribute_accuracy_shapes-judge_vs_training.png").is_file()
    from lcm_bench.suite.load import load_suite
    from lcm_bench.suite.student_entries import pending, student_folder

    specs = sorted({c.model for c in load_suite(suite).cells}, key=lambda s: s.name)
    assert not pending(specs)
    cards = [json.loads((student_folder(s) / "card.json").read_text()) for s in specs]
    assert [c["trained_steps"] for c in cards] == [2, 4] and cards[0]["skip"] == 10
    scheduler = json.loads((student_folder(specs[0]) / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["original_inference_steps"] == 100
    assert main(["run", str(suite), "--out", str(tmp_path / "run2"), "--quiet"]) == 0
    assert "distilling" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("distill", "message"),
    [
        ("{skip: 10, colour: red}", "models[0].distill.colour: unknown"),
        ("{solver: heun}", "--solver: 'heun' is not one of"),
        ("{steps: 10, snapshots: [20]}", "models[0].distill.snapshots: expected a list of step counts in 1..10"),
        ("{method: guided-distill}", "models[0].distill.method: 'guided-distill' is not one of"),
        ("{skip: five}", "models[0].distill.skip: expected int"),
    ],
)
def test_bad_distill_entries_are_one_line_errors(tmp_path, capsys, distill, message):
    suite = write_suite(
        tmp_path,
        f"version: 1\nname: bad\nmodels: [{{name: s, distill: {distill}}}]\nsamplers: [lcm]\nprompts: [shapes-mini]\n",
    )
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_lcf_target_is_the_same_data_one_skipping_step_earlier(tiny_lcm_path, tiny_sd_path, tmp_path, capsys):
    lcm = load_teacher(tiny_lcm_path, guidance_embedding=True)
    config = LCDConfig(batch=4, skip=20)
    student = ConsistencyStudent(lcm.unet, ema=True)
    batch = _batch(lcm, training_latents(lcm, "shapes", 16), config)
    _, target = prediction_and_target(student, lcm, batch, config, teacher_free=True)
    t = (20 * (batch["index"] + 1) - 1 - 20).clamp(min=0)
    a = lcm.alphas[t].view(-1, 1, 1, 1)
    z = a.sqrt() * batch["latents"] + (1 - a).sqrt() * batch["noise"]
    embedding = torch.cat([guidance_embedding(float(v), 64, 1, torch.float32) for v in batch["w"]])
    with torch.no_grad():
        eps = student.target(z, t, encoder_hidden_states=batch["cond"], timestep_cond=embedding).sample
    scaled = 10.0 * t.double().view(-1, 1, 1, 1)
    c_skip, c_out = 0.25 / (scaled**2 + 0.25), scaled / (scaled**2 + 0.25).sqrt()
    expected = (c_skip * z + c_out * (z - (1 - a).sqrt() * eps) / a.sqrt()).float()
    torch.testing.assert_close(target, expected, rtol=1e-4, atol=1e-4)
    assert main(["distill", "lcf", "--teacher", str(tiny_sd_path), "--out", str(tmp_path / "x")]) == 2
    assert "LCF fine-tunes an LCM" in capsys.readouterr().err
    code = main(
        [
            "distill",
            "lcf",
            "--teacher",
            str(tiny_lcm_path),
            "--out",
            str(tmp_path / "lcf"),
            "--steps",
            "2",
            "--batch",
            "4",
            "--n-train",
            "32",
        ]
    )
    assert code == 0 and (tmp_path / "lcf" / "model_index.json").is_file()
