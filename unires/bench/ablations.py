"""``unires bench ablations``: the groups of the paper's Tab. 4 on our model and synthetic sets.

Every search row is Eq. 3-4 over a grid: the default grid ([-0.2, 1.2] step 0.2 over six tasks),
the same grid with tasks struck out (their weight fixed to 0), the [0, 1] grid, DownLQ x2.
All but DownLQ x2 are subsets of the default grid, so each candidate is restored and scored
once per image (a score table per image, ``grid_search``'s resumable CSV) and each row is an
argmax over its own candidates. ``grid_fraction`` keeps a fixed hash-chosen fraction of every
grid (one-hot points always kept): a candidate is kept in all grids or in none, so the reduced
grids stay nested exactly as the full ones are.

On the search metric itself a sub-grid can never score higher than its super-grid, so the
strike-out and [0, 1] claims hold with ``<=`` by construction; the check is strict (a tie
means the struck task never won on these images), and is repeated on PSNR, which is not
optimised.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..metrics.nr import fit_to_size, from_quality, get_metric, metric_info, metric_label
from ..search.auto import auto_weights
from ..search.frequent import mine_frequent_sets
from ..search.grid import grid_search, read_score_table, weights_key
from ..tasks import PAPER_GRID_TASKS
from ..utils import atomic_write_text, check_fingerprint, restoration_fingerprint
from ..weights import GridSpec, Weights, active_weights, format_weights, one_hot
from .run import UNRECORDED_FINGERPRINT, BenchSet, MetricSet, _load, load_set

ALL_TASKS = PAPER_GRID_TASKS  # br, sr, md, dd, dn, downlq


@dataclass
class AblationConfig:
    sets: list[Path]
    out_dir: Path
    model: str = "embedded"  # recorded: score tables are only valid for one model
    steps: int | None = None
    seed: int = 0
    limit: int | None = None
    metric: str = "niqe"
    grid_fraction: float = 1.0
    sr_only_model: Path | None = None
    top: int = 8
    use_auto: bool = True  # the --auto fast row (unires.search.auto)
    fast_survivors: int = 16  # --auto fast: candidates kept after the proxy
    # --auto fast: proxy crop side (None: the whole image, exact at one sampling step)
    fast_proxy_side: int | tuple[int, int] | None = 192
    predictor: Path | None = None  # a trained WeightPredictor; None: fit leave-one-out


@dataclass(frozen=True)
class SearchRow:
    """A search row of Tab. 4: the grid searched (which tasks may be non-zero, the value
    range) and the DownLQ factor of its restorations."""

    grid: GridSpec = GridSpec()
    downlq_factor: int = 4


def kept_by_hash(weights: Weights, fraction: float) -> bool:
    """A fixed pseudo-random choice per weight set (same answer in every grid)."""
    if fraction >= 1 or len(active_weights(weights)) == 1:
        return True
    digest = hashlib.sha1(repr(weights_key(weights)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def grid_candidates(spec: SearchRow, fraction: float) -> list[Weights]:
    """The row's grid points (active weights only), ``fraction`` of them kept by hash."""
    return [active_weights(w) for w in spec.grid.points() if kept_by_hash(w, fraction)]


@dataclass
class AblationRow:
    group: str
    setting: str
    metrics: dict[str, float] = field(default_factory=dict)  # means over all images
    evaluations: float | None = None  # candidates per image the setting scores (search space)
    unet_evaluations: float | None = None  # --auto rows: UNet evaluations per image
    images: int = 0
    note: str = ""  # why the row is empty, or how it was obtained
    per_image: dict[str, dict] = field(default_factory=dict)  # "set/image" -> weights, metrics


def _grid_row(tasks) -> SearchRow:
    return SearchRow(GridSpec(tasks=tuple(tasks)))


