"""``unires train``: multi-task training (and ``--export`` of the latest checkpoint)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a UniRes model (HF accelerate)",
        description="Multi-task training (SR, MD, DD, DN) with condition dropout. For several "
        "GPUs or nodes: accelerate launch -m unires.train --config CONFIG.",
    )
    p.add_argument("--config", type=Path, required=True, help="training YAML (see configs/)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument(
        "--export",
        type=Path,
        nargs="?",
        const=None,
        default=False,
        metavar="DIR",
        help="write the EMA model of the latest checkpoint as a model folder and exit",
    )
    p.add_argument(
        "--autoencoder-only",
        action="store_true",
        help="the config trains the autoencoder (configs/autoencoder.yaml)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError, load_yaml
    from . import UsageError

    if not args.config.is_file():
        raise UsageError(f"{args.config}: no such config file")
    try:
        if args.autoencoder_only:
            from ..train.autoencoder import AutoencoderTrainConfig, train

            train(load_yaml(AutoencoderTrainConfig, args.config), resume=args.resume)
            return 0
        from ..train.diffusion import TrainConfig, export_from_checkpoint, train

        cfg = load_yaml(TrainConfig, args.config)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    if args.export is not False:
        print(export_from_checkpoint(cfg, args.export))
        return 0
    train(cfg, resume=args.resume)
    return 0
