"""Quality on synthetic degradations: one-hot tasks on their matching degradation, paper
weight sets on ``complex``, and classical peers a user could pick instead.

The sets are written by the same code as ``unires degrade`` (fixed seed), from centre crops
of a clean folder, so every figure can be reproduced byte for byte.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.samples import SAMPLE_NAMES, write_sample_photos
from ..degrade.recipes import GAUSSIAN_SIGMAS_255
from ..degrade.writer import write_degraded_set
from ..metrics.fr import psnr, ssim
from ..metrics.nr import NIQE
from ..utils import atomic_path, atomic_write_text
from ..weights import AVERAGE_WEIGHTS, MOST_FREQUENT_WEIGHTS, format_weights
from .peers import DENOISE_PEERS, FFDNET_TRUE_SIGMA, SHARPEN_PEERS, Peer, available_peers

# recipe -> the one-hot task trained for it (None: complex, restored with weight sets).
# noise: mild phone noise (LQ ~31 dB on val-hq); noise-heavy: LQ ~25 dB; gaussian-25: white
# Gaussian sigma 25/255, colour (LQ ~20.6 dB), where FFDNet also gets the true sigma.
RECIPE_TASKS: dict[str, str | None] = {
    "noise": "dn",
    "noise-heavy": "dn",
    "gaussian-25": "dn",
    "motion": "md",
    "defocus": "dd",
    "sr": "sr",
    "complex": None,
}
# The paper lists its most frequent optimum and the average optimum (Sec. 4.2, Fig. 6);
# the other seven of its "top 8" sets are not published.
PAPER_SETS = {"most-frequent": MOST_FREQUENT_WEIGHTS, "average": AVERAGE_WEIGHTS}


@dataclass
class QualityRow:
    recipe: str
    method: str
    psnr: float
    ssim: float
    niqe: float
    seconds: float
    images: int
    per_image_psnr: list[float] = field(default_factory=list)


def centre_crops(hq_dir: Path, out_dir: Path, crop: int, limit: int | None) -> Path:
    """PNG centre crops (crop x crop, or the largest multiple of 32 that fits)."""
    from .. import io

    out_dir.mkdir(parents=True, exist_ok=True)
    files, _ = io.collect_inputs([str(hq_dir)])
    for path in files[:limit]:
        target = out_dir / f"{path.stem}.png"
        if target.exists():
            continue
        img = io.read_image(path)
        h, w = img.height, img.width
        side = min(crop, h // 32 * 32, w // 32 * 32)
        y, x = (h - side) // 2, (w - side) // 2
        io.write_image(target, img.rgb[y : y + side, x : x + side])
    return out_dir


def _load(path: Path) -> torch.Tensor:
    from .. import io

    return io.to_tensor(io.read_image(path).rgb)


# Which peers run on which recipe (complex: all of them).
RECIPE_PEERS: dict[str, tuple[str, ...]] = {
    "noise": DENOISE_PEERS,
    "noise-heavy": DENOISE_PEERS,
    **{name: (*DENOISE_PEERS, FFDNET_TRUE_SIGMA) for name in GAUSSIAN_SIGMAS_255},
    "motion": SHARPEN_PEERS,
    "defocus": SHARPEN_PEERS,
    "sr": ("realesrgan-x4plus",),
}


def _peers(recipe: str, peers: dict[str, Peer], log) -> dict[str, Peer]:
    """The peers that suit ``recipe``; sets of known Gaussian sigma also get FFDNet given it."""
    wanted = RECIPE_PEERS.get(recipe)
    chosen = {name: p for name, p in peers.items() if wanted is None or name in wanted}
    sigma = GAUSSIAN_SIGMAS_255.get(recipe)
    if sigma is not None:
        known, missing = available_peers(1, (FFDNET_TRUE_SIGMA,), true_sigma_255=sigma)
        for m in missing.values():
            log(f"peer {m.name}: {m.reason}")
        chosen.update(known)
    return chosen


def _model_methods(
    recipe: str, pipe, ensemble: int, color_fix: str | None = None
) -> dict[str, dict[str, float]]:
    """{row name: weights} of the model's rows for ``recipe``: the matching task alone, or on
    `complex` the model's defaults (what `unires restore photo.jpg` does with no options),
    then the paper's sets (always listed, so tables of different models line up). A named
    ``color_fix`` or ``ensemble`` > 1 is said in every name."""
    task = RECIPE_TASKS[recipe]
    if task is not None:
        methods = {f"one-hot {task}": {task: 1.0}}
    else:
        defaults = dict(pipe.settings.default_weights)
        methods = {f"defaults ({format_weights(defaults)})": defaults}
        methods.update({f"{name} ({format_weights(w)})": w for name, w in PAPER_SETS.items()})
    if ensemble > 1:
        methods = {f"{name}, x{ensemble} ensemble": w for name, w in methods.items()}
    if color_fix:
        methods = {f"{name}, colour fix {color_fix}": w for name, w in methods.items()}
    return methods


def _niqe_or_nan(niqe: NIQE, image: torch.Tensor) -> float:
    try:
        return float(niqe.score(image))
    except ValueError:  # smaller than two 96-pixel NIQE blocks
        return float("nan")


def run_quality_benchmark(
    pipe,
    hq_dir: str | Path | None,
    out_dir: str | Path,
    *,
    recipes: tuple[str, ...] = tuple(RECIPE_TASKS),
    crop: int = 256,
    limit: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    strength: float = 1.0,
    ensemble: int = 1,
    color_fix: str | None = None,
    log=print,
) -> list[QualityRow]:
    """Degrade centre crops of ``hq_dir`` (None: scikit-image's sample photos) with each
    recipe, restore them with UniRes and the peers that suit, write quality.md/json.
    ``ensemble`` > 1: UniRes's rows use that self-ensemble (``Denoiser.with_ensemble``) and
    say so in their names. ``color_fix``: as ``restore_tensor``'s (None: the model's)."""
    out_dir = Path(out_dir)
    if hq_dir is None:
        log(f"no --hq-dir: scikit-image's sample photos ({', '.join(SAMPLE_NAMES)})")
        with tempfile.TemporaryDirectory(prefix="unires-samples-") as tmp:
            write_sample_photos(tmp, side=crop)
            crops = centre_crops(Path(tmp), out_dir / "hq", crop, limit)
    else:
        crops = centre_crops(Path(hq_dir), out_dir / "hq", crop, limit)
    niqe = NIQE()
    peers, missing = available_peers(1)
    for m in missing.values():
        log(f"peer {m.name}: {m.reason}")
    rows: list[QualityRow] = []
    for recipe in recipes:
        set_dir = out_dir / "sets" / recipe
        write_degraded_set(crops, set_dir, recipe, seed=seed)
        pairs = sorted((set_dir / "lq").glob("*.png"))
        methods = {"LQ": None, **_model_methods(recipe, pipe, ensemble, color_fix)}
        methods.update(_peers(recipe, peers, log))
        for method, how in methods.items():
            scores, ssims, niqes, secs = [], [], [], 0.0
            for lq_path in pairs:
                lq, gt = _load(lq_path), _load(set_dir / "gt" / lq_path.name)
                t0 = time.perf_counter()
                if how is None:
                    out = lq
                elif callable(how):
                    out = how(lq)
                else:
                    out = pipe.restore_tensor(
                        lq,
                        how,
                        steps=steps,
                        seed=seed,
                        strength=strength,
                        ensemble=ensemble,
                        color_fix=color_fix,
                    )
                secs += time.perf_counter() - t0
                scores.append(float(psnr(out, gt)))
                ssims.append(float(ssim(out, gt)))
                niqes.append(_niqe_or_nan(niqe, out))
            row = QualityRow(
                recipe,
                method,
                float(np.mean(scores)),
                float(np.mean(ssims)),
                float(np.mean(niqes)),
                secs / max(1, len(pairs)),
                len(pairs),
                scores,
            )
            rows.append(row)
            log(
                f"{recipe:8s} {method:40s} PSNR {row.psnr:6.2f}  SSIM {row.ssim:.3f}  "
                f"NIQE {row.niqe:5.2f}  {row.seconds:5.1f} s/img"
            )
    write_report(rows, out_dir)
    return rows


def write_report(rows: list[QualityRow], out_dir: Path) -> None:
    """Write ``quality.md`` (PSNR, gain vs LQ, SSIM, NIQE, seconds per image) into ``out_dir``."""
    lines = [
        "| degradation | method | PSNR (dB) | gain vs LQ | SSIM | NIQE | s/img |",
        "|---|---|---|---|---|---|---|",
    ]
    lq = {r.recipe: r.psnr for r in rows if r.method == "LQ"}
    for r in rows:
        gain = r.psnr - lq.get(r.recipe, r.psnr)
        lines.append(
            f"| {r.recipe} | {r.method} | {r.psnr:.2f} | {gain:+.2f} | {r.ssim:.3f} | "
            f"{r.niqe:.2f} | {r.seconds:.1f} |"
        )
    atomic_write_text(out_dir / "quality.md", "\n".join(lines) + "\n")
    with atomic_path(out_dir / "quality.json") as tmp:
        tmp.write_text(json.dumps([r.__dict__ for r in rows], indent=1))
