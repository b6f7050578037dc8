"""``unires bench run``: restore degraded sets with several methods and tabulate the metrics.

A set is a folder written by ``unires degrade``: ``lq/NAME.png`` (+ ``lq/NAME.json`` sidecar)
and ``gt/NAME.png``; x4 sets have ``gt`` four times the side of ``lq``. Methods are fixed weight
sets, one-hot tasks, peers (``peers.py``) and ``--auto`` weight selectors. Every
(set, method, image) result is a JSON record written atomically after its image, so a killed
run resumes without redoing finished pairs. Tables follow the paper's Tab. 2-3: one block per
set, rows = methods, columns = metrics.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..io import DATASET_SUFFIXES
from ..metrics.fr import ms_ssim, psnr, ssim
from ..metrics.nr import NIQE
from ..parallel import SINGLE, Processes
from ..search.auto import auto_weights
from ..utils import (
    atomic_write_bytes,
    atomic_write_text,
    check_fingerprint,
    plural,
    restoration_fingerprint,
)
from ..weights import AUTO_METHODS, Weights, format_weights, one_hot
from .peers import Peer, available_peers

# (column, higher is better) of the tables; extras (LPIPS, MUSIQ, ...) are added when present.
BASE_METRICS = (("psnr", True), ("ssim", True), ("ms_ssim", True), ("niqe", False))
METRIC_LABELS = {
    "psnr": "PSNR",
    "ssim": "SSIM",
    "ms_ssim": "MS-SSIM",
    "niqe": "NIQE",
    "lpips": "LPIPS",
    "musiq": "MUSIQ",
    "clipiqa": "ClipIQA",
    "maniqa": "ManIQA",
}


# ---- sets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    name: str  # file stem, shared by lq/ and gt/
    lq: Path
    gt: Path


@dataclass
class BenchSet:
    name: str
    path: Path
    pairs: list[Pair]
    scale: int  # gt side / lq side
    recipe: str  # from the sidecars (unires degrade), else the folder name
    size: tuple[int, int]  # gt height, width of the first pair


def is_set_folder(folder: Path) -> bool:
    """True for a folder with ``lq/`` and ``gt/`` sub-folders (a degraded set)."""
    return (folder / "lq").is_dir() and (folder / "gt").is_dir()


def expand_set_folders(paths: list[Path]) -> list[Path]:
    """Each path is a set, or a folder whose sub-folders are sets (e.g. ``.../sets``)."""
    found: list[Path] = []
    for p in paths:
        if is_set_folder(p):
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(c for c in p.iterdir() if is_set_folder(c)))
    return found


def _load(path: Path) -> torch.Tensor:
    from .. import io as uio

    return uio.to_tensor(uio.read_image(path).rgb)


def load_set(folder: Path, limit: int | None = None) -> BenchSet:
    """The pairs of a set (sorted by name, first ``limit``), its scale and recipe.

    Raises:
        ValueError: no lq/gt pairs, or a gt that is neither 1x nor 4x its lq.
    """

    def images(sub: str) -> dict[str, Path]:
        files = (folder / sub).iterdir()
        return {p.stem: p for p in sorted(files) if p.suffix.lower() in DATASET_SUFFIXES}

    gts = images("gt")
    pairs = [Pair(stem, lq, gts[stem]) for stem, lq in images("lq").items() if stem in gts]
    pairs = sorted(pairs, key=lambda p: p.name)[:limit]
    if not pairs:
        raise ValueError(f"{folder}: no lq/gt image pairs")
    from PIL import Image

    with Image.open(pairs[0].lq) as a, Image.open(pairs[0].gt) as b:
        (lw, lh), (gw, gh) = a.size, b.size
    scale = gw // lw
    if scale not in (1, 4) or gw != lw * scale or gh != lh * scale:
        raise ValueError(f"{folder}: gt {gw}x{gh} is not 1x or 4x lq {lw}x{lh}")
    recipe = folder.name
    sidecar = pairs[0].lq.with_suffix(".json")
    if sidecar.is_file():
        recipe = json.loads(sidecar.read_text()).get("recipe", recipe)
    return BenchSet(folder.name, folder, pairs, scale, recipe, (gh, gw))


# ---- methods ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # "input" | "weights" | "peer" | "auto"
    weights: Weights | None = None
    peer: Peer | None = None
    auto: str | None = None  # selector name passed to unires.search.auto.auto_weights

    @property
    def slug(self) -> str:
        """The method's name as a folder name (letters, digits, ``._=-``)."""
        return re.sub(r"[^A-Za-z0-9._=-]+", "_", self.name).strip("_")


