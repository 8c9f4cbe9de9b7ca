"""Recorded fingerprints compared: which components of a cell's content fingerprint changed, and why a cell is
recomputed (``weights of m changed (unet)``). Computing a fingerprint is lcm_bench.run.cell_fingerprint's."""

from __future__ import annotations


def changed_components(old: dict | None, new: dict | None) -> list[str] | None:
    """The components whose digests differ between two fingerprints; None when ``old`` records none."""
    before, after = (old or {}).get("components"), (new or {}).get("components") or {}
    if not before:
        return None
    return [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]


def describe_change(model: str, sampler: str, old: dict | None, new: dict | None) -> str:
    """A short reason a cell's fingerprint differs: ``weights of m changed (unet, vae)``."""
    changed = changed_components(old, new)
    if changed is None:
        return "recorded without a fingerprint (older lcm-bench)"
    weights = [c.split(":", 1)[1] for c in changed if c.startswith("weights:")]
    parts = [f"weights of {model} changed ({', '.join(weights)})"] if weights else []
    if any(c.startswith("lora:") for c in changed):
        parts.append(f"LoRA weights of {model} changed")
    if "pipeline" in changed or "revision" in changed:
        parts.append(f"pipeline of {model} changed")
    if "scheduler" in changed:
        parts.append(f"scheduler of {sampler} changed")
    if "generation" in changed:
        versions = [((f or {}).get("components") or {}).get("generation") for f in (old, new)]
        parts.append(f"generation code changed (GENERATION_VERSION {versions[0]} -> {versions[1]})")
    return "; ".join(parts) or f"{', '.join(changed)} changed"


def fingerprint_value(record: dict | None) -> str | None:
    """The content fingerprint a record (or a chunk record) was made with; None when it records none."""
    return ((record or {}).get("fingerprint") or {}).get("value")
