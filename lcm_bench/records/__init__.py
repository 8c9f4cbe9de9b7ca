"""A run directory: records, the manifest, results tables and recorded fingerprints."""
