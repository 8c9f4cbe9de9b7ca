"""Procedural captioned image domains: images drawn from captions, deterministic by seed."""
