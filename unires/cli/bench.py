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
