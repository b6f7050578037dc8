"""``unires bench search``: how close each weight selector gets to the full grid (Eq. 3-4).

Per image the grid search runs first (its records double as a search log, resumable), then
every other selector through ``auto_weights``. "frequent" mines the top sets and "predict"
trains the forest on the OTHER images' grid optima (leave-one-out) unless given a file.
Reported per selector: mean Q, mean gain as a fraction of the grid's
(Q_sel - Q_LQ) / (Q_grid - Q_LQ), UNet evaluations and seconds per image.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .. import io
from ..metrics.nr import direction, fit_to_size, from_quality, metric_info, metric_label
from ..search.auto import AutoResult, auto_weights
from ..search.fast import grid_evaluations
from ..search.frequent import mine_frequent_sets
from ..search.grid import ScoredCandidate, grid_search, read_score_table
from ..search.log import check_search_folder
from ..utils import atomic_write_text, plural
from ..weights import format_weights, search_grid
from .plots import draw_tradeoffs


@dataclass
class Row:
    image: str
    selector: str
    weights: dict[str, float]
    q: float
    q_lq: float
    q_grid: float
    evaluations: int
    seconds: float
    q_median: float = float("nan")  # the grid's median candidate

    @property
    def gain_fraction(self) -> float:
        """(Q_sel - Q_LQ) / (Q_grid - Q_LQ): the share of the grid's gain kept (NaN without gain)."""
        denom = self.q_grid - self.q_lq
        return (self.q - self.q_lq) / denom if denom > 0 else float("nan")

    @property
    def gain_over_median(self) -> float:
        """Share of the grid's lead over its median candidate that the selector keeps:
        still defined where no candidate beats the LQ (then ``gain_fraction`` is not)."""
        denom = self.q_grid - self.q_median
        return (self.q - self.q_median) / denom if denom > 0 else float("nan")


def _centre(lq: torch.Tensor, crop: int | None) -> torch.Tensor:
    if not crop:
        return lq
    h, w = lq.shape[-2:]
    c = min(crop, h, w)
    y, x = (h - c) // 2, (w - c) // 2
    return lq[..., y : y + c, x : x + c]


def _cropped_inputs(files: list[Path], crop: int | None, folder: Path) -> dict[str, torch.Tensor]:
    """{stem: the image centre-cropped to ``crop``}, each also written to ``folder``."""
    images = {}
    for f in files:
        lq = _centre(io.to_tensor(io.read_image(f).rgb), crop)
        io.write_image(folder / f"{f.stem}.png", io.from_tensor(lq))
        images[f.stem] = lq
    return images


def _to_quality(record: dict, metric) -> dict:
    """A record as the selectors compare it: internal quality, higher is better. Records
    written with a ``direction`` hold the metric's own values (NIQE: lower is better)."""
    if "direction" not in record:  # an older cache: already quality
        return record
    sign = -1.0 if record["direction"] == "lower is better" else 1.0
    return {**record, "best_score": sign * record["score"], "q_lq": sign * record["q_lq"]}


def _grid_record(pipe, lq, metric, out: Path, stem: str, steps, seed) -> dict:
    """The reference: a plain grid search, cached as ``unires search`` would write it (scores
    in the metric's own convention), with its Fig. 11 trade-off curves. Returned in
    internal quality (higher is better)."""
    path, table = out / "grid" / f"{stem}.json", out / "grid" / f"{stem}.csv"
    if path.is_file():
        record = _to_quality(json.loads(path.read_text(encoding="utf-8")), metric)
    else:
        t0 = time.perf_counter()
        res = grid_search(
            pipe,
            lq,
            search_grid(),
            metric,
            steps=steps,
            seed=seed,
            table_path=table,
            return_image=False,
        )
        shown = {
            "input": str(out / "inputs" / f"{stem}.png"),
            "best_weights": res.best_weights,
            "score": from_quality(metric, res.best_score),
            "q_lq": from_quality(metric, res.q_lq),
            "direction": direction(metric),
            "evaluations": res.evaluations,
            "seconds": time.perf_counter() - t0,
        }
        atomic_write_text(path, json.dumps(shown, indent=2) + "\n")
        record = _to_quality(shown, metric)
    scores = read_score_table(table)
    record["q_median"] = statistics.median(scores.values()) if scores else float("nan")
    plot = out / "grid" / f"{stem}_tradeoff.png"
    if not plot.is_file():
        rows = [ScoredCandidate(dict(k), q) for k, q in scores.items()]
        title = f"{stem}: {metric_label(metric)} along each pair of tasks (Fig. 11)"
        draw_tradeoffs(rows, plot, title=title, metric=metric)
    return record


