"""``unires bench``: benchmarks (timings and quality figures live here, not in tests)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    s.add_argument("--tasks", type=int, default=6)
    s.add_argument("--steps", type=int, default=50)
    s.add_argument("--timed-steps", type=int, default=None, help="time fewer steps and scale")
    s.add_argument("--device", default="cpu")
    s.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    s.add_argument("--json", type=Path, help="also write the result as JSON")
    s.set_defaults(func=run_speed)

    from ..bench.degrade_throughput import add_bench_parser

    add_bench_parser(bench)

    q = bench.add_parser(
        "quality",
        help="PSNR/SSIM/NIQE on synthetic degradations: one-hot tasks, weight sets, peers",
    )
    q.add_argument("--model", help="UniRes model folder (default: the embedded model)")
    q.add_argument("--hq-dir", type=Path, default=Path("../shared/data/val-hq"))
    q.add_argument("--out", type=Path, default=Path("runs/bench-quality"))
    q.add_argument("--recipes", default="noise,motion,defocus,sr,complex")
    q.add_argument("--crop", type=int, default=256, help="centre-crop side of each HQ image")
    q.add_argument("--limit", type=int, default=None, help="use the first N images")
    q.add_argument("--steps", type=int, default=None)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--strength", type=float, default=1.0, help="see unires restore --strength")
    q.add_argument("--device", default="auto")
    q.add_argument("--dtype", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    q.set_defaults(func=run_quality, tile=None, tile_overlap=16)

    a = bench.add_parser("autoencoder", help="reconstruction PSNR of an autoencoder")
    a.add_argument(
        "--model",
        type=Path,
        default=Path("unires/weights/embedded/vae"),
        help="autoencoder folder (UniResAutoencoder)",
    )
    a.add_argument("--hq-dir", type=Path, default=Path("../shared/data/val-hq"))
    a.set_defaults(func=run_autoencoder)


def run_speed(args: argparse.Namespace) -> int:
    from ..bench.speed import format_result, result_dict, run_speed_benchmark
    from ..model.unet import UNET_PRESETS
    from ..utils import atomic_write_text
    from . import UsageError

    unet = None
    vae_factor = 8
    if args.model not in UNET_PRESETS:
        if not Path(args.model).is_dir():
            raise UsageError(f"{args.model}: neither a UNet preset nor a model folder")
        from ..pipeline import UniResPipeline

        pipe = UniResPipeline.from_pretrained(args.model)
        unet, vae_factor = pipe.unet, pipe.vae_factor
    r = run_speed_benchmark(
        model=args.model,
        image_size=args.size,
        tasks=args.tasks,
        steps=args.steps,
        timed_steps=args.timed_steps,
        device=args.device,
        dtype=args.dtype,
        vae_factor=vae_factor,
        unet=unet,
    )
    print(format_result(r))
    if args.json:
        atomic_write_text(args.json, json.dumps(result_dict(r), indent=2) + "\n")
    return 0


def run_quality(args: argparse.Namespace) -> int:
    from ..bench.quality import RECIPE_TASKS, run_quality_benchmark
    from . import UsageError
    from .common import load_pipeline_or_exit

    recipes = tuple(r.strip() for r in args.recipes.split(",") if r.strip())
    unknown = [r for r in recipes if r not in RECIPE_TASKS]
    if unknown:
        raise UsageError(f"unknown recipe(s) {', '.join(unknown)} (have {', '.join(RECIPE_TASKS)})")
    if not args.hq_dir.is_dir():
        raise UsageError(f"{args.hq_dir}: not a folder")
    pipe = load_pipeline_or_exit(args)
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
    )
    print(f"table: {args.out / 'quality.md'}")
    return 0


def run_autoencoder(args: argparse.Namespace) -> int:
    import torch

    from ..model.autoencoder import UniResAutoencoder
    from ..train.autoencoder import psnr_on_folder
    from . import UsageError

    if not args.hq_dir.is_dir():
        raise UsageError(f"{args.hq_dir}: not a folder")
    try:
        ae = UniResAutoencoder.from_pretrained(args.model, torch_dtype=torch.float32)
    except OSError as e:
        raise UsageError(f"{args.model}: cannot load an autoencoder ({e})") from None
    value = psnr_on_folder(ae, args.hq_dir)
    print(f"{args.model}: mean reconstruction PSNR {value:.2f} dB on {args.hq_dir} (full images)")
    return 0
