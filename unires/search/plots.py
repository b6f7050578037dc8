"""The pairwise trade-off curves of the paper's Fig. 11, drawn with PIL (no new dependency).

For every pair of tasks (i, j) the curve is Q(w) over the grid points whose only non-zero
weights are w_i and w_j = 1 - w_i, read from a grid search's scored candidates.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..metrics.nr import direction, metric_info, metric_label
from ..tasks import PAPER_GRID_TASKS
from ..utils import atomic_path
from ..weights import active_weights
from .grid import ScoredCandidate

PANEL_W, PANEL_H, MARGIN = 240, 180, 34
COLUMNS = 5


def pair_curve(rows: Sequence[ScoredCandidate], a: str, b: str) -> list[tuple[float, float]]:
    """(w_a, Q) for the candidates that use only tasks a and b, sorted by w_a."""
    points = {}
    for r in rows:
        support = set(active_weights(r.weights))
        if support <= {a, b} and support and math.isfinite(r.score):
            points[round(r.weights.get(a, 0.0), 6)] = r.score
    return sorted(points.items())


def tradeoff_curves(
    rows: Sequence[ScoredCandidate], tasks: Sequence[str] = PAPER_GRID_TASKS
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Every pair's curve that has at least two points (Fig. 11 has 15 for six tasks)."""
    curves = {(a, b): pair_curve(rows, a, b) for a, b in itertools.combinations(tasks, 2)}
    return {pair: pts for pair, pts in curves.items() if len(pts) >= 2}


def draw_tradeoffs(
    rows: Sequence[ScoredCandidate], path: str | Path, *, title: str = "", metric=None
) -> Path | None:
    """Write the Fig. 11 panels as one PNG; None when no pair has a curve (e.g. a fast search).

    ``rows`` hold the search's internal quality (higher is better); the curves show the
    metric's own values (``metric``: the metric object or its name; NIQE: lower is better)
    and mark each curve's best point."""
    curves = tradeoff_curves(rows)
    if not curves:
        return None
    metric = metric_info(metric) if isinstance(metric, str) else metric
    lower_better = metric is not None and not getattr(metric, "higher_is_better", True)
    label = f"{metric_label(metric)} ({direction(metric)})" if metric is not None else "quality"
    if lower_better:
        curves = {pair: [(x, -q) for x, q in pts] for pair, pts in curves.items()}
    scores = [q for pts in curves.values() for _, q in pts]
    lo, hi = min(scores), max(scores)
    hi = hi if hi > lo else lo + 1.0
    xs = [x for pts in curves.values() for x, _ in pts]
    xlo, xhi = min(xs), max(xs)
    xhi = xhi if xhi > xlo else xlo + 1.0
    n_rows = math.ceil(len(curves) / COLUMNS)
    top = 22 if title else 0
    image = Image.new("RGB", (COLUMNS * PANEL_W, n_rows * PANEL_H + top), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    if title:
        draw.text((8, 4), title, fill="black", font=font)
    for n, ((a, b), pts) in enumerate(curves.items()):
        x0 = (n % COLUMNS) * PANEL_W + MARGIN
        y0 = (n // COLUMNS) * PANEL_H + top + 16
        w, h = PANEL_W - MARGIN - 10, PANEL_H - 16 - MARGIN

        def to_px(x, q, x0=x0, y0=y0, w=w, h=h):
            return x0 + (x - xlo) / (xhi - xlo) * w, y0 + h - (q - lo) / (hi - lo) * h

        draw.rectangle([x0, y0, x0 + w, y0 + h], outline="grey")
        draw.text((x0, y0 - 14), f"{a.upper()} (x) vs {b.upper()} (1-x)", fill="black", font=font)
        draw.text((x0, y0 + h + 4), f"{xlo:g}", fill="grey", font=font)
        draw.text((x0 + w - 16, y0 + h + 4), f"{xhi:g}", fill="grey", font=font)
        draw.text((x0 - MARGIN + 2, y0), f"{hi:.3g}", fill="grey", font=font)
        draw.text((x0 - MARGIN + 2, y0 + h - 10), f"{lo:.3g}", fill="grey", font=font)
        line = [to_px(x, q) for x, q in pts]
        draw.line(line, fill=(30, 90, 200), width=2)
        bx, bq = (min if lower_better else max)(pts, key=lambda p: p[1])
        for px, py in line:
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=(30, 90, 200))
        px, py = to_px(bx, bq)
        draw.ellipse([px - 4, py - 4, px + 4, py + 4], outline=(200, 40, 40), width=2)
    draw.text((8, image.height - 12), f"y: {label}; red: best", fill="grey", font=font)
    with atomic_path(path, suffix=".png") as tmp:
        image.save(tmp, format="PNG")
    return Path(path)
