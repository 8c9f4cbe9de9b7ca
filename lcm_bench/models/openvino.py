"""OpenVINO on the ``openvino`` runtime package alone (optimum-intel pins transformers < 5.6, so it cannot be
installed beside lcm-bench): pipelines in optimum-intel's export layout (``unet/``, ``vae_decoder/`` and
``text_encoder/`` each with ``openvino_model.xml`` + ``.bin`` and ``config.json``; ``tokenizer/``, ``scheduler/``,
``model_index.json``) are loaded as a diffusers pipeline whose networks are OpenVINO compiled models, so lcm-bench's
own loop samples them (same samplers, seeds and NFE accounting). A local diffusers pipeline is converted to that
layout with ``openvino.convert_model`` (weights kept in fp32), cached under its weights' digest.

Input names follow optimum-intel's export (``sample``, ``timestep``, ``encoder_hidden_states``, ``timestep_cond``;
``latent_sample``; ``input_ids``); an IR whose names differ is fed by position.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
import warnings
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError

IR_FILE = "openvino_model.xml"
NETWORKS = {"unet": "unet", "vae": "vae_decoder", "text_encoder": "text_encoder"}
"""Pipeline component -> the export's folder holding its network."""
EXPORT_VERSION = 1


def is_openvino_folder(folder: Path) -> bool:
    return (Path(folder) / "unet" / IR_FILE).is_file() or (Path(folder) / "vae_decoder" / IR_FILE).is_file()


def missing_openvino_files(folder: Path) -> list[str]:
    """What an export in optimum-intel's layout lacks to run (each network's IR pair and config, tokenizer,
    scheduler and ``model_index.json``)."""
    folder = Path(folder)
    wanted = ["model_index.json", "scheduler/scheduler_config.json"]
    for sub in NETWORKS.values():
        wanted += [f"{sub}/{IR_FILE}", f"{sub}/openvino_model.bin", f"{sub}/config.json"]
    missing = [name for name in wanted if not (folder / name).is_file()]
    tokenizer = folder / "tokenizer"
    return missing + ([] if tokenizer.is_dir() and any(tokenizer.iterdir()) else ["tokenizer/"])


class OpenVINONetwork:
    """An OpenVINO IR standing in for a torch network: its config, inputs matched by name (else by position),
    torch tensors in and out; compiled by the ``openvino`` runtime setting."""

    def __init__(self, xml: Path, config: dict[str, Any]):
        import torch
        from diffusers.configuration_utils import FrozenDict

        self.path, self.config, self.compiled = Path(xml), FrozenDict(config), None
        self.dtype, self.device = torch.float32, torch.device("cpu")

    def compile(self, core, properties: dict[str, Any]) -> None:
        self.compiled = core.compile_model(core.read_model(self.path), "CPU", properties)

    def infer(self, named: dict[str, Any]) -> list:
        """Outputs for ``named`` inputs (None values dropped), cast and shaped as the IR declares them."""
        import numpy as np
        import torch

        if self.compiled is None:
            raise UserError(f"models: {self.path} is an OpenVINO network; run it with the runtime setting openvino")
        given = {k: v for k, v in named.items() if v is not None}
        ports = self.compiled.inputs
        names = [next(iter(p.get_names()), "") for p in ports]
        ordered = [given[n] for n in names] if set(names) <= set(given) else list(given.values())[: len(ports)]
        batch = len(next(iter(given.values())))
        feed = {}
        for port, value in zip(ports, ordered, strict=True):
            array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            rank = port.get_partial_shape().rank
            if rank.is_static and rank.get_length() == 1 and array.ndim == 0:
                array = np.full((batch,), array)
            feed[port] = array.astype(port.get_element_type().to_dtype())
        result = self.compiled(feed)
        return [torch.from_numpy(np.asarray(result[out])) for out in self.compiled.outputs]

    def to(self, *args, **kwargs):
        return self

    def parameters(self):
        return iter(())


