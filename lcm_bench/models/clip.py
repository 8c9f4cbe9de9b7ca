"""open_clip models for CLIP score, CLIP-FD and CMMD: by name with a pretrained tag, a local checkpoint, or random.

Weights never come from pickles: a local checkpoint is safetensors or a state dict read with ``weights_only``;
tagged weights come through open_clip from the Hugging Face cache (offline-aware).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lcm_bench.core.errors import MissingResourceError, UserError
from lcm_bench.core.libraries import without_log_messages
from lcm_bench.core.paths import embedded_models_dir, offline

if TYPE_CHECKING:
    import torch

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def config_dir() -> Path:
    """open_clip model configs lcm-bench ships (its in-domain CLIP and the tiny test CLIP)."""
    return Path(__file__).resolve().parent / "clip_configs"


def embedded_clip_weights() -> dict[str, Path]:
    """open_clip model name -> the weights lcm-bench trained and ships for it (``pretrained: embedded``)."""
    return {"lcm-bench-shapes-clip": embedded_models_dir() / "shapes-clip" / "open_clip_model.safetensors"}


@dataclass
class ClipModel:
    model: torch.nn.Module
    tokenizer: object
    name: str
    pretrained: str
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: str

    @property
    def tag(self) -> str:
        return f"{self.name}/{Path(self.pretrained).name if '/' in self.pretrained else self.pretrained}"

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised features of (B, 3, S, S) images in [0, 255] at ``image_size``."""
        import torch

        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1) * 255
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1) * 255
        features = self.model.encode_image((images.to(self.device) - mean) / std)
        return torch.nn.functional.normalize(features.float(), dim=-1)

    def text_features(self, texts: list[str]) -> tuple[torch.Tensor, int]:
        """L2-normalised text features and how many captions were truncated to the context length."""
        import torch

        context = self.tokenizer.context_length
        truncated = sum(len(self.tokenizer.encode(t)) + 2 > context for t in texts)
        tokens = self.tokenizer(texts).to(self.device)
        return torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1), truncated


def _register_configs() -> None:
    import open_clip

    shipped = [p.stem for p in config_dir().glob("*.json")]
    if any(name not in open_clip.list_models() for name in shipped):
        open_clip.add_model_config(config_dir())


def load_clip(name: str, pretrained: str, device: str = "cpu", field: str = "metrics") -> ClipModel:
    """``pretrained``: an open_clip tag (e.g. laion2b_s34b_b88k), a local .safetensors/.pt file, 'random', or
    'embedded' (the in-domain CLIP lcm-bench trains and ships, for lcm-bench-shapes-clip)."""

    if pretrained == "embedded":
        embedded = embedded_clip_weights()
        if name not in embedded:
            raise UserError(f"{field}.pretrained: 'embedded' weights exist only for {', '.join(embedded)}")
        if not embedded[name].is_file():
            raise MissingResourceError(
                f"{field}: the embedded CLIP is missing at {embedded[name]}; it ships with "
                "the repository, or rebuild it with `lcm-bench train clip`"
            )
        return _load(name, str(embedded[name]), device, field, tag="embedded")
    return _load(name, pretrained, device, field)


def tag_files(name: str, tag: str) -> tuple[str, tuple[str, ...]] | None:
    """The Hugging Face repository of an open_clip tag and the files open_clip reads from it (its safetensors
    alternative first); None for a tag open_clip does not host on the hub."""
    import open_clip

    _register_configs()
    hub = (open_clip.get_pretrained_cfg(name, tag) or {}).get("hf_hub", "")
    if not hub:
        return None
    repo, filename = os.path.split(hub)
    filename = filename or "open_clip_pytorch_model.bin"
    stem = filename.rsplit(".", 1)[0].replace("pytorch_model", "model")
    return repo, (f"{stem}.safetensors", filename)


def forced_quick_gelu(name: str, tag: str) -> bool:
    """Whether ``tag``'s weights were trained with QuickGELU (OpenAI's) while ``name``'s config uses GELU: open_clip
    only warns, so lcm-bench builds the model with QuickGELU, as the weights need."""
    import open_clip

    _register_configs()
    config = open_clip.get_model_config(name) or {}
    return bool((open_clip.get_pretrained_cfg(name, tag) or {}).get("quick_gelu")) and not config.get("quick_gelu")


def tag_in_cache(name: str, tag: str) -> bool | None:
    """Whether an open_clip tag's weights are in the Hugging Face cache (None when it is not hosted there)."""
    from huggingface_hub import try_to_load_from_cache

    files = tag_files(name, tag)
    if files is None:
        return None
    repo, names = files
    return any(isinstance(try_to_load_from_cache(repo, f), str) for f in names)