def _row_spec() -> list[tuple[str, str, object]]:
    """(group, setting, how) in the paper's Tab. 4 order. ``how``: a SearchRow (search), a
    weight set (fixed), or a string naming a special row."""
    strike = [t for t in ALL_TASKS if t not in ("br", "downlq")]
    rows: list[tuple[str, str, object]] = [
        ("UniRes", "Default: grid search [-0.2,1.2], DownLQ x4", SearchRow()),
        ("SR-Only", "SR=1 (SR-only model)", "sr-only:sr"),
        ("SR-Only", "DownLQ(x4)=1 (SR-only model)", "sr-only:downlq"),
    ]
    rows += [
        ("Single-Task", f"{t.upper() if t != 'downlq' else 'DownLQ(x4)'}=1", one_hot(t))
        for t in ALL_TASKS
    ]
    rows.append(("Strike-Out", "Grid search w/ BR=0", _grid_row(t for t in ALL_TASKS if t != "br")))
    rows.append(("Strike-Out", "Grid search w/ BR=0, DownLQ=0", _grid_row(strike)))
    for t in strike:
        rest = tuple(x for x in strike if x != t)
        rows.append(
            ("Strike-Out", f"Grid search w/ BR=0, DownLQ=0, {t.upper()}=0", _grid_row(rest))
        )
    rows.append(("DownLQ", "DownLQ(x2)", SearchRow(downlq_factor=2)))
    rows.append(("Search Grid", "[γ,δ] changed to [0,1]", SearchRow(GridSpec(vmin=0.0, vmax=1.0))))
    rows.append(("Search Grid", "Most frequent sets (mined leave-one-out)", "frequent"))
    rows.append(("Search Grid", "Random Forest (skip search)", "forest"))
    rows.append(("Search Grid", "Fast search: --auto fast", "auto:fast"))
    return rows


class ImageContext:
    """One image of one set: its tensors, score tables and a cache of evaluated weight sets."""

    def __init__(self, bset: BenchSet, index: int, folder: Path):
        pair = bset.pairs[index]
        self.bset, self.name = bset, pair.name
        self.key = f"{bset.name}/{pair.name}"
        self.lq, self.gt = _load(pair.lq), _load(pair.gt)
        self.folder = folder
        self.cache_path = folder / "metrics" / f"{pair.name}.json"
        self.cache: dict[str, dict] = {}
        if self.cache_path.is_file():
            try:
                self.cache = json.loads(self.cache_path.read_text(encoding="utf-8"))
            except ValueError:
                self.cache = {}

    def table(self, factor: int) -> Path:
        """The image's score table for DownLQ factor ``factor``."""
        return self.folder / "scores" / f"{self.name}_downlq-x{factor}.csv"

    def save_cache(self) -> None:
        """Write the image's metric cache (JSON, atomically)."""
        atomic_write_text(self.cache_path, json.dumps(self.cache, indent=1) + "\n")


class AblationRunner:
    def __init__(self, pipe, cfg: AblationConfig, sr_only_pipe=None, log=print):
        self.pipe, self.cfg, self.sr_only_pipe, self.log = pipe, cfg, sr_only_pipe, log
        self.quality = get_metric(cfg.metric)
        self.metrics = MetricSet()
        self.restore_seconds: list[float] = []
        self._scorers: dict[str, object] = {}

    def scorer(self, ctx: ImageContext):
        """The search metric for this image's outputs: NIQE with smaller blocks on images under
        two 96x96 blocks (said once per image); raises ValueError on images too small even so."""
        if ctx.key not in self._scorers:
            h, w = (s * ctx.bset.scale for s in ctx.lq.shape[-2:])
            self._scorers[ctx.key], note = fit_to_size(self.quality, h, w)
            if note:
                self.log(f"note: {ctx.key}: {note}")
        return self._scorers[ctx.key]

    def restore(self, ctx: ImageContext, weights: Weights, factor: int, pipe=None):
        """Restore the image with ``weights`` and DownLQ ``factor`` (``pipe``: another model, e.g.
        the SR-only one): (1, 3, H, W) in [0, 1]; the seconds go to ``restore_seconds``.
        """
        pipe = pipe or self.pipe
        t0 = time.perf_counter()
        out = pipe.restore_tensor(
            ctx.lq,
            weights,
            steps=self.cfg.steps,
            seed=self.cfg.seed,
            scale=ctx.bset.scale,
            downlq_factor=factor,
        )
        self.restore_seconds.append(time.perf_counter() - t0)
        return out

    def evaluate(self, ctx: ImageContext, weights: Weights, factor: int = 4, model: str = "main"):
        """Metrics of the restoration with ``weights`` (cached per image on disk)."""
        if model == "sr-only":  # the cache outlives a run: name the model it came from
            model = f"sr-only[{self.cfg.sr_only_model}]"
        key = f"{model}:x{factor}:{format_weights(weights)}"
        if key not in ctx.cache:
            pipe = self.sr_only_pipe if model.startswith("sr-only") else self.pipe
            out = self.restore(ctx, weights, factor, pipe)
            values = self.metrics(out, ctx.gt)
            q = float(self.scorer(ctx).quality(out).reshape(-1)[0])
            values["score"] = q if math.isfinite(q) else float("nan")
            ctx.cache[key] = values
            ctx.save_cache()
        return ctx.cache[key]

    def score_table(self, ctx: ImageContext, candidates: list[Weights], factor: int) -> dict:
        """Search-metric scores of ``candidates`` for this image (restored once, ever)."""
        path = ctx.table(factor)
        known = read_score_table(path)
        todo = [w for w in candidates if weights_key(w) not in known]
        if todo:
            grid_search(
                self.pipe,
                ctx.lq,
                todo,
                self.scorer(ctx),
                steps=self.cfg.steps,
                seed=self.cfg.seed,
                table_path=path,
                return_image=False,
                scale=ctx.bset.scale,
                downlq_factor=factor,
            )
            known = read_score_table(path)
        return known