def _leave_one_out(records: dict[str, dict], stem: str, top: int):
    others = [r for s, r in records.items() if s != stem]
    sets = [w for w, _ in mine_frequent_sets([r["best_weights"] for r in others], top)]
    return others, sets


def _loo_predictor(others: list[dict]):
    from ..search.predictor import fit_predictor, image_features

    if len(others) < 2:
        return None
    feats = [image_features(io.to_tensor(io.read_image(r["input"]).rgb)) for r in others]
    return fit_predictor(np.stack(feats), [r["best_weights"] for r in others], n_estimators=100)


def run_search_benchmark(
    pipe,
    files: list[Path],
    out: Path,
    *,
    selectors: tuple[str, ...],
    metric: str = "niqe",
    steps: int | None = None,
    seed: int = 0,
    crop: int | None = None,
    predictor=None,
    sets=None,
    top: int = 8,
    fast_options: dict | None = None,
    log=print,
) -> dict:
    """Run every selector on every image; write ``out/search.md`` and ``out/search.json``
    (also ``out/inputs/``, and per image the grid's score table, record and Fig. 11 plot).

    ``files``: input images, centre-cropped to ``crop`` pixels a side (None: whole).
    ``selectors``: ``AUTO_METHODS`` names; "grid" is the reference every image runs first.
    "frequent" and "predict" learn from the other images' grid optima unless given
    ``sets`` / ``predictor``. Images too small for the metric are skipped (``log`` says so).
    Returns the JSON payload (summary per selector, one row per image and selector).

    Raises:
        ValueError: ``out`` holds grid searches made with another model, sampling, metric
            or crop (``search.check_search_folder``).
    """
    from ..metrics.nr import get_metric

    quality = get_metric(metric, device=pipe.device)
    steps = steps or pipe.settings.default_steps
    check_search_folder(out / "grid", pipe, steps=steps, seed=seed, metric=metric, crop=crop)
    images = _cropped_inputs(files, crop, out / "inputs")
    records, scorers = {}, {}
    for stem, lq in list(images.items()):
        try:  # NIQE on images under two 96x96 blocks: smaller blocks, said once
            scorers[stem], note = fit_to_size(quality, *lq.shape[-2:])
        except ValueError as e:
            log(f"{stem}: skipped ({e})")
            del images[stem]
            continue
        if note:
            log(f"note: {stem}: {note}")
        log(f"grid: {stem}")
        records[stem] = _grid_record(pipe, lq, scorers[stem], out, stem, steps, seed)
    rows: list[Row] = []
    for stem, lq in images.items():
        rows.append(_row(stem, "grid", records[stem], records[stem]))
        others, mined = _leave_one_out(records, stem, top)
        for selector in (s for s in selectors if s != "grid"):
            chosen_sets = sets or mined
            chosen_predictor = predictor or (
                _loo_predictor(others) if selector == "predict" else None
            )
            if (selector == "frequent" and not chosen_sets) or (
                selector == "predict" and chosen_predictor is None
            ):
                log(f"{selector}: {stem}: skipped (needs other images' grid results)")
                continue
            res = auto_weights(
                pipe,
                lq,
                selector,
                metric=scorers[stem],
                steps=steps,
                seed=seed,
                predictor=chosen_predictor,
                sets=chosen_sets,
                fast_options=fast_options,
            )
            rows.append(_row(stem, selector, _as_record(res, quality), records[stem]))
            log(
                f"{selector}: {stem}: {format_weights(res.weights)} "
                f"{metric_label(quality)} {res.score:.4g} ({res.direction})"
            )
    return _write_payload(out, rows, quality, metric, steps, seed, crop, list(images))


def _write_payload(out: Path, rows, quality, metric: str, steps, seed, crop, images) -> dict:
    """Summarise the rows; write ``search.json`` and ``search.md``; return the payload."""
    summary = summarize(rows, grid_evaluations(search_grid(), steps), quality)
    payload = {
        "metric": metric,
        "direction": direction(quality),
        "steps": steps,
        "seed": seed,
        "crop": crop,
        "images": images,
        "naive_grid_evaluations": grid_evaluations(search_grid(), steps),
        "summary": summary,
        "rows": [_shown_row(r, quality) for r in rows],
    }
    atomic_write_text(out / "search.json", json.dumps(payload, indent=2) + "\n")
    atomic_write_text(out / "search.md", format_markdown(payload))
    return payload


