"""Files as their publishers ship them, built with random weights by the publisher's own library at its default
configuration, loaded through lcm-bench: timm's DINOv2 at its published 518 px (and Meta's key names), open_clip's
models per registered tag with the tag's own normalisation, LoRAs in kohya's key naming (diffusers names, and
SDXL's SGM block names as sd-scripts writes them), and files of another architecture refused in one line."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from lcm_bench.core.errors import UserError
from lcm_bench.core.spec import Hardware, LoraSpec, ModelSpec, SamplerSpec
from lcm_bench.metrics.extractors import EXTRACTORS

CPU = Hardware("cpu-fp32", "cpu", "fp32")


def _save(module_state: dict, path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in module_state.items()}, str(path))
    return path


@pytest.fixture(scope="module")
def dinov2_file(tmp_path_factory):
    """timm's DINOv2 as published: built at its default image size (518 px, 37 x 37 patches), the small width."""
    import timm

    torch.manual_seed(0)
    net = timm.create_model("vit_small_patch14_dinov2.lvd142m", pretrained=False, num_classes=0)
    assert net.pos_embed.shape[1] == 1 + 37 * 37
    return _save(net.state_dict(), tmp_path_factory.mktemp("dinov2") / "model.safetensors"), net


def test_fd_dinov2_loads_timms_published_file_at_518_px(dinov2_file):
    """The 518-px file loads into the 224-px extractor, its position embedding resampled to 16 x 16 patches; the
    features equal (to 1e-4 relative) those of timm's own model run at 224 px with ``dynamic_img_size`` (timm's
    resampling at every call) on the same weights."""
    import timm

    path, published = dinov2_file
    extractor = EXTRACTORS.get("dinov2").build(
        {"weights": str(path), "arch": "vit_small_patch14_dinov2.lvd142m"}, "cpu", "metrics[0]"
    )
    assert extractor.dim == 384
    images = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    ours = extractor.model_fn(x)
    dynamic = timm.create_model(
        "vit_small_patch14_dinov2.lvd142m", pretrained=False, num_classes=0, dynamic_img_size=True
    )
    dynamic.load_state_dict(published.state_dict())
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    with torch.no_grad():
        reference = dynamic.eval()((x - mean) / std)
    assert torch.allclose(ours, reference, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["pil", "clean"])
def test_fd_dinov2_resizes_as_dgm_evals_transform(dinov2_file, mode):
    """dgm-eval's ``DINOv2Encoder.transform`` on a non-square PNG-like image: by default torchvision's
    ``Resize((224, 224), BICUBIC)`` of the PIL image then ``ToTensor``; with ``--clean_resize`` its ``pil_resize``
    (each channel as a float PIL image, bicubic, clipped to 0-255, / 255); then ImageNet's mean and std. The
    extractor's features of the image equal timm's network's (resampling its position embedding at every call) on
    that tensor."""
    import timm
    import torchvision.transforms as TF
    from PIL import Image

    path, published = dinov2_file
    options = {"weights": str(path), "arch": "vit_small_patch14_dinov2.lvd142m", "mode": mode}
    extractor = EXTRACTORS.get("dinov2").build(options, "cpu", "metrics[0]")
    image = np.random.default_rng(1).integers(0, 256, (150, 97, 3), dtype=np.uint8)
    if mode == "pil":
        tensor = TF.Compose([TF.Resize((224, 224), TF.InterpolationMode.BICUBIC), TF.ToTensor()])(
            Image.fromarray(image)
        )
    else:
        channels = [
            np.asarray(Image.fromarray(image[:, :, c].astype(np.float32), mode="F").resize((224, 224), Image.BICUBIC))
            for c in range(3)
        ]
        tensor = torch.from_numpy(np.stack(channels).clip(0, 255)) / 255
    normalised = TF.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])(tensor.float())
    network = timm.create_model(
        "vit_small_patch14_dinov2.lvd142m", pretrained=False, num_classes=0, dynamic_img_size=True
    )
    network.load_state_dict(published.state_dict())
    with torch.no_grad():
        reference = network.eval()(normalised[None])
    resized = np.asarray(extractor.resize(image), np.float32)
    assert np.abs(resized - tensor.permute(1, 2, 0).numpy() * 255).max() < 1e-3
    assert np.allclose(extractor.features([image]), reference.numpy(), rtol=1e-4, atol=1e-4)
    assert extractor.mode == f"{mode}-224"


