"""Writing synthetic benchmark sets: HQ folder -> ``lq/``, ``gt/`` and a JSON sidecar per pair.

Each pair's generator is derived from (seed, the image's relative path, the pair's index), so
a rerun with the same seed writes identical bytes whatever the order or the number of
workers, and a rerun after an interruption skips the pairs already complete (the sidecar is
written last: it marks a pair as done).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from ..errors import first_line
from ..io import list_images, load_rgb
from ..utils import atomic_write_bytes, atomic_write_text
from .jpeg import to_uint8_hwc
from .recipes import RECIPES, DegradationConfig, run_recipe
from .rng import generator_for


@dataclass
class WriteReport:
    written: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, one-line problem)


def png_bytes(img: torch.Tensor) -> bytes:
    """(3, H, W) in [0, 1] -> 8-bit PNG (no time stamps: same pixels, same bytes)."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8_hwc(img)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def pair_names(files: list[Path], root: Path) -> dict[Path, str]:
    """Output base name per input: its relative path, flattened; clashes keep the suffix."""

    def base(p: Path, with_suffix: bool) -> str:
        rel = p.relative_to(root) if p.is_relative_to(root) else Path(p.name)
        rel_str = rel.as_posix() if with_suffix else rel.with_suffix("").as_posix()
        return re.sub(r"[^A-Za-z0-9._-]+", "_", rel_str.replace("/", "__"))

    plain = [base(p, False) for p in files]
    return {
        p: (base(p, True) if plain.count(name) > 1 else name)
        for p, name in zip(files, plain, strict=True)
    }


def _worker_init() -> None:
    torch.set_num_threads(1)  # one image per process: threads would only compete


def _crop_to_multiple(img: torch.Tensor, scale: int) -> torch.Tensor:
    h, w = img.shape[-2:]
    return img[:, : h - h % scale, : w - w % scale]


@dataclass
class _Job:
    path: Path
    name: str
    out_dir: Path
    recipe: str
    seed: int
    per_image: int
    scale: int
    cfg: DegradationConfig


def _write_image_pairs(job: _Job) -> tuple[int, int, str | None]:
    """All pairs of one input image: (written, skipped, problem or None)."""
    lq_dir, gt_dir = job.out_dir / "lq", job.out_dir / "gt"
    todo = []
    for k in range(job.per_image):
        stem = f"{job.name}_{k:02d}"
        done = [lq_dir / f"{stem}.png", gt_dir / f"{stem}.png", lq_dir / f"{stem}.json"]
        if not all(p.exists() for p in done):
            todo.append((k, stem))
    if not todo:
        return 0, job.per_image, None
    try:
        hq = _crop_to_multiple(load_rgb(job.path), job.scale)
    except Exception as e:  # unreadable or truncated file: report it, go on with the others
        return 0, 0, f"cannot read image: {first_line(e, with_type=True)}"
    h, w = hq.shape[-2:]
    if min(h, w) < 4 * job.scale:
        return 0, 0, f"too small ({w}x{h}) for scale {job.scale}"
    try:
        gt_png = png_bytes(hq)
        for k, stem in todo:
            gen = generator_for(job.seed, job.name, k)
            lq, (params,) = run_recipe(job.recipe, hq[None], gen, job.cfg, job.scale)
            sidecar = {
                "source": job.path.name,
                "recipe": job.recipe,
                "seed": job.seed,
                "index": k,
                "scale": job.scale,
                "hq_size": [h, w],
                "lq_size": list(lq.shape[-2:]),
                "params": params,
            }
            atomic_write_bytes(lq_dir / f"{stem}.png", png_bytes(lq[0]))
            atomic_write_bytes(gt_dir / f"{stem}.png", gt_png)
            atomic_write_text(
                lq_dir / f"{stem}.json", json.dumps(sidecar, indent=1, sort_keys=True) + "\n"
            )
    except Exception as e:  # a recipe bug on one image must not stop a long run
        return 0, 0, f"degradation failed: {first_line(e, with_type=True)}"
    return len(todo), job.per_image - len(todo), None


def write_degraded_set(
    hq_dir: str | Path,
    out_dir: str | Path,
    recipe: str,
    seed: int = 0,
    per_image: int = 1,
    scale: int = 1,
    cfg: DegradationConfig | None = None,
    workers: int = 1,
    on_problem: Callable[[str, str], None] | None = None,
) -> WriteReport:
    """Degrade every image under ``hq_dir`` ``per_image`` times into ``out_dir``.

    ``scale`` > 1 writes LQ at HQ / scale (HQ cropped to a multiple of ``scale``); 1 keeps
    the HQ size. Problems with single inputs are reported through ``on_problem(file,
    message)`` and do not stop the others.

    Raises:
        ValueError: an unknown ``recipe``.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r} (have {', '.join(RECIPES)})")
    hq_dir, out_dir = Path(hq_dir), Path(out_dir)
    outputs = {(out_dir / "lq").resolve(), (out_dir / "gt").resolve()}
    files = [
        p
        for p in list_images([hq_dir], skip_lr_folders=False)
        if not any(p.resolve().is_relative_to(o) for o in outputs)
    ]
    names = pair_names(files, hq_dir)
    cfg = cfg or DegradationConfig()
    jobs = [_Job(p, names[p], out_dir, recipe, seed, per_image, scale, cfg) for p in files]
    report = WriteReport()
    with contextlib.ExitStack() as stack:
        if workers > 1 and len(jobs) > 1:
            pool = stack.enter_context(ProcessPoolExecutor(workers, initializer=_worker_init))
            results = pool.map(_write_image_pairs, jobs)
        else:
            results = map(_write_image_pairs, jobs)
        for job, (written, skipped, problem) in zip(jobs, results, strict=True):
            report.written += written
            report.skipped += skipped
            if problem:
                report.failed.append((str(job.path), problem))
                if on_problem:
                    on_problem(str(job.path), problem)
    return report
