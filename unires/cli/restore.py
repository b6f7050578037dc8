"""``unires restore``: restore files, folders and globs into an output folder."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from ..weights import AUTO_METHODS
from .common import (
    add_color_fix_argument,
    add_ensemble_argument,
    add_model_arguments,
    finish_batch,
    first_line,
    load_pipeline,
    processes_for,
    tile_settings_from_args,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``unires restore``."""
    p = sub.add_parser(
        "restore",
        help="restore photos",
        description="Restore photos with mixed degradations. Weights mix the task "
        "predictions (Eq. 2) and must sum to 1; default: the model's default weights. "
        "Several processes (accelerate launch / torchrun -m unires restore ...) split the "
        "files, each restored by one of them.",
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
        choices=AUTO_METHODS,
        help="choose the weights per image: fast (proxy + halving over the paper grid), grid "
        "(all 1512), frequent (--sets), predict (--predictor), average; the chosen weights "
        "are printed and written beside the output as <name>.weights.json with the metric's "
        "score of the result and of the input (NIQE: lower is better)",
    )
    p.add_argument(
        "--metric", default="niqe", help="--auto: quality metric (niqe, piqe, musiq, ...)"
    )
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
    add_ensemble_argument(p)
    add_color_fix_argument(p)
    p.add_argument(
        "--format",
        choices=("same", "png", "jpg", "webp", "tif"),
        default="same",
        help="output format (default: the input's; see the README for what each keeps)",
    )
    p.add_argument(
        "--quality",
        type=int,
        default=None,
        metavar="Q",
        help="1-100, for lossy outputs: JPEG, lossy WebP, JPEG in TIFF (default 95); "
        "with it a lossless WebP input is written lossy",
    )
    p.add_argument(
        "--max-frames",
        type=int,
        default=100,
        metavar="N",
        help="refuse animations and multi-page TIFFs with more frames (default 100): each "
        "frame is restored like an image",
    )
    p.add_argument("--skip-existing", action="store_true", help="skip outputs already written")
    p.add_argument("--allow-huge", action="store_true", help="admit inputs over 100 MP")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_model_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``unires restore``: restore every input into the output folder; 0 all done, 1 some failed.

    Raises:
        UsageError: bad weights or options, or an output path that is not a folder; or the
            model does not load.
    """
    weights = _checked_weights(args)
    out_dir = Path(args.output)
    procs = processes_for(args)
    n_problems, plan, written = _plan(args, out_dir, procs)
    if plan is None:
        return 1
    done, failed = _restore_jobs(args, plan, procs, weights, written)
    failed += n_problems + len(plan.errors)
    counts = f"{done} restored, {len(plan.skipped)} skipped, {failed} failed"
    return finish_batch(procs, counts, failed, f"outputs in {out_dir}" if done else None)


def _checked_weights(args: argparse.Namespace):
    """The --weights (None: the model's default, or --auto) once every option is checked.

    Raises:
        UsageError: bad weights or options, or an output path that is not a folder.
    """
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
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise UsageError("--quality must be in 1..100")
    if args.max_frames < 1:
        raise UsageError("--max-frames must be at least 1")
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a folder")
    return weights


def _plan(args: argparse.Namespace, out_dir: Path, procs):
    """The main process lists the batch and plans it (every output named and checked:
    readable input, format that can hold it, writable folder) and prints what it found; the
    processes then share the plan, each output written by exactly one of them. Returns (inputs
    that were not found, the ``io.BatchPlan`` or None when there is nothing to do, the main
    process's record of the outputs written, for its progress bar, or None)."""
    from .. import io
    from ..parallel import files_written

    planned, written = None, None
    if procs.is_main:
        inputs, problems = io.collect_batch(args.inputs, recursive=args.recursive, output=out_dir)
        for msg in problems:
            print(f"error: {msg}", file=sys.stderr)
        if not inputs:
            print("error: no input images found", file=sys.stderr)
        plan = None
        if inputs:
            plan = io.plan_batch(
                inputs,
                out_dir,
                output_format=args.format,
                skip_existing=args.skip_existing,
                allow_huge=args.allow_huge,
                max_frames=args.max_frames,
                sidecar=".weights.json" if args.auto else None,
            )
            for msg in plan.errors:
                print(f"error: {msg}", file=sys.stderr)
            for msg in plan.notes:
                print(f"note: {msg}")
            if procs.parallel:
                written = files_written([job.target for job in plan.jobs])
        planned = (len(problems), plan)
    n_problems, plan = procs.broadcast(planned)
    return n_problems, plan, written


def _restore_jobs(args: argparse.Namespace, plan, procs, weights, written) -> tuple[int, int]:
    """Restore this process's share of the plan's jobs, one line each; returns the batch's
    (restored, failed) counts, summed over the processes (the same on all of them)."""
    from .. import io

    failed, done = 0, 0
    jobs = procs.share(plan.jobs)
    pipe = load_pipeline(args) if jobs else None
    options = dict(
        steps=args.steps,
        seed=args.seed,
        strength=args.strength,
        scale=args.scale,
        color_fix=args.color_fix,
        downlq_factor=args.downlq_factor,
        tiles=tile_settings_from_args(args),
        ensemble=args.ensemble,
    )
    single = len(plan.jobs) == 1
    # One bar for the whole batch, on the main process (several: it counts the outputs).
    shown = not (args.quiet or single) and procs.is_main
    bar = tqdm(total=len(plan.jobs), desc="restoring", unit="img", disable=not shown)
    with bar, procs.progress(bar, written) as advance:
        for job in jobs:
            try:
                line = _restore_job(pipe, job, args, weights, options, bar, single)
                done += 1
                bar.write(line)
            except io.ImageError as e:
                failed += 1
                bar.write(f"error: {e}", file=sys.stderr)
            except (RuntimeError, ValueError) as e:  # e.g. out of memory at the smallest tile
                failed += 1
                bar.write(f"error: {job.source}: {first_line(e)}", file=sys.stderr)
            advance()
        return procs.total(done), procs.total(failed)


def _restore_job(pipe, job, args, weights, options: dict, bar, single: bool) -> str:
    """Read one planned input, restore every frame, write its output; returns the line that
    reports it."""
    from .. import io

    path, target = job.source, job.target
    t0 = time.perf_counter()
    loaded = io.read_frames(path, allow_huge=args.allow_huge, max_frames=args.max_frames)
    progress = not args.quiet and single and loaded.n_frames == 1
    outs, chosen = _restore_frames(pipe, loaded, target, args, weights, options, bar, progress)
    io.write_frames(target, outs, like=loaded, quality=args.quality)
    extra = f" ({loaded.n_frames} {'frames' if loaded.animated else 'pages'})"
    extra = extra if loaded.n_frames > 1 else ""
    extra += " (replaced the file there)" if job.exists else ""
    seconds = time.perf_counter() - t0
    return f"{path} -> {target}{chosen}{extra} ({seconds:.1f} s)"


def _restore_frames(pipe, loaded, target: Path, args, weights, options: dict, bar, progress):
    """Restore every frame (or page) with the same weights and seed; --auto chooses the
    weights on the first frame. Returns (restored HxWx3 arrays, what --auto chose)."""
    from .. import io

    outs, chosen = [], ""
    for frame in loaded.frames:
        lq = io.to_tensor(frame.rgb)
        if args.auto and not outs:
            out, weights, chosen = _restore_auto(pipe, lq, target, args, options, bar, loaded.path)
        else:
            out = pipe.restore_tensor(lq, weights, progress=progress, **options)
        outs.append(io.from_tensor(out))
    return outs, chosen


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


def _restore_auto(pipe, lq, target: Path, args, options: dict, bar, path: Path):
    """--auto: choose the weights (search.auto) with a progress bar that advances within the
    image, write them beside the output as JSON (scores in the metric's own convention)."""
    import json

    from ..search.auto import auto_weights
    from ..utils import atomic_write_text
    from ..weights import format_weights

    opts = dict(options)
    steps, seed, scale = opts.pop("steps"), opts.pop("seed"), opts.pop("scale")
    with tqdm(
        total=100, desc=f"{path.name}: {args.auto}", unit="%", leave=False, disable=args.quiet
    ) as progress_bar:

        def progress(fraction: float, message: str) -> None:
            progress_bar.n = round(100 * min(max(fraction, 0.0), 1.0))
            progress_bar.set_postfix_str(message, refresh=False)
            progress_bar.refresh()

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
            progress=progress,
            **opts,
        )
    if result.note:
        bar.write(f"note: {path}: {result.note}", file=sys.stderr)
    image = result.image
    if image is None:
        image = pipe.restore_tensor(lq, result.weights, steps=steps, seed=seed, scale=scale, **opts)
    record = {
        "method": result.method,
        "metric": result.metric,
        "weights": result.weights,
        "score": result.score,
        "q_lq": result.q_lq,
        "direction": result.direction,
        "evaluations": result.evaluations,
        "seconds": round(result.seconds, 3),
    }
    if opts.get("ensemble", 1) > 1:  # the candidates were scored without it, this image with it
        record["ensemble"] = opts["ensemble"]
    if result.note:
        record["note"] = result.note
    sidecar = target.with_name(f"{target.stem}.weights.json")
    atomic_write_text(sidecar, json.dumps(record, indent=2) + "\n")
    scores = f"{result.metric.upper()} {result.q_lq:.2f} -> {result.score:.2f}"
    return image, result.weights, f" [{result.method}: {format_weights(result.weights)}; {scores}]"
