"""Prompt sets with categories: PartiPrompts built in with its 12 categories and 11 challenges, the shapes sets'
own (objects, relation, seen / unseen pair), a user's columns; every per-image metric reported per category in
records, the long CSV, the report's tables and a figure; bad category columns are one line."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import needs_judge, write_suite

from lcm_bench.cli.main import main
from lcm_bench.domain.prompts import PROMPT_SETS, read_categories
from lcm_bench.domain.shapes import categories


def test_partiprompts_ship_with_their_categories_and_licence(capsys):
    parti = PROMPT_SETS.get("partiprompts")
    labels = read_categories(parti.path, parti.format, parti.column, parti.categories)
    assert len(labels["Category"]) == 1632 and len(set(labels["Category"])) == 12
    assert len(set(labels["Challenge"])) == 11
    assert "Apache License" in (parti.path.parent / "LICENSE").read_text()
    assert main(["list"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("partiprompts"))
    assert "categories: Category 12, Challenge 11" in line and "Apache-2.0" in line


def test_shapes_captions_carry_their_categories():
    assert categories("a small red triangle at the top right on a black background") == {
        "objects": "one object",
        "relation": "none",
        "pair": "seen pair",
    }
    assert categories("a red star left of a green circle on a grey background") == {
        "objects": "two objects",
        "relation": "left of",
        "pair": "unseen pair",
    }
    assert categories("a photo of a cat") is None


TABLE = "prompt\tkind\nan apple\tfruit\na red bus\tvehicle\na pear\tfruit\n"


@pytest.mark.parametrize(
    ("text", "categories", "expected"),
    [
        (TABLE, "[colour]", "'colour' is not a column of"),
        (TABLE.replace("\tvehicle", "\t"), "[kind]", "column 'kind' of"),
        ("an apple\na pear\n", "[kind]", "a txt file carries no columns"),
        (TABLE, "[]", "must list at least one value"),
    ],
)
def test_bad_category_columns_are_one_line(tmp_path, capsys, text, categories, expected):
    suffix = ".txt" if "\t" not in text else ".tsv"
    (tmp_path / f"p{suffix}").write_text(text)
    suite = write_suite(
        tmp_path,
        f"version: 1\nmodels: [tiny-sd]\nsamplers: [ddim]\nsteps: [1]\n"
        f"prompts: [{{path: p{suffix}, categories: {categories}}}]\n",
    )
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and "prompts[0].categories" in err, err


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _one_cell(tmp_path, capsys, prompts: str, num_images: int, metric: str) -> tuple[dict, object]:
    """Run one tiny-sd DDIM cell on ``prompts`` scored by ``metric``; its record and run directory."""
    suite = write_suite(
        tmp_path,
        "version: 1\nmethods:\n  - {name: ddim, model: tiny-sd, sampler: ddim, guidance_scale: 3.0}\nsteps: [1]\n"
        f"prompts: [{prompts}]\nnum_images: {num_images}\nbatch_size: 12\nmetrics: [{metric}]\n",
    )
    out = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    (record,) = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    return record, out


def test_partiprompts_clip_score_per_category_with_intervals(tmp_path, capsys, figures):
    clip = "{name: clip_score, model: lcm-bench-shapes-clip, pretrained: embedded}"
    record, out = _one_cell(tmp_path, capsys, "partiprompts", 24, clip)
    metric = record["metrics"]["clip_score_lcm-bench-shapes-clip_embedded"]
    parti = PROMPT_SETS.get("partiprompts")
    labels = read_categories(parti.path, parti.format, parti.column, parti.categories)["Category"]
    per_image = np.array(metric["per_image"])
    chosen = np.array([labels[s["prompt_index"]] for s in record["samples"]])
    groups = metric["per_category"]["columns"]["Category"]
    assert set(groups) == set(chosen)
    for label, entry in groups.items():
        mine = per_image[chosen == label]
        assert entry["n"] == len(mine) and entry["value"] == pytest.approx(max(mine.mean(), 0.0))
        assert entry["ci95"][0] <= entry["value"] <= entry["ci95"][1]
    rows = [r for r in _rows(out / "results_by_category.csv") if r["category"] == "Category"]
    assert {r["value_of"]: float(r["value"]) for r in rows} == pytest.approx({k: v["value"] for k, v in groups.items()})
    report = (out / "report.md").read_text()
    assert "## Per category" in report and "### CLIP score by Category" in report
    table = (out / "tables" / "by_category_clip_score_lcm-bench-shapes-clip_embedded_Category.md").read_text()
    first = sorted(groups)[0]
    assert f"{first} (n={groups[first]['n']})" in table and "[" in table
    (panel,) = [p for p in figures["by_category_clip_score_lcm-bench-shapes-clip_embedded"] if "Category" in p["title"]]
    heights = next(iter(panel["series"].values()))[1]
    assert panel["xticks"] == sorted(groups)
    assert heights == pytest.approx([groups[k]["value"] for k in sorted(groups)])


@needs_judge
def test_attribute_accuracy_per_shapes_category(tmp_path, capsys):
    record, out = _one_cell(tmp_path, capsys, "shapes-mini", 16, "attribute_accuracy")
    columns = record["metrics"]["attribute_accuracy_shapes-judge"]["per_category"]["columns"]
    assert set(columns) == {"objects", "relation", "pair"}
    assert sum(e["n"] for e in columns["objects"].values()) == 16
    report = (out / "report.md").read_text()
    for heading in ("attribute accuracy by objects", "attribute accuracy by relation", "attribute accuracy by pair"):
        assert f"### {heading}" in report


def test_t2i_compbench_folders_load_with_their_sub_categories(tmp_path, capsys):
    folder = tmp_path / "compbench"
    folder.mkdir()
    (folder / "color_val.txt").write_text("a red book and a blue vase\na green bench\n")
    (folder / "non_spatial_val.txt").write_text("a man is walking a dog\n")
    suite = write_suite(
        tmp_path,
        "version: 1\nmodels: [tiny-sd]\nsamplers: [ddim]\nsteps: [1]\n"
        "prompts: [{path: compbench, format: t2i-compbench}]\n",
    )
    from lcm_bench.suite.load import load_suite

    spec = load_suite(suite).cells[0].prompts
    assert spec.size == 3 and spec.categories == ("sub-category",)
    labels = read_categories(folder, "t2i-compbench", None, spec.categories)
    assert labels == {"sub-category": ["color", "color", "non_spatial"]}
    (folder / "color_val.txt").unlink()
    (folder / "non_spatial_val.txt").unlink()
    assert main(["validate", str(suite)]) == 2
    assert "holds no .txt prompt files" in capsys.readouterr().err