def missing_tag(name: str, tag: str, field: str) -> MissingResourceError | None:
    """Offline, the one line saying an open_clip tag's weights are not in the Hugging Face cache and how to get
    them (None when they are, online, or when the tag is not hosted on the hub)."""
    if not offline() or tag_in_cache(name, tag) is not False:
        return None
    repo, names = tag_files(name, tag)
    return MissingResourceError(
        f"{field}: CLIP weights {name}/{tag} are not in the Hugging Face cache; run `hf download {repo} {names[-1]}` "
        "on a machine with internet and copy the cache, or set pretrained: to a local .safetensors file"
    )


def _tagged(name: str, pretrained: str, device: str, field: str):
    """open_clip's model with the weights of one of its tags (QuickGELU where the weights need it)."""
    import open_clip

    known = [tag for arch, tag in open_clip.list_pretrained() if arch == name]
    if pretrained not in known:
        raise UserError(
            f"{field}.pretrained: '{pretrained}' is not a tag of {name} (tags: {', '.join(known)}; "
            "or give a local .safetensors file, or 'random')"
        )
    absent = missing_tag(name, pretrained, field)
    if absent is not None:
        raise absent
    return open_clip.create_model(
        name,
        pretrained=pretrained,
        device=device,
        weights_only=True,
        force_quick_gelu=forced_quick_gelu(name, pretrained),
    )


def _load(name: str, pretrained: str, device: str, field: str, tag: str | None = None) -> ClipModel:
    import open_clip
    import torch

    _register_configs()
    if name not in open_clip.list_models():
        from lcm_bench.core.registry import did_you_mean

        raise UserError(f"{field}.model: unknown open_clip model '{name}'{did_you_mean(name, open_clip.list_models())}")
    path = Path(pretrained).expanduser()
    try:
        if pretrained == "random" or path.suffix in (".safetensors", ".pt", ".pth", ".bin"):
            with torch.random.fork_rng(), without_log_messages("No pretrained weights loaded"):
                torch.manual_seed(0)
                model = open_clip.create_model(name, pretrained=None, device=device)
            if pretrained != "random":
                if not path.is_file():
                    raise UserError(f"{field}.pretrained: CLIP checkpoint '{path}' does not exist")
                if path.suffix == ".safetensors":
                    from safetensors.torch import load_file

                    state = load_file(path)
                else:
                    state = torch.load(path, map_location="cpu", weights_only=True)
                    state = state.get("state_dict", state)
                try:
                    model.load_state_dict(state)
                except RuntimeError as exc:
                    raise UserError(
                        f"{field}.pretrained: '{path}' does not fit open_clip's {name} ({str(exc).splitlines()[0]})"
                    ) from None
        else:
            model = _tagged(name, pretrained, device, field)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - open_clip raises many types for a missing download
        how = "HF_HUB_OFFLINE is set" if offline() else f"download failed ({type(exc).__name__})"
        raise MissingResourceError(
            f"{field}: CLIP weights {name}/{pretrained} are not available locally and {how}; on a machine with "
            f"internet run open_clip.create_model('{name}', pretrained='{pretrained}') and copy the Hugging Face "
            "cache, or set pretrained: to a local .safetensors file"
        ) from None
    model.eval()
    size = open_clip.get_model_config(name)["vision_cfg"]["image_size"]
    mean, std = normalisation(name, pretrained)
    return ClipModel(
        model=model,
        tokenizer=open_clip.get_tokenizer(name),
        name=name,
        pretrained=tag or pretrained,
        image_size=size if isinstance(size, int) else size[0],
        mean=mean,
        std=std,
        device=device,
    )


def normalisation(name: str, pretrained: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean and std a checkpoint's images are normalised with, as open_clip's ``create_model`` sets them: its
    tag's own (SigLIP's 0.5 / 0.5, OpenAI's for most CLIPs), else the model config's ``preprocess_cfg`` (a local
    file or random weights), else OpenAI's."""
    import open_clip

    _register_configs()
    preprocess = dict(open_clip.get_model_config(name).get("preprocess_cfg") or {})
    preprocess |= {k: v for k, v in (open_clip.get_pretrained_cfg(name, pretrained) or {}).items() if v is not None}
    return tuple(preprocess.get("mean", OPENAI_MEAN)), tuple(preprocess.get("std", OPENAI_STD))
