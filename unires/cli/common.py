"""What the commands share: the usage error, the model arguments, loading the model.

Errors: a command raises ``UsageError`` for bad arguments or a model that does not load (exit
2), ``CommandError`` for work it cannot do (exit 1); ``unires.cli.main`` prints either as one line
(``unires COMMAND: error: ...``) and returns its exit code.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import first_line

__all__ = [
    "CommandError",
    "UsageError",
    "add_ensemble_argument",
    "add_model_arguments",
    "load_pipeline",
    "tile_settings_from_args",
]


class CommandError(Exception):
    """A command that cannot go on: reported on one line, exit code ``code`` (1: its inputs
    failed)."""

    code = 1


class UsageError(CommandError):
    """Bad arguments: reported on one line, exit code 2."""

    code = 2


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Add --model, --device, --dtype, --tile and --tile-overlap to ``p``."""
    g = p.add_argument_group("model and device")
    g.add_argument("--model", metavar="PATH", help="UniRes model folder (default: embedded)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    g.add_argument("--dtype", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    g.add_argument(
        "--tile",
        type=int,
        default=None,
        metavar="N",
        help="latent tile side for large images (default: from free memory; 0: never tile)",
    )
    g.add_argument("--tile-overlap", type=int, default=16, metavar="N", help="latent overlap")


def add_ensemble_argument(p: argparse.ArgumentParser) -> None:
    """Add --ensemble N (the geometric self-ensemble, ``Denoiser.with_ensemble``) to ``p``."""
    p.add_argument(
        "--ensemble",
        type=int,
        choices=(1, 2, 4, 8),  # model.denoiser.ENSEMBLE_SIZES, without importing torch here
        default=1,
        metavar="N",
        help="average each network call over N flips/turns of the image (1, 2, 4, 8; EDSR's "
        "self-ensemble): higher PSNR at N times the network cost (default 1)",
    )


def add_color_fix_argument(p: argparse.ArgumentParser) -> None:
    """Add --color-fix (the colour correction after decoding, ``sampling.color``) to ``p``."""
    p.add_argument(
        "--color-fix",
        choices=("adain", "wavelet", "none"),  # sampling.color.COLOR_FIXES, without torch here
        default=None,
        help="colour fix after decoding (default: the model folder's default_color_fix: none "
        "for the embedded model, adain where a folder sets none)",
    )


def tile_settings_from_args(args: argparse.Namespace):
    """The ``pipeline.TileSettings`` that --tile and --tile-overlap ask for."""
    from ..pipeline import TileSettings

    return TileSettings(latent_tile=args.tile, latent_overlap=args.tile_overlap)


def load_pipeline(args: argparse.Namespace):
    """Load the model of --model / --device / --dtype.

    Raises:
        UsageError: a missing or broken model (one line, exit 2).
    """
    from ..model.bundle import ModelFolderError
    from ..pipeline import EmbeddedModelMissing, UniResPipeline

    try:
        return UniResPipeline.from_pretrained(args.model, device=args.device, dtype=args.dtype)
    except (EmbeddedModelMissing, ModelFolderError, ImportError, OSError, ValueError) as e:
        raise UsageError(first_line(e)) from None


def processes_for(args: argparse.Namespace):
    """The processes sharing this command (``unires.parallel.processes``: one without a
    launcher). When there are several, ``args.device`` becomes this process's own device and
    the other processes than the main one get ``args.quiet`` (their bars off: the job's one
    bar is the main process's).

    Raises:
        UsageError: a launch accelerate cannot join (one line, exit 2).
        MissingExtra: several processes without accelerate (the ``parallel`` extra).
    """
    from ..parallel import processes

    try:
        procs = processes(args.device)
    except (RuntimeError, ValueError) as e:
        raise UsageError(first_line(e)) from None
    args.device = procs.device_for(args.device)
    if not procs.is_main and hasattr(args, "quiet"):
        args.quiet = True
    return procs


def finish_batch(procs, counts: str, failed: int, where: str | None) -> int:
    """Print a batch command's summary once (the main process), wait for every process and
    return the exit code all of them share: 1 if any file failed anywhere, else 0.

    ``counts``: e.g. "3 restored, 1 failed"; ``where``: "outputs in DIR", or None when
    nothing was written. The summary goes to stderr when something failed.
    """
    if procs.is_main:
        summary = f"{counts}; {where}" if where else f"{counts}; nothing written"
        print(summary, file=sys.stderr if failed else sys.stdout)
    procs.barrier()
    return 1 if failed else 0
