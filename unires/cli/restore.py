"""``unires restore``: restore files, folders and globs into an output folder."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from .common import (
    add_model_arguments,
    first_line,
    load_pipeline_or_exit,
    tile_settings_from_args,
)

AUTO_CHOICES = ("fast", "grid", "frequent", "predict", "average")  # search.auto.AUTO_METHODS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "restore",
        help="restore photos",
        description="Restore photos with mixed degradations. Weights mix the task "
        "predictions (Eq. 2) and must sum to 1; default: the model's default weights.",
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files, folders or globs")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output folder")
    p.add_argument(
        "--weights",
        metavar="W",
        help='task weights, e.g. "md=0.6,dn=-0.2,downlq=0.6" (tasks: br sr md dd dn downlq '
        "pos neg)",
    )
    p.add_argument(
        "--auto",
        choices=AUTO_CHOICES,
        help="choose the weights per image: fast (proxy + halving over the paper grid), grid "
        "(all 1512), frequent (--sets), predict (--predictor), average; the chosen weights "
        "are printed and written beside the output as <name>.weights.json",
    )
    p.add_argument("--metric", default="niqe", help="--auto: quality metric (niqe, piqe, ...)")
    p.add_argument("--predictor", metavar="FILE", help="--auto predict: a trained predictor")
    p.add_argument("--sets", metavar="FILE", help="--auto frequent: weight sets (search --mine)")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help="1: sample from pure noise (the paper); lower: start from the noised LQ (fidelity)",
    )
    p.add_argument("--scale", type=int, choices=(1, 4), default=1, help="output scale")
    p.add_argument("--downlq-factor", type=int, default=None, help="DownLQ factor (default 4)")
    p.add_argument(
        "--color-fix", choices=("adain", "wavelet", "none"), default="adain", help="colour fix"
    )
    p.add_argument("--format", choices=("same", "png", "jpg", "webp", "tif"), default="same")
    p.add_argument("--skip-existing", action="store_true", help="skip outputs already written")
    p.add_argument("--allow-huge", action="store_true", help="admit inputs over 100 MP")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_model_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import io
    from ..weights import WeightsError, parse_weights
    from . import UsageError

    try:
        weights = parse_weights(args.weights) if args.weights else None
    except (WeightsError, ValueError) as e:
        raise UsageError(str(e)) from None
    _check_auto_arguments(args)
    if args.steps is not None and args.steps < 1:
        raise UsageError("--steps must be at least 1")
    if not 0.0 < args.strength <= 1.0:
        raise UsageError("--strength must be in (0, 1]")
    files, problems = io.collect_inputs(args.inputs, recursive=args.recursive)
    out_dir = Path(args.output)
    files = [f for f in files if not _is_own_output(f, out_dir)]
    for msg in problems:
        print(f"error: {msg}", file=sys.stderr)
    if not files:
        print("error: no input images found", file=sys.stderr)
        return 1
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a folder")
    pipe = load_pipeline_or_exit(args)
    tiles = tile_settings_from_args(args)

    failed = len(problems)
    done = skipped = 0
    bar = tqdm(files, desc="restoring", unit="img", disable=args.quiet or len(files) == 1)
    for path in bar:
        try:
            t0 = time.perf_counter()
            img = io.read_image(path, allow_huge=args.allow_huge)
            suffix = io.default_output_suffix(img) if args.format == "same" else f".{args.format}"
            target = io.plan_output(path, out_dir, suffix, inputs=files)
            io.ensure_not_input(target, files)
            if args.skip_existing and target.exists():
                skipped += 1
                continue
            lq = io.to_tensor(img.rgb)
            options = dict(
                steps=args.steps,
                seed=args.seed,
                strength=args.strength,
                scale=args.scale,
                color_fix=args.color_fix,
                downlq_factor=args.downlq_factor,
                tiles=tiles,
            )
            chosen = ""
            if args.auto:
                out, chosen = _restore_auto(pipe, lq, target, args, options)
            else:
                progress = not args.quiet and len(files) == 1
                out = pipe.restore_tensor(lq, weights, progress=progress, **options)
            io.write_image(target, io.from_tensor(out), like=img)
            done += 1
            bar.write(f"{path} -> {target}{chosen} ({time.perf_counter() - t0:.1f} s)")
        except io.ImageError as e:
            failed += 1
            bar.write(f"error: {e}", file=sys.stderr)
        except (RuntimeError, ValueError) as e:  # e.g. out of memory at the smallest tile
            failed += 1
            bar.write(f"error: {path}: {first_line(e)}", file=sys.stderr)
    summary = f"{done} restored, {skipped} skipped, {failed} failed; outputs in {out_dir}"
    print(summary, file=sys.stderr if failed else sys.stdout)
    return 1 if failed else 0


def _check_auto_arguments(args: argparse.Namespace) -> None:
    from . import UsageError

    if args.auto and args.weights:
        raise UsageError("give either --weights or --auto, not both")
    if args.auto == "predict" and not args.predictor:
        raise UsageError("--auto predict needs --predictor FILE (unires search --train-predictor)")
    for flag, method in (("predictor", "predict"), ("sets", "frequent")):
        if getattr(args, flag) and args.auto != method:
            raise UsageError(f"--{flag} goes with --auto {method}")
    for flag in ("predictor", "sets"):
        value = getattr(args, flag)
        if value and not Path(value).is_file():
            raise UsageError(f"--{flag} {value}: no such file")


def _restore_auto(pipe, lq, target: Path, args, options: dict):
    """--auto: choose the weights (search.auto), write them beside the output as JSON."""
    import json

    from ..search.auto import auto_weights
    from ..utils import atomic_write_text
    from ..weights import format_weights

    opts = dict(options)
    steps, seed, scale = opts.pop("steps"), opts.pop("seed"), opts.pop("scale")
    result = auto_weights(
        pipe,
        lq,
        args.auto,
        metric=args.metric,
        steps=steps,
        seed=seed,
        scale=scale,
        predictor=args.predictor,
        sets=args.sets,
        **opts,
    )
    image = result.image
    if image is None:
        image = pipe.restore_tensor(lq, result.weights, steps=steps, seed=seed, scale=scale, **opts)
    record = {
        "method": args.auto,
        "metric": args.metric,
        "weights": result.weights,
        "score": result.score,
        "q_lq": result.q_lq,
        "evaluations": result.evaluations,
        "seconds": round(result.seconds, 3),
    }
    sidecar = target.with_name(f"{target.stem}.weights.json")
    atomic_write_text(sidecar, json.dumps(record, indent=2) + "\n")
    return image, f" [{args.auto}: {format_weights(result.weights)}]"


def _is_own_output(path: Path, out_dir: Path) -> bool:
    """An earlier run's output written beside its input (``x_unires.png``): not an input."""
    stem = path.stem.rstrip("0123456789")
    try:
        same_dir = out_dir.exists() and path.parent.resolve() == out_dir.resolve()
    except OSError:
        return False
    return same_dir and stem.endswith("_unires")
