"""What the web app decides, kept free of Gradio so it can be tested without a browser:
task-weight sliders (sum, normalise, presets), upload checks with one-line messages, and
where results are written."""

from __future__ import annotations

import math
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .. import io
from ..tasks import PAPER_GRID_TASKS, get_task
from ..weights import (
    AVERAGE_WEIGHTS,
    MOST_FREQUENT_WEIGHTS,
    Weights,
    active_weights,
    format_weights,
    one_hot,
    validate_weights,
)
from . import DEFAULT_MAX_OUTPUT_MEGAPIXELS

# One slider per task of the paper's search grid (App. A.2), on the paper's range.
TASK_CODES: tuple[str, ...] = PAPER_GRID_TASKS
WEIGHT_MIN, WEIGHT_MAX = -0.2, 1.2
WEIGHT_STEP = 0.01
DECIMALS = 2
# Slider values are rounded to 0.01, so a sum this close to 1 is 1 up to rounding.
SUM_SLACK = 0.005

SCALES: dict[str, int] = {"x1": 1, "x4": 4}
# The examples `make demo` writes (unires/cli/demo.py, default --out demo-output).
DEMO_EXAMPLE_FILES = ("lq.png",)


class AppError(ValueError):
    """A problem the page reports to its user as one line (never a traceback)."""


# ---- weights ------------------------------------------------------------------------------


def task_label(code: str) -> str:
    """ "SR (super-resolution)": a task's code and name, as the sliders show it."""
    return f"{code.upper()} ({get_task(code).name})"


def weights_from_values(values: Sequence[float]) -> Weights:
    """Slider values, in ``TASK_CODES`` order, as a weight mapping (None counts as 0).

    Raises:
        ValueError: not one value per slider.
    """
    if len(values) != len(TASK_CODES):
        raise ValueError(f"expected {len(TASK_CODES)} slider values, got {len(values)}")
    return {c: float(v or 0.0) for c, v in zip(TASK_CODES, values, strict=True)}


def values_from_weights(weights: Mapping[str, float]) -> list[float]:
    """Slider values for a weight mapping; tasks it does not name get 0.

    Raises:
        AppError: a task without a slider (pos, neg).
    """
    unknown = set(weights) - set(TASK_CODES)
    if unknown:
        raise AppError(f"the page has no slider for task(s) {', '.join(sorted(unknown))}")
    return [round(float(weights.get(c, 0.0)), DECIMALS) for c in TASK_CODES]


def weights_sum(weights: Mapping[str, float]) -> float:
    """The exact (fsum) sum of the weights."""
    return math.fsum(weights.values())


def sum_is_one(weights: Mapping[str, float]) -> bool:
    """True when the weights sum to 1 within the sliders' rounding (``SUM_SLACK``)."""
    return abs(weights_sum(weights) - 1.0) <= SUM_SLACK


def sum_message(weights: Mapping[str, float]) -> str:
    """The always-visible constraint: Eq. 2 mixes task predictions with weights summing to 1."""
    total = weights_sum(weights)
    if sum_is_one(weights):
        return f"**Sum = {total:.2f}** ✓"
    return f"**Sum = {total:.2f}** ✗ must be 1: press *Normalise* or move a slider"


def _round_keeping_sum(weights: Mapping[str, float], target: float) -> Weights:
    """Round to the slider step and give the rounding residue to the largest weight."""
    rounded = {c: round(v, DECIMALS) for c, v in weights.items()}
    residue = round(target - math.fsum(rounded.values()), DECIMALS)
    if residue:
        largest = max(rounded, key=lambda c: abs(rounded[c]))
        rounded[largest] = round(rounded[largest] + residue, DECIMALS)
    return rounded


