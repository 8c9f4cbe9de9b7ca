"""Metric entries that carry their compute function, feature extractors, distances, references, and the scorer."""
