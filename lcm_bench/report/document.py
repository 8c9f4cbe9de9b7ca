"""``report.md`` (reads on a code host) and one self-contained ``report.html`` (images embedded) built from a run's
records alone, plus every table as Markdown, CSV, LaTeX and HTML under ``tables/`` and every figure as PNG and
PDF under ``plots/``."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import UserError
from lcm_bench.core.faults import reached
from lcm_bench.core.io import write_atomic
from lcm_bench.core.paths import package_dir
from lcm_bench.domain.published import DESCRIPTIONS, check_published
from lcm_bench.records.cell_record import CellRecord
from lcm_bench.records.store import RunDir, category_rows, load_runs, results_frame, version_changes
from lcm_bench.report import categories, grids, plots
from lcm_bench.report.deployment import latency_table, runtime_table
from lcm_bench.report.frame import clip_metric, distance_metric, method_colours, metric_meta
from lcm_bench.report.overlay import overlay_table
from lcm_bench.report.speedup import default_target, iso_quality, speedup_table
from lcm_bench.report.tables import (
    Table,
    distance_notes,
    field_notes,
    quality_table,
    throughput_table,
    tidy_results,
)

CATEGORY_GUIDE = (
    "Per-image metrics over the images of each category of the prompt set (its metadata columns, or what the "
    "shapes captions ask for); brackets are 95 % bootstrap intervals over those images (one seed), ± the standard "
    "deviation over seeds (several), n the images of a category in a row (all seeds together). A category with few "
    "images has a wide interval: read differences against it."
)
READING_GUIDE = (
    "Guidance: diffusers scale s, paper w = s - 1. Values are means over seeds; ± is the standard deviation "
    "over seeds (over disjoint subsets of a cell's images when there is one seed); [a, b] is a 95 % "
    "bootstrap interval of one seed's images. Best per column in bold. ≈floor: a distance within two spreads of "
    "its noise floor (the reference against a second real draw), which at this N cannot tell the method from real "
    "images. Cost: NFE (network evaluations) and milliseconds per image (text encoding + denoising + VAE decoding, "
    "warm-up excluded)."
)
CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
td:first-child,th:first-child{text-align:left}caption{caption-side:bottom;font-size:12px;color:#555;padding:4px}
img{max-width:100%;border:1px solid #eee}code{background:#f4f4f4;padding:0 3px}"""


@dataclass
class Block:
    kind: str  # "h2", "h3", "p", "table", "image"
    content: object
    alt: str = ""


def _markdown(blocks: list[Block], out: Path) -> str:
    parts = []
    for block in blocks:
        if block.kind in ("h1", "h2", "h3"):
            parts.append("#" * int(block.kind[1]) + " " + str(block.content) + "\n")
        elif block.kind == "p":
            parts.append(str(block.content) + "\n")
        elif block.kind == "table":
            table: Table = block.content
            parts.append(table.to_markdown() + (f"\n_{table.caption}_\n" if table.caption else ""))
        elif block.kind == "image":
            parts.append(f"![{block.alt}]({Path(block.content).relative_to(out).as_posix()})\n")
    return "\n".join(parts)


def _html(blocks: list[Block], title: str) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"]
    parts.append(f"<style>{CSS}</style></head><body>")
    for block in blocks:
        if block.kind in ("h1", "h2", "h3"):
            parts.append(f"<{block.kind}>{html.escape(str(block.content))}</{block.kind}>")
        elif block.kind == "p":
            text = html.escape(str(block.content))
            parts.append(f"<p>{_inline_code(text)}</p>")
        elif block.kind == "table":
            parts.append(block.content.to_html())
        elif block.kind == "image":
            data = base64.b64encode(Path(block.content).read_bytes()).decode()
            parts.append(f"<p><img alt='{html.escape(block.alt)}' src='data:image/png;base64,{data}'></p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _inline_code(text: str) -> str:
    pieces = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))


def suite_rank(manifests: list[dict]) -> dict[str, int]:
    """Cell id -> its position in the suites' cell lists (models, then samplers, ... as the suite file writes them),
    so tables, legends and grids read like the suite: the paper's layout when the suite follows it."""
    return {cell: i for i, cell in enumerate(c for m in manifests for c in m.get("cells", []))}


def _write_table(table: Table | None, folder: Path, name: str) -> Table | None:
    if table is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, text in (("md", table.to_markdown()), ("csv", table.to_csv()), ("tex", table.to_latex())):
        write_atomic(folder / f"{name}.{suffix}", text.encode())
    write_atomic(folder / f"{name}.html", table.to_html().encode())
    return table


def _image_dirs(run_dirs: list[Path]) -> dict[str, Path]:
    found = {}
    for run_dir in run_dirs:
        images = RunDir(run_dir).all_images_dir
        if images.is_dir():
            found.update({p.name: run_dir for p in images.iterdir() if p.is_dir()})
    return found


