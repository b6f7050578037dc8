"""The charts of the experiments, drawn with PIL (matplotlib is no dependency): grouped bars
and a log-x scatter for the bench reports, and the pairwise trade-off curves of the paper's
Fig. 11 for searches.

Fig. 11: for every pair of tasks (i, j) the curve is Q(w) over the grid points whose only
non-zero weights are w_i and w_j = 1 - w_i, read from a grid search's scored candidates.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..metrics.nr import direction, metric_info, metric_label
from ..search.grid import ScoredCandidate
from ..tasks import PAPER_GRID_TASKS
from ..utils import atomic_path
from ..weights import active_weights

# matplotlib's tab20: paired dark/light hues, distinct enough for 20 methods.
PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
]  # fmt: skip

# Fig. 11 panels: pixels, and panels a row.
PANEL_W, PANEL_H, MARGIN = 240, 180, 34
COLUMNS = 5


# ---- bench reports ------------------------------------------------------------------------


FONT_FILE = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # used when present


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype(FONT_FILE, 11)
    except OSError:  # no DejaVu: PIL's own font
        return ImageFont.load_default()


def _text(draw: ImageDraw.ImageDraw, xy, text: str, fill=(0, 0, 0)) -> None:
    draw.text(xy, text, fill=fill, font=_font())


def _nice_range(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.1
    return lo - pad, hi + pad


def _canvas(size: tuple[int, int], title: str, left: int):
    """A white chart image of ``size`` (w, h) pixels with ``title`` at the top left."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    _text(draw, (left, 8), title)
    return img, draw


def _save_empty(img, draw, path: Path, at: tuple[int, int]) -> Path:
    """Write a chart that has nothing to plot: "no values" at ``at``."""
    _text(draw, at, "no values")
    img.save(path)
    return path


def bar_chart(
    path: Path, title: str, groups: list[str], series: list[str], values: dict[tuple, float]
) -> Path:
    """Grouped bars: one group per x label, one bar (colour) per series; missing values skipped.

    ``values[(series, group)]``. The y axis starts at the data's padded minimum, not at 0:
    differences of a few tenths of a dB must stay visible."""
    finite = [v for v in values.values() if v is not None and math.isfinite(v)]
    per_group = 12 * max(1, len(series)) + 24  # 12-pixel bars: 20 methods x 6 sets fit
    width, height, left, bottom, top = max(420, 80 + per_group * len(groups)), 380, 60, 40, 30
    img_h = max(height, top + 14 * len(series) + 10)  # the legend sits to the right
    img, draw = _canvas((width + 220, img_h), title, left)
    if not finite:
        return _save_empty(img, draw, path, (left, top + 20))
    lo, hi = _nice_range(finite)
    plot_h = height - top - bottom

    def y_of(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    draw.line([(left, top), (left, height - bottom), (width, height - bottom)], fill=(0, 0, 0))
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        y = y_of(v)
        draw.line([(left - 4, y), (left, y)], fill=(0, 0, 0))
        _text(draw, (4, y - 6), f"{v:.3g}")
    group_w = (width - left - 10) / max(1, len(groups))
    bar_w = max(2.0, group_w * 0.8 / max(1, len(series)))
    for g, group in enumerate(groups):
        x0 = left + 5 + g * group_w + group_w * 0.1
        for s, name in enumerate(series):
            v = values.get((name, group))
            if v is None or not math.isfinite(v):
                continue
            colour = PALETTE[s % len(PALETTE)]
            draw.rectangle(
                [x0 + s * bar_w, y_of(v), x0 + (s + 1) * bar_w - 1, height - bottom], fill=colour
            )
        _text(draw, (x0, height - bottom + 6), group[:14])
    for s, name in enumerate(series):  # legend to the right
        y = top + 14 * s
        draw.rectangle([width + 10, y + 2, width + 20, y + 12], fill=PALETTE[s % len(PALETTE)])
        _text(draw, (width + 25, y), name[:30])
    img.save(path)
    return path


def scatter_chart(
    path: Path, title: str, points: list[tuple[str, float, float]], x_label: str, y_label: str
) -> Path:
    """Labelled points (label, x, y) with a log10 x axis (seconds span 1000x)."""
    pts = [(lab, x, y) for lab, x, y in points if x > 0 and math.isfinite(x) and math.isfinite(y)]
    width, height, left, bottom, top = 640, 400, 60, 40, 30
    img, draw = _canvas((width + 240, max(height, top + 14 * len(points) + 10)), title, left)
    if not pts:
        return _save_empty(img, draw, path, (left, top + 20))
    xlo, xhi = _nice_range([math.log10(x) for _, x, _ in pts])
    ylo, yhi = _nice_range([y for _, _, y in pts])

    def xy(x: float, y: float) -> tuple[float, float]:
        px = left + (width - left - 10) * (math.log10(x) - xlo) / (xhi - xlo)
        py = top + (height - top - bottom) * (1 - (y - ylo) / (yhi - ylo))
        return px, py

    draw.line([(left, top), (left, height - bottom), (width, height - bottom)], fill=(0, 0, 0))
    for k in range(5):
        lx = xlo + (xhi - xlo) * k / 4
        px, _ = xy(10**lx, ylo)
        _text(draw, (px - 10, height - bottom + 6), f"{10**lx:.2g}")
        y = ylo + (yhi - ylo) * k / 4
        _, py = xy(10**xlo, y)
        _text(draw, (4, py - 6), f"{y:.3g}")
    _text(draw, (width - 160, height - 16), x_label)
    _text(draw, (left + 4, top), y_label)
    for i, (label, x, y) in enumerate(pts):
        px, py = xy(x, y)
        colour = PALETTE[i % len(PALETTE)]
        draw.ellipse([px - 4, py - 4, px + 4, py + 4], fill=colour)
        ly = top + 14 * i
        draw.ellipse([width + 10, ly + 3, width + 18, ly + 11], fill=colour)
        _text(draw, (width + 24, ly), label[:34])
    img.save(path)
    return path


# ---- Fig. 11 trade-off curves ---------------------------------------------------------------


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
