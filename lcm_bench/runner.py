"""Runs a suite's cells: resolve the model -> sample every image -> measure -> record, resuming by cell id."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .execute.writer import ImageWriter
from .hardware import torch_dtype, unavailable_reason
from .models import ResolvedModel, load_pipeline, resolve_model
from .prompts import read_prompts, select
from .samplers import SAMPLERS
from .spec import CellSpec, ModelSpec, Suite
from .store import RunDir, write_results_csv


@dataclass
class RunSummary:
    run_dir: Path
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    recomputed: dict[str, str] = field(default_factory=dict)
    scored: int = 0

    def recompute_note(self) -> str:
        """``3 cells: weights of m changed (unet)``: how many stale cells, grouped by reason."""
        from collections import Counter

        counts = Counter(self.recomputed.values())
        reasons = "; ".join(f"{r} [{n}]" if len(counts) > 1 else r for r, n in counts.items())
        n = len(self.recomputed)
        return f"{n} cell{'s' if n != 1 else ''}: {reasons}"


def guidance_mode(cell: CellSpec, resolved: ResolvedModel, field_name: str) -> str:
    """cfg or embedding, from the sampler's request and what the model's UNet takes."""
    wanted = cell.sampler.guidance
    if wanted == "embedding" and not resolved.guidance_embedding:
        reason = (
            f"sampler '{cell.sampler.name}' needs"
            if SAMPLERS.get(cell.sampler.name).requires_embedding
            else "guidance: embedding asks for"
        )
        raise UserError(
            f"{field_name}: {reason} a guidance embedding, but model '{cell.model.name}' has none "
            "(its UNet config has no time_cond_proj_dim); use guidance: cfg or a w-conditioned model"
        )
    if wanted == "auto":
        return "embedding" if resolved.guidance_embedding else "cfg"
    return wanted


def default_resolution(pipe) -> tuple[int, int]:
    size = pipe.unet.config.sample_size
    size = size if isinstance(size, (list, tuple)) else (size, size)
    return size[0] * pipe.vae_scale_factor, size[1] * pipe.vae_scale_factor


def save_grid(run: RunDir, cell: CellSpec, images) -> None:
    import numpy as np
    from PIL import Image

    if cell.save_images == "none" or not len(images):
        return
    shown = images[:16]
    cols = min(len(shown), 4)
    rows = math.ceil(len(shown) / cols)
    h, w = shown.shape[1:3]
    grid = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for i, image in enumerate(shown):
        grid[(i // cols) * h : (i // cols + 1) * h, (i % cols) * w : (i % cols + 1) * w] = image
    run.images_dir(cell.cell_id).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(run.path / "images" / f"{cell.cell_id}.grid.png")


def run_cell(
    run: RunDir,
    cell: CellSpec,
    resolved: ResolvedModel,
    pipe,
    mode: str,
    writer: ImageWriter,
    on_images: Callable[[int], None] = lambda n: None,
) -> dict[str, Any]:
    """Generate every image of one cell and return its record (throughput measured over the timed batches); the
    images are on disk when it returns (``writer`` writes them off the device's path)."""
    import numpy as np

    from .generate import GenerationSettings, generate_batch, sample_seed
    from .measure import PeakMemory, PhaseTimer

    height, width = (cell.height, cell.width) if cell.height else default_resolution(pipe)
    settings = GenerationSettings(
        cell.steps,
        cell.guidance_scale,
        mode,
        height,
        width,
        cell.negative_prompt,
        cell.hardware.device,
        torch_dtype(cell.hardware),
    )
    prompt_spec = cell.prompts
    prompts = read_prompts(Path(prompt_spec.source), prompt_spec.format, prompt_spec.column, "prompts")
    indices = select(prompts, cell.num_images, cell.seed)
    seeds = [sample_seed(cell.seed, i) for i in range(cell.num_images)]
    batches = [range(i, min(i + cell.batch_size, cell.num_images)) for i in range(0, cell.num_images, cell.batch_size)]

    warm = GenerationSettings(**{**asdict(settings), "steps": 1})
    for _ in range(cell.warmup):
        first = batches[0]
        generate_batch(
            pipe,
            resolved.family,
            cell.sampler,
            warm,
            [prompts[indices[i]] for i in first],
            [seeds[i] for i in first],
            PhaseTimer(settings.device),
        )

    timer = PhaseTimer(settings.device)
    evaluations, schedule, kept = 0, {}, []
    with PeakMemory(settings.device) as memory:
        for batch in batches:
            images, nfe, schedule = generate_batch(
                pipe,
                resolved.family,
                cell.sampler,
                settings,
                [prompts[indices[i]] for i in batch],
                [seeds[i] for i in batch],
                timer,
            )
            evaluations += nfe
            if cell.save_images == "all":
                writer.submit(run.images_dir(cell.cell_id), batch.start, images)
            if len(kept) < 16:
                kept.extend(images[: 16 - len(kept)])
            on_images(len(batch))
    save_grid(run, cell, np.stack(kept))
    writer.flush()
    n = cell.num_images
    total = sum(timer.seconds.values())
    return {
        "cell_id": cell.cell_id,
        "config_key": cell.config_key,
        "status": "ok",
        "spec": cell.canonical(),
        "sampler_label": cell.sampler.label,
        "guidance_mode": mode if (mode == "embedding" or cell.guidance_scale > 1.0) else "none",
        "guidance": {"diffusers_guidance_scale": cell.guidance_scale, "paper_w": cell.paper_w},
        "height": height,
        "width": width,
        "model": {
            "pipeline_path": str(resolved.pipeline_path),
            "family": resolved.family,
            "pipeline_class": type(pipe).__name__,
            "guidance_embedding": resolved.guidance_embedding,
        },
        "schedule": schedule,
        "samples": [{"index": i, "prompt_index": indices[i], "seed": seeds[i]} for i in range(n)],
        "throughput": {
            "nfe_per_image": evaluations / n,
            "images_per_s": n / total,
            "seconds_per_image": total / n,
            "seconds_per_nfe": timer.seconds["denoising"] / evaluations,
            "text_encoding_s_per_image": timer.seconds["text_encoding"] / n,
            "denoising_s_per_image": timer.seconds["denoising"] / n,
            "vae_decoding_s_per_image": timer.seconds["vae_decoding"] / n,
            "peak_memory_mb": memory.peak_bytes / 2**20,
            "memory_kind": memory.kind,
            "warmup_batches": cell.warmup,
        },
    }


def preflight(
    cells: list[CellSpec], resolved: dict[ModelSpec, ResolvedModel] | None = None
) -> tuple[dict[ModelSpec, ResolvedModel], dict[str, str]]:
    """Resolve every model the runnable cells need and check what their configs allow (guidance, steps,
    resolution, LoRA keys); errors surface before any work (students the suite distils must be trained first:
    lcm_bench.students.ensure_students)."""
    from .checks import check_lora, check_resolution, check_steps

    resolved = {} if resolved is None else resolved
    modes: dict[str, str] = {}
    for cell in cells:
        where = f"methods[{cell.method}]" if cell.method else f"models[{cell.model.name}]"
        if cell.model not in resolved:
            model = resolved[cell.model] = resolve_model(cell.model, f"models[{cell.model.name}]")
            for i, (path, _, weight_name) in enumerate(model.lora_paths):
                check_lora(path, weight_name, model.unet_path or model.pipeline_path / "unet", f"{where}.loras[{i}]")
        model = resolved[cell.model]
        modes[cell.cell_id] = guidance_mode(cell, model, f"samplers[{cell.sampler.name}]")
        unet = model.unet_for(cell.steps, f"{where} at steps: {cell.steps}")
        check_steps(cell, model.pipeline_path, f"{where}.steps")
        check_resolution(cell, model.pipeline_path, unet)
    return resolved, modes


def fingerprints(cells: list[CellSpec]) -> tuple[dict[str, dict], dict[ModelSpec, ResolvedModel]]:
    """Every cell's content fingerprint; models are resolved (not loaded) on the way, students by their key."""
    from .digests import digest_cache
    from .fingerprint import cell_fingerprint

    resolved: dict[ModelSpec, ResolvedModel] = {}
    memo: dict = {}
    out = {}
    for cell in cells:
        if not cell.model.distill and cell.model not in resolved:
            resolved[cell.model] = resolve_model(cell.model, f"models[{cell.model.name}]")
        model = resolved.get(cell.model)
        if model is not None:
            model.unet_for(cell.steps, f"models[{cell.model.name}] at steps: {cell.steps}")
        out[cell.cell_id] = cell_fingerprint(cell, model, memo)
    digest_cache().flush()
    return out, resolved


def stale_cells(run: RunDir, cells: list[CellSpec], current: dict[str, dict]) -> tuple[list, list, dict[str, str]]:
    """(cells to compute, finished cell ids to reuse, why each recorded cell must be recomputed)."""
    from .fingerprint import describe_change

    records = run.records()
    todo, reused, reasons = [], [], {}
    for cell in cells:
        record = records.get(cell.cell_id)
        if record is None:
            todo.append(cell)
        elif (record.get("fingerprint") or {}).get("value") == current[cell.cell_id]["value"]:
            reused.append(cell.cell_id)
        else:
            old = record.get("fingerprint")
            reasons[cell.cell_id] = describe_change(cell.model.name, cell.sampler.label, old, current[cell.cell_id])
            todo.append(cell)
    return todo, reused, reasons


def run_suite(suite: Suite, out: str | Path, provenance: dict, progress: bool = True) -> RunSummary:
    """Run every unfinished or stale cell of ``suite`` into ``out``; a cell whose fingerprint is unchanged is never
    recomputed."""
    from tqdm import tqdm

    run = RunDir(out)
    summary = RunSummary(Path(out))
    runnable, skipped = [], []
    for cell in suite.cells:
        reason = unavailable_reason(cell.hardware)
        if reason:
            skipped.append(
                {
                    "cell_id": cell.cell_id,
                    "status": "skipped",
                    "reason": reason,
                    "spec": cell.canonical(),
                    "sampler_label": cell.sampler.label,
                }
            )
        else:
            runnable.append(cell)
    summary.skipped = skipped
    current, resolved = fingerprints(runnable)
    todo, summary.reused, summary.recomputed = stale_cells(run, runnable, current)
    if summary.recomputed and progress:
        print(f"recomputing {summary.recompute_note()}", file=sys.stderr)
    from .students import ensure_students

    resolved, modes = preflight([c for c in todo if not c.model.distill], resolved)
    ensure_students({c.model for c in todo}, progress=progress)
    modes.update(preflight([c for c in todo if c.model.distill], resolved)[1])
    run.write_manifest(
        {
            "suite": {
                "name": suite.name,
                "source": suite.source,
                "hash": suite.suite_hash,
                "description": suite.description,
                "published": suite.published,
            },
            "cells": [c.cell_id for c in suite.cells],
            "metrics": [{"id": m.metric_id, "name": m.name, "options": dict(m.options)} for m in suite.metrics],
            "skipped": skipped,
            "provenance": provenance,
        }
    )
    todo.sort(key=lambda c: (c.model.name, c.hardware.name, c.steps if resolved[c.model].step_unets else 0))
    bar = tqdm(
        total=sum(c.num_images for c in todo),
        unit="img",
        disable=not progress or not todo,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    loaded_key, pipe = None, None
    writer = ImageWriter()
    try:
        for index, cell in enumerate(todo, 1):
            key = (cell.model, cell.hardware, resolved[cell.model].unet_for(cell.steps, "steps"))
            if key != loaded_key:
                pipe, loaded_key = None, None
                pipe = load_pipeline(resolved[cell.model], cell.hardware, cell.steps)
                loaded_key = key
            bar.set_description(f"[{index}/{len(todo)}] {cell.model.name} {cell.sampler.label} {cell.steps} steps")
            run.discard_cell(cell.cell_id)
            record = run_cell(run, cell, resolved[cell.model], pipe, modes[cell.cell_id], writer, bar.update)
            record["fingerprint"] = current[cell.cell_id]
            record["provenance"] = provenance
            record["suite"] = {"name": suite.name, "hash": suite.suite_hash}
            run.write_record(record)
            summary.computed.append(cell.cell_id)
            tp = record["throughput"]
            bar.write(
                f"  {cell.cell_id}: {tp['seconds_per_image'] * 1e3:.1f} ms/img, NFE {tp['nfe_per_image']:g}",
                file=sys.stderr,
            ) if progress else None
        bar.close()
        from .metrics.scoring import score_run

        summary.scored = score_run(run, suite, [c.cell_id for c in suite.cells], progress=progress)
    finally:
        bar.close()
        writer.close()
        finished = run.records()
        current = [finished[c.cell_id] for c in suite.cells if c.cell_id in finished]
        write_results_csv(run.path / "results.csv", current + skipped)
    return summary
