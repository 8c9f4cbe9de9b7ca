"""Sample grids from a run's saved images: rows method x steps, columns the same samples (prompt and seed) of
every cell, so a column compares methods on one initial latent and caption."""

from __future__ import annotations

import textwrap
from pathlib import Path

from lcm_bench.core.images import image_grid
from lcm_bench.metrics.scored_cell import ScoredCell
from lcm_bench.records.cell_record import CellRecord
from lcm_bench.records.store import RunDir, image_name, result_row
from lcm_bench.report.frame import method_label
from lcm_bench.report.plots import _pyplot, save


def _captions(cell: ScoredCell, count: int) -> list[str]:
    indices = cell.prompt_indices[:count]
    try:
        prompts = cell.prompts.read()
        return [prompts[i] for i in indices]
    except Exception:  # the prompt file may live on another machine; the index still identifies the sample
        return [f"prompt #{i}" for i in indices]


def sample_grid(cells: list[CellRecord], run_dirs: dict[str, Path], prompts: str, path: Path, columns: int = 6):
    """The first ``columns`` samples of the lowest seed of each (method, steps) cell for one prompt set; methods in
    the order ``cells`` first lists them."""
    import numpy as np
    from PIL import Image

    ok = [cell for cell in cells if cell.ok and cell.prompts == prompts]
    if not ok:
        return None
    seed = min(cell.seed for cell in ok)
    chosen = [(result_row(cell), cell.scored()) for cell in ok if cell.seed == seed]
    methods = list(dict.fromkeys(method_label(row) for row, _ in chosen))
    chosen.sort(key=lambda pair: (methods.index(method_label(pair[0])), pair[0]["steps"]))
    rows, labels = [], []
    for row, cell in chosen:
        if cell.cell_id not in run_dirs:
            continue
        folder = RunDir(run_dirs[cell.cell_id]).images_dir(cell.cell_id)
        files = [folder / image_name(i) for i in range(min(columns, len(cell.prompt_indices)))]
        if not files or not all(f.is_file() for f in files):
            continue
        rows.append([np.asarray(Image.open(f).convert("RGB")) for f in files])
        labels.append(f"{method_label(row)}\n{row['steps']} step{'s' * (row['steps'] > 1)}")
    if not rows:
        return None
    n = min(len(r) for r in rows)
    h, w = rows[0][0].shape[:2]
    pad = 2
    canvas = image_grid([image for images in rows for image in images[:n]], n, padding=pad, fill=255)
    captions = _captions(chosen[0][1], n)
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
