"""The preference scorers of ``preference.SCORERS`` as extractor entries: built by their module of
``lcm_bench.models.scorers`` (``load(options, device, field, weights)``), found by its ``files(options)`` (every
missing file reported at once), digested over those files and the backbone weights they read besides."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lcm_bench.core.errors import MissingResourceError, raise_missing
from lcm_bench.metrics.extraction import EXTRACTORS, ExtractorDef, ScoreExtractor
from lcm_bench.metrics.preference import SCORERS, PreferenceScorer
from lcm_bench.models.scorers import aesthetic, hps, imagereward, pickscore

MODULES = {module.__name__.rsplit(".", 1)[-1]: module for module in (aesthetic, hps, imagereward, pickscore)}


def _found_files(published: list, options: Mapping[str, Any], weights: Sequence[Path]) -> list[Path] | None:
    """Every file the scorer reads (a folder's required files), or None while one is absent."""
    from lcm_bench.models.scorers.files import find

    paths = []
    for item in published:
        found = find(item, options, weights)
        if found is None:
            return None
        alternatives = [[found / f for f in each.split("|")] for each in item.files]
        paths += [next(p for p in each if p.is_file()) for each in alternatives] if item.files else [found]
    return paths


def _check_files(module, name: str, options: Mapping[str, Any], field: str, weights: Sequence[Path]) -> None:
    """Every missing file at once, one line each: the scorer's published files and its backbones' weights."""
    from lcm_bench.models.scorers.files import locate

    errors = []
    for item in module.files(name, options):
        try:
            locate(item, options, field, weights)
        except MissingResourceError as exc:
            errors.append(exc)
    for other, each in module.backbones(options):
        entry = EXTRACTORS.get(other)
        try:
            if entry.sources(each, weights) is None:
                entry.build(each, "cpu", field, weights)
        except MissingResourceError as exc:
            errors.append(exc)
    raise_missing(errors)


def scorer_entry(name: str, scorer: PreferenceScorer) -> ExtractorDef:
    module = MODULES[scorer.module]

    def build(options, device, field, weights=()):
        _check_files(module, name, options, field, weights)
        loaded = module.load(name, options, device, field, weights)
        return ScoreExtractor(
            name, scorer.label, scorer.version, 1, loaded.resize(), lambda batch: batch, device, scorer=loaded
        )

    def sources(options, weights):
        """Its files, its backbones' files and, where the module names one for these options, its preprocessing's
        revision (so a corrected preprocessing gives a new digest and stored scores are computed again)."""
        found = _found_files(module.files(name, options), options, weights)
        others = [EXTRACTORS.get(other).sources(each, weights) for other, each in module.backbones(options)]
        named = module.preprocessing(options) if hasattr(module, "preprocessing") else None
        revision = [f"preprocessing {named}"] if named else []
        if found is None or None in others:
            return None
        return [*found, *(s for each in others for s in each), *revision]

    return ExtractorDef(
        build,
        sources,
        f"{scorer.label} {scorer.version}: one score per image for its caption",
        scorer.takes,
        dim=1,
        weights=", ".join(item.describe() for item in module.files(name, {})),
    )


for _name, _scorer in SCORERS.items():
    EXTRACTORS.register(_name, scorer_entry(_name, _scorer))
