"""A cell's content fingerprint: what produced its images, component by component.

Components: the digest of every weight folder the cell loads (pipeline components, the step's student UNet, LoRAs; a
model card in a folder shared as a component is not part of it), the Hub snapshot revision where there is one, the
resolved scheduler config (without ``_diffusers_version`` / ``_use_default_values``, so a diffusers upgrade that
changes nothing keeps every cell) and ``GENERATION_VERSION`` of the sampling loop. A finished cell is reused only
while its fingerprint is unchanged; when it is not, the components that differ say why (``weights of m changed
(unet)``).
"""

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