def _argmax(candidates: list[Weights], scores: dict) -> Weights:
    """Eq. 3-4 over ``candidates``; NaN never wins, ties keep the first."""
    best, best_score = candidates[0], -math.inf
    for w in candidates:
        s = scores.get(weights_key(w), math.nan)
        if not math.isnan(s) and s > best_score:
            best, best_score = w, s
    return best


def _mean(values) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


@dataclass
class AblationResult:
    config: dict
    sets: list[str]
    rows: list[AblationRow]
    claims: list[dict]
    seconds: float = 0.0
    seconds_per_restoration: float = float("nan")


def run_ablations(pipe, cfg: AblationConfig, sr_only_pipe=None, log=print) -> AblationResult:
    """The paper's Tab. 4 on the sets of ``cfg``: every row's mean metrics over all images, with
    score tables and metric caches under ``cfg.out_dir`` reused by a rerun (same model and
    sampling only). ``sr_only_pipe``: the SR-only model for its rows (else they are empty,
    with a note).

    Raises:
        ValueError: ``cfg.out_dir`` holds results of another model or sampling
            (``check_fingerprint``), or a set that cannot be loaded.
    """
    t0 = time.perf_counter()
    # Score tables and metric caches are reused: only for the same model and sampling.
    fingerprint = restoration_fingerprint(
        pipe, steps=cfg.steps, seed=cfg.seed, metric=cfg.metric, model=cfg.model
    )
    check_fingerprint(cfg.out_dir, fingerprint, UNRECORDED_FINGERPRINT)
    runner = AblationRunner(pipe, cfg, sr_only_pipe, log)
    spec = _row_spec()
    rows = [AblationRow(g, s) for g, s, _ in spec]
    grids = {
        i: grid_candidates(how, cfg.grid_fraction)
        for i, (_, _, how) in enumerate(spec)
        if isinstance(how, SearchRow)
    }
    auto_fn, auto_why = (auto_weights, "") if cfg.use_auto else (None, "skipped (--no-auto)")
    contexts = []
    for folder in cfg.sets:
        bset = load_set(folder, cfg.limit)
        for index in range(len(bset.pairs)):
            contexts.append(ImageContext(bset, index, cfg.out_dir / bset.name))

    best_default = _search_rows(runner, spec, rows, grids, contexts, log)
    for i, (_, _, how) in enumerate(spec):
        row = rows[i]
        if isinstance(how, dict):
            for ctx in contexts:
                _add(row, ctx, how, runner.evaluate(ctx, how), 1)
        elif how == "frequent":
            _frequent_row(row, runner, contexts, best_default, cfg.top)
        elif how == "forest" and cfg.predictor is not None:
            _auto_row(row, runner, contexts, "predict", auto_fn, auto_why)
        elif how == "forest":
            _forest_row(row, runner, contexts, best_default)
        elif isinstance(how, str) and how.startswith("sr-only:"):
            if sr_only_pipe is None:
                row.note = "no model given (--sr-only-model PATH; configs/sr-only.yaml trains one)"
                continue
            w = one_hot(how.split(":")[1])
            for ctx in contexts:
                _add(row, ctx, w, runner.evaluate(ctx, w, model="sr-only"), 1)
        elif isinstance(how, str) and how.startswith("auto:"):
            _auto_row(row, runner, contexts, how.split(":")[1], auto_fn, auto_why)
    for row in rows:
        _finish(row)
        log(_row_line(row, cfg.metric))

    result = AblationResult(
        config=_config_dict(cfg),
        sets=[str(p) for p in cfg.sets],
        rows=rows,
        claims=check_claims(rows),
        seconds=time.perf_counter() - t0,
        seconds_per_restoration=_mean(runner.restore_seconds),
    )
    for claim in result.claims:
        log(claim_line(claim))
    write_outputs(result, cfg.out_dir)
    return result


