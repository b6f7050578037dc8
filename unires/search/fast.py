"""Fast search of the task weights: Eq. 3-4 at a small fraction of the grid's UNet cost.

1. Every candidate starts from the same x_T (one seed), so the first DDIM step needs each
   task's prediction once: K UNet evaluations for all candidates. Eq. 2 is linear in w, so
   each candidate's output follows from those K predictions without another UNet call.
   Later steps reuse the K predictions made along one shared trajectory (the candidates'
   mean weights): K evaluations per step for all candidates, each on its own latent.
2. Proxy: decode every candidate's end point (a centre crop, ``proxy_side`` pixels) and
   score it with the metric. With ONE sampling step the proxy is the exact result.
3. Successive halving: the best ``survivors`` candidates continue their own trajectories;
   at evenly spaced rungs their x_0 estimates are scored at full size and the worse half
   dropped; the finalists are restored in full and the best kept (Eq. 3-4).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import torch

from ..pipeline import PreparedImage
from ..sampling.ddim import combine_task_predictions
from ..utils import plural
from ..weights import search_grid, unet_evaluations, validate_weights
from .batched import CandidateSampler, decode_candidates
from .grid import ScoredCandidate, SearchResult, lq_at_output_size

Progress = Callable[[float, str], None]
PROXY_CHUNK = 32


def grid_evaluations(candidates: Sequence[Mapping[str, float]], steps: int) -> int:
    """UNet evaluations of the plain grid search: every candidate's active tasks, every step."""
    return sum(unet_evaluations(w, steps) for w in candidates)


