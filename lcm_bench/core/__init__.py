"""Foundations that import nothing of lcm_bench: errors, paths resolved when asked, spec dataclasses, registries,
atomic io, text files, hardware entries, digests, faults and provenance."""