def _search_rows(runner, spec, rows, grids, contexts, log) -> dict[str, Weights]:
    """Fill the grid-search rows: every candidate scored once per (image, DownLQ factor),
    then the argmax per row. Returns the default row's optimum per image."""
    best_default: dict[str, Weights] = {}
    factors = sorted({how.downlq_factor for _, _, how in spec if isinstance(how, SearchRow)})
    for n, ctx in enumerate(contexts, 1):
        for factor in factors:
            same = [
                i
                for i, (_, _, how) in enumerate(spec)
                if isinstance(how, SearchRow) and how.downlq_factor == factor
            ]
            scores = runner.score_table(ctx, _union([grids[i] for i in same]), factor)
            for i in same:
                w = _argmax(grids[i], scores)
                _add(rows[i], ctx, w, runner.evaluate(ctx, w, factor), len(grids[i]))
                if i == 0:
                    best_default[ctx.key] = w
        log(f"[{n}/{len(contexts)}] {ctx.key}: searched ({_fmt_w(best_default[ctx.key])})")
    return best_default


def _union(grids: list[list[Weights]]) -> list[Weights]:
    seen: dict = {}
    for grid in grids:
        for w in grid:
            seen.setdefault(weights_key(w), w)
    return list(seen.values())


def _fmt_w(w: Weights) -> str:
    return format_weights(w) or "-"


def _add(row: AblationRow, ctx: ImageContext, weights: Weights, metrics: dict, evals):
    row.per_image[ctx.key] = {"weights": dict(weights), "metrics": metrics, "evaluations": evals}


def _frequent_row(row, runner, contexts, best_default, top):
    """Sec. 4.2: search only the ``top`` most frequent optima. The paper mines them on 120
    other images; here each image uses the optima of the *other* images (leave-one-out)."""
    if len(contexts) < 2:
        row.note = "needs at least two images (sets are mined on the others)"
        return
    row.note = f"top {top} of the other images' default-grid optima"
    for ctx in contexts:
        others = [w for k, w in best_default.items() if k != ctx.key]
        sets = [w for w, _ in mine_frequent_sets(others, top)]
        scores = runner.score_table(ctx, sets, 4)
        w = _argmax(sets, scores)
        _add(row, ctx, w, runner.evaluate(ctx, w), len(sets))


def _forest_row(row, runner, contexts, best_default):
    """Sec. 4.2's random forest (skip search): for each image, a forest fitted on the other
    images' features and default-grid optima predicts its weights (one restoration)."""
    try:
        from ..search.predictor import fit_predictor, image_features
    except ImportError as e:
        row.note = f"not available (unires.search.predictor: {e})"
        return
    if len(contexts) < 3:
        row.note = "needs at least three images (fitted on the others)"
        return
    features = {ctx.key: image_features(ctx.lq) for ctx in contexts}
    row.note = "fitted leave-one-out on the other images' default-grid optima"
    for ctx in contexts:
        others = [k for k in best_default if k != ctx.key]
        try:
            forest = fit_predictor(
                np.stack([features[k] for k in others]), [best_default[k] for k in others]
            )
        except ImportError as e:  # scikit-learn missing
            row.note = f"not available ({e})"
            row.per_image.clear()
            return
        w = forest.predict(ctx.lq)
        _add(row, ctx, w, runner.evaluate(ctx, w), 1)


