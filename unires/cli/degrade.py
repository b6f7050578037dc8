"""``unires degrade``: make a synthetic benchmark set from a folder of clean images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import first_line
from ..utils import plural
from .common import UsageError

RECIPE_NAMES = (
    "sr",
    "motion",
    "oid-motion",
    "defocus",
    "noise",
    "noise-heavy",
    "gaussian-25",
    "dn-mix",
    "realesrgan",
    "complex",
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``unires degrade``."""
    p = sub.add_parser(
        "degrade",
        help="degrade clean images into an (LQ, GT) benchmark set",
        description=(
            "Write OUT_DIR/lq, OUT_DIR/gt and a JSON sidecar per pair (lq/NAME.json, every "
            "drawn parameter). The same seed gives identical bytes; a rerun skips finished pairs. "
            "Without photos of your own, --samples degrades 256x256 crops of scikit-image's "
            "sample photos (astronaut, coffee, chelsea, rocket; needs the demo extra)."
        ),
    )
    p.add_argument("hq_dir", metavar="HQ_DIR", type=Path, nargs="?", help="folder of clean images")
    p.add_argument(
        "--samples",
        action="store_true",
        help="use scikit-image's sample photos (256x256 crops) instead of HQ_DIR",
    )
    p.add_argument("-o", "--out", dest="out_dir", metavar="OUT_DIR", type=Path, required=True)
    p.add_argument("--recipe", required=True, choices=RECIPE_NAMES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-image", type=int, default=1, metavar="N", help="pairs per image")
    p.add_argument(
        "--scale",
        type=int,
        default=None,
        help="write LQ at HQ/scale (x4 benchmarks); default: LQ at the HQ size",
    )
    p.add_argument("--config", type=Path, help="YAML of recipe parameter ranges")
    p.add_argument("--workers", type=int, default=1, help="processes (output does not change)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``unires degrade``: 0 all written, 1 some images failed.

    Raises:
        UsageError: bad arguments or config, or no images in HQ_DIR (one line, exit 2).
    """
    if args.samples == (args.hq_dir is not None):
        raise UsageError("give HQ_DIR (a folder of clean images) or --samples, not both")
    if args.samples:
        import tempfile

        from ..data.samples import write_sample_photos

        with tempfile.TemporaryDirectory(prefix="unires-samples-") as tmp:
            write_sample_photos(tmp)
            args.hq_dir = Path(tmp)
            return _degrade(args)
    return _degrade(args)


def _degrade(args: argparse.Namespace) -> int:
    from ..config import ConfigError, load_yaml
    from ..degrade.recipes import DegradationConfig
    from ..degrade.writer import write_degraded_set

    if not args.hq_dir.is_dir():
        raise UsageError(f"{args.hq_dir}: not a folder")
    if args.out_dir.resolve() == args.hq_dir.resolve():
        raise UsageError("OUT_DIR must differ from HQ_DIR (inputs are never overwritten)")
    scale = 1 if args.scale is None else args.scale
    if scale < 1 or args.per_image < 1 or args.workers < 1:
        raise UsageError("--scale, --per-image and --workers must be >= 1")
    cfg = DegradationConfig()
    if args.config:
        try:
            cfg = load_yaml(DegradationConfig, args.config)
        except (OSError, ConfigError, TypeError, ValueError) as e:
            raise UsageError(f"{args.config}: {first_line(e)}") from None

    def problem(file: str, message: str) -> None:
        print(f"{file}: {message}", file=sys.stderr)

    report = write_degraded_set(
        args.hq_dir,
        args.out_dir,
        args.recipe,
        seed=args.seed,
        per_image=args.per_image,
        scale=scale,
        cfg=cfg,
        workers=args.workers,
        on_problem=problem,
    )
    total = report.written + report.skipped + len(report.failed)
    if total == 0:
        raise UsageError(f"{args.hq_dir}: no images found")
    where = f" -> {args.out_dir}" if report.written or report.skipped else ""
    print(
        f"{args.recipe}: {plural(report.written, 'pair')} written, {report.skipped} already "
        f"there, {plural(len(report.failed), 'image')} failed{where}"
    )
    return 1 if report.failed else 0
