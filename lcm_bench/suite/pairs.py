"""Paired metrics' reference cells: a paired metric names a method of the suite (its ``reference`` option), and
each cell is paired with that method's cell of the same prompt set, seed and resolution, which must hold as many
images; image i of both then comes from the same prompt and the same initial noise. A reference cell is an
ordinary cell of the suite, generated once and shared by every cell and metric that names it."""

from __future__ import annotations

from lcm_bench.core.errors import UserError
from lcm_bench.core.spec import CellSpec, MetricSpec
from lcm_bench.metrics.builtins import METRICS


def _key(cell: CellSpec) -> tuple:
    return cell.prompts.name, cell.seed, cell.height, cell.width


def _reference_cells(method: str, cells: list[CellSpec], field: str) -> dict[tuple, CellSpec]:
    """The method's cells by prompt set, seed and resolution; one each, or the pairing is ambiguous."""
    found: dict[tuple, CellSpec] = {}
    for cell in (c for c in cells if c.method == method):
        if _key(cell) in found:
            raise UserError(
                f"{field}.reference: method '{method}' has several cells per prompt set and seed (steps or guidance "
                "scales); a reference method needs one, e.g. steps: [50] and one guidance_scale"
            )
        found[_key(cell)] = cell
    return found


def reference_pairs(metrics: tuple[MetricSpec, ...], cells: list[CellSpec]) -> dict[tuple[str, str], str]:
    """``{(cell_id, method): reference cell_id}`` for every paired metric's reference method, after checking that
    it is a method of the suite and matches every other cell's prompts, seed, resolution and number of images."""
    methods = {c.method for c in cells if c.method}
    pairs: dict[tuple[str, str], str] = {}
    for i, metric in enumerate(metrics):
        if not METRICS.get(metric.name).paired:
            continue
        field, method = f"metrics[{i}]", dict(metric.options).get("reference") or ""
        if method not in methods:
            listed = ", ".join(sorted(methods)) or "none: this suite is a models x samplers grid"
            raise UserError(f"{field}.reference: '{method}' is not a method of this suite (methods: {listed})")
        references = _reference_cells(method, cells, field)
        for cell in (c for c in cells if c.method != method):
            pairs[cell.cell_id, method] = _matching(cell, references, method, field).cell_id
    return pairs


def _matching(cell: CellSpec, references: dict[tuple, CellSpec], method: str, field: str) -> CellSpec:
    reference = references.get(_key(cell))
    where = f"prompt set '{cell.prompts.name}', seed {cell.seed}, {cell.height}x{cell.width}"
    if reference is None:
        raise UserError(
            f"{field}.reference: method '{method}' has no cell of {where}, which cell {cell.cell_id} is paired on; "
            "give the reference method the same prompts, seeds and resolution"
        )
    if reference.num_images != cell.num_images:
        raise UserError(
            f"{field}.reference: cell {cell.cell_id} has {cell.num_images} images and its reference "
            f"({method}, {where}) {reference.num_images}; paired metrics need the same number"
        )
    return reference
