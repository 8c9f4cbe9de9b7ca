"""Published results shipped as data (LCM paper, arXiv 2310.04378: Table 1, 512 px LAION-Aesthetics-6+, and
Table 2, 768 px LAION-Aesthetics-6.5+; w = 8, FID and CLIP ViT-g/14)."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

from lcm_bench.core.errors import UserError
from lcm_bench.core.registry import did_you_mean

DESCRIPTIONS = {
    "lcm-table1": "LCM paper Table 1: 512x512, LAION-Aesthetics-6+, w = 8 (diffusers s = 9), FID / CLIP ViT-g/14",
    "lcm-table2": "LCM paper Table 2: 768x768, LAION-Aesthetics-6.5+, w = 8 (diffusers s = 9), FID / CLIP ViT-g/14",
}


@cache
def published_rows() -> tuple[dict, ...]:
    with open(Path(__file__).parent / "published.csv", newline="") as f:
        return tuple(
            {**r, "steps": int(r["steps"]), "fid": float(r["fid"]), "clip": float(r["clip"])} for r in csv.DictReader(f)
        )


def check_published(name: str, field: str = "published") -> str:
    if name not in DESCRIPTIONS:
        raise UserError(f"{field}: unknown published table '{name}'{did_you_mean(name, list(DESCRIPTIONS))}")
    return name