class OpenVINOUNet(OpenVINONetwork):
    def __call__(self, sample, timestep, encoder_hidden_states=None, timestep_cond=None, return_dict=False, **extra):
        unused = [k for k, v in extra.items() if v is not None]
        if unused:
            raise UserError(f"runtimes: openvino runs UNets conditioned on text states only, not {', '.join(unused)}")
        named = {"sample": sample, "timestep": timestep, "encoder_hidden_states": encoder_hidden_states}
        return (self.infer({**named, "timestep_cond": timestep_cond})[0],)


class OpenVINODecoder(OpenVINONetwork):
    use_slicing = use_tiling = False

    def decode(self, latents, return_dict=False, **unused):
        return (self.infer({"latent_sample": latents})[0],)


class OpenVINOTextEncoder(OpenVINONetwork):
    def __call__(self, input_ids, attention_mask=None, output_hidden_states=False, **unused):
        if output_hidden_states:
            raise UserError("runtimes: openvino text encoders give their last hidden states only (no clip_skip)")
        return (self.infer({"input_ids": input_ids})[0],)


NETWORK_CLASSES = {"unet": OpenVINOUNet, "vae": OpenVINODecoder, "text_encoder": OpenVINOTextEncoder}


def read_networks(folder: Path) -> dict[str, OpenVINONetwork]:
    folder = Path(folder)
    out = {}
    for component, sub in NETWORKS.items():
        config = json.loads((folder / sub / "config.json").read_text())
        out[component] = NETWORK_CLASSES[component](folder / sub / IR_FILE, config)
    return out


