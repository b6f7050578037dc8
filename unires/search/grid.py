"""Eq. 3-4: restore one image with every candidate weight set and keep the best by a
no-reference quality metric. The score table is written after every candidate, atomically, so
an interrupted search resumes where it stopped."""

from __future__ import annotations

import csv
import glob
import io
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..metrics.nr import direction, from_quality
from ..parallel import SINGLE, Processes
from ..utils import atomic_write_text
from ..weights import Weights, unet_evaluations, validate_weights
from .batched import CandidateSampler, restore_in_chunks

SCORE_COLUMN = "score"  # the quality column of tables written without a named metric
KEY_DECIMALS = 6  # weights equal to 1e-6 are the same candidate (grid values are rounded)

WeightsKey = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class ScoredCandidate:
    weights: Weights
    score: float  # internal quality, higher is better (NaN when the metric failed); users
    # see ``metrics.nr.from_quality(metric, score)`` (NIQE: positive, lower is better)


@dataclass
class SearchResult:
    best_weights: Weights
    best_score: float  # internal quality (higher is better): see ScoredCandidate
    best_image: torch.Tensor | None  # 1 x 3 x H x W in [0, 1]; None if not asked for
    q_lq: float  # quality of the input itself, so that the gain is best_score - q_lq
    rows: list[ScoredCandidate] = field(default_factory=list)  # in candidate order
    computed: int = 0  # candidates restored in this call
    reused: int = 0  # candidates read back from an existing score table
    seconds: float = 0.0
    evaluations: int = 0  # UNet evaluations spent (one task, one latent, one step)

    @property
    def gain(self) -> float:
        """Best score minus the input's, in internal quality (> 0: better than the input)."""
        return self.best_score - self.q_lq


def weights_key(weights: Mapping[str, float]) -> WeightsKey:
    """Order-free identity of a weight set; zero weights do not count (Eq. 2 skips them)."""
    rounded = ((k, round(float(v), KEY_DECIMALS)) for k, v in weights.items())
    return tuple(sorted((k, v + 0.0) for k, v in rounded if v != 0.0))


def score_column(metric) -> str:
    """The score column's header: the metric and its direction, e.g. ``niqe (lower is
    better)``, its values in the metric's own convention; ``score`` (quality, higher is
    better) for a metric without a name."""
    name = getattr(metric, "name", None)
    return f"{name} ({direction(metric)})" if name else SCORE_COLUMN


def _quality_reader(header: str):
    """How to turn a score column's values back into quality (higher is better)."""
    if header == SCORE_COLUMN or header.endswith("(higher is better)"):
        return float
    if header.endswith("(lower is better)"):
        return lambda text: -float(text)
    return None


def read_score_table(path: str | Path) -> dict[WeightsKey, float]:
    """Qualities (higher is better) already computed, by weight set; a missing file is an
    empty table. Reads the metric's own convention (``score_column``) and older tables."""
    path = Path(path)
    if not path.is_file():
        return {}
    scores: dict[WeightsKey, float] = {}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = next((h for h in reader.fieldnames or [] if _quality_reader(h)), None)
        if header is None:
            return {}
        to_quality = _quality_reader(header)
        for row in reader:
            score = row.pop(header, None)
            if score in (None, ""):
                continue
            try:
                weights = {k: float(v) for k, v in row.items() if k and v not in (None, "")}
                scores[weights_key(weights)] = to_quality(score)
            except ValueError:
                continue  # a damaged row is simply recomputed
    return scores


def write_score_table(path: str | Path, rows: Sequence[ScoredCandidate], metric=None) -> None:
    """One row per candidate: a column per task (0 where absent), then the score in the
    metric's own convention (NIQE: lower is better), named by ``score_column``."""
    tasks = list(dict.fromkeys(k for r in rows for k in r.weights))
    header = score_column(metric)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*tasks, header])
    for r in rows:
        value = from_quality(metric, r.score) if header != SCORE_COLUMN else r.score
        writer.writerow([f"{r.weights.get(t, 0.0):g}" for t in tasks] + [repr(value + 0.0)])
    atomic_write_text(path, buf.getvalue())


def _quality(metric, image: torch.Tensor) -> float:
    value = float(metric.quality(image).reshape(-1)[0])
    return value if math.isfinite(value) else float("nan")


def _rank(score: float) -> float:
    return score if not math.isnan(score) else -math.inf  # NaN never wins the argmax