def weights_method(weights: Weights) -> Method:
    """The method that restores with fixed ``weights``."""
    return Method(f"weights {format_weights(weights)}", "weights", weights=weights)


def one_hot_method(code: str) -> Method:
    """The method that restores with the single task ``code`` (weight 1)."""
    return Method(f"one-hot {code}", "weights", weights=one_hot(code))


@dataclass
class RunConfig:
    sets: list[Path]
    out_dir: Path
    model: str = "embedded"  # recorded: a rerun into the same folder must use the same model
    weights: list[Weights] = field(default_factory=list)
    one_hot: list[str] = field(default_factory=list)
    peers: list[str] | None = None  # None: every peer that runs at the set's scale
    auto: list[str] = field(default_factory=list)
    include_lq: bool = True
    metric: str = "niqe"  # the no-reference metric --auto selectors maximise
    steps: int | None = None
    seed: int = 0
    limit: int | None = None
    downlq_factor: int | None = None
    ensemble: int = 1  # the model's methods with an N-transform self-ensemble (Denoiser)
    color_fix: str | None = None  # None: the model's default_color_fix


def build_methods(cfg: RunConfig, scale: int, peer_cache: dict) -> tuple[list[Method], dict]:
    """(methods to run on a set of this scale, {method name: why it cannot run})."""
    methods: list[Method] = []
    unavailable: dict[str, str] = {}
    if cfg.include_lq and scale == 1:  # at x4 the LQ is not comparable: bicubic stands in
        methods.append(Method("LQ", "input"))
    methods += [one_hot_method(c) for c in cfg.one_hot]
    methods += [weights_method(w) for w in cfg.weights]
    if scale not in peer_cache:
        peer_cache[scale] = available_peers(scale, cfg.peers)
    peers, missing = peer_cache[scale]
    wanted = list(peers) + list(missing) if cfg.peers is None else cfg.peers
    for name in wanted:
        if name in peers:
            methods.append(Method(name, "peer", peer=peers[name]))
        elif name in missing:
            unavailable[name] = missing[name].reason
        elif cfg.peers is not None:
            unavailable[name] = f"no such peer at x{scale}"
    for selector in cfg.auto:
        if selector in AUTO_METHODS:
            methods.append(Method(f"auto {selector}", "auto", auto=selector))
        else:
            unavailable[f"auto {selector}"] = f"unknown selector (have {', '.join(AUTO_METHODS)})"
    if cfg.ensemble > 1:  # named apart, so their records and rows never mix with plain ones
        suffix = f", x{cfg.ensemble} ensemble"
        methods = [
            replace(m, name=m.name + suffix) if m.kind in ("weights", "auto") else m
            for m in methods
        ]
    return methods, unavailable


# ---- metrics ------------------------------------------------------------------------------


def _nan_on_error(fn: Callable[[], torch.Tensor], keep_inf: bool = False) -> float:
    """The metric's value, NaN where it is undefined (an image too small for MS-SSIM or
    NIQE, NIQE's ``inf`` for textureless images); ``keep_inf``: PSNR of identical images."""
    try:
        value = float(fn().reshape(-1)[0])
    except ValueError:
        return float("nan")
    return value if math.isfinite(value) or (keep_inf and value == math.inf) else float("nan")