def write_report(
    run_dirs: list[str | Path],
    out_dir: str | Path | None = None,
    published: str | None = None,
    target: float | None = None,
    target_metric: str | None = None,
) -> Path:
    """Write the report of one or more runs into ``out_dir`` (default: the first run directory).

    ``published`` overlays a published table (default: the one the suite names); the iso-quality study uses
    ``target_metric`` (default: the suite's distance) and ``target`` (default: the best baseline's value at its
    largest step count)."""
    if published is not None:
        check_published(published, "--published")
    run_dirs = [Path(p) for p in run_dirs]
    records, manifests = load_runs(run_dirs)
    rank = suite_rank(manifests)
    records.sort(key=lambda r: rank.get(r.cell_id, len(rank)))
    out = Path(out_dir or run_dirs[0])
    layout = RunDir(out)
    key = report_key(records, manifests, [published, target, target_metric, [str(p) for p in run_dirs]])
    if _up_to_date(layout, key):
        return layout.report_md
    frame = results_frame(records)
    reached("report")
    meta = metric_meta(records, manifests)
    metrics = list(meta.values())
    distance, clip = distance_metric(meta), clip_metric(meta)
    target_metric = metric_named(meta, target_metric) if target_metric else None
    cost_metric = meta[target_metric] if target_metric else distance or (metrics[0] if metrics else None)
    tables_dir = layout.tables_dir
    names = ", ".join(dict.fromkeys(m["suite"]["name"] for m in manifests))
    blocks = [Block("h1", f"lcm-bench report: {names}"), Block("p", READING_GUIDE)]
    ok = frame[frame["status"] == "ok"] if "status" in frame.columns else frame.iloc[0:0]
    if not ok.empty:
        view = Sections(ok, metrics, distance, clip, method_colours(frame), layout)
        _quality_section(blocks, view)
        _category_section(blocks, records, view)
        _published_section(blocks, view, manifests, published)
        _cost_section(blocks, view, cost_metric, target)
        _samples_section(blocks, view, records, run_dirs)
    else:
        blocks.append(Block("p", "_No finished cells._"))
    _closing_sections(blocks, records, frame, manifests)
    if metrics and not ok.empty:
        tables_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(tables_dir / "quality_long.csv", tidy_results(ok, metrics).to_csv(index=False).encode())
    report = layout.report_md
    write_atomic(report, _markdown(blocks, out).encode())
    write_atomic(layout.report_html, _html(blocks, f"lcm-bench report: {names}").encode())
    write_atomic(out / KEY_FILE, json.dumps({"key": key}).encode())
    return report


KEY_FILE = ".report-key.json"


@dataclass(frozen=True)
class Sections:
    """What the report's sections draw from: the finished cells' rows, the runs' metrics with the main distance
    and CLIP score among them, one colour per method, and the run directory whose tables/ and plots/ they fill."""

    ok: Any
    metrics: list[dict]
    distance: dict | None
    clip: dict | None
    colours: dict
    layout: RunDir


def report_key(records: list[CellRecord], manifests: list[dict], options: list) -> str:
    """What a report shows, as one digest: its records and manifests, the report's options and the code that draws
    it (every source file of lcm_bench), so an unchanged report is never drawn again."""
    payload = json.dumps([[r.digest() for r in records], manifests, options], sort_keys=True, default=str).encode()
    return hashlib.sha256(code_digest().encode() + payload).hexdigest()


