"""Distances between feature sets: Fréchet distance (by eigenvalues), KID (clean-fid's estimator), CMMD, and the
statistics they rest on, accumulated in float64 so memory stays flat in the number of images."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass
class FeatureStats:
    """Mean and covariance (ddof = 1, as numpy.cov) of a feature set, in float64."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    @cached_property
    def root(self) -> np.ndarray:
        """The covariance's symmetric square root (from its eigendecomposition, negative eigenvalues at 0),
        computed once and reused by every distance to these statistics."""
        values, vectors = np.linalg.eigh(self.sigma)
        return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


class StreamingStats:
    """Accumulates sum and sum of outer products in float64, batch by batch."""

    def __init__(self, dim: int):
        self.n = 0
        self.total = np.zeros(dim, np.float64)
        self.outer = np.zeros((dim, dim), np.float64)

    def update(self, features: np.ndarray) -> None:
        x = np.asarray(features, np.float64)
        self.n += len(x)
        self.total += x.sum(axis=0)
        self.outer += x.T @ x

    def result(self) -> FeatureStats:
        if self.n < 2:
            raise ValueError("a covariance needs at least 2 samples")
        mu = self.total / self.n
        sigma = (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return FeatureStats(mu, sigma, self.n)


def feature_stats(features: np.ndarray, chunk: int = 4096) -> FeatureStats:
    stats = StreamingStats(features.shape[1])
    for start in range(0, len(features), chunk):
        stats.update(features[start : start + chunk])
    return stats.result()


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """FD = |mu_a - mu_b|^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a S_b)^1/2) (Heusel et al. 2017). The last trace is the
    sum of the square roots of the eigenvalues of S_a S_b, which equal those of the symmetric R S_a R for R = S_b^1/2
    (torchmetrics and Mathiasen & Hvilshøj 2020 take the eigenvalues too), so one symmetric eigenvalue problem
    replaces ``scipy.linalg.sqrtm`` and R is computed once per reference. Equal to clean-fid's
    ``frechet_distance`` to 1e-6 relative where the covariances are well conditioned (tests/test_distances.py)."""
    diff = a.mu - b.mu
    product = b.root @ a.sigma @ b.root
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
    trace_root = float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * trace_root)


def kernel_inception_distance(
    x: np.ndarray,
    y: np.ndarray,
    seed: int = 0,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    rng: np.random.Generator | np.random.RandomState | None = None,
) -> float:
    """KID (Binkowski et al. 2018): the unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3, averaged over
    ``num_subsets`` random subsets of ``min(N, M, max_subset_size)`` images each, as clean-fid's ``kernel_distance``
    computes it. The subsets come from ``rng`` (default ``RandomState(seed)``: the same subsets as clean-fid after
    ``np.random.seed(seed)``), never from numpy's global state."""
    rng = np.random.RandomState(seed) if rng is None else rng
    d = x.shape[1]
    m = min(len(x), len(y), max_subset_size)
    total = 0.0
    for _ in range(num_subsets):
        a = y[rng.choice(len(y), m, replace=False)]
        b = x[rng.choice(len(x), m, replace=False)]
        same = (a @ a.T / d + 1) ** 3 + (b @ b.T / d + 1) ** 3
        cross = (a @ b.T / d + 1) ** 3
        total += (same.sum() - np.diag(same).sum()) / (m - 1) - cross.sum() * 2 / m
    return float(total / num_subsets / m)


CMMD_ESTIMATORS = ("biased", "unbiased")


def cmmd(x: np.ndarray, y: np.ndarray, sigma: float = 10.0, scale: float = 1000.0, estimator: str = "biased") -> float:
    """CMMD (Jayasumana et al. 2024): MMD^2 with a Gaussian RBF kernel on CLIP embeddings, x 1000.

    ``biased`` keeps the kernel matrices' diagonals, as google-research/cmmd's ``distance.mmd`` does (the
    minimum-variance estimator of Gretton et al. 2012, Eq. 5; published CMMD values use it); ``unbiased`` drops them
    (the U-statistic).
    """
    import torch

    x_t = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float64)
    y_t = torch.as_tensor(np.ascontiguousarray(y), dtype=torch.float64)
    gamma = 1.0 / (2 * sigma**2)

    def mean_kernel(a, b, same):
        k = torch.exp(-gamma * torch.cdist(a, b).pow(2))
        if same and estimator == "unbiased":
            n = len(a)
            return float((k.sum() - k.diagonal().sum()) / (n * (n - 1)))
        return float(k.mean())

    return scale * (mean_kernel(x_t, x_t, True) + mean_kernel(y_t, y_t, True) - 2 * mean_kernel(x_t, y_t, False))


def subset_spread(features: np.ndarray, reference: FeatureStats, k: int) -> list[float]:
    """FD of K disjoint, equal subsets of ``features`` against the full reference (each biased up by the smaller N)."""
    size = len(features) // k
    return [frechet_distance(feature_stats(features[i * size : (i + 1) * size]), reference) for i in range(k)]


def jackknife_interval(
    statistic: Callable[[np.ndarray], float], n: int, value: float, groups: int = 10, seed: int = 0
) -> tuple[float, float]:
    """95 % interval of ``value`` from the delete-a-group jackknife standard error (Efron & Stein 1981):
    ``statistic(kept)`` recomputed without each of ``groups`` random groups of the n samples (or pairs). For set
    statistics (FD, Vendi) a bootstrap resample repeats samples, which biases them, so its percentile interval can
    miss the value itself."""
    order = np.random.default_rng(seed).permutation(n)
    values = np.array([statistic(np.setdiff1d(order, group)) for group in np.array_split(order, min(groups, n))])
    error = float(np.sqrt((len(values) - 1) / len(values) * ((values - values.mean()) ** 2).sum()))
    return value - 1.96 * error, value + 1.96 * error


def bootstrap_ci(values: np.ndarray, level: float = 0.95, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean."""
    rng = np.random.default_rng(seed)
    values = np.asarray(values, np.float64)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))
