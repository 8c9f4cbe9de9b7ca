"""Executing a suite: chunks, leases, chunks, the image writer, the executor, launchers, students, fingerprints,
scoring, the runner and merge."""
