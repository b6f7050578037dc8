"""``unires search``: per-image search of the task weights (Eq. 3-4), and ``--mine`` to count
the most frequent optima of earlier searches (Sec. 4.2)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .common import (
    add_model_arguments,
    finish_batch,
    first_line,
    load_pipeline,
    processes_for,
    tile_settings_from_args,
)

FREQUENT_SETS_FILE = "frequent_sets.json"
PREDICTOR_FILE = "predictor.joblib"
FAST_PROXY_SIDE = 192  # fast_search's default proxy_side


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``unires search``."""
    p = sub.add_parser(
        "search",
        help="search the best task weights per image",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Restore each image with every weight set of a grid and keep the one that a\n"
            "no-reference metric scores best (paper Eq. 3-4). Writes, per image:\n"
            "  OUT_DIR/<stem>.json  best weights, score, q_lq (the input's score), timing\n"
            "  OUT_DIR/<stem>.csv   every candidate's score; a rerun skips those already there\n"
            "  OUT_DIR/fingerprint.json  the model, steps, seed and metric: a rerun with others\n"
            "                       is refused (search into a new folder)\n"
            "  scores are in the metric's own convention (NIQE: positive, lower is better)\n"
            "  OUT_DIR/<stem>.png   the best restoration\n\n"
            "grids:\n"
            "  paper   [-0.2, 1.2] step 0.2 over br,sr,md,dd,dn,downlq, <= 1 negative (1512)\n"
            "  unit    [0, 1] step 0.2 over the same tasks (252)\n"
            "  custom  --vmin --vmax --step --tasks --max-negative\n"
            "  sets    the weight sets in --sets FILE (e.g. a frequent_sets.json)\n\n"
            "mining (Sec. 4.2, the paper keeps 8 sets):\n"
            "  unires search --mine OUT_DIR --top 8\n"
            "  counts the best weights of the searches in OUT_DIR, prints them as JSON and\n"
            f"  writes OUT_DIR/{FREQUENT_SETS_FILE}; search with them: --grid sets --sets FILE\n\n"
            "fast search (--method fast): K task predictions per step along one shared\n"
            "  trajectory score every candidate (Eq. 2 is linear), then successive halving on\n"
            "  --survivors; < 1% of the grid's UNet evaluations. No CSV table.\n\n"
            "plots (--plots): OUT_DIR/<stem>_tradeoff.png, the pairwise curves of Fig. 11.\n\n"
            "several processes (accelerate launch / torchrun -m unires search ...): the images\n"
            "  are split across them; a grid search on fewer images than processes splits\n"
            "  each image's candidates instead (score table merged, resumable).\n\n"
            "predictor (--train-predictor):\n"
            "  unires search --train-predictor OUT_DIR [--predictor-out FILE]\n"
            "  fits a random forest (image features -> weights) on the searches in OUT_DIR;\n"
            "  use it with: unires restore --auto predict --predictor FILE"
        ),
    )
    p.add_argument("inputs", nargs="*", metavar="IN", help="image files, folders or globs")
    p.add_argument("-o", "--output", metavar="OUT_DIR", help="output folder")
    p.add_argument("--metric", default="niqe", help="niqe, piqe, musiq, clipiqa, maniqa")
    p.add_argument(
        "--grid", choices=("paper", "unit", "custom", "sets"), default="paper", help="see above"
    )
    p.add_argument("--vmin", type=float, default=-0.2, help="custom grid: lowest weight")
    p.add_argument("--vmax", type=float, default=1.2, help="custom grid: highest weight")
    p.add_argument("--step", type=float, default=0.2, help="custom grid: step")
    p.add_argument("--tasks", default="br,sr,md,dd,dn,downlq", help="custom grid: task codes")
    p.add_argument("--max-negative", type=int, default=1, help="custom grid: negatives allowed")
    p.add_argument("--sets", metavar="FILE", help="sets grid: JSON written by --mine")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="the same seed for every candidate")
    p.add_argument("--max-images", type=int, default=None, metavar="N", help="first N images")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--mine", metavar="OUT_DIR", help="count the optima of earlier searches")
    p.add_argument("--top", type=int, default=8, help="with --mine: how many sets to keep")
    p.add_argument(
        "--method", choices=("grid", "fast"), default="grid", help="grid: every candidate"
    )
    p.add_argument("--survivors", type=int, default=16, help="fast: candidates kept after proxy")
    p.add_argument("--plots", action="store_true", help="also draw Fig. 11's trade-off curves")
    p.add_argument("--train-predictor", metavar="OUT_DIR", help="fit the weight predictor")
    p.add_argument("--predictor-out", metavar="FILE", help="default OUT_DIR/predictor.joblib")
    p.add_argument("--trees", type=int, default=200, help="predictor: trees in the forest")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_model_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``unires search``: --mine, --train-predictor, or the per-image search (``run_search``)."""
    if args.mine is not None:
        return run_mine(args)
    if args.train_predictor is not None:
        return run_train_predictor(args)
    return run_search(args)


def run_train_predictor(args: argparse.Namespace) -> int:
    """``unires search --train-predictor DIR``: fit the weight predictor on DIR's search log;
    0 when written.

    Raises:
        UsageError: input images given, or DIR is not a folder.
        MissingExtra: scikit-learn (the ``learn`` extra) is missing (exit 2).
        CommandError: too few records to fit on (exit 1).
    """
    from ..extras import MissingExtra
    from ..search.predictor import train_from_search_log
    from ..utils import plural
    from . import CommandError, UsageError

    if args.inputs:
        raise UsageError("--train-predictor takes no input images")
    folder = Path(args.train_predictor)
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a folder")
    out = Path(args.predictor_out or folder / PREDICTOR_FILE)
    try:
        predictor, used = train_from_search_log(folder, n_estimators=args.trees, seed=args.seed)
    except ImportError as e:
        raise MissingExtra(str(e)) from None
    except ValueError as e:
        raise CommandError(first_line(e)) from None
    predictor.save(out)
    print(f"predictor trained on {plural(used, 'image')}: {out}")
    return 0


def run_mine(args: argparse.Namespace) -> int:
    """``unires search --mine DIR``: the most frequent optima of DIR's search log, written to
    ``DIR/frequent_sets.json`` and printed; 0.

    Raises:
        UsageError: input images given, --top < 1, or DIR is not a folder.
        CommandError: DIR has no search records (exit 1).
    """
    from ..search import mine_frequent_sets, read_search_log
    from ..utils import atomic_write_text
    from . import CommandError, UsageError

    if args.inputs:
        raise UsageError("--mine takes no input images")
    if args.top < 1:
        raise UsageError("--top must be at least 1")
    folder = Path(args.mine)
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a folder")
    records = read_search_log(folder)
    if not records:
        raise CommandError(f"{folder}: no search results (*.json) found")
    sets = mine_frequent_sets([r["best_weights"] for r in records], args.top)
    payload = {
        "images": len(records),
        "sets": [{"weights": w, "count": n, "share": n / len(records)} for w, n in sets],
    }
    text = json.dumps(payload, indent=2) + "\n"
    atomic_write_text(folder / FREQUENT_SETS_FILE, text)
    print(text, end="")
    return 0


def _candidates(args: argparse.Namespace) -> list[dict[str, float]]:
    from ..weights import search_grid

    if args.grid == "paper":
        return search_grid()
    if args.grid == "unit":
        return search_grid(0.0, 1.0, 0.2)
    if args.grid == "custom":
        tasks = [t for t in args.tasks.replace(" ", "").split(",") if t]
        return search_grid(args.vmin, args.vmax, args.step, tasks, args.max_negative)
    if not args.sets:
        raise ValueError("--grid sets needs --sets FILE")
    from ..search.auto import read_weight_sets

    return read_weight_sets(args.sets)


def _scored_size(lq, args: argparse.Namespace, pipe) -> tuple[int, int]:
    """The smallest image the search scores: the fast search's 192-pixel proxy crop (as
    ``fast_search`` cuts it, in multiples of the VAE factor) or the whole image."""
    h, w = lq.shape[-2:]
    if args.method != "fast" or (h <= FAST_PROXY_SIDE and w <= FAST_PROXY_SIDE):
        return h, w
    f = pipe.vae_factor
    return min(h, FAST_PROXY_SIDE) // f * f, min(w, FAST_PROXY_SIDE) // f * f


def run_search(args: argparse.Namespace) -> int:
    """``unires search IN... -o OUT``: search each image's weights; write its best restoration,
    score table and search record (``search.log``) into OUT. 0 all searched, 1 some failed.

    Raises:
        UsageError: bad options, grid or metric, or OUT is a file; or the model does not load.
    """
    from . import UsageError

    _check_search_options(args)
    procs = processes_for(args)
    candidates, metric = _grid_and_metric(args)
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a folder")
    files, problems, names, written = _list_images(args, out_dir, procs)
    if not files:
        return 1
    # Several processes: each searches its share of the images; a grid search on fewer
    # images than processes splits each image's candidates instead (the main process then
    # writes and reports every image).
    by_candidates = procs.parallel and args.method == "grid" and len(files) < procs.count
    mine = files if by_candidates else procs.share(files)
    pipe = load_pipeline(args) if mine or procs.is_main else None
    _check_out_dir(args, procs, pipe, out_dir)
    batch = _Batch(
        args,
        procs,
        pipe,
        candidates,
        metric,
        tile_settings_from_args(args),
        out_dir,
        files,
        names,
        by_candidates=by_candidates,
        reports=procs.is_main or not by_candidates,
    )
    done, failed = _search_images(batch, mine, written)
    failed += len(problems)
    counts = f"{done} searched, {failed} failed"
    return finish_batch(procs, counts, failed, f"results in {out_dir}" if done else None)


def _check_out_dir(args: argparse.Namespace, procs, pipe, out_dir: Path) -> None:
    """``search.check_search_folder`` by the main process; every process learns the verdict.

    Raises:
        UsageError: OUT holds tables or records made with another model or sampling.
    """
    from ..search import check_search_folder
    from . import UsageError

    refused = None
    if procs.is_main:
        steps = args.steps or pipe.settings.default_steps
        try:
            check_search_folder(out_dir, pipe, steps=steps, seed=args.seed, metric=args.metric)
        except ValueError as e:
            refused = first_line(e)
    refused = procs.broadcast(refused)
    if refused:
        raise UsageError(refused)


def _check_search_options(args: argparse.Namespace) -> None:
    from . import UsageError

    if not args.inputs or not args.output:
        raise UsageError("give input images and -o OUT_DIR (or --mine OUT_DIR)")
    if args.steps is not None and args.steps < 1:
        raise UsageError("--steps must be at least 1")
    if args.max_images is not None and args.max_images < 1:
        raise UsageError("--max-images must be at least 1")
    if args.survivors < 1:
        raise UsageError("--survivors must be at least 1")


def _grid_and_metric(args: argparse.Namespace):
    """(the candidate weight sets, the no-reference metric) that the options name; a bad grid
    or metric is a ``UsageError``."""
    from ..metrics.nr import get_metric
    from ..pipeline import resolve_device
    from ..weights import WeightsError
    from . import UsageError

    try:
        candidates = _candidates(args)
        metric = get_metric(args.metric, device=resolve_device(args.device))
    except (WeightsError, ValueError, ImportError, RuntimeError) as e:
        raise UsageError(str(e).strip().splitlines()[0]) from None
    if not candidates:
        raise UsageError("the grid has no weight set that sums to 1")
    return candidates, metric


def _list_images(args: argparse.Namespace, out_dir: Path, procs):
    """The images to search, listed (and, with several processes, named) once by the main
    process, which prints the inputs it could not find. Returns (files, problems, {file: its
    ``_image_path`` or error}, the main process's record of the results written or None)."""
    from .. import io
    from ..parallel import files_written

    listed, written = None, None
    if procs.is_main:  # listed and named once, by the main process (several: see --help)
        files, problems = io.collect_inputs(args.inputs, recursive=args.recursive)
        files = files[: args.max_images] if args.max_images else files
        names = _planned_image_paths(files, out_dir) if procs.parallel else {}
        if procs.parallel:
            records = [n.with_suffix(".json") for n in names.values() if isinstance(n, Path)]
            written = files_written(records)
        listed = (files, problems, names)
    files, problems, names = procs.broadcast(listed)
    if procs.is_main:
        for msg in problems:
            print(f"error: {msg}", file=sys.stderr)
        if not files:
            print("error: no input images found", file=sys.stderr)
    return files, problems, names, written


@dataclass
class _Batch:
    """What the images of one ``unires search`` share."""

    args: argparse.Namespace
    procs: Any
    pipe: Any
    candidates: list
    metric: Any
    tiles: Any
    out_dir: Path
    files: list[Path]
    names: dict  # planned result paths (several processes), else empty
    by_candidates: bool  # the processes split each image's candidates, not the images
    reports: bool  # this process writes and reports the results
    used: set[Path] = field(default_factory=set)  # result paths given so far


def _search_images(batch: _Batch, mine: list[Path], written) -> tuple[int, int]:
    """Search the images ``mine`` one after the other, one line each; returns the batch's
    (searched, failed) counts, summed over the processes (the same on all of them)."""
    from .. import io
    from ..parallel import SINGLE

    failed, done = 0, 0
    shown = not batch.args.quiet and len(batch.files) > 1 and batch.procs.is_main
    bar = tqdm(total=len(batch.files), desc="images", unit="img", disable=not shown)
    # Splitting candidates, every process goes through every image: its own count is the job's.
    if batch.by_candidates:
        tracker = SINGLE.progress(bar)
    else:
        tracker = batch.procs.progress(bar, written)
    with bar, tracker as advance:
        for path in mine:
            try:
                done += _search_image(batch, path, bar)
            except io.ImageError as e:
                failed += batch.reports
                if batch.reports:
                    bar.write(f"error: {e}", file=sys.stderr)
            except (RuntimeError, ValueError) as e:  # e.g. too small for the metric, out of memory
                failed += batch.reports
                if batch.reports:
                    bar.write(f"error: {path}: {first_line(e)}", file=sys.stderr)
            advance()
        return batch.procs.total(done), batch.procs.total(failed)


def _search_image(batch: _Batch, path: Path, bar) -> int:
    """Search one image's weights; 1 when this process wrote and reported its results."""
    from .. import io
    from ..metrics.nr import fit_to_size

    t0 = time.perf_counter()
    img = io.read_image(path)
    image_path = batch.names.get(path) or _image_path(path, batch.out_dir, batch.files, batch.used)
    if isinstance(image_path, Exception):  # planned above: would overwrite an input
        raise image_path
    lq = io.to_tensor(img.rgb)
    try:
        scorer, note = fit_to_size(batch.metric, *_scored_size(lq, batch.args, batch.pipe))
    except ValueError as e:
        raise ValueError(f"{e}; restore it with --weights or --auto average") from None
    if note and batch.reports:
        bar.write(f"note: {path}: {note}", file=sys.stderr)
    result = _search_candidates(batch, lq, scorer, image_path.with_suffix(".csv"))
    if not batch.reports:
        return 0
    _write_results(batch, path, img, image_path, result, scorer, note, t0, bar)
    return 1


def _search_candidates(batch: _Batch, lq, scorer, table_path: Path):
    """``search.search_candidates`` of one image with the options of the command line."""
    from ..search import search_candidates

    args = batch.args
    if args.method == "fast":
        options = dict(survivors=args.survivors, proxy_side=FAST_PROXY_SIDE)
    else:
        options = dict(
            table_path=table_path,
            progress=not args.quiet and batch.procs.is_main,
            processes=batch.procs if batch.by_candidates else None,
        )
    return search_candidates(
        batch.pipe,
        lq,
        batch.candidates,
        scorer,
        args.method,
        steps=args.steps,
        seed=args.seed,
        tiles=batch.tiles,
        **options,
    )


def _write_results(batch: _Batch, path, img, image_path: Path, result, scorer, note, t0, bar):
    """Write one image's best restoration, its search record (and --plots' curves) and print
    its line."""
    from .. import io
    from ..bench.plots import draw_tradeoffs
    from ..metrics.nr import direction, metric_label
    from ..search import search_record, write_search_record
    from ..weights import format_weights

    args = batch.args
    io.write_image(image_path, io.from_tensor(result.best_image), like=img)
    record = search_record(
        result,
        scorer,
        input=path,
        metric=args.metric,
        method=args.method,
        steps=args.steps or batch.pipe.settings.default_steps,
        seed=args.seed,
        seconds=time.perf_counter() - t0,
        image=image_path,
        table=image_path.with_suffix(".csv") if args.method == "grid" else None,
        note=note,
    )
    if args.plots:
        plot = image_path.with_name(f"{image_path.stem}_tradeoff.png")
        label = metric_label(scorer)
        title = f"{path.name}: {label} along each pair of tasks (Fig. 11)"
        if draw_tradeoffs(result.rows, plot, title=title, metric=scorer):
            record["plot"] = str(plot)
    write_search_record(image_path.with_suffix(".json"), record)
    weights = format_weights(result.best_weights)
    bar.write(
        f"{path}: {weights} ({metric_label(scorer)} {record['score']:.4g}, "
        f"input {record['q_lq']:.4g}; {direction(scorer)})"
    )


def _image_path(path: Path, out_dir: Path, files: list[Path], used: set[Path]) -> Path:
    """Where the best restoration of ``path`` goes (its table and record beside it, same
    stem): a.png and a.jpg in one batch keep both results (``used``: names given so far).
    Raises ``io.ImageError`` if that would overwrite an input."""
    from .. import io

    image_path = io.plan_output(path, out_dir, ".png", inputs=files)
    if image_path in used:
        image_path = image_path.with_name(f"{path.stem}_{path.suffix.lstrip('.')}.png")
    io.ensure_not_input(image_path, files)
    used.add(image_path)
    return image_path


def _planned_image_paths(files: list[Path], out_dir: Path) -> dict[Path, Path | Exception]:
    """``_image_path`` of every file in list order, before any is searched (several processes
    share the list, so no name may depend on which files another has done); an input that
    would be overwritten maps to its ``io.ImageError``."""
    from .. import io

    used: set[Path] = set()
    names: dict[Path, Path | Exception] = {}
    for path in files:
        try:
            names[path] = _image_path(path, out_dir, files, used)
        except io.ImageError as e:
            names[path] = e
    return names