def normalise(weights: Mapping[str, float]) -> Weights:
    """Make the weights sum to 1 by scaling the positive ones; negative weights are a deliberate
    subtraction (e.g. dn=-0.2) and stay as they are.

    Raises:
        AppError: no positive weight, or the result would leave the sliders' range.
    """
    weights = {c: float(v) for c, v in weights.items()}
    positive = math.fsum(v for v in weights.values() if v > 0)
    negative = math.fsum(v for v in weights.values() if v < 0)
    if positive <= 0:
        raise AppError("cannot normalise: give at least one task a positive weight")
    factor = (1.0 - negative) / positive
    scaled = {c: v * factor if v > 0 else v for c, v in weights.items()}
    if any(v > WEIGHT_MAX + 1e-9 for v in scaled.values()):
        raise AppError(
            f"cannot normalise within {WEIGHT_MIN}..{WEIGHT_MAX}: the negative weights "
            f"need more than {WEIGHT_MAX} of positive weight; raise another task"
        )
    return _round_keeping_sum(scaled, 1.0)


def absorb_remainder(weights: Mapping[str, float], into: str) -> Weights:
    """Set task ``into`` to 1 minus the others, clipped to the slider range (the sum indicator
    then shows what is still missing)."""
    weights = {c: float(v) for c, v in weights.items()}
    rest = math.fsum(v for c, v in weights.items() if c != into)
    weights[into] = round(min(WEIGHT_MAX, max(WEIGHT_MIN, 1.0 - rest)), DECIMALS)
    return weights


def weights_for_restore(weights: Mapping[str, float]) -> Weights:
    """The weights to restore with: sum exactly 1 (after slider rounding), zeros dropped.

    Raises:
        AppError: the sum is not 1, or every weight is 0.
    """
    if not sum_is_one(weights):
        raise AppError(
            f"task weights sum to {weights_sum(weights):.2f}, not 1 (Eq. 2): "
            "press Normalise or move a slider"
        )
    active = active_weights(weights)
    if not active:
        raise AppError("all task weights are 0: pick a preset")
    exact = _round_keeping_sum(active, 1.0)
    largest = max(exact, key=lambda c: abs(exact[c]))
    exact[largest] += 1.0 - math.fsum(exact.values())  # float residue below 1e-6
    return validate_weights(exact)


def presets(default_weights: Mapping[str, float] | None = None) -> dict[str, Weights]:
    """Named weight sets, most useful first: the model's default, the paper's two reported
    optima on DiversePhotos (Sec. 4.2, Fig. 6) and each task on its own."""
    named: dict[str, Weights] = {}
    if default_weights:
        named[f"Model default ({_short(default_weights)})"] = dict(default_weights)
    named[f"Paper: most frequent optimum ({_short(MOST_FREQUENT_WEIGHTS)})"] = dict(
        MOST_FREQUENT_WEIGHTS
    )
    named["Paper: average optimum (Fig. 6)"] = _round_keeping_sum(AVERAGE_WEIGHTS, 1.0)
    for code in TASK_CODES:
        named[f"{code.upper()} only ({get_task(code).name})"] = one_hot(code)
    # Drop a repeat (the default is usually the most frequent optimum), keeping the first name.
    unique: dict[str, Weights] = {}
    for name, w in named.items():
        if all(_rounded(w) != _rounded(u) for u in unique.values()):
            unique[name] = w
    return unique


def matching_preset(weights: Mapping[str, float], table: Mapping[str, Mapping[str, float]]):
    """The name of the preset the sliders show (up to the slider step), or None: the preset
    selector follows the sliders, whatever moved them."""
    mine = _rounded(weights)
    return next((name for name, w in table.items() if _rounded(w) == mine), None)


def quality_text(found) -> str:
    """An ``auto_weights`` result's scores as users read them: the metric's own convention
    (NIQE: lower is better), the restoration's beside the input's."""
    from ..metrics.nr import metric_info, metric_label

    name = metric_label(metric_info(found.metric))
    return f"{name} {found.score:.2f} (input {found.q_lq:.2f}; {found.direction})"