def test_the_position_embedding_is_resampled_as_dgm_evals_dinov2_does():
    """dgm-eval's DINOv2 (facebookresearch/dinov2's ``interpolate_pos_encoding``, the ViT-L/14 hub defaults) scales
    the 37 x 37 grid by (16 + 0.1) / 37, bicubic, no antialiasing; a smooth ramp stays a ramp and the class token's
    embedding is untouched."""
    from lcm_bench.metrics.extractors import resample_position_embedding

    ramp = torch.linspace(0, 1, 37).view(1, 37, 1, 1).expand(1, 37, 37, 1).reshape(1, 37 * 37, 1)
    pos = torch.cat([torch.full((1, 1, 1), 7.0), ramp], dim=1)
    out = resample_position_embedding(pos, 16)
    assert out.shape == (1, 1 + 16 * 16, 1) and out[0, 0, 0] == 7.0
    rows = out[0, 1:, 0].view(16, 16)
    assert torch.all(rows[1:, 0] > rows[:-1, 0]) and torch.allclose(rows, rows[:, :1].expand(16, 16), atol=1e-6)


def test_fd_dinov2_loads_metas_key_names_and_refuses_another_architecture(dinov2_file, tmp_path):
    """Meta's own checkpoints carry a ``mask_token`` (timm's checkpoint filter drops it); a ViT-B/14 file given for
    the ViT-S/14 extractor is one line naming the field."""
    import timm

    path, published = dinov2_file
    meta = _save({**published.state_dict(), "mask_token": torch.zeros(1, 384)}, tmp_path / "meta.safetensors")
    options = {"weights": str(meta), "arch": "vit_small_patch14_dinov2.lvd142m"}
    assert EXTRACTORS.get("dinov2").build(options, "cpu", "metrics[0]").dim == 384
    other = timm.create_model("vit_base_patch14_dinov2.lvd142m", pretrained=False, num_classes=0, img_size=224)
    wrong = _save(other.state_dict(), tmp_path / "base.safetensors")
    with pytest.raises(UserError, match=r"metrics\[0\].weights: .* does not fit timm's vit_small_patch14_dinov2"):
        EXTRACTORS.get("dinov2").build({**options, "weights": str(wrong)}, "cpu", "metrics[0]")


DEFAULT_TAGS = [
    ("ViT-B-16-SigLIP", "webli"),
    ("ViT-L-14-336", "openai"),
    ("ViT-H-14", "laion2b_s32b_b79k"),
    ("ViT-g-14", "laion2b_s34b_b88k"),
    ("ViT-B-32", "laion2b_s34b_b79k"),
]
"""Tags the suites and metrics name, and SigLIP's (0.5 / 0.5 normalisation)."""


def _open_clip_normalisation(name: str, tag: str) -> tuple[tuple, tuple]:
    """What open_clip's own ``create_model`` sets for a tag, on the meta device (its download and weight loading
    stubbed: nothing is fetched or allocated)."""
    from unittest import mock

    import open_clip
    import open_clip.factory as factory

    with (
        mock.patch.object(factory, "download_pretrained", lambda cfg, cache_dir=None: "stub"),
        mock.patch.object(factory, "load_checkpoint", lambda *a, **k: None),
        torch.device("meta"),
    ):
        model = open_clip.create_model(name, pretrained=tag, device="meta")
    return tuple(model.visual.preprocess_cfg["mean"]), tuple(model.visual.preprocess_cfg["std"])


@pytest.mark.parametrize(("name", "tag"), DEFAULT_TAGS)
def test_each_open_clip_tag_is_normalised_with_its_own_mean_and_std(name, tag):
    from lcm_bench.models.clip import normalisation

    assert normalisation(name, tag) == _open_clip_normalisation(name, tag)


