"""Arguments shared by the commands that load a model."""

from __future__ import annotations

import argparse
import sys


def first_line(err: BaseException) -> str:
    """An exception as one line (its first), for per-file error reports."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def add_model_arguments(p: argparse.ArgumentParser) -> None:
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


def tile_settings_from_args(args: argparse.Namespace):
    from ..pipeline import TileSettings

    return TileSettings(latent_tile=args.tile, latent_overlap=args.tile_overlap)


def load_pipeline_or_exit(args: argparse.Namespace):
    """Load the model; a missing or broken model is a one-line error, exit code 2."""
    from ..model.bundle import ModelFolderError
    from ..pipeline import EmbeddedModelMissing, UniResPipeline

    try:
        return UniResPipeline.from_pretrained(args.model, device=args.device, dtype=args.dtype)
    except (EmbeddedModelMissing, ModelFolderError, OSError, ValueError) as e:
        print(f"unires {args.command}: error: {first_line(e)}", file=sys.stderr)
        raise SystemExit(2) from None
