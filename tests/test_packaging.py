"""What ships: the embedded data found inside an installed wheel or a checkout, students that share the teacher's
components instead of repeating them, and generator weights stored in half precision and loaded in the pipeline's
dtype."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from lcm_bench.core import paths
from lcm_bench.core.errors import UserError
from lcm_bench.core.hardware import parse_hardware
from lcm_bench.core.paths import embedded_models_dir
from lcm_bench.core.spec import ModelSpec
from lcm_bench.models.components import SHARED_COMPONENTS, component_folder
from lcm_bench.models.loading import load_pipeline
from lcm_bench.models.resolve import resolve_model
from lcm_bench.run.cell_fingerprint import model_components
from lcm_bench.train.pack import halve, share

SHARED = ("text_encoder", "tokenizer", "vae")


def _load(folder):
    resolved = resolve_model(ModelSpec("m", str(folder)))
    return resolved, load_pipeline(resolved, parse_hardware("cpu-fp32"))


def _weights(pipe):
    return {
        f"{name}.{k}": v
        for name in ("unet", "text_encoder", "vae")
        for k, v in pipe.components[name].state_dict().items()
    }


def test_embedded_root_prefers_the_packaged_copy_then_the_checkout(tmp_path, monkeypatch):
    package = tmp_path / "site-packages" / "lcm_bench"
    package.mkdir(parents=True)
    monkeypatch.setattr(paths, "package_dir", lambda: package)
    monkeypatch.chdir(tmp_path)
    assert paths.data_dir() == tmp_path / "site-packages" / "data"
    assert paths.model_output_dir() == tmp_path / "site-packages" / "data" / "models"
    (package / "_embedded").mkdir()
    assert paths.data_dir() == package / "_embedded" / "data"
    assert paths.suites_dir() == package / "_embedded" / "suites"
    assert paths.model_output_dir() == tmp_path, "training never writes into an installed package"


def test_a_student_sharing_the_teachers_components_loads_and_fingerprints_like_a_full_copy(tiny_sd_path, tmp_path):
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    shutil.copytree(tiny_sd_path, teacher)
    shutil.copytree(tiny_sd_path, student)
    before_resolved, before = _load(student)
    before_digests = model_components(before_resolved, 2)

    share(student, {name: teacher / name for name in SHARED})

    assert not any((student / name).exists() for name in SHARED)
    assert json.loads((student / SHARED_COMPONENTS).read_text())["vae"] == "../teacher/vae"
    assert component_folder(student, "vae") == (teacher / "vae").resolve()
    after_resolved, after = _load(student)
    assert model_components(after_resolved, 2) == before_digests
    (teacher / "vae" / "README.md").write_text("# a model card\n")
    assert model_components(after_resolved, 2) == before_digests, "a model card is not part of the weights"
    old, new = _weights(before), _weights(after)
    assert old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old)


def test_sharing_refuses_a_component_whose_weights_differ(tiny_sd_path, tmp_path):
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    shutil.copytree(tiny_sd_path, teacher)
    shutil.copytree(tiny_sd_path, student)
    file = next((teacher / "vae").glob("*.safetensors"))
    tensors = load_file(file)
    key = sorted(tensors)[0]
    tensors[key] = tensors[key] + 1
    from safetensors.torch import save_file

    save_file(tensors, str(file))
    with pytest.raises(UserError, match="only an identical component can be shared"):
        share(student, {"vae": teacher / "vae"})
    assert (student / "vae").is_dir()


def test_half_precision_storage_loads_back_in_float32_within_rounding(tiny_sd_path, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_sd_path, folder)
    _, full = _load(folder)

    changed = halve(folder)

    assert changed and all(
        t.dtype == torch.float16 for f in changed for t in load_file(f).values() if t.is_floating_point()
    )
    assert halve(folder) == []
    _, half = _load(folder)
    old, new = _weights(full), _weights(half)
    assert all(new[k].dtype == torch.float32 for k in new if new[k].is_floating_point())
    assert all(torch.allclose(old[k].float(), new[k].float(), rtol=1e-3, atol=1e-4) for k in old)
    assert any(not torch.equal(old[k], new[k]) for k in old)


@pytest.mark.skipif(not (embedded_models_dir() / "shapes-lcm").is_dir(), reason="needs the shipped models")
def test_shipped_students_share_one_text_encoder_tokenizer_and_vae():
    for student in ("shapes-lcm", "shapes-guided-distill"):
        folder = embedded_models_dir() / student
        for name in SHARED:
            assert not (folder / name).exists()
            assert component_folder(folder, name).parent.name in ("shapes-teacher", "models")
            assert any(component_folder(folder, name).iterdir())


@pytest.mark.parametrize("text", ["{not json", '["vae"]', '{"vae": 3}'])
def test_a_malformed_shared_components_file_is_one_line_naming_it(tiny_sd_path, tmp_path, capsys, text):
    from lcm_bench.cli.main import main

    folder = tmp_path / "m"
    shutil.copytree(tiny_sd_path, folder)
    (folder / SHARED_COMPONENTS).write_text(text)
    suite = tmp_path / "s.yaml"
    suite.write_text(
        f"version: 1\nname: s\nmodels: [{{name: m, path: {folder}}}]\nsamplers: [ddim]\nsteps: [1]\n"
        "prompts: [shapes-mini]\n"
    )
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and SHARED_COMPONENTS in err
