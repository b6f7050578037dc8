"""``unires diversephotos build``: the DiversePhotos x1 / x4 test sets from SPAQ, KonIQ, LIVE."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``unires diversephotos``."""
    p = sub.add_parser(
        "diversephotos",
        help="build the DiversePhotos benchmark (arXiv 2506.05599, App. B.1)",
        description="The DiversePhotos test sets of the UniRes paper.",
    )
    actions = p.add_subparsers(dest="diversephotos", metavar="ACTION")
    actions.required = True
    b = actions.add_parser(
        "build",
        help="write OUT/x1 (512x512) and OUT/x4 (128x128) from the source data sets",
        description="Gather the 160 listed images, centre-crop SPAQ/KonIQ to 512, resize LIVE "
        "500->512 (bicubic), take 128 centre crops for x4; write OUT/manifest.json and .csv. "
        "Exit 0: all found; 1: some missing or unreadable (named in the report); 2: usage.",
    )
    b.add_argument("--spaq", type=Path, metavar="DIR", help="SPAQ folder (e.g. with TestImage/)")
    b.add_argument("--koniq", type=Path, metavar="DIR", help="KonIQ-10k folder (1024x768/ ...)")
    b.add_argument("--live", type=Path, metavar="DIR", help="LIVE In the Wild (ChallengeDB)")
    b.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    b.add_argument(
        "--fix-koniq-id",
        action="store_true",
        help="use 26393826 for the KonIQ id the paper prints as '2 6393826' (a guess)",
    )
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``unires diversephotos``: build DiversePhotos from the source sets; 0 complete, 1 not.

    Raises:
        UsageError: no source given, a source that is not a folder, or an output that is a file.
    """
    from ..bench.diversephotos import build_diversephotos
    from . import UsageError

    roots = {"spaq": args.spaq, "koniq": args.koniq, "live": args.live}
    if all(root is None for root in roots.values()):
        raise UsageError("give at least one of --spaq, --koniq, --live")
    for name, root in roots.items():
        if root is not None and not root.is_dir():
            raise UsageError(f"--{name} {root}: not a folder")
    if args.output.exists() and not args.output.is_dir():
        raise UsageError(f"{args.output}: exists and is not a folder")
    result = build_diversephotos(roots, args.output, fix_koniq_id=args.fix_koniq_id)
    print(result.summary())
    return 0 if result.complete else 1
