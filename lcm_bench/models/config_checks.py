"""Checks that need a model's configuration, made before any compute from config files and safetensors headers
(no weights are read): steps against the scheduler, resolution against the VAE and denoiser, LoRA keys against the
UNet they patch."""

from __future__ import annotations

import json
import re
from pathlib import Path

from lcm_bench.core.errors import UserError
from lcm_bench.core.spec import CellSpec
from lcm_bench.models.components import component_folder

LORA_KEY = re.compile(r"^(?:unet\.|base_model\.model\.)?(?P<module>.+?)\.(?:lora_A|lora\.down|lora_down)\.weight$")
KOHYA_KEY = re.compile(r"^lora_unet_(?P<module>.+)\.lora_down\.weight$")


def config_json(path: Path) -> dict:
    """A JSON config file as a mapping; empty when absent or unreadable (a check then falls back to defaults)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def latent_factors(pipeline_path: Path, denoiser_folder: Path) -> tuple[int, int, bool]:
    """(VAE downsampling, the denoiser's, whether the latent must be a multiple of it): a UNet's down blocks (any
    latent at least that large), a transformer's patch size (whole patches only), from their configs."""
    vae = config_json(component_folder(pipeline_path, "vae") / "config.json")
    denoiser = config_json(denoiser_folder / "config.json")
    vae_factor = 2 ** (len(vae.get("block_out_channels", [0] * 4)) - 1)
    if "patch_size" in denoiser:
        return vae_factor, denoiser["patch_size"] or 1, True
    return vae_factor, 2 ** (len(denoiser.get("down_block_types", [0] * 4)) - 1), False


def check_resolution(cell: CellSpec, pipeline_path: Path, denoiser_folder: Path, multiple: int = 1) -> None:
    """The resolution fits the VAE and the denoiser (``multiple``: what the family's latent layout needs the
    latent's sides to divide by, e.g. 2 for FLUX's 2x2 packing)."""
    if cell.height is None:
        return
    vae_factor, net_factor, whole = latent_factors(pipeline_path, denoiser_folder)
    if multiple > 1:
        net_factor, whole = max(net_factor if whole else 1, multiple), True
    for name, size in (("height", cell.height), ("width", cell.width)):
        if size % vae_factor:
            raise UserError(
                f"resolution: {name} {size} is not a multiple of {vae_factor}, the VAE downsampling of "
                f"{cell.model.name}"
            )
        latent = size // vae_factor
        if whole and latent % net_factor:
            raise UserError(
                f"resolution: {name} {size} does not fit {cell.model.name}: its latent ({latent}) must be a multiple "
                f"of {net_factor}, the transformer's patch size or packing (so {name} a multiple of "
                f"{vae_factor * net_factor} px)"
            )
        if latent < net_factor:
            raise UserError(
                f"resolution: {name} {size} is too small for {cell.model.name}: its latent ({latent}) must be at "
                f"least {net_factor}, the denoiser's downsampling (so at least {vae_factor * net_factor} px)"
            )


def _shapes(files: list[Path]) -> dict[str, list[int]]:
    from safetensors import safe_open

    shapes: dict[str, list[int]] = {}
    for file in files:
        with safe_open(str(file), "np") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                shapes[key] = list(f.get_slice(key).get_shape())
    return shapes


def lora_file(path: Path, weight_name: str | None) -> Path | None:
    if path.is_file():
        return path if path.suffix == ".safetensors" else None
    candidates = [path / weight_name] if weight_name else sorted(path.glob("*.safetensors"))
    return next((c for c in candidates if c.is_file() and c.suffix == ".safetensors"), None)


def sgm_blocks_as_diffusers(lora: dict[str, list[int]], unet_config: dict) -> dict[str, list[int]]:
    """Kohya keys naming the SGM UNet's blocks (``input_blocks_4_1``: SDXL LoRAs written by sd-scripts for ComfyUI
    and A1111) renamed to diffusers' blocks, as diffusers' LoRA loader renames them (diffusers is imported only for
    such a file, so suites validate without it)."""
    names = {"input_blocks": "down_blocks", "middle_block": "mid_block", "output_blocks": "up_blocks"}
    if not any(name in key for key in lora for name in names):
        return lora
    from types import SimpleNamespace

    from diffusers.loaders.lora_conversion_utils import _maybe_map_sgm_blocks_to_diffusers

    config = SimpleNamespace(layers_per_block=unet_config.get("layers_per_block", 2))
    mapped = _maybe_map_sgm_blocks_to_diffusers(dict(lora), config)
    return {re.sub("|".join(names), lambda m: names[m.group(0)], key): shape for key, shape in mapped.items()}


def lora_targets(lora: dict[str, list[int]], unet: dict[str, list[int]], unet_config: dict) -> list[tuple[str, list]]:
    """The UNet modules a LoRA patches with its down projection's shape: diffusers/peft keys by name, kohya keys
    (``lora_unet_<module with underscores>.lora_down``, SGM block names mapped) by the UNet's own module names."""
    by_flat = {k[: -len(".weight")].replace(".", "_"): k[: -len(".weight")] for k in unet if k.endswith(".weight")}
    kohya = sgm_blocks_as_diffusers({k: v for k, v in lora.items() if KOHYA_KEY.match(k)}, unet_config)
    targets = [(by_flat.get(m, m), shape) for k, shape in kohya.items() if (m := KOHYA_KEY.match(k)["module"])]
    for key, shape in lora.items():
        match = LORA_KEY.match(key)
        if match and not key.startswith(("text_encoder", "lora_te", "lora_unet_")):
            targets.append((match["module"], shape))
    return targets


def check_lora(path: Path, weight_name: str | None, unet_folder: Path, field: str) -> None:
    """Every UNet module a LoRA patches exists in the base UNet with the LoRA's input width (diffusers/peft and
    kohya key formats; text-encoder keys are not checked). Read from safetensors headers only."""
    file = lora_file(path, weight_name)
    unet_files = sorted(unet_folder.glob("*.safetensors"))
    if file is None or not unet_files:
        return
    try:
        lora, unet = _shapes([file]), _shapes(unet_files)
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a corrupt header
        raise UserError(f"{field}: cannot read LoRA '{file}' ({type(exc).__name__}: {exc})") from None
    targets = lora_targets(lora, unet, config_json(unet_folder / "config.json"))
    missing = [m for m, _ in targets if f"{m}.weight" not in unet]
    if missing:
        raise UserError(
            f"{field}: LoRA '{file.name}' does not fit the UNet of its base model: {len(missing)} of {len(targets)} "
            f"modules it patches are absent (e.g. '{missing[0]}')"
        )
    for module, shape in targets:
        base = unet[f"{module}.weight"]
        if len(shape) > 1 and len(base) > 1 and shape[1] != base[1]:
            raise UserError(
                f"{field}: LoRA '{file.name}' does not fit the UNet of its base model: '{module}' takes "
                f"{base[1]} inputs, the LoRA {shape[1]}"
            )
