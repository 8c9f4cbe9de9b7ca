"""Resolved models -> loaded diffusers pipelines: shared components, a step's student UNet, LoRAs fused into the
weights. Loading never uses ``trust_remote_code``; weights come from safetensors where the checkpoint has them."""

from __future__ import annotations

from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.libraries import quiet_libraries
from lcm_bench.core.spec import Hardware
from lcm_bench.models.components import load_shared_components
from lcm_bench.models.resolve import ResolvedModel


def load_pipeline(resolved: ResolvedModel, hardware: Hardware, steps: int | None = None):
    """Load the diffusers pipeline for a resolved model onto ``hardware``; LoRAs are fused into the weights; a
    guided-distillation folder gives the student of ``steps``."""
    from diffusers import DiffusionPipeline, UNet2DConditionModel

    from lcm_bench.core.hardware import torch_dtype

    quiet_libraries()
    dtype = torch_dtype(hardware)
    kwargs: dict[str, Any] = {"torch_dtype": dtype, "local_files_only": True}
    unet_path = resolved.unet_for(steps, "steps") if steps is not None else resolved.unet_path
    if unet_path is not None:
        kwargs["unet"] = UNet2DConditionModel.from_pretrained(unet_path, torch_dtype=dtype)
    try:
        kwargs.update(load_shared_components(resolved.pipeline_path, dtype))
        pipe = DiffusionPipeline.from_pretrained(resolved.pipeline_path, **kwargs)
    except (OSError, ValueError) as exc:
        raise UserError(f"models: cannot load '{resolved.spec.name}' from {resolved.pipeline_path}: {exc}") from None
    if getattr(pipe, "safety_checker", None) is not None:
        pipe.safety_checker = None
    if resolved.lora_paths:
        names = []
        for i, (path, _, weight_name) in enumerate(resolved.lora_paths):
            name = f"adapter{i}"
            lora_kwargs = {"weight_name": weight_name} if weight_name else {}
            if path.is_file():
                lora_kwargs["weight_name"] = path.name
                path = path.parent
            try:
                pipe.load_lora_weights(str(path), adapter_name=name, **lora_kwargs)
            except (OSError, ValueError, KeyError) as exc:
                raise UserError(f"models: cannot load LoRA {path} for '{resolved.spec.name}': {exc}") from None
            names.append(name)
        pipe.set_adapters(names, [w for _, w, _ in resolved.lora_paths])
        pipe.fuse_lora(adapter_names=names)
        pipe.unload_lora_weights()
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(hardware.device)
