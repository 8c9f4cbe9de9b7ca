"""``report``: rebuild the report of one or more run directories from their records."""

from __future__ import annotations

import argparse

from lcm_bench.cli.commands import ArgumentParser, command, existing_dirs, finite


def _report_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--out", help="where to write the report (default: the first run directory)")
    parser.add_argument(
        "--published", help="overlay a published table: lcm-table1 or lcm-table2 (default: the suite's own)"
    )
    parser.add_argument(
        "--target", type=float, help="iso-quality target value (default: the best baseline's at its most steps)"
    )
    parser.add_argument("--target-metric", help="metric id of the iso-quality study (default: the suite's distance)")


@command("report", "rebuild the report of one or more run directories from their records", _report_arguments)
def report(args: argparse.Namespace) -> int:
    from lcm_bench.report import write_report

    existing_dirs(args.run_dirs, "run directories")
    finite(args.target, "--target")
    written = write_report(
        args.run_dirs, args.out, published=args.published, target=args.target, target_metric=args.target_metric
    )
    print(f"{written} and {written.with_suffix('.html')}")
    return 0
