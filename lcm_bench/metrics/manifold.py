"""Fidelity and diversity from features, and their metric entries: precision and recall (Kynkäänniemi et al. 2019),
density and coverage (Naeem et al. 2020), as the ``prdc`` package defines them, and the Vendi score (Friedman &
Dieng 2023).

Every k-NN radius and neighbourhood test runs over row chunks of the distance matrix (``chunk`` rows at a time, in
float64), never the whole N x M matrix, so memory grows with N + M rather than N x M. Each result keeps its
per-sample indicators, from which a bootstrap interval follows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from lcm_bench.metrics.entry import CellInputs, register_metric

CHUNK = 1024


def _distance_chunks(x: np.ndarray, y: np.ndarray, chunk: int = CHUNK) -> Iterator[tuple[slice, np.ndarray]]:
    """Euclidean distances from each chunk of rows of ``x`` to all of ``y``: (rows, D[rows])."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    y_norms = np.einsum("ij,ij->i", y, y)
    for start in range(0, len(x), chunk):
        rows = x[start : start + chunk]
        squared = np.einsum("ij,ij->i", rows, rows)[:, None] + y_norms[None, :] - 2 * rows @ y.T
        yield slice(start, start + len(rows)), np.sqrt(np.clip(squared, 0, None))


def knn_radii(features: np.ndarray, k: int, chunk: int = CHUNK) -> np.ndarray:
    """Each sample's distance to its k-th nearest neighbour among the others (the set's k + 1-th smallest distance,
    itself at 0 included, as ``prdc.compute_nearest_neighbour_distances``)."""
    radii = np.empty(len(features))
    for rows, distances in _distance_chunks(features, features, chunk):
        distances[np.arange(len(distances)), np.arange(rows.start, rows.stop)] = 0.0
        radii[rows] = np.partition(distances, k, axis=1)[:, k]
    return radii


@dataclass
class Manifold:
    """Per-sample indicators of the four measures: for each generated sample, whether it lies in some real
    sample's k-NN ball (precision) and in how many (density x k); for each real sample, whether some generated
    sample's ball holds it (recall) and whether its own ball holds a generated sample (coverage)."""

    in_real_balls: np.ndarray
    real_balls_holding: np.ndarray
    in_fake_balls: np.ndarray
    covered: np.ndarray
    k: int

    def values(self) -> dict[str, np.ndarray]:
        return {
            "precision": self.in_real_balls.astype(np.float64),
            "recall": self.in_fake_balls.astype(np.float64),
            "density": self.real_balls_holding / self.k,
            "coverage": self.covered.astype(np.float64),
        }


def manifold(
    real: np.ndarray, fake: np.ndarray, k: int, real_radii: np.ndarray | None = None, chunk: int = CHUNK
) -> Manifold:
    """Precision, recall, density and coverage indicators of ``fake`` against ``real`` with k-NN balls; pass
    ``real_radii`` (``knn_radii(real, k)``) to reuse them across cells."""
    real_radii = knn_radii(real, k, chunk) if real_radii is None else real_radii
    fake_radii = knn_radii(fake, k, chunk)
    in_real, holding = np.zeros(len(fake), bool), np.zeros(len(fake))
    in_fake, nearest = np.zeros(len(real), bool), np.full(len(real), np.inf)
    for rows, distances in _distance_chunks(fake, real, chunk):
        inside_real = distances < real_radii[None, :]
        in_real[rows] = inside_real.any(axis=1)
        holding[rows] = inside_real.sum(axis=1)
        in_fake |= (distances < fake_radii[rows, None]).any(axis=0)
        nearest = np.minimum(nearest, distances.min(axis=0))
    return Manifold(in_real, holding, in_fake, nearest < real_radii, k)


