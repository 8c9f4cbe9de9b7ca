"""Authors' settings as data that apply: a method naming only a registered few-step checkpoint runs its card's
sampler, options, guidance, steps and text length; what the suite writes overrides them; records and reports say
which came from the card and mark step counts the authors did not train for."""

import json

import pytest
from conftest import write_suite

from lcm_bench.cli.main import main
from lcm_bench.models.catalogue import MODELS
from lcm_bench.sampling.samplers import SAMPLERS
from lcm_bench.suite.load import load_suite

WITH_SETTINGS = sorted(name for name in MODELS.names() if MODELS.get(name).settings is not None)
FEW_STEP = [name for name in WITH_SETTINGS if max(MODELS.get(name).settings.trained_steps) <= 16 or "lcm" in name]


def _suite(tmp_path, methods: str, extra: str = "") -> object:
    text = f"version: 1\nmethods:\n{methods}\nprompts: [shapes-mini]\nnum_images: 2\n{extra}"
    return load_suite(write_suite(tmp_path, text))


@pytest.mark.parametrize("name", FEW_STEP)
def test_a_method_naming_only_the_checkpoint_runs_its_cards_settings(tmp_path, name):
    """Every registered few-step checkpoint: sampler, options (eta, timesteps, prediction type, spacing), guidance
    scale, step counts and text length as its card gives them, each named as taken from the card."""
    card = MODELS.get(name).settings
    cells = _suite(tmp_path, f"  - {{name: m, model: {name}}}").cells
    assert sorted(c.steps for c in cells) == sorted(card.steps)
    cell = cells[0]
    definition = SAMPLERS.get(card.sampler)
    options = dict(cell.sampler.options)
    assert cell.sampler.name == card.sampler
    for key, value in card.options:
        expected = tuple(value) if isinstance(value, tuple) else value
        if key == "eta" and value == definition.step_kwargs.get("eta"):
            assert key not in options, "the sampler's own default is not written again"
        else:
            assert options[key] == expected, key
    spacing = card.timestep_spacing if card.timestep_spacing != definition.spacing else None
    assert cell.sampler.timestep_spacing == spacing
    assert cell.guidance_scale == card.guidance_scale
    assert cell.text_length == card.text_length
    assert {"sampler", "guidance_scale", "steps"} <= set(cell.card.fields)
    assert cell.card.source == card.source and cell.card.trained_steps == card.trained_steps


def test_hyper_sd_unified_lora_runs_tcd_at_eta_one_without_guidance_at_one_step(tmp_path):
    (cell,) = _suite(tmp_path, "  - {name: hyper1, model: hyper-sd15-1step-lora}").cells
    assert (cell.sampler.name, dict(cell.sampler.options), cell.guidance_scale, cell.steps) == (
        "tcd",
        {"eta": 1.0},
        0,
        1,
    )
    assert cell.card.trained_steps == (1, 2, 4, 8)


def test_what_the_suite_writes_overrides_the_card(tmp_path):
    """The method's own sampler options, guidance scale and steps, and the suite's steps, win; a different sampler
    takes none of the card's sampler options; the card still says what it gave."""
    suite = _suite(
        tmp_path,
        "  - {name: a, model: hyper-sd15-1step-lora, eta: 0.5, guidance_scale: 1.5, steps: [2]}\n"
        "  - {name: b, model: hyper-sd15-1step-lora, sampler: ddim}\n"
        "  - {name: c, model: flux.1-schnell, text_length: 512}",
        "steps: [1, 4]\n",
    )
    by = {}
    for cell in suite.cells:
        by.setdefault(cell.method, []).append(cell)
    (a,) = by["a"]
    assert (dict(a.sampler.options), a.guidance_scale, a.steps) == ({"eta": 0.5}, 1.5, 2)
    assert a.card.fields == ("sampler",), "only the sampler came from the card"
    assert {c.steps for c in by["b"]} == {1, 4}, "the suite's steps win over the card's"
    assert by["b"][0].sampler.name == "ddim" and dict(by["b"][0].sampler.options) == {}
    assert by["b"][0].card.fields == ("guidance_scale",)
    assert {c.text_length for c in by["c"]} == {512} and "text_length" not in by["c"][0].card.fields


