"""Sample grids from a run's saved images: rows method x steps, columns the same samples (prompt and seed) of
every cell, so a column compares methods on one initial latent and caption."""

from __future__ import annotations

import textwrap
from pathlib import Path

from lcm_bench.core.images import image_grid
from lcm_bench.records.store import RunDir, image_name, result_row
from lcm_bench.report.frame import method_label
from lcm_bench.report.plots import _pyplot, save


def _captions(record: dict, prompt_indices: list[int]) -> list[str]:
    from lcm_bench.domain.prompts import read_prompts

    source = record["spec"]["prompts"]
    try:
        prompts = read_prompts(Path(source["source"]), source["format"], source.get("column"))
        return [prompts[i] for i in prompt_indices]
    except Exception:  # the prompt file may live on another machine; the index still identifies the sample
        return [f"prompt #{i}" for i in prompt_indices]


def sample_grid(records: list[dict], run_dirs: dict[str, Path], prompts: str, path: Path, columns: int = 6):
    """The first ``columns`` samples of the lowest seed of each (method, steps) cell for one prompt set; methods in
    the order ``records`` first lists them."""
    import numpy as np
    from PIL import Image

    cells = [r for r in records if r["status"] == "ok" and r["spec"]["prompts"]["name"] == prompts]
    if not cells:
        return None
    seed = min(r["spec"]["seed"] for r in cells)
    cells = [r for r in cells if r["spec"]["seed"] == seed]
    methods = list(dict.fromkeys(method_label(result_row(r)) for r in cells))
    cells.sort(key=lambda r: (methods.index(method_label(result_row(r))), r["spec"]["steps"]))
    rows, labels = [], []
    for record in cells:
        if record["cell_id"] not in run_dirs:
            continue
        folder = RunDir(run_dirs[record["cell_id"]]).images_dir(record["cell_id"])
        files = [folder / image_name(i) for i in range(min(columns, len(record["samples"])))]
        if not files or not all(f.is_file() for f in files):
            continue
        rows.append([np.asarray(Image.open(f).convert("RGB")) for f in files])
        row = result_row(record)
        labels.append(f"{method_label(row)}\n{record['spec']['steps']} step{'s' * (record['spec']['steps'] > 1)}")
    if not rows:
        return None
    n = min(len(r) for r in rows)
    h, w = rows[0][0].shape[:2]
    pad = 2
    canvas = image_grid([image for images in rows for image in images[:n]], n, padding=pad, fill=255)
    captions = _captions(cells[0], [s["prompt_index"] for s in cells[0]["samples"][:n]])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(2.6 + n * 0.95, 1.2 + len(rows) * 0.9))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_yticks([pad + i * (h + pad) + h / 2 for i in range(len(rows))], labels, fontsize=6)
    ax.set_xticks([pad + j * (w + pad) + w / 2 for j in range(n)], [textwrap.fill(c, 18) for c in captions], fontsize=6)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"Samples — {prompts}, seed {seed} (same initial latents in each column)", fontsize=8, pad=30)
    fig.tight_layout()
    return save(fig, path)