def vendi_score(features: np.ndarray, weights: np.ndarray | None = None) -> float:
    """exp of the Shannon entropy of the eigenvalues of K / N, K the cosine kernel of the L2-normalised features
    (Friedman & Dieng 2023, ``vendi_score.vendi.score_X``); computed from the d x d matrix X^T X / N, whose
    nonzero eigenvalues are K / N's (``score_dual``), when d < N. ``weights`` (summing to N) weigh the samples, as a
    bootstrap resample does."""
    x = np.asarray(features, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, np.float64)
    scaled = x * np.sqrt(w / w.sum())[:, None]
    gram = scaled.T @ scaled if x.shape[1] < len(x) else scaled @ scaled.T
    eigenvalues = np.linalg.eigvalsh(gram)
    p = eigenvalues[eigenvalues > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def vendi_interval(features: np.ndarray, value: float, groups: int = 10) -> tuple[float, float]:
    """95 % interval of the Vendi score ``value`` of ``features`` (delete-a-group jackknife: a bootstrap resample
    repeats images, which lowers diversity)."""
    from lcm_bench.metrics.distances import jackknife_interval

    return jackknife_interval(lambda kept: vendi_score(features[kept]), len(features), value, groups)


def _manifold_indicators(inputs: CellInputs) -> dict[str, np.ndarray]:
    """The cell's precision/recall/density/coverage indicators at the metric's k (computed once per cell and k;
    the reference's radii once per reference and k)."""
    k = int(inputs.options["k"])
    if ("knn", k) not in inputs.reference_memo:
        inputs.reference_memo["knn", k] = knn_radii(inputs.reference_features, k)
    if ("manifold", k) not in inputs.memo:
        real = inputs.reference_features
        inputs.memo["manifold", k] = manifold(real, inputs.features, k, inputs.reference_memo["knn", k]).values()
    return inputs.memo["manifold", k]


def _manifold_measure(measure: str) -> Callable[[CellInputs], dict[str, Any]]:
    def compute(inputs: CellInputs) -> dict[str, Any]:
        from lcm_bench.metrics.distances import bootstrap_ci

        values = _manifold_indicators(inputs)[measure]
        return {"value": float(values.mean()), "ci95": list(bootstrap_ci(values)), "k": int(inputs.options["k"])}

    compute.__doc__ = f"{measure} of the cell's features against the reference's, with a bootstrap interval."
    return compute


KYNKAANNIEMI, NAEEM = "Kynkäänniemi et al. 2019", "Naeem et al. 2020"
for _name, _k, _measures, _what in (
    ("precision", 3, "fidelity", f"share of generated images inside the reference's k-NN manifold ({KYNKAANNIEMI}"),
    ("recall", 3, "diversity", f"share of reference images inside the generated images' k-NN manifold ({KYNKAANNIEMI}"),
    ("density", 5, "fidelity", f"reference k-NN balls holding each generated image, / k; can exceed 1 ({NAEEM}"),
    ("coverage", 5, "diversity", f"share of reference images whose k-NN ball holds a generated image ({NAEEM}"),
):
    register_metric(
        _name,
        label=_name.capitalize(),
        higher_is_better=True,
        kind="distribution",
        measures=_measures,
        defaults={"extractor": "effnet-lite0", "k": _k},
        description=f"{_what}; k = {_k} by default)",
        label_for=lambda extractor, name=_name: extractor.label.replace("FD", name.capitalize(), 1),
        tolerance={"rel": 0.0, "abs": 0.05, "noise_k": 2.0},
    )(_manifold_measure(_name))


@register_metric(
    "vendi",
    label="Vendi",
    higher_is_better=True,
    kind="set",
    measures="diversity",
    defaults={"extractor": "effnet-lite0", "groups": 10},
    description="Vendi score: exp entropy of the cosine kernel's eigenvalues (Friedman & Dieng 2023); an effective "
    "number of distinct images",
    label_for=lambda extractor: extractor.label.replace("FD", "Vendi", 1),
)
def vendi(inputs: CellInputs) -> dict[str, Any]:
    value = vendi_score(inputs.features)
    return {"value": value, "ci95": list(vendi_interval(inputs.features, value, int(inputs.options["groups"])))}
