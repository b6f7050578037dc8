"""Eq. 3-4: restore one image with every candidate weight set and keep the best by a
no-reference quality metric. The score table is written after every candidate, atomically, so
an interrupted search resumes where it stopped."""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..utils import atomic_write_text
from ..weights import Weights, validate_weights

SCORE_COLUMN = "score"
KEY_DECIMALS = 6  # weights equal to 1e-6 are the same candidate (grid values are rounded)

WeightsKey = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class ScoredCandidate:
    weights: Weights
    score: float  # metric quality: higher is better (NaN when the metric failed)


@dataclass
class SearchResult:
    best_weights: Weights
    best_score: float
    best_image: torch.Tensor | None  # 1 x 3 x H x W in [0, 1]; None if not asked for
    q_lq: float  # quality of the input itself, so that the gain is best_score - q_lq
    rows: list[ScoredCandidate] = field(default_factory=list)  # in candidate order
    computed: int = 0  # candidates restored in this call
    reused: int = 0  # candidates read back from an existing score table
    seconds: float = 0.0

    @property
    def gain(self) -> float:
        return self.best_score - self.q_lq


def weights_key(weights: Mapping[str, float]) -> WeightsKey:
    """Order-free identity of a weight set; zero weights do not count (Eq. 2 skips them)."""
    rounded = ((k, round(float(v), KEY_DECIMALS)) for k, v in weights.items())
    return tuple(sorted((k, v + 0.0) for k, v in rounded if v != 0.0))


def read_score_table(path: str | Path) -> dict[WeightsKey, float]:
    """Scores already computed, by weight set; a missing file is an empty table."""
    path = Path(path)
    if not path.is_file():
        return {}
    scores: dict[WeightsKey, float] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            score = row.pop(SCORE_COLUMN, None)
            if score in (None, ""):
                continue
            try:
                weights = {k: float(v) for k, v in row.items() if k and v not in (None, "")}
                scores[weights_key(weights)] = float(score)
            except ValueError:
                continue  # a damaged row is simply recomputed
    return scores


def write_score_table(path: str | Path, rows: Sequence[ScoredCandidate]) -> None:
    """One row per candidate: a column per task (0 where absent), then the score."""
    tasks = list(dict.fromkeys(k for r in rows for k in r.weights))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*tasks, SCORE_COLUMN])
    for r in rows:
        writer.writerow([f"{r.weights.get(t, 0.0):g}" for t in tasks] + [repr(r.score)])
    atomic_write_text(path, buf.getvalue())


def _quality(metric, image: torch.Tensor) -> float:
    value = float(metric.quality(image).reshape(-1)[0])
    return value if math.isfinite(value) else float("nan")


def _rank(score: float) -> float:
    return score if not math.isnan(score) else -math.inf  # NaN never wins the argmax


def grid_search(
    pipe,
    lq: torch.Tensor,
    candidates: Sequence[Mapping[str, float]],
    metric,
    *,
    steps: int | None,
    seed: int,
    table_path: str | Path | None = None,
    progress: bool = False,
    return_image: bool = True,
    **restore_kwargs,
) -> SearchResult:
    """w* = argmax_{w in Omega} Q(g(x, w)) over ``candidates`` for one image ``lq``.

    ``pipe.restore_tensor`` runs with the same seed for every candidate, so scores differ only
    by the weights. Candidates already in ``table_path`` are not restored again; with
    ``return_image`` a best candidate read from the table is restored once more for its image.
    ``restore_kwargs`` (scale, color_fix, tiles, ...) go to ``restore_tensor``.
    """
    if lq.ndim != 4 or lq.shape[0] != 1:
        raise ValueError(f"grid search scores one image: expected 1 x 3 x H x W, got {lq.shape}")
    if not candidates:
        raise ValueError("no candidate weights to search")
    t0 = time.perf_counter()
    omega = [validate_weights(w) for w in candidates]
    known = read_score_table(table_path) if table_path is not None else {}
    q_lq = _quality(metric, lq.float().clamp(0, 1))

    def restore(weights: Weights) -> torch.Tensor:
        return pipe.restore_tensor(lq, weights, steps=steps, seed=seed, **restore_kwargs)

    rows: list[ScoredCandidate] = []
    best_index, best_image = -1, None
    computed = reused = 0
    for weights in tqdm(omega, desc="searching", unit="w", disable=not progress):
        key = weights_key(weights)
        if key in known:
            score, image = known[key], None
            reused += 1
        else:
            image = restore(weights)
            score = _quality(metric, image)
            computed += 1
        rows.append(ScoredCandidate(weights, score))
        # Eq. 3-4: keep the argmax of Q; ties keep the earlier candidate.
        if best_index < 0 or _rank(score) > _rank(rows[best_index].score):
            best_index, best_image = len(rows) - 1, image
        if table_path is not None and image is not None:
            write_score_table(table_path, rows + _not_visited(known, rows))
    best = rows[best_index]
    if return_image and best_image is None:
        best_image = restore(best.weights)
    return SearchResult(
        best_weights=best.weights,
        best_score=best.score,
        best_image=best_image if return_image else None,
        q_lq=q_lq,
        rows=rows,
        computed=computed,
        reused=reused,
        seconds=time.perf_counter() - t0,
    )


def _not_visited(
    known: dict[WeightsKey, float], rows: list[ScoredCandidate]
) -> list[ScoredCandidate]:
    """Table rows this run has not reached (or that belong to another grid): rewriting the
    table keeps them, so a smaller search never erases a larger one's scores."""
    visited = {weights_key(r.weights) for r in rows}
    return [ScoredCandidate(dict(k), s) for k, s in known.items() if k not in visited]
