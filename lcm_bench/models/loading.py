"""Resolved models -> loaded diffusers pipelines: shared components, a step's student UNet, LoRAs fused into the
weights. Loading never uses ``trust_remote_code``; weights come from safetensors where the checkpoint has them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.libraries import quiet_libraries
from lcm_bench.core.spec import Hardware
from lcm_bench.models.components import component_folder, load_shared_components
from lcm_bench.models.openvino import is_openvino_folder, load_openvino_pipeline
from lcm_bench.models.resolve import ResolvedModel


def load_unet(path: Path, pipeline_path: Path, dtype):
    """A UNet folder, or a UNet published as one weights file built on its base pipeline's UNet config (its
    safetensors, or a ``.bin`` read with ``weights_only=True``; every key must fit)."""
    from diffusers import UNet2DConditionModel

    if path.is_dir():
        return UNet2DConditionModel.from_pretrained(path, torch_dtype=dtype)
    import torch
    from safetensors.torch import load_file

    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(component_folder(pipeline_path, "unet")))
    try:
        state = load_file(str(path)) if path.suffix == ".safetensors" else torch.load(path, "cpu", weights_only=True)
        unet.load_state_dict(state)
    except (OSError, RuntimeError, ValueError) as exc:
        reason = str(exc).splitlines()[0]
        raise UserError(f"models: UNet file {path} does not fit its base's UNet ({reason})") from None
    return unet.to(dtype)


def load_pipeline(resolved: ResolvedModel, hardware: Hardware, steps: int | None = None):
    """Load the diffusers pipeline for a resolved model onto ``hardware``; LoRAs are fused into the weights; a
    guided-distillation folder gives the student of ``steps``; an OpenVINO export gives its networks uncompiled
    (the runtime setting ``openvino`` compiles them)."""
    from diffusers import DiffusionPipeline

    from lcm_bench.core.hardware import torch_dtype

    quiet_libraries()
    if is_openvino_folder(resolved.pipeline_path):
        if resolved.lora_paths or resolved.unet_path is not None:
            raise UserError(f"models[{resolved.spec.name}]: an OpenVINO export takes no LoRA or UNet of its own")
        return load_openvino_pipeline(resolved.pipeline_path, f"models[{resolved.spec.name}]")
    dtype = torch_dtype(hardware)
    kwargs: dict[str, Any] = {"torch_dtype": dtype, "local_files_only": True}
    unet_path = resolved.unet_for(steps, "steps") if steps is not None else resolved.unet_path
    if unet_path is not None:
        kwargs["unet"] = load_unet(unet_path, resolved.pipeline_path, dtype)
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