def crop_prepared(
    prepared: PreparedImage, side: int | tuple[int, int] | None, factor: int
) -> tuple[PreparedImage, tuple]:
    """The centre crop of at most ``side`` pixels (or (height, width)), a multiple of the VAE
    factor, and its latent slice; ``None`` or a larger side keeps the whole image."""
    h, w = prepared.lq.shape[-2:]
    sh, sw = (side, side) if isinstance(side, int) else (side or (h, w))
    if sh >= h and sw >= w:
        return prepared, (slice(None), slice(None))
    ch, cw = min(sh, h) // factor, min(sw, w) // factor
    y, x = (h // factor - ch) // 2, (w // factor - cw) // 2
    box = (slice(y, y + ch), slice(x, x + cw))
    pix = (slice(y * factor, (y + ch) * factor), slice(x * factor, (x + cw) * factor))
    cropped = replace(
        prepared, lq=prepared.lq[..., pix[0], pix[1]], z_lq=prepared.z_lq[..., box[0], box[1]]
    )
    return cropped, box


def _scores(metric, images: torch.Tensor) -> list[float]:
    values = metric.quality(images).reshape(-1).tolist()
    return [v if math.isfinite(v) else -math.inf for v in values]


def _top(scores: Sequence[float], n: int) -> list[int]:
    """Indices of the n best scores, best first; ties keep the earlier index."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:n]


def _rung_steps(steps: int, survivors: int) -> list[int]:
    """Steps after which the survivors are halved: evenly spaced, leaving >= 2 finalists."""
    rungs = min(steps - 1, max(0, int(math.log2(max(survivors, 1))) - 1))
    return sorted({steps * r // (rungs + 1) - 1 for r in range(1, rungs + 1)} - {-1})


def shared_trajectory_predictions(
    sampler: CandidateSampler, report: Callable[[int, int], None] | None = None
) -> list[torch.Tensor]:
    """Every task's prediction at every step along ONE trajectory, that of the candidates'
    mean weights: K evaluations per step. Step 0 is exact for every candidate (all start
    at x_T); later steps stand in for each candidate's own latent, which is near the mean's.
    ``report(done, total)`` follows the steps.
    """
    mixture = sampler.mixture
    anchor = sampler.weights.mean(dim=0).float()  # sums to 1 like every row
    n = len(sampler.timesteps)
    preds = [mixture.first_predictions()]
    if report is not None:
        report(1, n)
    z = sampler.start
    for i in range(1, n):
        z, _ = sampler.step(combine_task_predictions(preds[-1], anchor), i - 1, z)
        preds.append(mixture.shared_predictions(z, sampler.timesteps[i]))
        if report is not None:
            report(i + 1, n)
    return preds


def fast_search(
    pipe,
    lq: torch.Tensor,
    metric,
    candidates: Sequence[Mapping[str, float]] | None = None,
    *,
    steps: int | None = None,
    seed: int = 0,
    survivors: int = 16,
    proxy_side: int | tuple[int, int] | None = 192,
    scale: int = 1,
    color_fix: str | None = None,
    downlq_factor: int | None = None,
    tiles=None,
    strength: float = 1.0,
    progress: Progress | None = None,
) -> SearchResult:
    """argmax_w Q(g(x, w)) over ``candidates`` (default: the paper grid) for one image.

    ``result.evaluations`` counts every UNet evaluation; ``result.rows`` holds the finalists'
    full-size scores. Exact (the grid's answer) when steps == 1 and ``survivors`` includes
    the grid's best by the proxy; ``proxy_side=None`` scores the proxy at full size.
    """
    t0 = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    omega = [validate_weights(w) for w in (candidates or search_grid())]
    steps = steps or pipe.settings.default_steps
    q_lq = _scores(metric, lq_at_output_size(lq, scale))[0]
    prepared = pipe.prepare(lq, seed=seed, scale=scale, downlq_factor=downlq_factor, tiles=tiles)
    sampler = CandidateSampler(pipe, prepared, omega, steps, strength=strength)
    mixture, n_steps = sampler.mixture, len(sampler.timesteps)

    def decode(target: PreparedImage, latents: torch.Tensor) -> torch.Tensor:
        return decode_candidates(pipe, target, latents, color_fix=color_fix, tiles=tiles)

    # Stage 1: every candidate along a shared trajectory (Eq. 2 is linear in w).
    shared = shared_trajectory_predictions(
        sampler,
        lambda i, n: report(0.1 * i / n, f"task predictions, step {i}/{n}"),
    )
    proxy_target, box = crop_prepared(prepared, proxy_side, pipe.vae_factor)
    proxy: list[float] = []
    for s in range(0, len(omega), PROXY_CHUNK):
        rows = list(range(s, min(len(omega), s + PROXY_CHUNK)))
        z = sampler.start
        for i, preds in enumerate(shared):
            z, _ = sampler.step(mixture.mix(preds, rows), i, z)
        proxy += _scores(metric, decode(proxy_target, z[..., box[0], box[1]]))
        report(0.1 + 0.7 * len(proxy) / len(omega), f"scored {len(proxy)}/{len(omega)} sets")

    # Stage 2: successive halving on the survivors' own trajectories.
    alive = _top(proxy, max(1, survivors))
    z = sampler.start  # the shared first step: the mixture reuses its predictions
    z, _ = sampler.step(mixture(z, sampler.timesteps[0], alive), 0, z)
    rungs = _rung_steps(n_steps, len(alive))
    for i in range(1, n_steps):
        z, x0 = sampler.step(mixture(z, sampler.timesteps[i], alive), i, z)
        if i in rungs and i < n_steps - 1 and len(alive) > 2:
            keep = _top(_scores(metric, decode(prepared, x0)), max(2, len(alive) // 2))
            alive, z = [alive[k] for k in keep], z[keep]
        report(0.8 + 0.15 * i / n_steps, f"step {i + 1}/{n_steps}, {plural(len(alive), 'set')}")
    images = decode(prepared, z)
    final = _scores(metric, images)
    best = _top(final, 1)[0]
    report(1.0, "done")
    return SearchResult(
        best_weights=omega[alive[best]],
        best_score=final[best],
        best_image=images[best : best + 1],
        q_lq=q_lq,
        rows=[ScoredCandidate(omega[r], q) for r, q in zip(alive, final, strict=True)],
        computed=len(omega),
        seconds=time.perf_counter() - t0,
        evaluations=sampler.evaluations,
    )
