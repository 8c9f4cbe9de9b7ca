"""What identifies the sampling loop's output without loading it (torch-free): its version and each sample's seed."""

from __future__ import annotations

import hashlib

GENERATION_VERSION = 1
"""Bumped by hand whenever the sampling loop's images change (tests/test_golden.py pins it): part of every cell's
fingerprint, so cells sampled by older code are recomputed."""

HALF_PRECISION_VERSION = 2
"""Bumped by hand whenever the loop's images change in bf16 or fp16 alone (2: latents kept in the precision each
family's pipeline keeps them, the denoiser's input cast as it casts it, an fp16 VAE upcast only where SDXL's pipeline
upcasts it): part of the fingerprint of half-precision cells only, so fp32 cells keep theirs."""


def sample_seed(cell_seed: int, index: int) -> int:
    """The seed of sample ``index`` of a cell: a hash, so seeds of neighbouring cells never overlap."""
    return int(hashlib.sha256(f"lcm-bench/{cell_seed}/{index}".encode()).hexdigest()[:15], 16)