def code_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(package_dir().rglob("*.py")):
        digest.update(path.relative_to(package_dir()).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _up_to_date(layout: RunDir, key: str) -> bool:
    """Whether ``layout`` holds the report of exactly this content (its key file, report.md and report.html)."""
    try:
        stored = json.loads((layout.path / KEY_FILE).read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        return False
    return stored == key and layout.report_md.is_file() and layout.report_html.is_file()


def metric_named(meta: dict[str, dict], name: str) -> str:
    """A metric id from its id or its short name (``attribute_accuracy`` for ``attribute_accuracy_shapes-judge``)
    when one metric of the runs has it."""
    if name in meta:
        return name
    found = [mid for mid, m in meta.items() if m["name"] == name]
    if len(found) == 1:
        return found[0]
    names = sorted({*meta, *(m["name"] for m in meta.values())})
    raise UserError(f"--target-metric: '{name}' is not one of the runs' metrics ({', '.join(names)})")


def _samples_section(blocks, view: Sections, records, run_dirs) -> None:
    image_dirs = _image_dirs(run_dirs)
    for prompts in dict.fromkeys(view.ok["prompts"]):
        figure = grids.sample_grid(records, image_dirs, prompts, view.layout.plots_dir / f"samples_{prompts}.png")
        if figure is not None:
            blocks += [Block("h3", f"Samples: {prompts}"), Block("image", figure, f"samples {prompts}")]


def _closing_sections(blocks, records, frame, manifests) -> None:
    """Invalid results, skipped cells, provenance and library versions that differ between cells."""
    invalid = invalid_lines(records)
    if invalid:
        blocks.append(Block("h2", "Invalid results"))
        blocks += [Block("p", line) for line in invalid]
    authors = authors_lines(records)
    if authors:
        blocks.append(Block("h2", "Authors' settings"))
        blocks += [Block("p", line) for line in authors]
    skipped = frame[frame["status"] == "skipped"] if "status" in frame.columns else frame.iloc[0:0]
    if not skipped.empty:
        blocks.append(Block("h2", "Skipped cells"))
        for (hardware, reason), group in skipped.groupby(["hardware", "reason"]):
            blocks.append(Block("p", f"- {len(group)} cells on `{hardware}`: {reason}"))
    blocks += [Block("h2", "Provenance")] + [Block("p", line) for line in provenance_lines(manifests)]
    changes = version_changes([r for r in records if r.ok])
    if changes:
        blocks.append(Block("p", "**Library versions differ between the cells of this report:** " + "; ".join(changes)))


def _quality_section(blocks, view: Sections) -> None:
    ok, metrics, distance, clip, colours = view.ok, view.metrics, view.distance, view.clip, view.colours
    plots_dir, tables_dir = view.layout.plots_dir, view.layout.tables_dir
    if not metrics:
        return
    blocks.append(Block("h2", "Quality"))
    main = [m for m in (distance, clip) if m is not None]
    table = _write_table(quality_table(ok, main or metrics[:1]), tables_dir, "quality")
    if table is not None:
        blocks.append(Block("table", table))
    for m in metrics:
        if m not in main:
            extra = _write_table(quality_table(ok, [m]), tables_dir, f"quality_{m['id']}")
            if extra is not None:
                blocks += [Block("h3", m["label"]), Block("table", extra)]
    notes = distance_notes(ok, metrics) + field_notes(ok, metrics)
    blocks += [Block("p", line) for line in notes]
    figure = plots.quality_vs_steps(ok, metrics, colours, plots_dir / "quality_vs_steps.png")
    if figure is not None:
        blocks.append(Block("image", figure, "quality against steps"))
    figure = plots.guidance_curves(ok, distance, clip, colours, plots_dir / "guidance.png")
    if figure is not None:
        blocks += [Block("h3", "Guidance scale"), Block("image", figure, "distance against CLIP across guidance")]
    for m in metrics:
        figure = plots.training_curves(ok, m, plots_dir / f"{m['id']}_vs_training.png")
        if figure is not None:
            blocks.append(Block("image", figure, f"{m['label']} against training iterations"))


def _category_section(blocks, records, view: Sections) -> None:
    """Every per-image metric per category: a table per category column and a figure per metric."""
    ok, plots_dir, tables_dir = view.ok, view.layout.plots_dir, view.layout.tables_dir
    rows = category_rows(records)
    if rows.empty:
        return
    table = categories.aggregate(rows)
    blocks += [Block("h2", "Per category"), Block("p", CATEGORY_GUIDE)]
    write_atomic(tables_dir / "quality_by_category_long.csv", table.to_csv(index=False).encode())
    for metric in dict.fromkeys(table["metric"]):
        for column in dict.fromkeys(table[table["metric"] == metric]["category"]):
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"by_category_{metric}_{column}")
            written = _write_table(categories.category_table(table, metric, column), tables_dir, name)
            blocks += [Block("h3", f"{written.caption.split(' (')[0]}"), Block("table", written)]
        figure = categories.category_figure(table, metric, ok, plots_dir / f"by_category_{metric}.png")
        if figure is not None:
            blocks.append(Block("image", figure, f"{metric} by category"))


def _published_section(blocks, view: Sections, manifests, published) -> None:
    name = published or next((m["suite"].get("published") for m in manifests if m["suite"].get("published")), None)
    if not name:
        return
    overlay = overlay_table(view.ok, check_published(name), view.distance, view.clip)
    table = _write_table(overlay, view.layout.tables_dir, "published")
    if table is not None:
        blocks += [
            Block("h2", "Reported against measured"),
            Block(
                "p",
                f"{DESCRIPTIONS[name]}. Numbers agree only where the protocol does (teacher, reference set, "
                "sample count, CLIP backbone); otherwise compare the shape: orderings per column and the trend "
                "over steps.",
            ),
            Block("table", table),
        ]


def _cost_section(blocks, view: Sections, metric, target) -> None:
    ok, colours, layout = view.ok, view.colours, view.layout
    blocks.append(Block("h2", "Cost"))
    table = _write_table(throughput_table(ok), layout.tables_dir, "throughput")
    if table is not None:
        blocks.append(Block("table", table))
    figure = plots.latency_vs_steps(ok, colours, layout.plots_dir / "cost_vs_steps.png")
    if figure is not None:
        blocks.append(Block("image", figure, "cost against steps"))
    _deployment_blocks(blocks, view, metric)
    if metric is None or metric["id"] not in ok.columns:
        return
    targets = {}
    for prompts in dict.fromkeys(ok["prompts"]):
        subset = ok[ok["prompts"] == prompts]
        chosen = (target, "given") if target is not None else default_target(subset, metric)
        if chosen is None:
            continue
        targets[prompts] = chosen
        table = speedup_table(iso_quality(subset, metric, chosen[0]), metric, *chosen)
        if _write_table(table, layout.tables_dir, f"speedup_{prompts}") is not None:
            if len(targets) == 1:
                blocks.append(Block("h3", "Iso-quality speedup"))
            blocks.append(Block("table", table))
    figure = plots.quality_vs_cost(ok, metric, colours, layout.plots_dir / "quality_vs_cost.png", targets)
    if figure is not None:
        blocks.append(Block("image", figure, "quality against cost"))


def _deployment_blocks(blocks, view: Sections, metric) -> None:
    """Latency percentiles and peak throughput where measured; each runtime's speed-up and quality cost where the
    runs hold more than one runtime."""
    ok, layout = view.ok, view.layout
    latency = _write_table(latency_table(ok), layout.tables_dir, "latency")
    if latency is not None:
        blocks += [Block("h3", "Latency and peak throughput"), Block("table", latency)]
    metrics = [m for m in view.metrics if m["id"] in ok.columns]
    runtimes = _write_table(runtime_table(ok, metrics), layout.tables_dir, "runtimes")
    if runtimes is None:
        return
    blocks += [Block("h3", "Runtimes: speed-up and quality cost"), Block("table", runtimes)]
    if metric is not None and metric["id"] in ok.columns:
        figure = plots.quality_vs_latency(ok, metric, view.colours, layout.plots_dir / "quality_vs_latency.png")
        if figure is not None:
            blocks.append(Block("image", figure, "quality against latency by runtime"))


def invalid_lines(records: list[CellRecord]) -> list[str]:
    """One line per cell whose metrics are invalid (images with NaN or inf), saying why; such cells show "–"."""
    return [
        f"- `{r.cell_id}`: metrics invalid, {'; '.join(sorted(r.invalid_reasons))}"
        for r in records
        if r.invalid_reasons
    ]


def authors_lines(records: list[CellRecord]) -> list[str]:
    """Per method whose checkpoint has registered authors' settings: which of its settings came from the card and
    from where, and the step counts it ran that its authors did not train for (allowed, and marked here)."""
    methods: dict[str, list[CellRecord]] = {}
    for record in records:
        if record.ok and record.authors:
            methods.setdefault(record.method, []).append(record)
    lines = []
    for method, group in methods.items():
        card = group[0].authors
        taken = ", ".join(card.from_card) or "nothing (the suite wrote every setting)"
        untrained = sorted({r.steps for r in group if not r.authors.at_trained_steps})
        trained = "/".join(map(str, card.trained_steps))
        line = f"- `{method}`: from the card: {taken} ({card.source}); trained for {trained} steps"
        lines.append(
            line + (f"; **run at {'/'.join(map(str, untrained))} steps, not trained for**" if untrained else "")
        )
    return lines


def provenance_lines(manifests: list[dict]) -> list[str]:
    lines = []
    for m in manifests:
        p = m.get("provenance", {})
        git, versions, machine = p.get("git", {}), p.get("versions", {}), p.get("machine", {})
        source = p.get("source") or (f"commit {git['commit']}" if git.get("commit") else "commit unknown")
        lines.append(
            f"- suite `{m['suite']['name']}` (hash {m['suite']['hash']}), lcm-bench {versions.get('lcm_bench')} "
            f"({source}{', with changes' if git.get('dirty') and 'changes' not in source else ''}), "
            f"torch {versions.get('torch')}, diffusers "
            f"{versions.get('diffusers')}, {machine.get('cpu')} x{machine.get('cpu_count')}"
            f"{', GPUs: ' + ', '.join(machine['cuda']['devices']) if machine.get('cuda') else ''}"
        )
        wall = m.get("throughput") or {}
        if wall.get("images_per_s"):
            threads = "/".join(map(str, wall["threads_per_process"]))
            lines.append(
                f"- generation wall clock: {wall['images']} images in {wall['busy_seconds']:.1f} s busy, "
                f"{wall['images_per_s']:.3g} images/s across {wall['processes']} process"
                f"{'es' * (wall['processes'] != 1)} ({threads} threads each)"
            )
    return lines
