"""Prompt-set loaders for every supported layout, deterministic subsets and content hashes."""

import json

import pandas as pd
import pytest

from lcm_bench.core.errors import UserError
from lcm_bench.domain.prompts import PROMPT_SETS, content_hash, read_prompts, select

PROMPTS = ("a red circle", "a blue square, on grey", 'a "quoted" star')


def write(tmp_path, fmt):
    if fmt == "txt":
        path = tmp_path / "p.txt"
        path.write_text("\n".join(PROMPTS) + "\n\n")
    elif fmt in ("csv", "tsv"):
        path = tmp_path / f"p.{fmt}"
        pd.DataFrame({"id": range(3), "caption": PROMPTS}).to_csv(path, sep="," if fmt == "csv" else "\t", index=False)
    elif fmt == "jsonl":
        path = tmp_path / "p.jsonl"
        path.write_text("".join(json.dumps({"caption": p, "n": i}) + "\n" for i, p in enumerate(PROMPTS)))
    elif fmt == "parquet":
        path = tmp_path / "p.parquet"
        pd.DataFrame({"caption": PROMPTS}).to_parquet(path)
    elif fmt == "coco":
        path = tmp_path / "captions_val2014.json"
        annotations = [{"image_id": 7 - i, "id": 100 + i, "caption": p + " "} for i, p in enumerate(PROMPTS)]
        path.write_text(json.dumps({"images": [], "annotations": annotations}))
    else:
        path = tmp_path / "PartiPrompts.tsv"
        pd.DataFrame({"Prompt": PROMPTS, "Category": ["Abstract"] * 3, "Challenge": ["Basic"] * 3}).to_csv(
            path, sep="\t", index=False
        )
    return path


@pytest.mark.parametrize("fmt", ["txt", "csv", "tsv", "jsonl", "parquet", "coco", "parti"])
def test_every_format_reads_the_same_prompts(fmt, tmp_path):
    column = "caption" if fmt in ("csv", "tsv", "jsonl", "parquet") else None
    prompts = read_prompts(write(tmp_path, fmt), fmt, column)
    expected = tuple(reversed(PROMPTS)) if fmt == "coco" else PROMPTS
    assert prompts == expected


def test_missing_column_names_the_columns(tmp_path):
    with pytest.raises(UserError, match=r"column: 'text' is not a column .* \(columns: id, caption\)"):
        read_prompts(write(tmp_path, "csv"), "csv", "text")


def test_not_coco(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{}")
    with pytest.raises(UserError, match="not a COCO captions file"):
        read_prompts(path, "coco", None)


def test_subset_is_deterministic_and_cycles():
    prompts = tuple(f"p{i}" for i in range(10))
    assert select(prompts, 4, 0) == select(prompts, 4, 0)
    assert select(prompts, 4, 0) != select(prompts, 4, 1)
    assert select(prompts, 4, 0) == sorted(set(select(prompts, 4, 0)))
    assert select(prompts, 25, 0) == [i % 10 for i in range(25)]


def test_hash_tracks_content():
    assert content_hash(PROMPTS) == content_hash(tuple(PROMPTS))
    assert content_hash(PROMPTS) != content_hash(PROMPTS[:2])


def test_builtin_sets_load():
    for name in PROMPT_SETS:
        entry = PROMPT_SETS.get(name)
        assert len(read_prompts(entry.path, entry.format, entry.column)) >= 20