def test_siglip_is_not_normalised_with_openais_statistics():
    from lcm_bench.models.clip import OPENAI_MEAN, normalisation

    assert normalisation("ViT-B-16-SigLIP", "webli") == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert normalisation("ViT-L-14", "openai")[0] == OPENAI_MEAN


@pytest.mark.slow
def test_every_registered_open_clip_tag_is_normalised_as_open_clip_sets_it(monkeypatch):
    """All of open_clip's registered tags (those whose text tower is not a Hugging Face model, which would need its
    config from the hub), each against the normalisation open_clip's own ``create_model`` sets."""
    import open_clip

    from lcm_bench.models.clip import normalisation

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pairs = [
        (n, t)
        for n, t in open_clip.list_pretrained()
        if not open_clip.get_model_config(n)["text_cfg"].get("hf_model_name")
    ]
    assert len(pairs) > 150
    wrong = [(n, t) for n, t in pairs if normalisation(n, t) != _open_clip_normalisation(n, t)]
    assert wrong == []


def _images(model: ModelSpec) -> np.ndarray:
    from lcm_bench.models.loading import load_pipeline
    from lcm_bench.models.resolve import resolve_model
    from lcm_bench.sampling.loop import GenerationSettings, Samples, generate_batch, sample_seed
    from lcm_bench.sampling.timers import PhaseTimer

    resolved = resolve_model(model)
    pipe = load_pipeline(resolved, CPU)
    settings = GenerationSettings(2, 1.0, "cfg", 32, 32, "", "cpu", torch.float32, sampler=SamplerSpec("ddim"))
    seeds = [sample_seed(0, i) for i in range(2)]
    return generate_batch(pipe, resolved.family, settings, Samples(["a red circle"] * 2, seeds), PhaseTimer("cpu"))[0]


def test_a_lora_in_kohyas_key_naming_loads_and_equals_the_diffusers_file(tiny_sd_path, tiny_lora, tmp_path):
    """The same LoRA written with diffusers' own ``convert_state_dict_to_kohya`` (``lora_unet_...lora_down`` with
    alphas, as Hyper-SD's and PCM's single files are published) passes the key check and gives the images of the
    diffusers-format file."""
    from diffusers.utils import convert_state_dict_to_kohya, convert_unet_state_dict_to_peft
    from safetensors.torch import load_file

    from lcm_bench.models.config_checks import check_lora

    state = load_file(str(tiny_lora / "pytorch_lora_weights.safetensors"))
    peft = convert_unet_state_dict_to_peft({k.removeprefix("unet."): v for k, v in state.items()})
    kohya = convert_state_dict_to_kohya({f"unet.{k}": v for k, v in peft.items()})
    assert all(k.startswith("lora_unet_") for k in kohya)
    path = _save(kohya, tmp_path / "Hyper-SD15-style-lora.safetensors")
    check_lora(path, None, tiny_sd_path / "unet", "methods[0].loras[0]")
    diffusers_format = _images(ModelSpec("a", str(tiny_sd_path), loras=(LoraSpec(str(tiny_lora)),)))
    kohya_format = _images(ModelSpec("b", str(tiny_sd_path), loras=(LoraSpec(str(path)),)))
    assert np.abs(diffusers_format.astype(int) - kohya_format).max() <= 1


def _sgm_name(module: str, layers_per_block: int) -> str:
    """sd-scripts' SDXL naming of a diffusers UNet attention module (``input_blocks`` / ``middle_block`` /
    ``output_blocks``), the inverse of diffusers' ``_maybe_map_sgm_blocks_to_diffusers`` for attentions."""
    parts = module.split("_")
    if parts[0] == "down" and parts[3] == "attentions":
        block, layer = int(parts[2]), int(parts[4])
        return "_".join(["input", "blocks", str(1 + block * (layers_per_block + 1) + layer), "1", *parts[5:]])
    if parts[0] == "up" and parts[3] == "attentions":
        block, layer = int(parts[2]), int(parts[4])
        return "_".join(["output", "blocks", str(block * (layers_per_block + 1) + layer), "1", *parts[5:]])
    if parts[0] == "mid" and parts[2] == "attentions":
        return "_".join(["middle", "block", "1", *parts[4:]])
    return module