def _auto_row(row, runner, contexts, method, auto_fn, why):
    if auto_fn is None:
        row.note = why
        return
    cfg = runner.cfg
    for ctx in contexts:
        extra = {"predictor": cfg.predictor} if method == "predict" else {}
        if method == "fast":
            extra = {
                "fast_options": {
                    "survivors": cfg.fast_survivors,
                    "proxy_side": cfg.fast_proxy_side,
                }
            }
        try:
            result = auto_fn(
                runner.pipe,
                ctx.lq,
                method,
                metric=cfg.metric,
                steps=cfg.steps,
                seed=cfg.seed,
                scale=ctx.bset.scale,
                **extra,
            )
        except Exception as e:  # e.g. no trained predictor: the row says why
            row.note = f"unavailable ({type(e).__name__}: {e})"
            row.per_image.clear()
            return
        w = {k: v for k, v in dict(result.weights).items() if v != 0}
        _add(row, ctx, w, runner.evaluate(ctx, w), None)
        row.per_image[ctx.key]["unet_evaluations"] = result.evaluations


def _finish(row: AblationRow) -> None:
    records = list(row.per_image.values())
    row.images = len(records)
    if not records:
        return
    names = list(dict.fromkeys(k for r in records for k in r["metrics"]))
    row.metrics = {k: _mean(r["metrics"].get(k) for r in records) for k in names}
    evals = [r["evaluations"] for r in records if r["evaluations"] is not None]
    row.evaluations = float(np.mean(evals)) if evals else None
    unet = [r["unet_evaluations"] for r in records if r.get("unet_evaluations") is not None]
    row.unet_evaluations = float(np.mean(unet)) if unet else None


def _row_line(row: AblationRow, metric: str = "niqe") -> str:
    if not row.images:
        return f"{row.group:12s} {row.setting:52s} -- {row.note}"
    m = row.metrics
    searched = shown_score(metric, m.get("score", math.nan))
    return (
        f"{row.group:12s} {row.setting:52s} searched {metric_label(metric_info(metric))} "
        f"{searched:7.3f}  "
        f"PSNR {m.get('psnr', math.nan):6.2f}  SSIM {m.get('ssim', math.nan):.3f}  "
        f"NIQE {m.get('niqe', math.nan):5.2f}  {_cost(row)}"
    )


def _cost(row: AblationRow) -> str:
    if row.evaluations is not None:
        return f"{row.evaluations:.0f}"
    if row.unet_evaluations is not None:
        return f"{row.unet_evaluations:.0f} UNet evals"
    return "-"


# ---- the paper's qualitative claims -------------------------------------------------------


def _find(rows: list[AblationRow], setting_start: str, group: str | None = None):
    for r in rows:
        if r.setting.startswith(setting_start) and (group is None or r.group == group):
            return r
    raise KeyError(setting_start)


def _better(a: AblationRow, b: AblationRow, metric: str) -> bool | None:
    """Whether ``a`` beats ``b`` strictly on ``metric`` (None when either is missing)."""
    x, y = a.metrics.get(metric, math.nan), b.metrics.get(metric, math.nan)
    if math.isnan(x) or math.isnan(y):
        return None
    return x > y


def _claim(text: str, pairs: list[tuple[AblationRow, AblationRow]]) -> dict:
    """A claim that each (winner, loser) pair holds: on the search score and on PSNR."""
    out = {"claim": text, "pairs": []}
    for metric in ("score", "psnr"):
        verdicts = [_better(a, b, metric) for a, b in pairs]
        out[metric] = None if None in verdicts or not verdicts else all(verdicts)
    out["pairs"] = [
        {
            "better": a.setting,
            "worse": b.setting,
            "score": [a.metrics.get("score"), b.metrics.get("score")],
            "psnr": [a.metrics.get("psnr"), b.metrics.get("psnr")],
        }
        for a, b in pairs
    ]
    return out