def _as_record(res: AutoResult, metric) -> dict:
    """An ``auto_weights`` result (the metric's own values) in internal quality."""
    return {
        "best_weights": res.weights,
        "best_score": from_quality(metric, res.score),
        "q_lq": from_quality(metric, res.q_lq),
        "evaluations": res.evaluations,
        "seconds": res.seconds,
    }


def _shown_row(r: Row, metric) -> dict:
    """A row as written to search.json: scores in the metric's own convention."""
    d = asdict(r)
    for key, shown in (("q", "score"), ("q_lq", "score_lq"), ("q_grid", "score_grid")):
        d[shown] = from_quality(metric, d.pop(key))
    d["score_median"] = from_quality(metric, d.pop("q_median"))
    return {**d, "gain_fraction": r.gain_fraction, "gain_over_median": r.gain_over_median}


def _row(stem: str, selector: str, record: dict, ref: dict) -> Row:
    return Row(
        image=stem,
        selector=selector,
        weights=record["best_weights"],
        q=float(record["best_score"]),
        q_lq=float(ref["q_lq"]),
        q_grid=float(ref["best_score"]),
        evaluations=int(record["evaluations"]),
        seconds=float(record["seconds"]),
        q_median=float(ref.get("q_median", float("nan"))),
    )


def _mean(values) -> float:
    values = [v for v in values if math.isfinite(v)]
    return statistics.fmean(values) if values else float("nan")


def summarize(rows: list[Row], naive_grid: int, metric=None) -> list[dict]:
    """Per selector: mean score (the metric's own convention), gains, cost."""
    out = []
    for selector in dict.fromkeys(r.selector for r in rows):
        mine = [r for r in rows if r.selector == selector]
        evals = _mean([r.evaluations for r in mine])
        out.append(
            {
                "selector": selector,
                "images": len(mine),
                "mean_score": from_quality(metric, _mean([r.q for r in mine])),
                "mean_gain_fraction": _mean([r.gain_fraction for r in mine]),
                "mean_gain_over_median": _mean([r.gain_over_median for r in mine]),
                "evaluations_per_image": evals,
                "evaluations_vs_naive_grid": evals / naive_grid,
                "seconds_per_image": _mean([r.seconds for r in mine]),
            }
        )
    return out


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.1f}%" if math.isfinite(fraction) else "n/a"


def format_markdown(payload: dict) -> str:
    """``search.md``: the summary per selector and one row per image and selector."""
    name = metric_label(metric_info(payload["metric"]))
    better = payload.get("direction", direction(metric_info(payload["metric"])))
    lines = [
        f"# Weight selectors vs the full grid ({name}, "
        f"{plural(payload['steps'], 'step')}, {plural(len(payload['images']), 'image')})",
        "",
        f"{name}: {better}. Gain: how much of the grid's improvement over the LQ a selector "
        f"keeps, ({name}_LQ - {name}) / ({name}_LQ - {name}_grid) for a lower-is-better "
        "metric, averaged over the images where the grid beats the LQ (n/a: none does). Gain "
        "over median: the same against the grid's median candidate instead of the LQ. "
        "Evaluations: UNet evaluations (one task, one latent, one step); the naive grid (one "
        f"restoration per candidate) needs {payload['naive_grid_evaluations']}.",
        "",
        f"| selector | mean {name} | gain vs grid | gain over median | UNet evals / image "
        "| % of naive grid | s / image |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in payload["summary"]:
        lines.append(
            f"| {s['selector']} | {s['mean_score']:.4f} | {_percent(s['mean_gain_fraction'])} | "
            f"{_percent(s.get('mean_gain_over_median', float('nan')))} | "
            f"{s['evaluations_per_image']:.0f} | {100 * s['evaluations_vs_naive_grid']:.2f}% | "
            f"{s['seconds_per_image']:.1f} |"
        )
    lines += [
        "",
        f"| image | selector | weights | {name} | {name}_LQ | {name}_grid | {name}_med |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in payload["rows"]:
        lines.append(
            f"| {r['image']} | {r['selector']} | {format_weights(r['weights'])} | "
            f"{r['score']:.4f} | {r['score_lq']:.4f} | {r['score_grid']:.4f} | "
            f"{r.get('score_median', float('nan')):.4f} |"
        )
    return "\n".join(lines) + "\n"