def load_openvino_pipeline(folder: Path, field: str):
    """The export as a diffusers pipeline of its ``model_index.json`` class (optimum-intel's ``OV`` prefix
    dropped) with OpenVINO networks, the export's tokenizer and scheduler; not compiled yet."""
    import diffusers
    import transformers

    missing = missing_openvino_files(folder)
    if missing:
        raise UserError(f"{field}: OpenVINO export {folder} is missing {', '.join(missing)}")
    index = json.loads((folder / "model_index.json").read_text())
    name = index.get("_class_name", "StableDiffusionPipeline").removeprefix("OV")
    pipeline_class = getattr(diffusers, name, None)
    if pipeline_class is None:
        raise UserError(
            f"{field}: {folder}/model_index.json names '{index.get('_class_name')}', not a diffusers pipeline"
        )
    scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    scheduler = getattr(diffusers, scheduler_config["_class_name"]).from_config(scheduler_config)
    named = getattr(transformers, (index.get("tokenizer") or [None, ""])[1] or "", None)
    tokenizer = (named or transformers.AutoTokenizer).from_pretrained(folder / "tokenizer", local_files_only=True)
    extra = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False, "image_encoder": None}
    accepted = inspect.signature(pipeline_class.__init__).parameters
    kwargs = {k: v for k, v in extra.items() if k in accepted}
    pipe = pipeline_class(tokenizer=tokenizer, scheduler=scheduler, **read_networks(folder), **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def weights_digest(*modules) -> str:
    """sha256 of the modules' state (names, dtypes, shapes and bytes): what a conversion is cached by, LoRAs
    fused in included."""
    import torch

    digest = hashlib.sha256(f"export-v{EXPORT_VERSION}".encode())
    for module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _export_inputs(pipe) -> dict[str, dict[str, Any]]:
    """Example inputs per network at the model's own size (batch 1; the IR's shapes stay dynamic)."""
    import torch

    unet, vae, text = pipe.unet.config, pipe.vae.config, pipe.text_encoder.config
    side = unet.sample_size if isinstance(unet.sample_size, int) else unet.sample_size[0]
    length = pipe.tokenizer.model_max_length
    unet_inputs = {
        "sample": torch.randn(1, unet.in_channels, side, side),
        "timestep": torch.tensor([999.0]),
        "encoder_hidden_states": torch.randn(1, length, unet.cross_attention_dim),
    }
    if unet.get("time_cond_proj_dim"):
        unet_inputs["timestep_cond"] = torch.randn(1, unet.time_cond_proj_dim)
    return {
        "unet": unet_inputs,
        "vae": {"latent_sample": torch.randn(1, vae.latent_channels, side, side)},
        "text_encoder": {"input_ids": torch.zeros(1, min(length, text.max_position_embeddings), dtype=torch.int64)},
    }


def _exportable(component: str, module):
    """The network as a module whose forward takes the export's inputs by name and returns one tensor."""
    import torch

    class UNet(torch.nn.Module):
        def forward(self, sample, timestep, encoder_hidden_states, timestep_cond=None):
            return module(sample, timestep, encoder_hidden_states, timestep_cond=timestep_cond, return_dict=False)[0]

    class Decoder(torch.nn.Module):
        def forward(self, latent_sample):
            return module.decode(latent_sample, return_dict=False)[0]

    class TextEncoder(torch.nn.Module):
        def forward(self, input_ids):
            return module(input_ids, return_dict=False)[0]

    network = {"unet": UNet, "vae": Decoder, "text_encoder": TextEncoder}[component]()
    network.inner = module
    return network.eval()


def export_openvino(pipe, folder: Path) -> Path:
    """Write the pipeline in optimum-intel's layout under ``folder`` (written beside it, then renamed)."""
    import shutil

    import openvino as ov
    import torch

    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    inputs = _export_inputs(pipe)
    for component, sub in NETWORKS.items():
        module = getattr(pipe, component)
        (staging / sub).mkdir(parents=True)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            model = ov.convert_model(_exportable(component, module), example_input=inputs[component])
        ov.save_model(model, staging / sub / IR_FILE, compress_to_fp16=False)
        config = dict(module.config) if component != "text_encoder" else module.config.to_dict()
        (staging / sub / "config.json").write_text(json.dumps(config, indent=1, default=str))
    pipe.tokenizer.save_pretrained(staging / "tokenizer")
    pipe.scheduler.save_pretrained(staging / "scheduler")
    index = {"_class_name": f"OV{type(pipe).__name__}", "scheduler": ["diffusers", type(pipe.scheduler).__name__]}
    index |= {c: ["optimum", f"OVModel{c.title().replace('_', '')}"] for c in NETWORKS}
    index["tokenizer"] = ["transformers", type(pipe.tokenizer).__name__]
    (staging / "model_index.json").write_text(json.dumps(index, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def converted_folder(pipe, cache: Path) -> Path:
    """The pipeline's export, converted once per weights digest and openvino version."""
    from importlib import metadata

    key = weights_digest(pipe.unet, pipe.vae, pipe.text_encoder)
    folder = cache / f"{key}-ov{metadata.version('openvino')}"
    return folder if not missing_openvino_files(folder) else export_openvino(pipe, folder)


def to_openvino(deployment, options: dict[str, Any]) -> None:
    """Swap the pipeline's networks for OpenVINO's (converted where the model is not an export already) and
    compile them at the precision asked, with as many threads as torch; the time it takes is the deployment's
    setup time (reported with compile time)."""
    import openvino as ov
    import torch

    from lcm_bench.core.paths import cache_dir

    started = time.perf_counter()
    pipe = deployment.pipe
    if not isinstance(pipe.unet, OpenVINONetwork):
        family = deployment.family
        if not family.openvino:
            raise UserError("runtimes: openvino converts Stable Diffusion 1.x/2.x-layout pipelines only")
        pipe.register_modules(**read_networks(converted_folder(pipe, cache_dir() / "openvino")))
    core = ov.Core()
    properties = {"INFERENCE_PRECISION_HINT": options["precision"], "INFERENCE_NUM_THREADS": torch.get_num_threads()}
    for component in NETWORKS:
        getattr(pipe, component).compile(core, properties)
    deployment.setup_seconds += time.perf_counter() - started