def lq_at_output_size(lq: torch.Tensor, scale: int = 1) -> torch.Tensor:
    """The input as the restorations are scored: bicubic-upscaled for x4, so Q(LQ) and the
    candidates' Q compare like for like (and small x4 inputs meet NIQE's minimum size)."""
    lq = lq.float().clamp(0, 1)
    if scale == 1:
        return lq
    up = torch.nn.functional.interpolate(
        lq, scale_factor=scale, mode="bicubic", align_corners=False
    )
    return up.clamp(0, 1)


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
    report: Callable[[float, str], None] | None = None,
    processes: Processes | None = None,
    **restore_kwargs,
) -> SearchResult:
    """w* = argmax_{w in Omega} Q(g(x, w)) over ``candidates`` for one image ``lq``.

    Every candidate is restored with the same seed, so scores differ only by the weights; a
    pipeline that ``batches_candidates`` restores them in batches (``batched.py``: encodings
    and the first step shared), else one ``restore_tensor`` call at a time. Candidates
    already in ``table_path`` are not restored again; with ``return_image`` a best candidate
    read from the table is restored once more for its image.
    ``restore_kwargs`` (scale, color_fix, tiles, ...) go to ``restore_tensor``.
    ``report(fraction, message)`` (optional) follows the progress, e.g. for a web page.

    ``processes`` (``unires.parallel``): when several run the same search, each restores
    every count-th chunk of the candidates still to do, writes its scores to its own part
    table (``<table>.part<index>``, read back by a rerun) and the main process writes the
    merged table once all are done. Every process returns the whole result; the best image
    is on every process when it was restored in this call, else on the main process only.
    An error on one process is raised (``RuntimeError``) on all of them.
    """
    if lq.ndim != 4 or lq.shape[0] != 1:
        raise ValueError(f"grid search scores one image: expected 1 x 3 x H x W, got {lq.shape}")
    if not candidates:
        raise ValueError("no candidate weights to search")
    t0 = time.perf_counter()
    omega = [validate_weights(w) for w in candidates]
    procs = processes or SINGLE
    known = {}
    if table_path is not None and procs.is_main:
        known = fold_score_parts(table_path, metric)
    known = procs.broadcast(known)  # one to-do list for every process
    q_lq = _quality(metric, lq_at_output_size(lq, restore_kwargs.get("scale", 1)))
    todo = [i for i, w in enumerate(omega) if weights_key(w) not in known]
    restorer = CandidateRestorer(pipe, lq, steps=steps, seed=seed, **restore_kwargs)

    scores = {i: known[weights_key(w)] for i, w in enumerate(omega) if weights_key(w) in known}
    run = _SearchRun(restorer, omega, todo, known, scores, metric, table_path, progress, report)
    if procs.parallel:
        return _grid_search_shared(procs, run, q_lq, t0, return_image)
    leader = _score_alone(run)
    rows, best_index = _ranked(omega, scores)
    image = leader.get(best_index)
    if return_image and image is None:
        image = restorer.restore_one(rows[best_index].weights)
    image = image if return_image else None
    return _search_result(rows, best_index, image, q_lq, len(todo), t0, restorer.evaluations)


@dataclass
class _SearchRun:
    """What ``grid_search``'s loops share for one image: the candidates ``omega``, the indices
    ``todo`` still to score, the scores read from the table (``known``, by weights) and those
    of this call (``scores``, by index, filled in as they come), and where they are shown."""

    restorer: CandidateRestorer
    omega: list[Weights]
    todo: list[int]
    known: dict[WeightsKey, float]
    scores: dict[int, float]
    metric: object
    table_path: str | Path | None
    progress: bool
    report: Callable[[float, str], None] | None


def _score_alone(run: _SearchRun) -> dict[int, torch.Tensor]:
    """``grid_search``'s loop in one process: score the candidates ``run.todo`` into
    ``run.scores``, rewriting the table after every chunk. Returns {index: image} of the
    current leader."""
    omega, todo, scores = run.omega, run.todo, run.scores
    best_image: dict[int, torch.Tensor] = {}
    finished = 0  # counted here: a disabled tqdm bar does not count
    with tqdm(total=len(todo), desc="searching", unit="w", disable=not run.progress) as bar:
        for rows, images in run.restorer.restore([omega[i] for i in todo]):
            for r, image in zip(rows, images, strict=True):
                i = todo[r]
                scores[i] = _quality(run.metric, image[None])
                best_image[i] = image[None]
            # Keep only the current leader's image: memory stays flat on 1512 candidates.
            leader = _argmax([scores.get(i, math.nan) for i in range(len(omega))])
            best_image = {i: im for i, im in best_image.items() if i == leader}
            if run.table_path is not None:
                _write_table(run.table_path, omega, scores, run.known, run.metric)
            bar.update(len(rows))
            finished += len(rows)
            if run.report is not None:
                run.report(finished / max(1, len(todo)), f"scored {finished}/{len(todo)} sets")
    return best_image