@dataclass
class MetricSet:
    """The metrics computed for every image: the base ones and optional extras."""

    niqe: NIQE = field(default_factory=NIQE)
    extras: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def __call__(self, out: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
        values = {
            "psnr": _nan_on_error(lambda: psnr(out, gt), keep_inf=True),
            "ssim": _nan_on_error(lambda: ssim(out, gt)),
            "ms_ssim": _nan_on_error(lambda: ms_ssim(out, gt)),
            "niqe": _nan_on_error(lambda: self.niqe.score(out)),
        }
        for name, fn in self.extras.items():
            values[name] = fn(out, gt)
        return values


def optional_metrics() -> MetricSet:
    """LPIPS and pyiqa's MUSIQ / ClipIQA / ManIQA when their packages and weights load;
    otherwise the reason, so the report says why a column is absent."""
    metrics = MetricSet()
    if importlib.util.find_spec("lpips") is None:
        metrics.missing["lpips"] = "not installed: pip install lpips"
    else:
        try:
            import lpips

            net = lpips.LPIPS(net="alex", verbose=False).eval()

            def lpips_fn(out: torch.Tensor, gt: torch.Tensor) -> float:
                with torch.no_grad():
                    return float(net(out * 2 - 1, gt * 2 - 1).reshape(-1)[0])

            metrics.extras["lpips"] = lpips_fn
        except Exception as e:  # weights not downloadable offline
            metrics.missing["lpips"] = f"cannot load ({type(e).__name__}: {e})"
    if importlib.util.find_spec("pyiqa") is None:
        for name in ("musiq", "clipiqa", "maniqa"):
            metrics.missing[name] = "not installed: pip install 'unires[iqa]' (pyiqa)"
    else:
        from ..metrics.nr import PyIQAMetric

        for name in ("musiq", "clipiqa", "maniqa"):
            try:
                m = PyIQAMetric(name)
            except ImportError as e:
                metrics.missing[name] = str(e)
                continue
            metrics.extras[name] = lambda out, gt, m=m: _nan_on_error(lambda: m.score(out))
    metrics.missing["fid"] = "not computed: needs Inception weights and hundreds of images"
    return metrics


def higher_is_better(metric: str) -> bool:
    """False for the metrics where lower is better (NIQE, LPIPS, seconds)."""
    return metric not in ("niqe", "lpips", "seconds")


# ---- running ------------------------------------------------------------------------------


@dataclass
class Record:
    """One (set, method, image) result: what a resumed run reads back instead of redoing."""

    set: str
    method: str
    image: str
    metrics: dict[str, float]
    seconds: float
    output: str | None = None  # restored image, relative to the output folder
    weights: Weights | None = None
    evaluations: int | None = None  # UNet evaluations an --auto selector spent
    error: str | None = None


def _png_bytes(img: torch.Tensor) -> bytes:
    from PIL import Image

    arr = (img[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def restore_with(method: Method, pipe, lq: torch.Tensor, cfg: RunConfig, scale: int):
    """(restored image, weights used, evaluations) for one LQ image."""
    if method.kind == "input":
        return lq, None, None
    if method.kind == "peer":
        return method.peer(lq), None, None
    extra = {"downlq_factor": cfg.downlq_factor} if cfg.downlq_factor else {}
    extra["color_fix"] = cfg.color_fix
    extra["ensemble"] = cfg.ensemble  # the search scores without it, the image has it
    if method.kind == "weights":
        out = pipe.restore_tensor(
            lq, method.weights, steps=cfg.steps, seed=cfg.seed, scale=scale, **extra
        )
        return out, method.weights, None
    result = auto_weights(
        pipe,
        lq,
        method.auto,
        metric=cfg.metric,
        steps=cfg.steps,
        seed=cfg.seed,
        scale=scale,
        **extra,
    )
    image = result.image
    if image is None:
        image = pipe.restore_tensor(
            lq, result.weights, steps=cfg.steps, seed=cfg.seed, scale=scale, **extra
        )
    return image, dict(result.weights), int(getattr(result, "evaluations", 0) or 0)


def _record_path(out_dir: Path, set_name: str, method: Method, image: str) -> Path:
    return out_dir / set_name / "records" / method.slug / f"{image}.json"


def read_record(path: Path) -> Record | None:
    """A pair's saved record, or None when it is missing or damaged (then it is redone)."""
    try:
        return Record(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):  # missing or damaged: redo the pair
        return None


def run_one(pipe, method: Method, bset: BenchSet, pair: Pair, cfg: RunConfig, metrics) -> Record:
    """Restore one pair with one method and score it against its gt; the output PNG goes under
    ``cfg.out_dir``. Any failure becomes the record's one-line ``error`` (never raises).
    """
    lq, gt = _load(pair.lq), _load(pair.gt)
    output = None
    t0 = time.perf_counter()
    try:
        out, weights, evaluations = restore_with(method, pipe, lq, cfg, bset.scale)
    except Exception as e:  # one failing method/image must not stop a long benchmark
        return Record(bset.name, method.name, pair.name, {}, 0.0, error=f"{type(e).__name__}: {e}")
    seconds = time.perf_counter() - t0
    if out.shape != gt.shape:
        error = f"output {tuple(out.shape)} != gt {tuple(gt.shape)}"
        return Record(bset.name, method.name, pair.name, {}, seconds, error=error)
    if method.kind != "input":
        rel = Path(bset.name) / "images" / method.slug / f"{pair.name}.png"
        atomic_write_bytes(cfg.out_dir / rel, _png_bytes(out))
        output = rel.as_posix()
    return Record(
        bset.name, method.name, pair.name, metrics(out, gt), seconds, output, weights, evaluations
    )


@dataclass
class SummaryRow:
    set: str
    method: str
    kind: str
    images: int
    metrics: dict[str, float]  # means over the images (NaN-aware)
    seconds: float  # mean seconds per image
    evaluations: float | None = None


@dataclass
class BenchResult:
    config: dict
    sets: list[dict]  # name, path, scale, recipe, size, images
    rows: list[SummaryRow]
    records: list[Record]
    unavailable: dict[str, dict[str, str]]  # set -> {method: reason}
    missing_metrics: dict[str, str]
    computed: int = 0  # (method, image) pairs restored in this call
    reused: int = 0  # read back from an earlier run


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def summarise(bset: BenchSet, method: Method, records: list[Record]) -> SummaryRow:
    """A method's row for a set: mean of each metric over the pairs that succeeded, seconds and
    UNet evaluations per image, and how many failed.
    """
    ok = [r for r in records if r.error is None]
    names = list(dict.fromkeys(k for r in ok for k in r.metrics))
    evals = [r.evaluations for r in ok if r.evaluations is not None]
    return SummaryRow(
        bset.name,
        method.name,
        method.kind,
        len(ok),
        {k: _mean([r.metrics.get(k, float("nan")) for r in ok]) for k in names},
        _mean([r.seconds for r in ok]),
        float(np.mean(evals)) if evals else None,
    )


# What a folder's fingerprint meant before it recorded these keys: AdaIN was the only
# colour fix until model folders chose their own (2026-12-02).
UNRECORDED_FINGERPRINT = {"color_fix": "adain"}


def run_bench(pipe, cfg: RunConfig, log=print, processes: Processes | None = None) -> BenchResult:
    """Restore every set of ``cfg`` with every method, score each (set, method, image) and
    write ``bench.csv``, ``bench.json`` and ``bench.md`` to ``cfg.out_dir``; pairs already
    recorded there are read back, failed ones retried. ``log`` gets one line per unavailable
    method, failed image and table row.

    ``processes`` (``unires.parallel``): several processes split the (set, method, image)
    jobs; every process returns the whole result, and only the main one logs and writes the
    tables, once all jobs are done. Raises ``ValueError`` for a set without pairs or an
    output folder made with other settings (another model, step count, seed, metric or
    colour fix; ``utils.check_fingerprint``).
    """
    procs = processes or SINGLE
    if not procs.is_main:
        log = _silent
    _check_out_dir(pipe, cfg, procs)
    metrics = optional_metrics()
    peer_cache: dict = {}
    result = BenchResult(
        config=_config_dict(cfg),
        sets=[],
        rows=[],
        records=[],
        unavailable={},
        missing_metrics=dict(metrics.missing),
    )
    shared: dict[tuple[str, str, str], Record] = {}  # several processes: every job's record
    if procs.parallel:
        shared, result.computed, result.reused = _run_shared(pipe, cfg, procs, metrics, peer_cache)
    for folder in cfg.sets:
        bset = load_set(folder, cfg.limit)
        result.sets.append(_set_entry(bset))
        methods, unavailable = build_methods(cfg, bset.scale, peer_cache)
        result.unavailable[bset.name] = unavailable
        for name, why in unavailable.items():
            log(f"{bset.name:10s} {name:34s} {why}")
        for method in methods:
            records = []
            for pair in bset.pairs:
                if procs.parallel:
                    record = shared[bset.name, method.name, pair.name]
                else:
                    record, computed = _record_or_run(pipe, method, bset, pair, cfg, metrics)
                    result.computed += computed
                    result.reused += not computed
                if record.error:
                    log(f"{bset.name:10s} {method.name:34s} {pair.name}: {record.error}")
                records.append(record)
            failed = [r for r in records if r.error]
            if failed:  # the table shows "-"; say why beside it
                unavailable[method.name] = (
                    f"{len(failed)}/{len(records)} images failed, e.g. {failed[0].error}"
                )
            row = summarise(bset, method, records)
            result.rows.append(row)
            result.records.extend(records)
            log(_row_line(row))
    if procs.is_main:
        write_outputs(result, cfg.out_dir)
    return result


def _check_out_dir(pipe, cfg: RunConfig, procs: Processes) -> None:
    """``utils.check_fingerprint`` of ``cfg.out_dir`` by the main process (its one writer);
    every process learns the verdict.

    Raises:
        ValueError: the folder holds results made with other settings (on every process).
    """
    refused = None
    if procs.is_main:
        fingerprint = restoration_fingerprint(
            pipe,
            steps=cfg.steps,
            seed=cfg.seed,
            metric=cfg.metric,
            color_fix=cfg.color_fix,
            model=cfg.model,
            downlq_factor=cfg.downlq_factor,
        )
        try:
            check_fingerprint(cfg.out_dir, fingerprint, UNRECORDED_FINGERPRINT)
        except ValueError as e:
            refused = str(e)
    refused = procs.broadcast(refused)
    if refused:
        raise ValueError(refused)


def _set_entry(bset: BenchSet) -> dict:
    """A set as ``BenchResult.sets`` lists it."""
    return {
        "name": bset.name,
        "path": str(bset.path.resolve()),
        "scale": bset.scale,
        "recipe": bset.recipe,
        "size": list(bset.size),
        "images": [p.name for p in bset.pairs],
    }


def _silent(*_args, **_kwargs) -> None:
    """``log`` of the processes other than the main one."""


def _record_or_run(
    pipe, method: Method, bset: BenchSet, pair: Pair, cfg: RunConfig, metrics
) -> tuple[Record, bool]:
    """(the pair's record, whether it was computed now): read back from ``cfg.out_dir``, or
    restored and scored, and then recorded there unless it failed (failures are retried)."""
    path = _record_path(cfg.out_dir, bset.name, method, pair.name)
    record = read_record(path)
    if record is not None and not record.error:
        return record, False
    record = run_one(pipe, method, bset, pair, cfg, metrics)
    if not record.error:
        atomic_write_text(path, json.dumps(asdict(record), indent=1) + "\n")
    return record, True


def _run_shared(
    pipe, cfg: RunConfig, procs: Processes, metrics, peer_cache: dict
) -> tuple[dict[tuple[str, str, str], Record], int, int]:
    """Several processes: each does its share of every (set, method, image) job, in the
    order ``run_bench`` lists them. Returns, on every process, ({(set, method, image):
    record}, pairs computed, pairs read back), summed over the processes."""
    from tqdm.auto import tqdm

    from ..parallel import files_written

    jobs = []
    for folder in cfg.sets:
        bset = load_set(folder, cfg.limit)
        methods, _ = build_methods(cfg, bset.scale, peer_cache)
        jobs += [(bset, method, pair) for method in methods for pair in bset.pairs]
    written = None
    if procs.is_main:  # one bar for the whole job: the records written, by any process
        paths = [_record_path(cfg.out_dir, b.name, m, p.name) for b, m, p in jobs]
        written = files_written(paths)
    procs.barrier()  # no record is written before the main process has looked at them all
    done: list[tuple[tuple[str, str, str], Record, bool]] = []
    bar = tqdm(total=len(jobs), desc="bench", unit="pair", disable=not procs.is_main)
    with bar, procs.progress(bar, written) as advance:
        for bset, method, pair in procs.share(jobs):
            record, computed = _record_or_run(pipe, method, bset, pair, cfg, metrics)
            done.append(((bset.name, method.name, pair.name), record, computed))
            advance()
        everything = [item for share in procs.gather(done) for item in share]
    computed = sum(c for _, _, c in everything)
    return {key: record for key, record, _ in everything}, computed, len(everything) - computed


def _row_line(row: SummaryRow) -> str:
    m = row.metrics
    return (
        f"{row.set:10s} {row.method:34s} PSNR {m.get('psnr', math.nan):6.2f}  "
        f"SSIM {m.get('ssim', math.nan):.3f}  MS-SSIM {m.get('ms_ssim', math.nan):.3f}  "
        f"NIQE {m.get('niqe', math.nan):5.2f}  {row.seconds:6.2f} s/img"
    )


def _config_dict(cfg: RunConfig) -> dict:
    d = asdict(cfg)
    d["sets"] = [str(p) for p in cfg.sets]
    d["out_dir"] = str(cfg.out_dir)
    return d


# ---- outputs ------------------------------------------------------------------------------


def metric_columns(rows: list[SummaryRow]) -> list[str]:
    """The table's metric columns: PSNR, SSIM, MS-SSIM, NIQE, then the extras present."""
    present = list(dict.fromkeys(k for r in rows for k in r.metrics))
    base = [m for m, _ in BASE_METRICS]
    return base + [m for m in present if m not in base]


def _fmt(metric: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if metric in ("psnr", "niqe", "musiq"):
        return f"{value:.2f}"
    if metric in ("seconds",):
        return f"{value:.2f}"
    return f"{value:.4f}"


def best_by_column(rows: list[SummaryRow], columns: list[str]) -> dict[str, float]:
    """The best value of each column among ``rows`` (NaN-free), for bold marks."""
    best = {}
    for c in columns:
        values = [r.metrics.get(c, math.nan) for r in rows]
        values = [v for v in values if not math.isnan(v)]
        if values:
            best[c] = max(values) if higher_is_better(c) else min(values)
    return best


def markdown_table(result: BenchResult) -> str:
    """Paper Tab. 2-3 layout: a title row per set, then one row per method; best in bold."""
    columns = metric_columns(result.rows)
    arrows = [f"{METRIC_LABELS.get(c, c)} {'↑' if higher_is_better(c) else '↓'}" for c in columns]
    lines = [
        "| Model | " + " | ".join(arrows) + " | s/img |",
        "|---|" + "---|" * (len(columns) + 1),
    ]
    for s in result.sets:
        rows = [r for r in result.rows if r.set == s["name"]]
        h, w = s["size"]
        title = f"**{s['name']}** ({plural(len(s['images']), 'image')}, {w}×{h}, x{s['scale']})"
        lines.append(f"| {title} |" + " |" * (len(columns) + 1))
        best = best_by_column([r for r in rows if r.kind != "input"], columns)
        for r in rows:
            cells = []
            for c in columns:
                text = _fmt(c, r.metrics.get(c))
                v = r.metrics.get(c, math.nan)
                cells.append(f"**{text}**" if r.kind != "input" and best.get(c) == v else text)
            lines.append(
                f"| {r.method} | " + " | ".join(cells) + f" | {_fmt('seconds', r.seconds)} |"
            )
    notes = [
        f"- {set_name}: {method}: {why}"
        for set_name, missing in result.unavailable.items()
        for method, why in missing.items()
    ]
    notes += [f"- metric {name}: {why}" for name, why in result.missing_metrics.items()]
    text = "\n".join(lines) + "\n"
    if notes:
        text += "\nNot in the table:\n\n" + "\n".join(notes) + "\n"
    return text


def write_outputs(result: BenchResult, out_dir: Path) -> None:
    """``bench.csv`` (one row per image), ``bench.json`` (everything), ``bench.md`` (table)."""
    columns = metric_columns(result.rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["set", "method", "image", *columns, "seconds", "weights", "error"])
    for r in result.records:
        writer.writerow(
            [r.set, r.method, r.image]
            + [repr(r.metrics[c]) if c in r.metrics else "" for c in columns]
            + [f"{r.seconds:.4f}", format_weights(r.weights) if r.weights else "", r.error or ""]
        )
    atomic_write_text(out_dir / "bench.csv", buf.getvalue())
    atomic_write_text(out_dir / "bench.json", json.dumps(asdict(result), indent=1) + "\n")
    atomic_write_text(out_dir / "bench.md", markdown_table(result))


def load_result(out_dir: Path) -> BenchResult:
    """A ``bench.json`` read back (e.g. to render a report again)."""
    d = json.loads((Path(out_dir) / "bench.json").read_text(encoding="utf-8"))
    d["rows"] = [SummaryRow(**r) for r in d["rows"]]
    d["records"] = [Record(**r) for r in d["records"]]
    return BenchResult(**d)
