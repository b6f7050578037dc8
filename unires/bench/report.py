"""HTML reports of ``unires bench run`` / ``unires bench ablations``: a self-contained folder
(``index.html``, ``plots/*.png``, ``gallery/**.png``) that opens in a browser from anywhere.

Plots (``bench.plots``): a metric per degradation type (grouped bars), quality vs seconds per
image (log-scale x), and for ablations a bar per row. The gallery shows
the same zoomed crop of each method side by side: LQ | peers | one-hot | weights and --auto | GT.
"""

from __future__ import annotations

import html
import math
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from ..metrics.nr import direction, metric_info, metric_label
from ..utils import atomic_write_text, plural
from .plots import bar_chart, scatter_chart
from .run import METRIC_LABELS, BenchResult, SummaryRow, higher_is_better, metric_columns

CROP = 96  # side of the gallery crop, in GT pixels
ZOOM = 2  # nearest-neighbour zoom of the crops
GALLERY_IMAGES = 3  # images per set in the gallery

CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
tr.block td { background: #eee; font-weight: bold; text-align: left; }
.best { font-weight: bold; background: #dfd; }
.gallery td { text-align: center; font-size: 12px; vertical-align: top; }
.note { color: #666; font-size: 13px; }
"""


# ---- gallery ------------------------------------------------------------------------------


def textured_window(gt: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left corner of the ``side`` window (of a 3x3 grid of candidates) with the most
    gradient energy: zoomed crops of flat sky show nothing."""
    grey = gt.astype(np.float64).mean(-1)
    energy = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1, :]
    h, w = grey.shape
    best, corner = -1.0, (0, 0)
    for fy in (0.25, 0.5, 0.75):
        for fx in (0.25, 0.5, 0.75):
            y = int(np.clip(fy * h - side / 2, 0, max(0, h - side)))
            x = int(np.clip(fx * w - side / 2, 0, max(0, w - side)))
            e = float(energy[y : y + side - 1, x : x + side - 1].sum())
            if e > best:
                best, corner = e, (y, x)
    return corner


def _crop(path: Path, y: int, x: int, side: int, scale: int) -> Image.Image:
    """The GT-coordinate window of an image that is ``scale`` times smaller than GT (LQ of a
    x4 set) or of GT size (everything else), zoomed to ``side * ZOOM`` pixels."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        box = (x // scale, y // scale, (x + side) // scale, (y + side) // scale)
        return im.crop(box).resize((side * ZOOM, side * ZOOM), Image.NEAREST)


def gallery_order(rows: list[SummaryRow]) -> list[SummaryRow]:
    """LQ | peers | one-hot | fixed weights | --auto (ours last, next to GT)."""
    rank = {"input": 0, "peer": 1, "weights": 3, "auto": 4}

    def key(r: SummaryRow) -> tuple:
        k = rank.get(r.kind, 5)
        if r.kind == "weights" and r.method.startswith("one-hot"):
            k = 2
        return (k,)

    return sorted(rows, key=key)


def build_gallery(result: BenchResult, out_dir: Path, report_dir: Path) -> list[str]:
    """HTML of one gallery table per set; the crops are written under ``report_dir/gallery``."""
    parts = []
    records = {(r.set, r.method, r.image): r for r in result.records}
    for s in result.sets:
        rows = gallery_order([r for r in result.rows if r.set == s["name"]])
        set_dir = Path(s["path"])
        header = ["LQ"] + [r.method for r in rows if r.kind != "input"] + ["GT"]
        lines = [
            f"<h3>{html.escape(s['name'])}</h3>",
            '<table class="gallery"><tr>'
            + "".join(f"<th>{html.escape(h)}</th>" for h in header)
            + "</tr>",
        ]
        for image in s["images"][:GALLERY_IMAGES]:
            gt_path = next(iter(sorted((set_dir / "gt").glob(image + ".*"))), None)
            lq_path = next(iter(sorted((set_dir / "lq").glob(image + ".png"))), None)
            lq_path = lq_path or next(
                (p for p in sorted((set_dir / "lq").glob(image + ".*")) if p.suffix != ".json"),
                None,
            )
            if gt_path is None or lq_path is None:
                continue
            with Image.open(gt_path) as im:
                gt = np.asarray(im.convert("RGB"))
            side = min(CROP, *gt.shape[:2])
            y, x = textured_window(gt, side)
            cells = [("LQ", lq_path, s["scale"])]
            for r in rows:
                rec = records.get((s["name"], r.method, image))
                if r.kind != "input":
                    out = out_dir / rec.output if rec is not None and rec.output else None
                    cells.append((r.method, out, 1))
            cells.append(("GT", gt_path, 1))
            folder = report_dir / "gallery" / _safe(s["name"]) / _safe(image)
            folder.mkdir(parents=True, exist_ok=True)
            tds = []
            for n, (label, path, scale) in enumerate(cells):
                if path is None or not Path(path).is_file():
                    tds.append("<td>missing</td>")
                    continue
                target = folder / f"{n:02d}_{_safe(label)}.png"
                _crop(Path(path), y, x, side, scale).save(target)
                rel = target.relative_to(report_dir).as_posix()
                tds.append(f'<td><img src="{html.escape(rel)}" alt="{html.escape(label)}"></td>')
            lines.append(f"<tr>{''.join(tds)}</tr>")
            lines.append(
                f'<tr><td colspan="{len(cells)}" class="note">{html.escape(image)}, '
                f"crop {side}x{side} at ({x}, {y}) of GT, zoom x{ZOOM}</td></tr>"
            )
        lines.append("</table>")
        parts.append("\n".join(lines))
    return parts


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._=-" else "_" for c in name)


# ---- pages --------------------------------------------------------------------------------


def _fmt(metric: str, value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.2f}" if metric in ("psnr", "niqe", "musiq", "seconds") else f"{value:.4f}"


def bench_table_html(result: BenchResult) -> str:
    """The bench results as an HTML table, the best value per set and metric in bold."""
    columns = metric_columns(result.rows)
    head = "".join(
        f"<th>{METRIC_LABELS.get(c, c)} {'&uarr;' if higher_is_better(c) else '&darr;'}</th>"
        for c in columns
    )
    lines = [f"<table><tr><th>Model</th>{head}<th>s/img</th></tr>"]
    for s in result.sets:
        rows = [r for r in result.rows if r.set == s["name"]]
        h, w = s["size"]
        title = f"{s['name']} ({plural(len(s['images']), 'image')}, {w}x{h}, x{s['scale']})"
        lines.append(f'<tr class="block"><td colspan="{len(columns) + 2}">{title}</td></tr>')
        for r in rows:
            cells = []
            for c in columns:
                v = r.metrics.get(c, math.nan)
                others = [o.metrics.get(c, math.nan) for o in rows if o.kind != "input"]
                others = [o for o in others if math.isfinite(o)]
                best = (max if higher_is_better(c) else min)(others) if others else None
                cls = (
                    ' class="best"' if r.kind != "input" and best is not None and v == best else ""
                )
                cells.append(f"<td{cls}>{_fmt(c, v)}</td>")
            lines.append(
                f"<tr><td>{html.escape(r.method)}</td>{''.join(cells)}"
                f"<td>{_fmt('seconds', r.seconds)}</td></tr>"
            )
    lines.append("</table>")
    return "\n".join(lines)


def _page(title: str, body: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _notes(items: list[str]) -> str:
    if not items:
        return ""
    return '<ul class="note">' + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def _fresh(report_dir: Path) -> Path:
    report_dir = Path(report_dir)
    for sub in ("plots", "gallery"):  # stale crops of an earlier report must not linger
        if (report_dir / sub).is_dir():
            shutil.rmtree(report_dir / sub)
    (report_dir / "plots").mkdir(parents=True, exist_ok=True)
    return report_dir


def write_bench_report(result: BenchResult, out_dir: Path, report_dir: Path) -> Path:
    """Write the HTML report of ``unires bench run`` (table, plots, gallery) into a fresh
    ``report_dir``; ``out_dir`` holds the run's images. Returns ``report_dir/index.html``.
    """
    report_dir = _fresh(report_dir)
    out_dir = Path(out_dir)
    body = ["<h2>Results</h2>", bench_table_html(result)]
    notes = [
        f"{set_name}: {method}: {why}"
        for set_name, missing in result.unavailable.items()
        for method, why in missing.items()
    ] + [f"metric {name}: {why}" for name, why in result.missing_metrics.items()]
    body.append(_notes(notes))

    body.append("<h2>Metric per degradation type</h2>")
    sets = [s["name"] for s in result.sets]
    labels = {s["name"]: f"{s['name']}" for s in result.sets}
    methods = list(dict.fromkeys(r.method for r in result.rows))
    for metric in ("psnr", "ssim", "niqe"):
        values = {(r.method, labels[r.set]): r.metrics.get(metric) for r in result.rows}
        label = METRIC_LABELS[metric] + (
            " (higher is better)" if higher_is_better(metric) else " (lower is better)"
        )
        path = bar_chart(
            report_dir / "plots" / f"{metric}_per_set.png", label, sets, methods, values
        )
        body.append(f'<p><img src="plots/{path.name}" alt="{metric} per set"></p>')

    body.append("<h2>Quality vs seconds per image</h2>")
    points = []
    for method in methods:
        rows = [r for r in result.rows if r.method == method and r.kind != "input"]
        if rows:
            psnr = float(np.nanmean([r.metrics.get("psnr", math.nan) for r in rows]))
            secs = float(np.mean([r.seconds for r in rows]))
            points.append((method, secs, psnr))
    path = scatter_chart(
        report_dir / "plots" / "psnr_vs_seconds.png",
        "mean PSNR over sets vs mean seconds per image",
        points,
        "seconds per image (log)",
        "PSNR (dB)",
    )
    body.append(f'<p><img src="plots/{path.name}" alt="PSNR vs seconds"></p>')

    body.append("<h2>Gallery (zoomed crops)</h2>")
    body += build_gallery(result, out_dir, report_dir)
    index = report_dir / "index.html"
    atomic_write_text(index, _page("UniRes benchmark", body))
    return index


def write_ablation_report(result, out_dir: Path, report_dir: Path) -> Path:
    """Tab. 4 as HTML with the claims and a bar per row of the search score and PSNR."""
    from .ablations import _cost, _score_label, claim_line, shown_score

    report_dir = _fresh(report_dir)
    metric = _score_label(result.config["metric"])
    head = [
        "Group",
        "Settings",
        f"searched: {metric}",
        "NIQE",
        "PSNR",
        "SSIM",
        "MS-SSIM",
        "cand./img",
    ]
    lines = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    group = None
    for r in result.rows:
        name = r.group if r.group != group else ""
        group = r.group
        if not r.images:
            lines.append(
                f"<tr><td>{html.escape(name)}</td><td>{html.escape(r.setting)}</td>"
                f'<td colspan="6" class="note">{html.escape(r.note)}</td></tr>'
            )
            continue
        m = r.metrics
        cells = [
            _fmt("ssim", shown_score(result.config["metric"], m.get("score"))),
            _fmt("niqe", m.get("niqe")),
            _fmt("psnr", m.get("psnr")),
            _fmt("ssim", m.get("ssim")),
            _fmt("ssim", m.get("ms_ssim")),
            _cost(r),
        ]
        lines.append(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(r.setting)}</td>"
            + "".join(f"<td>{c}</td>" for c in cells)
            + "</tr>"
        )
    lines.append("</table>")
    body = ["<h2>Ablations (paper Tab. 4)</h2>", "\n".join(lines)]
    body.append(_notes([claim_line(c) for c in result.claims]))
    rows = [r for r in result.rows if r.images]
    names = [f"{i + 1}" for i in range(len(rows))]
    name = result.config["metric"]
    for key, label in (
        ("score", f"searched {metric_label(metric_info(name))} ({direction(metric_info(name))})"),
        ("psnr", "PSNR (dB)"),
    ):
        values = {
            ("value", n): shown_score(name, r.metrics.get(key))
            if key == "score"
            else r.metrics.get(key)
            for n, r in zip(names, rows, strict=True)
        }
        path = bar_chart(
            report_dir / "plots" / f"ablation_{key}.png", label, names, ["value"], values
        )
        body.append(f'<p><img src="plots/{path.name}" alt="{key} per row"></p>')
    body.append(_notes([f"{n}: {r.group} / {r.setting}" for n, r in zip(names, rows, strict=True)]))
    index = report_dir / "index.html"
    atomic_write_text(index, _page("UniRes ablations", body))
    return index