def _write_table(
    table_path: str | Path,
    omega: list[Weights],
    scores: dict[int, float],
    known: dict[WeightsKey, float],
    metric,
) -> None:
    """The score table of the candidates scored so far, and the rows this run has not reached."""
    done = [ScoredCandidate(omega[i], scores[i]) for i in range(len(omega)) if i in scores]
    write_score_table(table_path, done + _not_visited(known, done), metric)


def _ranked(omega: list[Weights], scores: dict[int, float]) -> tuple[list[ScoredCandidate], int]:
    """Every candidate with its score, in candidate order, and the index of the best (Eq. 3-4)."""
    rows = [ScoredCandidate(w, scores[i]) for i, w in enumerate(omega)]
    return rows, _argmax([r.score for r in rows])


def _search_result(
    rows: list[ScoredCandidate],
    best_index: int,
    image: torch.Tensor | None,
    q_lq: float,
    computed: int,
    t0: float,
    evaluations: int,
) -> SearchResult:
    best = rows[best_index]
    return SearchResult(
        best_weights=best.weights,
        best_score=best.score,
        best_image=image,
        q_lq=q_lq,
        rows=rows,
        computed=computed,
        reused=len(rows) - computed,
        seconds=time.perf_counter() - t0,
        evaluations=evaluations,
    )


def _grid_search_shared(
    procs: Processes, run: _SearchRun, q_lq: float, t0: float, return_image: bool
) -> SearchResult:
    """``grid_search`` when several processes split the candidates of one image: each scores
    its share, all learn every score, the holder of the best image shares it."""
    omega, scores, table_path = run.omega, run.scores, run.table_path
    mine, leader, error = _score_share(procs, run)
    shares = procs.gather((mine, error, run.restorer.evaluations))
    failed = [(r, err) for r, (_, err, _) in enumerate(shares) if err]
    if failed:  # every process stops on this image; the part tables keep what was scored
        r, err = failed[0]
        raise RuntimeError(err if r == procs.index else f"process {r}: {err}")
    for theirs, _, _ in shares:
        scores.update(theirs)
    rows, best_index = _ranked(omega, scores)
    holder = next((r for r, (theirs, _, _) in enumerate(shares) if best_index in theirs), None)
    image = None
    if return_image and holder is not None:  # restored in this call: its own bits
        own = leader[1] if leader is not None and leader[0] == best_index else None
        image = procs.broadcast(own, source=holder)
    if procs.is_main:
        if table_path is not None:
            _write_table(table_path, omega, scores, run.known, run.metric)
            _remove_score_parts(table_path)
        if return_image and image is None:
            image = run.restorer.restore_one(rows[best_index].weights)
    image = image if return_image else None
    evaluations = sum(n for _, _, n in shares)
    return _search_result(rows, best_index, image, q_lq, len(run.todo), t0, evaluations)


def _score_share(
    procs: Processes, run: _SearchRun
) -> tuple[dict[int, float], tuple[int, torch.Tensor] | None, str | None]:
    """This process's share of the candidates ``run.todo``, scored, its part table rewritten
    after every chunk. Returns ({index: score}, (index, image) of its best or None, the error
    that stopped it or None)."""
    omega, todo, table_path = run.omega, run.todo, run.table_path
    part = score_part_path(table_path, procs.index) if table_path is not None else None
    mine: dict[int, float] = {}  # scored by this process in this call
    leader: tuple[int, torch.Tensor] | None = None  # its best candidate and image
    error = None
    finished = 0

    def count() -> int:  # candidates scored by all processes, from their part tables
        if table_path is None:
            return finished * procs.count
        return sum(len(read_score_table(p)) for p in _score_parts(table_path))

    shown = run.progress and procs.is_main
    bar = tqdm(total=len(todo), desc="searching", unit="w", disable=not shown)
    with bar, procs.progress(bar, count=count) as advance:
        try:
            share = (procs.index, procs.count)
            for rows, images in run.restorer.restore([omega[i] for i in todo], share=share):
                for r, image in zip(rows, images, strict=True):
                    i = todo[r]
                    mine[i] = _quality(run.metric, image[None])
                    if leader is None or _rank(mine[i]) > _rank(mine[leader[0]]):
                        leader = (i, image[None])  # ties keep the earlier candidate
                if part is not None:
                    done = [ScoredCandidate(omega[i], mine[i]) for i in sorted(mine)]
                    write_score_table(part, done, run.metric)
                finished += len(rows)
                advance()
                if run.report is not None and procs.is_main:
                    n = min(count(), len(todo))
                    run.report(n / max(1, len(todo)), f"scored {n}/{len(todo)} sets")
        except (RuntimeError, ValueError) as e:  # e.g. out of memory on one GPU
            error = str(e).strip() or type(e).__name__
    return mine, leader, error