def _rounded(weights: Mapping[str, float]) -> dict[str, float]:
    return {c: round(v, DECIMALS) for c, v in weights.items() if round(v, DECIMALS) != 0}


def _short(weights: Mapping[str, float]) -> str:
    return format_weights(weights, sep=", ")


# ---- photos -------------------------------------------------------------------------------


def parse_scale(label: str | int) -> int:
    """The upscale factor (1 or 4) of a scale label ("x1", "x4") or factor.

    Raises:
        AppError: any other label.
    """
    if isinstance(label, int) and label in SCALES.values():
        return label
    try:
        return SCALES[str(label)]
    except KeyError:
        raise AppError(f"scale must be one of {', '.join(SCALES)}, got {label!r}") from None


def max_input_pixels(scale: int, max_output_megapixels: float) -> int:
    """The output is ``scale**2`` times the input: limit the input so the output fits."""
    return int(max_output_megapixels * 1e6 / scale**2)


def load_photo(
    path: str | Path | None,
    scale: int = 1,
    *,
    max_output_megapixels: float = DEFAULT_MAX_OUTPUT_MEGAPIXELS,
    display_name: str | None = None,
) -> io.LoadedImage:
    """Decode an upload with :func:`unires.io.read_image`; any failure is an :class:`AppError`
    naming the file as the user knows it (not the server's temp path).

    Raises:
        AppError: no upload, or a file that cannot be read or is too large at ``scale``.
    """
    if path is None:
        raise AppError("upload a photo first (or pick an example)")
    name = display_name or Path(path).name
    limit = max_input_pixels(scale, max_output_megapixels)
    try:
        return io.read_image(path, max_pixels=limit)
    except io.ImageError as e:
        reason = e.reason
        if "megapixels exceeds" in reason:  # the CLI's hint does not apply to the page
            reason = reason.replace(" (use --allow-huge)", " of this server")
            if scale != 1:
                reason += f" at x{scale} (results up to {max_output_megapixels:g} MP)"
        raise AppError(f"{name}: {reason}") from None


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """H x W x C float in [0, 1] -> uint8 (rounded, clipped)."""
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def before_image(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The input shown at the result's size (width, height), so the comparison lines up."""
    img = to_uint8(rgb)
    if (img.shape[1], img.shape[0]) == size:
        return img
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BICUBIC))


def result_path(folder: str | Path, original_name: str, suffix: str) -> Path:
    """A fresh file for one result inside ``folder`` (one sub-folder per result, so the
    download keeps a readable name and two users never share a file)."""
    stem = Path(original_name).stem or "photo"
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem)[:60] or "photo"
    target = Path(folder) / uuid.uuid4().hex / f"{safe}_unires{suffix}"
    target.parent.mkdir(parents=True)
    return target


def save_result(img: io.LoadedImage, rgb: np.ndarray, folder: str | Path, original_name: str):
    """Write the full-resolution result like the CLI does (format, alpha, depth, profile)."""
    suffix = io.default_output_suffix(img)
    target = result_path(folder, original_name, suffix)
    return io.write_image(target, rgb, like=img)


def delete_old_results(folder: str | Path, max_age_s: float) -> int:
    """Remove result folders older than ``max_age_s`` (a long-running server would otherwise
    fill its disk); returns how many went."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    now = time.time()
    removed = 0
    for sub in folder.iterdir():
        try:
            old = now - sub.stat().st_mtime > max_age_s
        except OSError:  # removed meanwhile by another request
            continue
        if old and sub.is_dir():
            shutil.rmtree(sub, ignore_errors=True)
            removed += 1
    return removed


def example_photos(folder: str | Path) -> list[Path]:
    """The demo examples present in ``folder`` (none until `make demo` has run)."""
    return [Path(folder) / n for n in DEMO_EXAMPLE_FILES if (Path(folder) / n).is_file()]