def check_claims(rows: list[AblationRow]) -> list[dict]:
    """The paper's ablation claims checked on ``rows``: one dict per claim with its verdict on
    the search metric ("score") and on PSNR.
    """
    default = rows[0]
    single = [r for r in rows if r.group == "Single-Task"]
    br0 = _find(rows, "Grid search w/ BR=0", "Strike-Out")
    br_dl = _find(rows, "Grid search w/ BR=0, DownLQ=0", "Strike-Out")
    each = [r for r in rows if r.group == "Strike-Out" and r not in (br0, br_dl)]
    return [
        _claim("search beats every single task", [(default, r) for r in single]),
        _claim("[-0.2,1.2] beats [0,1]", [(default, _find(rows, "[γ,δ]"))]),
        _claim("DownLQ x4 beats x2", [(default, _find(rows, "DownLQ(x2)", "DownLQ"))]),
        _claim(
            "striking out any task lowers the score",
            [(default, br0), (br0, br_dl)] + [(br_dl, r) for r in each],
        ),
    ]


def _verdict(value: bool | None) -> str:
    return {True: "holds", False: "does NOT hold", None: "n/a"}[value]


def claim_line(claim: dict) -> str:
    """One line: the claim and its two verdicts."""
    return (
        f"claim: {claim['claim']}: {_verdict(claim['score'])} on the search metric, "
        f"{_verdict(claim['psnr'])} on PSNR"
    )


# ---- outputs ------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}"


def _score_label(metric: str) -> str:
    """The searched metric as shown, with its direction (NIQE: lower is better)."""
    info = metric_info(metric)
    return f"{metric_label(info)} {'↑' if info.higher_is_better else '↓'}"


def shown_score(metric: str, value: float | None) -> float | None:
    """A row's ``score`` (the search's internal quality, higher is better) in the metric's
    own convention, as tables and logs show it (NIQE: positive, lower is better)."""
    return None if value is None else from_quality(metric_info(metric), value)


def markdown_table(result: AblationResult) -> str:
    """Tab. 4 as a Markdown table, with the claims below it."""
    metric = result.config["metric"]
    lines = [
        f"| Ablation Group | Settings | searched: {_score_label(metric)} | NIQE ↓ | PSNR ↑ | "
        "SSIM ↑ | MS-SSIM ↑ | candidates/img |",
        "|---|---|---|---|---|---|---|---|",
    ]
    group = None
    for r in result.rows:
        name = r.group if r.group != group else ""
        group = r.group
        m = r.metrics
        if not r.images:
            lines.append(f"| {name} | {r.setting} | {r.note} | | | | | |")
            continue
        lines.append(
            f"| {name} | {r.setting} | {_fmt(shown_score(metric, m.get('score')), 3)} | "
            f"{_fmt(m.get('niqe'), 3)} | "
            f"{_fmt(m.get('psnr'), 2)} | {_fmt(m.get('ssim'), 4)} | {_fmt(m.get('ms_ssim'), 4)} | "
            f"{_cost(r)} |"
        )
    lines.append("")
    lines += [f"- {claim_line(c)}" for c in result.claims]
    return "\n".join(lines) + "\n"


def _config_dict(cfg: AblationConfig) -> dict:
    d = asdict(cfg)
    d["sets"] = [str(p) for p in cfg.sets]
    d["out_dir"] = str(cfg.out_dir)
    d["sr_only_model"] = str(cfg.sr_only_model) if cfg.sr_only_model else None
    d["predictor"] = str(cfg.predictor) if cfg.predictor else None
    return d


def write_outputs(result: AblationResult, out_dir: Path) -> None:
    """Write ``ablations.json`` and ``ablations.md`` into ``out_dir`` (atomically)."""
    atomic_write_text(out_dir / "ablations.json", json.dumps(asdict(result), indent=1) + "\n")
    atomic_write_text(out_dir / "ablations.md", markdown_table(result))


def load_result(out_dir: Path) -> AblationResult:
    """The result ``write_outputs`` wrote into ``out_dir``."""
    d = json.loads((Path(out_dir) / "ablations.json").read_text(encoding="utf-8"))
    d["rows"] = [AblationRow(**r) for r in d["rows"]]
    return AblationResult(**d)
