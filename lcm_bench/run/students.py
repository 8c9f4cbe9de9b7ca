"""Training the students a suite asks for (``distill:``; parsed by lcm_bench.suite.student_entries) before the run needs
them: one distillation per configuration, snapshots in order, under a lease so concurrent shards distil it once."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from lcm_bench.core.spec import ModelSpec
from lcm_bench.suite.student_entries import pending, student_folder, teacher_folder


def ensure_students(specs, progress: bool = True) -> None:
    """Train every pending student, one run per distinct configuration, snapshots in order; a lease per
    configuration lets concurrent shards wait for one distillation instead of repeating it."""
    from lcm_bench.run.leases import held

    runs: dict[Path, list[ModelSpec]] = defaultdict(list)
    for spec in pending(specs):
        runs[student_folder(spec).parent].append(spec)
    for run, members in runs.items():
        with held(run.parent, f"{run.name}.distill"):
            members = pending(members)
            if members:
                _distill_run(run, members, progress)


def _distill_run(run: Path, members: list[ModelSpec], progress: bool) -> None:
    """Distil one configuration's snapshots in order (callers hold its lease, so shards distil it once)."""
    from lcm_bench.core.io import write_json
    from lcm_bench.core.libraries import quiet_libraries
    from lcm_bench.train.distill.config import DistillRun
    from lcm_bench.train.distill.distillers import DISTILLERS
    from lcm_bench.train.distill.frozen_teacher import load_teacher, training_latents

    options: dict[str, Any] = dict(members[0].distill)
    quiet_libraries()
    teacher = load_teacher(teacher_folder(options["teacher"], Path.cwd(), "distill.teacher"), "distill.teacher")
    distiller = DISTILLERS.get(options["method"])
    config = distiller.config(**dict(options["config"]))
    data = training_latents(teacher, options["data"], config.n_train)
    for spec in sorted(members, key=lambda s: dict(s.distill)["snapshot"]):
        snapshot = dict(spec.distill)["snapshot"]
        if progress:
            print(f"distilling {spec.name}: {snapshot} of {config.steps} steps -> {run}", file=sys.stderr)
        out = student_folder(spec)
        session = DistillRun(out, checkpoint=run / ".checkpoint.pt", stop_at=snapshot, progress=progress)
        card = distiller.run(options["method"], teacher, data, config, session)
        write_json(out / "card.json", card)
