"""``unires train``: multi-task training (and ``--export`` of the latest checkpoint)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..extras import require


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``unires train``."""
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
    """``unires train --config C [--resume | --export [DIR]]``: 0 when done.

    Raises:
        UsageError: a missing or invalid config (unknown key, value outside its choices), a
            folder it names that does not exist, or nothing to export.
        MissingExtra: accelerate (the ``train`` extra) is not installed.
    """
    from ..config import ConfigError, load_yaml
    from . import UsageError

    if not args.config.is_file():
        raise UsageError(f"{args.config}: no such config file")
    try:
        if args.autoencoder_only:
            from ..train.autoencoder import AutoencoderTrainConfig, train

            cfg = load_yaml(AutoencoderTrainConfig, args.config)
            _check_folders(args.config, {"train_dirs": cfg.train_dirs}, {"val_dir": cfg.val_dir})
            train(cfg, resume=args.resume)
            return 0
        require("train", "unires train")
        from ..train.diffusion import TrainConfig, export_from_checkpoint, train

        cfg = load_yaml(TrainConfig, args.config)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    if args.export is not False:
        try:
            print(export_from_checkpoint(cfg, args.export))
        except FileNotFoundError as e:  # no checkpoint yet: train first
            raise UsageError(f"{e}: train first (unires train --config {args.config})") from None
        return 0
    _check_folders(
        args.config,
        {"data.hq_dirs": cfg.data.hq_dirs},
        {
            "data.val_dir": cfg.data.val_dir,
            "autoencoder": cfg.autoencoder,
            "init_from": cfg.init_from,
        },
    )
    lossless = cfg.model.autoencoder.space_to_depth > 0  # nothing to train or load
    if cfg.autoencoder is None and cfg.init_from is None and not lossless:
        raise UsageError(
            f"{args.config}: set autoencoder: (a trained autoencoder folder) or init_from:"
        )
    train(cfg, resume=args.resume)
    return 0


def _check_folders(config: Path, required: dict, optional: dict) -> None:
    """Every folder the config names exists, before any training starts: a missing one is a
    one-line usage error naming the config field (no traceback minutes into a run)."""
    from . import UsageError

    for field, folders in required.items():
        if not folders:
            raise UsageError(
                f"{config}: {field} is empty: give it folders of clean photos (e.g. the gt/ "
                "folder that `unires degrade --samples` writes)"
            )
        for folder in folders:
            if not Path(folder).is_dir():
                raise UsageError(
                    f"{config}: {field}: {folder}: no such folder (point it at clean photos of "
                    "your own, e.g. the gt/ folder that `unires degrade --samples` writes)"
                )
    for field, folder in optional.items():
        if folder and not Path(folder).is_dir():
            hint = {
                "autoencoder": " (train one: unires train --config configs/autoencoder.yaml "
                "--autoencoder-only)",
            }.get(field, "")
            raise UsageError(f"{config}: {field}: {folder}: no such folder{hint}")