def test_an_sdxl_lora_in_sgm_block_naming_passes_the_key_check_and_a_wrong_base_is_one_line(tmp_path):
    """SDXL LoRAs published for ComfyUI and A1111 (SDXL-Lightning's) name modules by the SGM UNet's blocks; the key
    check maps them as diffusers' loader does. The same file on an SD-1.x UNet is refused in one line."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_kohya
    from peft import LoraConfig, get_peft_model_state_dict

    from lcm_bench.models.catalogue import tiny_path
    from lcm_bench.models.config_checks import check_lora

    folder = tiny_path("tiny-sdxl")
    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    kohya = convert_state_dict_to_kohya({f"unet.{k}": v for k, v in get_peft_model_state_dict(unet).items()})
    lpb = json.loads((folder / "unet" / "config.json").read_text())["layers_per_block"]
    sgm = {}
    for key, value in kohya.items():
        module, _, suffix = key.removeprefix("lora_unet_").partition(".")
        sgm[f"lora_unet_{_sgm_name(module, lpb)}.{suffix}"] = value
    assert any("input_blocks" in k for k in sgm)
    path = _save(sgm, tmp_path / "sdxl_lightning_style_lora.safetensors")
    check_lora(path, None, folder / "unet", "methods[0].loras[0]")
    diffusers_format = tmp_path / "diffusers-format"
    StableDiffusionXLPipeline.save_lora_weights(diffusers_format, unet_lora_layers=get_peft_model_state_dict(unet))
    expected = _images(ModelSpec("a", str(folder), loras=(LoraSpec(str(diffusers_format)),)))
    assert np.abs(_images(ModelSpec("b", str(folder), loras=(LoraSpec(str(path)),))).astype(int) - expected).max() <= 1
    with pytest.raises(UserError, match=r"methods\[0\].loras\[0\]: LoRA .* does not fit the UNet of its base model"):
        from lcm_bench.models.catalogue import tiny_path as tiny

        check_lora(path, None, tiny("tiny-sd") / "unet", "methods[0].loras[0]")


def test_an_open_clip_file_of_another_architecture_is_one_line(tmp_path):
    """open_clip's ``create_model`` of the shapes CLIP, saved as safetensors, given for the tiny CLIP."""
    import open_clip

    from lcm_bench.models.clip import _register_configs, load_clip

    _register_configs()
    other = open_clip.create_model("lcm-bench-shapes-clip", pretrained=None)
    path = _save(other.state_dict(), tmp_path / "open_clip_model.safetensors")
    with pytest.raises(UserError, match=r"metrics\[0\].pretrained: .* does not fit open_clip's lcm-bench-tiny-clip"):
        load_clip("lcm-bench-tiny-clip", str(path), "cpu", "metrics[0]")


def test_full_size_dinov2_keys_and_shapes_fit_the_extractor_on_the_meta_device():
    """timm's ViT-L/14 DINOv2 as published (518 px) on the meta device: every key of its state, the position
    embedding resampled to 224 px, is what the 224-px model expects, shape for shape."""
    import timm

    from lcm_bench.metrics.extractors import resample_position_embedding

    with torch.device("meta"):
        published = timm.create_model("vit_large_patch14_dinov2.lvd142m", pretrained=False, num_classes=0)
        model = timm.create_model("vit_large_patch14_dinov2.lvd142m", pretrained=False, num_classes=0, img_size=224)
    state = published.state_dict()
    state["pos_embed"] = resample_position_embedding(state["pos_embed"], model.patch_embed.grid_size[0])
    expected = model.state_dict()
    assert set(state) == set(expected)
    assert all(state[k].shape == expected[k].shape for k in expected)
    assert state["pos_embed"].shape == (1, 1 + 16 * 16, 1024)
