"""``unires convert``: a UniRes model folder from a Stable Diffusion / InstructPix2Pix one."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import first_line


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``unires convert``."""
    p = sub.add_parser(
        "convert",
        help="initialise a UniRes model from a Stable Diffusion or InstructPix2Pix folder",
        description="Widen the UNet's conv_in for the LQ latent (new channels zero-initialised) "
        "and write a UniRes model folder, ready for `unires train` (init_from:).",
    )
    p.add_argument("source", type=Path, help="diffusers-format SD / InstructPix2Pix folder")
    p.add_argument("-o", "--output", type=Path, required=True, help="UniRes model folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``unires convert SOURCE -o OUT``: 0 when the model folder is written.

    Raises:
        UsageError: OUT is not empty, or SOURCE is not a convertible SD folder.
    """
    from ..model.bundle import ModelFolderError
    from ..model.convert import convert_stable_diffusion
    from . import UsageError

    if args.output.exists() and any(args.output.iterdir()):
        raise UsageError(f"{args.output}: exists and is not empty")
    try:
        out = convert_stable_diffusion(args.source, args.output)
    except (ModelFolderError, ImportError, OSError) as e:
        raise UsageError(first_line(e)) from None
    print(f"UniRes model written to {out}")
    return 0