def test_writing_the_cards_values_keeps_the_cell_ids_of_a_suite_that_already_wrote_them(tmp_path):
    """A suite that already wrote the authors' settings by hand keeps every cell id: a card value equal to the
    sampler's own default (TCD's eta 0.3, Euler's trailing spacing) is not written into the spec again."""
    written = _suite(
        tmp_path,
        "  - {name: t, model: tcd-sd15-lora, sampler: tcd, guidance_scale: 0, steps: [4]}\n"
        "  - {name: l, model: sdxl-lightning-4step-unet, sampler: euler, guidance_scale: 0, steps: [4]}",
    )
    named = _suite(tmp_path, "  - {name: t, model: tcd-sd15-lora}\n  - {name: l, model: sdxl-lightning-4step-unet}")
    assert [c.cell_id for c in written.cells] == [c.cell_id for c in named.cells]


def test_a_method_without_a_sampler_needs_a_checkpoint_with_settings(tmp_path, capsys):
    suite = write_suite(tmp_path, "version: 1\nmethods:\n  - {name: m, model: tiny-sd}\nprompts: [shapes-mini]\n")
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "methods[0].sampler: missing" in err and "lcm-bench list" in err


def test_a_text_length_on_a_clip_family_is_one_line(tmp_path, capsys):
    suite = write_suite(
        tmp_path,
        "version: 1\nmethods:\n  - {name: m, model: tiny-sd, sampler: ddim, text_length: 256}\nsteps: [1]\n"
        "prompts: [shapes-mini]\nnum_images: 2\n",
    )
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "methods[m].text_length" in err and "flux" in err, err


def test_list_shows_each_checkpoints_settings_and_source(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "hyper-sd15-1step-lora" in out and "tcd, eta 1.0, guidance_scale 0, steps 1, trained for 1/2/4/8" in out
    assert "flux.1-schnell" in out and "text_length 256" in out
    assert "https://huggingface.co/ByteDance/Hyper-SD" in out


def test_no_registered_file_is_missing_from_its_repository():
    """PCM's published SD-1.5 LoRAs: small CFG at 2, 4, 8 and 16 phases, normal CFG at 4, 8 and 16 (there is no
    normal-CFG two-phase file)."""
    names = {MODELS.get(n).weight_name for n in MODELS.names() if MODELS.get(n).repo == "wangfuyun/PCM_Weights"}
    assert "sd15/pcm_sd15_normalcfg_2step_converted.safetensors" not in names
    assert {f"sd15/pcm_sd15_smallcfg_{n}step_converted.safetensors" for n in (2, 4, 8, 16)} <= names
    assert {f"sd15/pcm_sd15_normalcfg_{n}step_converted.safetensors" for n in (4, 8, 16)} <= names


def test_a_run_records_the_cards_settings_and_marks_untrained_steps(tmp_path, monkeypatch):
    """FLUX.1-schnell named alone (a stand-in in the Hugging Face cache built from the tiny FLUX.1-schnell): its
    record holds the card's sampler, guidance, 256 text tokens and where they came from; run at 8 steps, which its
    authors did not train for, the record, results.csv and the report mark it."""
    import huggingface_hub.constants
    from test_real_path import as_hub_cache

    from lcm_bench.models.catalogue import tiny_path

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    as_hub_cache(cache, tiny_path("tiny-flux-schnell"), "black-forest-labs/FLUX.1-schnell")
    suite = write_suite(
        tmp_path,
        "version: 1\nmethods:\n  - {name: schnell, model: flux.1-schnell}\n"
        "  - {name: schnell8, model: flux.1-schnell, steps: [8]}\n"
        "prompts: [shapes-mini]\nnum_images: 2\nresolution: 32\ntiming: {min_repeats: 1, max_seconds: 0.2}\n",
    )
    out = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    records = {
        json.loads(p.read_text())["spec"]["method"]: json.loads(p.read_text()) for p in (out / "cells").glob("*")
    }
    four, eight = records["schnell"], records["schnell8"]
    assert four["spec"]["steps"] == 4 and four["spec"]["text_length"] == 256
    assert four["throughput"]["nfe_per_image"] == 4 and four["guidance_mode"] == "none"
    assert four["authors_settings"]["from_card"] == ["sampler", "guidance_scale", "text_length", "steps"]
    assert four["authors_settings"]["at_trained_steps"] and not eight["authors_settings"]["at_trained_steps"]
    report = (out / "report.md").read_text()
    assert "`schnell8`: from the card:" in report and "**run at 8 steps, not trained for**" in report
    results = (out / "results.csv").read_text().splitlines()
    header = results[0].split(",")
    column = header.index("at_trained_steps")
    assert sorted(line.split(",")[column] for line in results[1:]) == ["False", "True"]
