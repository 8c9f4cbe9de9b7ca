"""``data``: prepare an evaluation dataset once from files the user downloaded (``data coco``, ``data mjhq``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lcm_bench.cli.commands import ArgumentParser, command
from lcm_bench.core.errors import UserError


def _data_arguments(parser: ArgumentParser) -> None:
    from lcm_bench.domain.datasets import PROTOCOLS, SOURCES

    parser.add_argument("source", choices=SOURCES.in_order(), help="where the dataset's files come from")
    parser.add_argument(
        "--annotations",
        "--meta",
        dest="annotations",
        required=True,
        help="COCO: captions_<split>.json from its annotations zip; MJHQ-30K: meta_data.json",
    )
    parser.add_argument(
        "--images", required=True, help="the unpacked image folder (COCO: val2014/, ...; MJHQ-30K: mjhq30k_imgs/)"
    )
    parser.add_argument("--protocol", required=True, help=f"one of {', '.join(PROTOCOLS.in_order())}")
    parser.add_argument("--subset", help="a published list of image ids (optionally a tab and a caption id each)")
    parser.add_argument("--out", help="the prepared folder (default: the first dataset folder / PROTOCOL)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


@command("data", "prepare an evaluation dataset (COCO, MJHQ-30K) from files you downloaded", _data_arguments)
def data(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lcm_bench.core.io import on_terminal
    from lcm_bench.core.paths import dataset_dirs
    from lcm_bench.domain.datasets import PROTOCOLS, prepare, preprocessing

    protocol = PROTOCOLS.get(args.protocol, "--protocol")
    if protocol.source != args.source:
        raise UserError(
            f"--protocol: {args.protocol} is prepared from {protocol.source}'s files (lcm-bench data "
            f"{protocol.source}), not {args.source}'s"
        )
    annotations = Path(args.annotations)
    if not annotations.is_file():
        raise UserError(f"--annotations: '{annotations}' does not exist")
    subset = Path(args.subset) if args.subset else None
    if subset is not None and not subset.is_file():
        raise UserError(f"--subset: '{subset}' does not exist")
    out = Path(args.out) if args.out else dataset_dirs()[0] / args.protocol
    shown = on_terminal(not args.quiet)
    bar = tqdm(desc=f"preparing {args.protocol}", unit="img", disable=not shown, file=sys.stderr, delay=1.0)

    def advance(done: int, total: int) -> None:
        bar.total = total
        bar.update(1)

    with bar:
        manifest = prepare(args.protocol, annotations, Path(args.images), out, subset, advance)
    print(
        f"{out}: {manifest['num_images']:,} captions and reference images ({preprocessing(protocol)}); "
        f"suites name it with prompts: [{{dataset: {args.protocol}}}]"
    )
    return 0
