"""One entry point for automatic weights (used by ``unires restore --auto``, the web app and
``unires bench search``): pick w for one image by one of ``AUTO_METHODS``.

fast      proxy scores of the whole paper grid along one shared trajectory + halving
grid      Eq. 3-4 over the paper grid (1512 restorations, batched)
frequent  Eq. 3-4 over a few frequent optima (``sets``; Sec. 4.2)
predict   a random forest on image features (``predictor``), one restoration
average   the paper's average optimum (Fig. 6), one restoration
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.crops import centre_crop
from ..metrics.nr import direction, fit_to_size, from_quality
from ..weights import (
    AUTO_METHODS,
    AVERAGE_WEIGHTS,
    MOST_FREQUENT_WEIGHTS,
    active_weights,
    search_grid,
    unet_evaluations,
    validate_weights,
)
from .grid import lq_at_output_size

Progress = Callable[[float, str], None]
# Searches look at a centre crop of at most this many output pixels a side:
# large photos stay fast and fit in memory; the full image is then restored once.
SEARCH_MAX_SIDE = 512


@dataclass
class AutoResult:
    """What ``auto_weights`` chose. Scores are in the metric's own convention: NIQE is
    positive and lower is better (``direction`` says which way is better)."""

    weights: dict[str, float]
    score: float  # the metric on ``image``, e.g. NIQE
    q_lq: float  # the same metric on the input (bicubic-upscaled for x4)
    evaluations: int  # UNet evaluations spent (one task, one latent, one step)
    seconds: float
    image: torch.Tensor | None  # 1 x 3 x H x W restoration in [0, 1] with ``weights``
    metric: str = "niqe"
    direction: str = "lower is better"
    method: str = "fast"  # the method that chose the weights (see ``note`` on a fallback)
    note: str | None = None  # one line when the image made the search adapt, else None

    def to_pil(self):
        """The restoration as an 8-bit RGB PIL image.

        Raises:
            ValueError: the result holds no image.
        """
        from PIL import Image

        if self.image is None:
            raise ValueError("this result holds no image")
        arr = self.image[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        return Image.fromarray((arr * 255.0 + 0.5).astype("uint8"))


def read_weight_sets(path: str | Path) -> list[dict[str, float]]:
    """Weight sets from ``unires search --mine``'s JSON ({"sets": [{"weights": ...}]}) or a
    plain JSON list of weight mappings.

    Raises:
        ValueError: the file cannot be read or holds no sets; ``WeightsError`` for a set that
            does not sum to 1.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read weight sets ({e})") from None
    entries = data.get("sets", []) if isinstance(data, dict) else data
    sets = [validate_weights(e.get("weights", e)) for e in entries if isinstance(e, dict)]
    if not sets:
        raise ValueError(f"{path}: no weight sets in it")
    return sets


def default_frequent_sets(pipe) -> list[dict[str, float]]:
    """Without mined sets: the paper's most frequent optimum, its average, the model's default."""
    sets = [MOST_FREQUENT_WEIGHTS, AVERAGE_WEIGHTS, pipe.settings.default_weights]
    unique = {json.dumps(sorted(validate_weights(w).items())): w for w in sets}
    return [dict(w) for w in unique.values()]


def _metric(metric, pipe):
    if isinstance(metric, str):
        from ..metrics.nr import get_metric

        return get_metric(metric, device=pipe.device)
    return metric


def _quality(metric, image: torch.Tensor) -> float:
    value = float(metric.quality(image.float().clamp(0, 1)).reshape(-1)[0])
    return value if math.isfinite(value) else float("nan")


