"""Executing a suite: units, leases, chunks, the image writer, the executor, launchers, students, fingerprints,
scoring, the runner and merge."""
