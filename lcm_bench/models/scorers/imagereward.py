"""ImageReward v1.0 (Xu et al. 2023, THUDM/ImageReward ``ImageReward.py``) on transformers' BLIP classes: the BLIP
ViT (224 px) encodes the image; a BERT text encoder with cross-attention to every image token reads the caption
(padded or cut to 35 tokens); its [CLS] state goes through the MLP head; reward = (r - 0.16717362830052426) /
1.0333394966054072. ``ImageReward.pt`` is read as published (BLIP's ``blip.visual_encoder.*`` /
``blip.text_encoder.*`` / ``mlp.layers.*`` names) through ``KEY_MAP``; the vision width, depth, patch and image
size come from its shapes (BLIP's ViTs use 64-wide heads), the text encoder's from ``med_config.json``."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.models.scorers.files import Published, check_layout, locate, read_state
from lcm_bench.models.scorers.heads import mlp_head
from lcm_bench.models.scorers.preprocess import normalise, shortest_side_crop

CHECKPOINT = Published("ImageReward.pt", "THUDM/ImageReward", "about 1.8 GB", "Apache-2.0", "checkpoint")
CONFIG = Published("med_config.json", "THUDM/ImageReward", "1 kB", "Apache-2.0", "config")
TOKENIZER = Published(
    "bert-base-uncased", "google-bert/bert-base-uncased", "232 kB", "Apache-2.0", "tokenizer", ("vocab.txt",)
)
MEAN, STD = 0.16717362830052426, 1.0333394966054072
MAX_TOKENS = 35
HEAD_WIDTH = 64
VISION = "blip.visual_encoder."
BLOCK_MAP = {
    "norm1": "layer_norm1",
    "attn.qkv": "self_attn.qkv",
    "attn.proj": "self_attn.projection",
    "norm2": "layer_norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
VISION_MAP = {
    "cls_token": "embeddings.class_embedding",
    "pos_embed": "embeddings.position_embedding",
    "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
    "patch_embed.proj.bias": "embeddings.patch_embedding.bias",
    "norm.weight": "post_layernorm.weight",
    "norm.bias": "post_layernorm.bias",
}


def files(name: str, options: Mapping[str, Any]) -> list[Published]:
    return [CHECKPOINT, CONFIG, TOKENIZER]


def backbones(options: Mapping[str, Any]) -> list[tuple[str, dict]]:
    """Other extractors whose weights it reads: none."""
    return []


def map_key(key: str) -> str | None:
    """The transformers name of a published ImageReward key (None for what scoring does not use: BLIP's
    contrastive projections)."""
    if key.startswith(VISION):
        rest = key[len(VISION) :]
        block = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(weight|bias)", rest)
        if block and block[2] in BLOCK_MAP:
            return f"vision.encoder.layers.{block[1]}.{BLOCK_MAP[block[2]]}.{block[3]}"
        return f"vision.{VISION_MAP[rest]}" if rest in VISION_MAP else None
    if key.startswith("blip.text_encoder."):
        return "text." + key[len("blip.text_encoder.") :]
    if key.startswith("mlp.layers."):
        return "head." + key[len("mlp.layers.") :]
    return None


def vision_config(state: Mapping[str, Any], field: str, path: Path):
    """BLIP's ViT as its shapes say: width, patch and image size, depth, MLP width; 64-wide heads."""
    from transformers import BlipVisionConfig

    needed = [f"{VISION}patch_embed.proj.weight", f"{VISION}pos_embed", f"{VISION}blocks.0.mlp.fc1.weight"]
    if any(k not in state for k in needed):
        missing = next(k for k in needed if k not in state)
        raise UserError(f"{field}: '{path}' is not an ImageReward checkpoint (no {missing})")
    width, _, patch, _ = state[needed[0]].shape
    positions = state[needed[1]].shape[1]
    depth = 1 + max(int(k.split(".")[3]) for k in state if k.startswith(f"{VISION}blocks."))
    return BlipVisionConfig(
        hidden_size=width,
        intermediate_size=state[needed[2]].shape[0],
        num_hidden_layers=depth,
        num_attention_heads=max(1, width // HEAD_WIDTH),
        image_size=round((positions - 1) ** 0.5) * patch,
        patch_size=patch,
        hidden_act="gelu",
        layer_norm_eps=1e-6,
    )


def text_config(med: Mapping[str, Any], encoder_width: int):
    """The BERT of ``med_config.json`` with cross-attention to ``encoder_width``-wide image tokens (transformers
    builds BLIP's cross-attention layers for decoders; scoring runs it bidirectionally)."""
    from transformers import BlipTextConfig

    return BlipTextConfig(
        vocab_size=med["vocab_size"],
        hidden_size=med["hidden_size"],
        encoder_hidden_size=encoder_width,
        intermediate_size=med["intermediate_size"],
        num_hidden_layers=med["num_hidden_layers"],
        num_attention_heads=med["num_attention_heads"],
        max_position_embeddings=med["max_position_embeddings"],
        hidden_act=med.get("hidden_act", "gelu"),
        layer_norm_eps=med.get("layer_norm_eps", 1e-12),
        pad_token_id=med.get("pad_token_id", 0),
        is_decoder=True,
    )


def build(vision, text):
    """The network scoring runs: ``vision`` (BLIP's ViT), ``text`` (BERT with cross-attention), ``head``."""
    from torch import nn
    from transformers import BlipTextModel, BlipVisionModel

    net = nn.Module()
    net.vision = BlipVisionModel(vision)
    net.text = BlipTextModel(text, add_pooling_layer=False)
    net.head = mlp_head(text.hidden_size)
    return net.eval()


def _tokenizer(folder: Path):
    """BLIP's tokenizer: bert-base-uncased with [DEC] as bos and [ENC] added, as ``init_tokenizer`` builds it."""
    from transformers import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(str(folder))
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


@dataclass
class ImageRewardScorer:
    net: Any
    tokenizer: Any
    size: int
    device: str

    def resize(self):
        return shortest_side_crop(self.size)

    def score(self, images, captions: list[str]):
        """ImageReward of (B, 3, S, S) images in [0, 255] for their captions."""
        import torch

        from lcm_bench.models.clip import OPENAI_MEAN, OPENAI_STD

        tokens = self.tokenizer(
            captions, padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        ).to(self.device)
        pixels = normalise(images.to(self.device), OPENAI_MEAN, OPENAI_STD)
        image_tokens = self.net.vision(pixel_values=pixels).last_hidden_state
        text = self.net.text(
            input_ids=tokens.input_ids,
            attention_mask=tokens.attention_mask,
            encoder_hidden_states=image_tokens,
            encoder_attention_mask=torch.ones(image_tokens.shape[:2], dtype=torch.long, device=self.device),
            is_decoder=False,
        ).last_hidden_state[:, 0]
        return ((self.net.head(text) - MEAN) / STD).squeeze(-1)


def load(
    name: str, options: Mapping[str, Any], device: str, field: str, weights: Sequence[Path] = ()
) -> ImageRewardScorer:
    path = locate(CHECKPOINT, options, field, weights)
    med = json.loads(locate(CONFIG, options, field, weights).read_text())
    tokenizer = _tokenizer(locate(TOKENIZER, options, field, weights))
    state = read_state(path, field)
    vision = vision_config(state, field, path)
    net = build(vision, text_config(med, vision.hidden_size))
    mapped = {map_key(k): v for k, v in state.items() if map_key(k)}
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    check_layout(expected, mapped, field, path, "an ImageReward checkpoint for this med_config.json")
    net.load_state_dict({k: mapped[k] for k in expected})
    if len(tokenizer) > med["vocab_size"]:
        raise UserError(f"{field}.tokenizer: {len(tokenizer)} tokens do not fit med_config.json's {med['vocab_size']}")
    return ImageRewardScorer(net.to(device).eval(), tokenizer, vision.image_size, device)