def _smallest_scored(lq: torch.Tensor, method: str, scale: int, options: Mapping, factor: int):
    """(height, width) of the smallest image a method scores for ``lq``: the output-size
    search view, or the fast search's proxy crop of it (multiples of the VAE factor)."""
    h, w = (min(s, SEARCH_MAX_SIDE // scale) * scale for s in lq.shape[-2:])
    if method == "fast":
        side = options.get("proxy_side", 192)
        if side is not None:
            ph, pw = (side, side) if isinstance(side, int) else side
            if ph < h or pw < w:
                h, w = min(ph, h) // factor * factor, min(pw, w) // factor * factor
    return h, w


def _load_predictor(predictor):
    from .predictor import WeightPredictor

    if predictor is None:
        raise ValueError("method 'predict' needs a predictor (unires search --train-predictor)")
    return predictor if isinstance(predictor, WeightPredictor) else WeightPredictor.load(predictor)


def auto_weights(
    pipe,
    lq,
    method: str = "fast",
    *,
    metric="niqe",
    steps: int | None = None,
    seed: int = 0,
    scale: int = 1,
    predictor=None,
    sets: Sequence[Mapping[str, float]] | str | Path | None = None,
    progress: Progress | None = None,
    fast_options: Mapping | None = None,
    ensemble: int = 1,
    **restore_kwargs,
) -> AutoResult:
    """Choose the task weights for one image ``lq``: what ``UniResPipeline.__call__``
    takes, a PIL image, an H x W x 3 array (uint8, or float in [0, 1]) or a tensor
    (3 x H x W or 1 x 3 x H x W in [0, 1]).

    ``metric``: a name (``metrics.nr.get_metric``) or a metric object; ``predictor``: a
    ``WeightPredictor`` or its file ("predict"); ``sets``: weight sets or a JSON file
    ("frequent"). ``progress(fraction, message)`` is called many times within one image.
    ``fast_options`` (survivors, proxy_side) tune ``fast_search``. ``restore_kwargs``
    (color_fix, downlq_factor, tiles, strength) go to every restoration, ``ensemble``
    (``Denoiser.with_ensemble``) only to the returned image's. Searches larger than
    ``SEARCH_MAX_SIDE`` look at a centre crop; the whole image is then restored once. Images
    under NIQE's two 96x96 blocks are scored with smaller blocks, and images too small even
    for those get the "average" weights; either way ``result.note`` says so in one line.

    Returns an ``AutoResult``: ``weights``, ``score`` and ``q_lq`` in the metric's own
    convention (NIQE: lower is better), ``image`` (1 x 3 x H x W tensor; ``to_pil()``).

    Raises:
        ValueError: an unknown ``method``, a batch of more than one image, method "predict"
            without a ``predictor``, or unusable ``sets``.
    """
    from ..pipeline import as_image_batch

    if method not in AUTO_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(AUTO_METHODS)}")
    lq = as_image_batch(lq)
    if lq.shape[0] != 1:
        raise ValueError(f"expected one image, got a batch of {lq.shape[0]}")
    t0 = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    common = dict(steps=steps, seed=seed, scale=scale, **restore_kwargs)
    final = {**common, "ensemble": ensemble}  # the returned image's restoration
    options = dict(fast_options or {}) if method == "fast" else {}
    quality, note, method = _fitted_metric(_metric(metric, pipe), pipe, lq, method, scale, options)
    if note:
        report(0.0, note)
    if method in SEARCHES:
        view = centre_crop(lq, SEARCH_MAX_SIDE // scale)
        result = _search(pipe, view, method, quality, sets, report, {**common, **options})
        weights, score, q_lq = result.best_weights, result.best_score, result.q_lq
        image, evaluations = result.best_image, result.evaluations
        if view.shape != lq.shape or ensemble > 1:
            report(0.95, "restoring the whole image")
            image, score, q_lq, more = _restore_scored(pipe, lq, weights, quality, final)
            evaluations += more
    else:
        report(0.0, "choosing weights")
        weights = _load_predictor(predictor).predict(lq) if method == "predict" else AVERAGE_WEIGHTS
        report(0.1, "restoring")
        image, score, q_lq, evaluations = _restore_scored(pipe, lq, weights, quality, final)
    report(1.0, "done")
    shown = quality if quality is not None else _metric(metric, pipe)
    return AutoResult(
        weights=active_weights(weights),  # zero weights: unused
        score=from_quality(shown, score),
        q_lq=from_quality(shown, q_lq),
        evaluations=evaluations,
        seconds=time.perf_counter() - t0,
        image=image,
        metric=str(getattr(shown, "name", metric)),
        direction=direction(shown),
        method=method,
        note=note,
    )


# The methods that score candidates (the others restore once with weights chosen unseen).
SEARCHES = ("fast", "grid", "frequent")


def _fitted_metric(quality, pipe, lq: torch.Tensor, method: str, scale: int, options: Mapping):
    """(metric fitted to the smallest image it scores or None, one-line note or None, method).

    A search whose images are too small even for the metric's smallest blocks falls back to
    the "average" weights; the other methods then only go without a score."""
    if method in SEARCHES:
        size = _smallest_scored(lq, method, scale, options, pipe.vae_factor)
        try:
            return (*fit_to_size(quality, *size), method)
        except ValueError as e:
            return None, f"{e}: no search, the paper's average weights", "average"
    try:
        return (*fit_to_size(quality, *lq_at_output_size(lq, scale).shape[-2:]), method)
    except ValueError as e:
        return None, f"{e}: no score", method


def _restore_scored(pipe, lq: torch.Tensor, weights, quality, common: dict):
    """Restore ``lq`` once: (image, its score, the LQ's score, UNet evaluations); scores are
    NaN without a metric."""
    image = pipe.restore_tensor(lq, weights, **common)
    score = q_lq = float("nan")
    if quality is not None:
        lq_out = lq_at_output_size(lq, common["scale"])
        score, q_lq = _quality(quality, image), _quality(quality, lq_out)
    n_steps = common["steps"] or pipe.settings.default_steps
    return image, score, q_lq, unet_evaluations(weights, n_steps) * common.get("ensemble", 1)


def search_candidates(pipe, lq: torch.Tensor, candidates, metric, method: str = "grid", **kwargs):
    """Search ``candidates`` (None: the paper grid) for one image ``lq`` (1, 3, H, W) in
    [0, 1]: ``fast_search`` for method "fast", else ``grid_search`` (every candidate,
    Eq. 3-4). ``kwargs`` go to that search (steps, seed, tiles; fast: survivors, proxy_side,
    progress callback; grid: table_path, progress bar, report callback). Returns its
    ``SearchResult``.

    Raises:
        ValueError: a method other than fast, grid or frequent; as the search raises.
    """
    from .fast import fast_search
    from .grid import grid_search

    if method == "fast":
        return fast_search(pipe, lq, metric, candidates, **kwargs)
    if method not in SEARCHES:
        raise ValueError(f"{method!r} is not a search ({', '.join(SEARCHES)})")
    return grid_search(
        pipe, lq, search_grid() if candidates is None else candidates, metric, **kwargs
    )


def _search(pipe, lq, method, quality, sets, report, common):
    if method == "fast":
        return search_candidates(pipe, lq, None, quality, "fast", progress=report, **common)
    if method == "grid":
        candidates = search_grid()
    elif isinstance(sets, str | Path):
        candidates = read_weight_sets(sets)
    else:
        candidates = [validate_weights(w) for w in sets] if sets else default_frequent_sets(pipe)
    return search_candidates(pipe, lq, candidates, quality, method, report=report, **common)