def score_part_path(table_path: str | Path, index: int) -> Path:
    """The score table of process ``index`` while several split one search:
    ``<table>.part<index>`` beside the table (same columns)."""
    table_path = Path(table_path)
    return table_path.with_name(f"{table_path.name}.part{index}")


def _score_parts(table_path: str | Path) -> list[Path]:
    table_path = Path(table_path)
    if not table_path.parent.is_dir():
        return []
    return sorted(table_path.parent.glob(f"{glob.escape(table_path.name)}.part*"))


def _remove_score_parts(table_path: str | Path) -> None:
    for p in _score_parts(table_path):
        p.unlink(missing_ok=True)


def fold_score_parts(table_path: str | Path, metric=None) -> dict[WeightsKey, float]:
    """``read_score_table`` of the table together with the part tables that processes of an
    interrupted search left beside it (``score_part_path``); the parts, if any, are written
    into the table (atomically) and removed. Qualities: higher is better."""
    known = read_score_table(table_path)
    parts = _score_parts(table_path)
    if not parts:
        return known
    for p in parts:
        known.update(read_score_table(p))
    write_score_table(table_path, _not_visited(known, []), metric)
    for p in parts:
        p.unlink(missing_ok=True)
    return known


def _argmax(scores: Sequence[float]) -> int:
    """Eq. 3-4's argmax; NaN never wins, ties keep the earlier candidate."""
    best = 0
    for i, s in enumerate(scores):
        if _rank(s) > _rank(scores[best]):
            best = i
    return best


class CandidateRestorer:
    """Restorations of one image for many weight sets: batched (``batched.py``) when the
    pipeline ``batches_candidates``, one ``restore_tensor`` call per set otherwise (eta > 0,
    tiling).
    ``evaluations`` counts the UNet evaluations spent."""

    def __init__(self, pipe, lq: torch.Tensor, *, steps: int | None, seed: int, **kwargs):
        self.pipe, self.lq, self.steps, self.seed, self.kwargs = pipe, lq, steps, seed, kwargs
        self.batched = pipe.batches_candidates(lq, kwargs)
        self.evaluations = 0
        self._prepared = None

    def restore(self, omega: Sequence[Weights], share: tuple[int, int] = (0, 1)):
        """Yield (indices into omega, images) a chunk at a time. ``share`` = (index, count):
        only this process's chunks when ``count`` processes split the candidates."""
        if not omega:
            return
        if not self.batched:
            index, count = share
            for i in range(index, len(omega), count):
                yield [i], self.restore_one(omega[i])
            return
        steps = self.steps or self.pipe.settings.default_steps
        sampler = CandidateSampler(
            self.pipe, self.prepared(), omega, steps, strength=self.kwargs.get("strength", 1.0)
        )
        try:
            chunks = restore_in_chunks(sampler, share=share, **self._decode_kwargs())
            for rows, images in chunks:
                yield list(rows), images
        finally:
            self.evaluations += sampler.evaluations

    def restore_one(self, weights: Weights) -> torch.Tensor:
        """Restore one candidate on its own (1, 3, H, W); counts its UNet evaluations."""
        steps = self.steps or self.pipe.settings.default_steps
        self.evaluations += unet_evaluations(weights, steps)
        return self.pipe.restore_tensor(
            self.lq, weights, steps=self.steps, seed=self.seed, **self.kwargs
        )

    def prepared(self):
        """The image's ``PreparedImage`` (condition latents, start noise), made once."""
        if self._prepared is None:
            kw = {
                k: self.kwargs[k] for k in ("scale", "downlq_factor", "tiles") if k in self.kwargs
            }
            self._prepared = self.pipe.prepare(self.lq, seed=self.seed, **kw)
        return self._prepared

    def _decode_kwargs(self) -> dict:
        return {k: self.kwargs[k] for k in ("color_fix", "tiles") if k in self.kwargs}


def _not_visited(
    known: dict[WeightsKey, float], rows: list[ScoredCandidate]
) -> list[ScoredCandidate]:
    """Table rows this run has not reached (or that belong to another grid): rewriting the
    table keeps them, so a smaller search never erases a larger one's scores."""
    visited = {weights_key(r.weights) for r in rows}
    return [ScoredCandidate(dict(k), s) for k, s in known.items() if k not in visited]
