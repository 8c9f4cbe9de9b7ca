"""Stand-ins for the preference scorers' published files, written in each file's own format (its key names and
shapes, at shrunk sizes) with random weights: an HPS checkpoint ({'state_dict': ...} over open_clip's tiny test
CLIP), ImageReward.pt in BLIP's names with its med_config.json and a BERT vocabulary, a PickScore folder in
transformers' CLIP format with a processor folder (CLIP's own BPE, from open_clip's copy), and an aesthetic head
over the tiny CLIP. The published layouts at full size are stated here too, independently of lcm-bench's loaders."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]
TINY_CLIP = "lcm-bench-tiny-clip"
BERT_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def openclip_layout(vision: int, vision_layers: int, patch: int, image: int, text: int, text_layers: int, embed: int):
    """open_clip's CLIP state dict (what HPS checkpoints hold): keys and shapes."""
    layout = {
        "positional_embedding": (77, text),
        "text_projection": (text, embed),
        "logit_scale": (),
        "token_embedding.weight": (49408, text),
        "ln_final.weight": (text,),
        "ln_final.bias": (text,),
        "visual.class_embedding": (vision,),
        "visual.positional_embedding": ((image // patch) ** 2 + 1, vision),
        "visual.proj": (vision, embed),
        "visual.conv1.weight": (vision, 3, patch, patch),
        **{f"visual.{ln}.{p}": (vision,) for ln in ("ln_pre", "ln_post") for p in ("weight", "bias")},
    }
    for prefix, width, layers in (("transformer", text, text_layers), ("visual.transformer", vision, vision_layers)):
        for i in range(layers):
            block = f"{prefix}.resblocks.{i}."
            layout |= {
                block + "attn.in_proj_weight": (3 * width, width),
                block + "attn.in_proj_bias": (3 * width,),
                block + "attn.out_proj.weight": (width, width),
                block + "attn.out_proj.bias": (width,),
                block + "mlp.c_fc.weight": (4 * width, width),
                block + "mlp.c_fc.bias": (4 * width,),
                block + "mlp.c_proj.weight": (width, 4 * width),
                block + "mlp.c_proj.bias": (width,),
                **{block + f"{ln}.{p}": (width,) for ln in ("ln_1", "ln_2") for p in ("weight", "bias")},
            }
    return layout


def blip_vit_layout(width: int, depth: int, patch: int, image: int) -> dict[str, tuple]:
    """BLIP's ViT (timm's names) under ``blip.visual_encoder.``."""
    layout = {
        "cls_token": (1, 1, width),
        "pos_embed": (1, (image // patch) ** 2 + 1, width),
        "patch_embed.proj.weight": (width, 3, patch, patch),
        "patch_embed.proj.bias": (width,),
        "norm.weight": (width,),
        "norm.bias": (width,),
    }
    for i in range(depth):
        block = f"blocks.{i}."
        layout |= {
            block + "attn.qkv.weight": (3 * width, width),
            block + "attn.qkv.bias": (3 * width,),
            block + "attn.proj.weight": (width, width),
            block + "attn.proj.bias": (width,),
            block + "mlp.fc1.weight": (4 * width, width),
            block + "mlp.fc1.bias": (4 * width,),
            block + "mlp.fc2.weight": (width, 4 * width),
            block + "mlp.fc2.bias": (width,),
            **{block + f"{n}.{p}": (width,) for n in ("norm1", "norm2") for p in ("weight", "bias")},
        }
    return {"blip.visual_encoder." + k: v for k, v in layout.items()}


def med_bert_layout(med: dict, encoder_width: int) -> dict[str, tuple]:
    """BLIP's med.py BERT (add_cross_attention, no pooler) under ``blip.text_encoder.``."""
    h, inter = med["hidden_size"], med["intermediate_size"]
    layout = {
        "embeddings.position_ids": (1, med["max_position_embeddings"]),
        "embeddings.word_embeddings.weight": (med["vocab_size"], h),
        "embeddings.position_embeddings.weight": (med["max_position_embeddings"], h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for i in range(med["num_hidden_layers"]):
        layer = f"encoder.layer.{i}."
        for attention, source in (("attention", h), ("crossattention", encoder_width)):
            layout |= {
                f"{layer}{attention}.self.query.weight": (h, h),
                f"{layer}{attention}.self.query.bias": (h,),
                f"{layer}{attention}.self.key.weight": (h, source),
                f"{layer}{attention}.self.key.bias": (h,),
                f"{layer}{attention}.self.value.weight": (h, source),
                f"{layer}{attention}.self.value.bias": (h,),
                f"{layer}{attention}.output.dense.weight": (h, h),
                f"{layer}{attention}.output.dense.bias": (h,),
                f"{layer}{attention}.output.LayerNorm.weight": (h,),
                f"{layer}{attention}.output.LayerNorm.bias": (h,),
            }
        layout |= {
            layer + "intermediate.dense.weight": (inter, h),
            layer + "intermediate.dense.bias": (inter,),
            layer + "output.dense.weight": (h, inter),
            layer + "output.dense.bias": (h,),
            layer + "output.LayerNorm.weight": (h,),
            layer + "output.LayerNorm.bias": (h,),
        }
    return {"blip.text_encoder." + k: v for k, v in layout.items()}


def mlp_layout(width: int, prefix: str) -> dict[str, tuple]:
    """ImageReward's and the aesthetic predictor's MLP: Linear layers 0, 2, 4, 6, 7 (dropouts between)."""
    sizes = (width, 1024, 128, 64, 16, 1)
    layout = {}
    for position, index in enumerate((0, 2, 4, 6, 7)):
        layout[f"{prefix}{index}.weight"] = (sizes[position + 1], sizes[position])
        layout[f"{prefix}{index}.bias"] = (sizes[position + 1],)
    return layout


def imagereward_layout(med: dict, width: int, depth: int, patch: int, image: int) -> dict[str, tuple]:
    """ImageReward.pt: BLIP_Pretrain (ViT, BERT, its contrastive projections) and the MLP."""
    return {
        **blip_vit_layout(width, depth, patch, image),
        **med_bert_layout(med, width),
        "blip.vision_proj.weight": (256, width),
        "blip.vision_proj.bias": (256,),
        "blip.text_proj.weight": (256, med["hidden_size"]),
        "blip.text_proj.bias": (256,),
        **mlp_layout(med["hidden_size"], "mlp.layers."),
    }


PUBLISHED_MED = {
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "type_vocab_size": 2,
    "vocab_size": 30524,
    "encoder_width": 768,
    "add_cross_attention": True,
}


def clip_transformers_layout(vision: int, vision_layers: int, patch: int, image: int, text: int, text_layers: int):
    """transformers' CLIPModel state dict (what PickScore_v1 holds), projection width = text width."""
    layout = {
        "logit_scale": (),
        "text_projection.weight": (text, text),
        "visual_projection.weight": (text, vision),
        "text_model.embeddings.token_embedding.weight": (49408, text),
        "text_model.embeddings.position_embedding.weight": (77, text),
        "text_model.final_layer_norm.weight": (text,),
        "text_model.final_layer_norm.bias": (text,),
        "vision_model.embeddings.class_embedding": (vision,),
        "vision_model.embeddings.patch_embedding.weight": (vision, 3, patch, patch),
        "vision_model.embeddings.position_embedding.weight": ((image // patch) ** 2 + 1, vision),
        **{f"vision_model.{n}.{p}": (vision,) for n in ("pre_layrnorm", "post_layernorm") for p in ("weight", "bias")},
    }
    for tower, width, layers in (("text_model", text, text_layers), ("vision_model", vision, vision_layers)):
        for i in range(layers):
            layer = f"{tower}.encoder.layers.{i}."
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                layout[f"{layer}self_attn.{proj}.weight"] = (width, width)
                layout[f"{layer}self_attn.{proj}.bias"] = (width,)
            layout |= {
                layer + "mlp.fc1.weight": (4 * width, width),
                layer + "mlp.fc1.bias": (4 * width,),
                layer + "mlp.fc2.weight": (width, 4 * width),
                layer + "mlp.fc2.bias": (width,),
                **{layer + f"{n}.{p}": (width,) for n in ("layer_norm1", "layer_norm2") for p in ("weight", "bias")},
            }
    return layout


def random_state(layout: dict[str, tuple], seed: int):
    """Random tensors of a layout (small, so deep stacks stay finite); position ids count up."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout.items():
        if key.endswith("position_ids"):
            state[key] = torch.arange(shape[-1]).expand(shape).clone()
        elif key.endswith(("LayerNorm.weight", "norm1.weight", "norm2.weight", "norm.weight")):
            state[key] = 1 + 0.1 * torch.randn(shape, generator=generator)
        else:
            state[key] = 0.05 * torch.randn(shape, generator=generator)
    return state


def write_hps(folder: Path, seed: int, name: str = "HPS_v2_compressed.pt") -> Path:
    """An HPS checkpoint as HPSv2 saves it ({'state_dict': open_clip state dict}) over the tiny test CLIP."""
    import open_clip
    import torch

    from lcm_bench.models.clip import config_dir

    open_clip.add_model_config(config_dir())
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_CLIP, pretrained=None)
    path = folder / name
    torch.save({"state_dict": model.state_dict()}, path)
    return path


def write_bert_vocab(folder: Path, prompts: list[str]) -> Path:
    """A BERT vocabulary (vocab.txt) of the special tokens and the words of ``prompts``."""
    words = sorted({w for p in prompts for w in p.lower().replace(",", " , ").replace(".", " . ").split()})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(BERT_SPECIAL + words) + "\n")
    return folder


def write_imagereward(folder: Path, prompts: list[str], seed: int = 0) -> dict[str, Path]:
    """ImageReward.pt in BLIP's names (ViT width 128: two 64-wide heads; depth 2, patch 8 at 32 px),
    med_config.json (BERT width 32, 2 layers) and a BERT vocabulary."""
    import torch
    from transformers import BertTokenizer

    tokenizer_dir = write_bert_vocab(folder / "bert-base-uncased", prompts)
    tokens = len(BertTokenizer.from_pretrained(str(tokenizer_dir))) + 2
    med = PUBLISHED_MED | {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "vocab_size": tokens,
        "encoder_width": 128,
    }
    (folder / "med_config.json").write_text(json.dumps(med))
    torch.save(random_state(imagereward_layout(med, 128, 2, 8, 32), seed), folder / "ImageReward.pt")
    return {"checkpoint": folder / "ImageReward.pt", "config": folder / "med_config.json", "tokenizer": tokenizer_dir}


def write_clip_tokenizer(folder: Path) -> Path:
    """CLIP's BPE as transformers reads it (vocab.json, merges.txt), rebuilt from open_clip's copy of OpenAI's."""
    import open_clip
    from open_clip.tokenizer import bytes_to_unicode
    from transformers import CLIPTokenizer

    source = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(source) as packed:
        merges = packed.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab] + ["".join(m.split()) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(str(folder))
    return folder


def write_pickscore(folder: Path, seed: int = 0, size: int = 24) -> dict[str, Path]:
    """A PickScore folder (transformers CLIP, width 32, 2 layers, patch 8 at ``size`` px) and a processor folder."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2},
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": size,
            "patch_size": 8,
        },
        projection_dim=32,
    )
    model_dir, processor_dir = folder / "PickScore_v1", write_clip_tokenizer(folder / "processor")
    CLIPModel(config).save_pretrained(str(model_dir))
    write_clip_image_processor(processor_dir, size)
    return {"checkpoint": model_dir, "processor": processor_dir}


def write_clip_image_processor(folder: Path, size: int) -> None:
    """CLIP's ``preprocessor_config.json`` at ``size``: shortest side, bicubic, centre crop, OpenAI's mean and std."""
    config = {"crop_size": {"height": size, "width": size}, "size": {"shortest_edge": size}, "resample": 3}
    flags = {"do_center_crop": True, "do_normalize": True, "do_resize": True, "do_rescale": True}
    normalise = {"image_mean": OPENAI_MEAN, "image_std": OPENAI_STD}
    (folder / "preprocessor_config.json").write_text(json.dumps({**config, **flags, **normalise}))


def write_aesthetic_head(folder: Path, width: int, seed: int = 0) -> Path:
    """sac+logos+ava1-l14-linearMSE.pth's layout over ``width``-d embeddings, as a torch state dict."""
    import torch

    path = folder / "sac+logos+ava1-l14-linearMSE.pth"
    torch.save(random_state(mlp_layout(width, "layers."), seed), path)
    return path


def transformers_clip_state(state: dict) -> dict:
    """open_clip's CLIP state dict (OpenAI's layout) in transformers' CLIPModel names: attention's packed in_proj
    split into q, k, v; the projections transposed."""
    out = {
        "logit_scale": state["logit_scale"],
        "text_projection.weight": state["text_projection"].T.contiguous(),
        "visual_projection.weight": state["visual.proj"].T.contiguous(),
        "text_model.embeddings.token_embedding.weight": state["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": state["positional_embedding"],
        "vision_model.embeddings.class_embedding": state["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": state["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": state["visual.positional_embedding"],
    }
    norms = {"ln_final": "text_model.final_layer_norm", "visual.ln_pre": "vision_model.pre_layrnorm"}
    norms["visual.ln_post"] = "vision_model.post_layernorm"
    for source, target in norms.items():
        out |= {f"{target}.{p}": state[f"{source}.{p}"] for p in ("weight", "bias")}
    blocks = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj"}
    blocks |= {"mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    for tower, prefix in (("text_model", "transformer"), ("vision_model", "visual.transformer")):
        layers = 1 + max(
            int(k.split(".")[len(prefix.split(".")) + 1]) for k in state if k.startswith(prefix + ".resblocks.")
        )
        for i in range(layers):
            src, dst = f"{prefix}.resblocks.{i}.", f"{tower}.encoder.layers.{i}."
            for part in ("weight", "bias"):
                for name, value in zip("qkv", state[f"{src}attn.in_proj_{part}"].chunk(3), strict=True):
                    out[f"{dst}self_attn.{name}_proj.{part}"] = value.contiguous()
                out |= {f"{dst}{target}.{part}": state[f"{src}{source}.{part}"] for source, target in blocks.items()}
    return out


def write_transformers_clip(folder: Path, state: dict, config: dict) -> Path:
    """An open_clip CLIP (``config``: its open_clip model config, QuickGELU, 64-wide heads) as a transformers CLIP
    folder with CLIP's processor files (what torchmetrics' CLIPScore reads)."""
    from transformers import CLIPConfig, CLIPModel

    vision, text = config["vision_cfg"], config["text_cfg"]
    hf = CLIPConfig(
        text_config={
            "hidden_size": text["width"],
            "intermediate_size": 4 * text["width"],
            "num_hidden_layers": text["layers"],
            "num_attention_heads": text["heads"],
            "hidden_act": "quick_gelu",
        },
        vision_config={
            "hidden_size": vision["width"],
            "intermediate_size": 4 * vision["width"],
            "num_hidden_layers": vision["layers"],
            "num_attention_heads": vision["width"] // vision["head_width"],
            "image_size": vision["image_size"],
            "patch_size": vision["patch_size"],
            "hidden_act": "quick_gelu",
        },
        projection_dim=config["embed_dim"],
    )
    model = CLIPModel(hf)
    model.load_state_dict(transformers_clip_state(state), strict=True)
    model.save_pretrained(str(folder))
    write_clip_tokenizer(folder)
    write_clip_image_processor(folder, vision["image_size"])
    return folder
