"""Task weights: parsing, validation (Eq. 2 needs finite weights that sum to one) and the
search spaces of Eq. 3-4 (paper App. A.2)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .tasks import PAPER_GRID_TASKS, get_task

Weights = dict[str, float]

SUM_TOLERANCE = 1e-6

# The ways ``unires.search.auto.auto_weights`` chooses weights for one image (``--auto``).
AUTO_METHODS = ("fast", "grid", "frequent", "predict", "average")

# The paper's most frequent optimum on DiversePhotos (41% of images, Sec. 4.2): our default.
MOST_FREQUENT_WEIGHTS: Weights = {"dn": -0.2, "downlq": 1.2}
# The average optimum over DiversePhotos (paper Fig. 6), renormalised to sum exactly to one.
_AVERAGE = {"br": 0.07, "sr": 0.12, "md": 0.07, "dd": 0.06, "dn": -0.15, "downlq": 0.83}
AVERAGE_WEIGHTS: Weights = {k: v / sum(_AVERAGE.values()) for k, v in _AVERAGE.items()}


class WeightsError(ValueError):
    """Weights that Eq. 2 cannot use."""


def parse_weights(text: str) -> Weights:
    """Parse ``"md=0.6,dn=-0.2,downlq=0.6"`` into a validated mapping.

    Raises:
        WeightsError: a part that is not ``task=number``, or weights ``validate_weights``
            rejects; ValueError: an unknown task code.
    """
    weights: Weights = {}
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        code, sep, value = part.partition("=")
        if not sep:
            raise WeightsError(f"weight {part!r} is not of the form task=value")
        try:
            weights[code.lower()] = weights.get(code.lower(), 0.0) + float(value)
        except ValueError:
            raise WeightsError(f"weight {part!r}: {value!r} is not a number") from None
    return validate_weights(weights)


def validate_weights(weights: Mapping[str, float]) -> Weights:
    """Return a clean copy: known task codes, finite values, sum 1 within 1e-6.

    Raises:
        WeightsError: no weights, a non-finite weight, or a sum other than 1.
        ValueError: an unknown task code.
    """
    if not weights:
        raise WeightsError("no task weights given")
    clean: Weights = {}
    for code, value in weights.items():
        task = get_task(code)  # raises ValueError naming the known codes
        value = float(value)
        if not math.isfinite(value):
            raise WeightsError(f"weight of {task.code!r} is not finite ({value})")
        clean[task.code] = clean.get(task.code, 0.0) + value
    total = math.fsum(clean.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        shown = ", ".join(f"{k}={v:g}" for k, v in clean.items())
        raise WeightsError(f"task weights must sum to 1 (Eq. 2), got {total:.6g} for {shown}")
    return clean


def active_weights(weights: Mapping[str, float]) -> Weights:
    """The tasks that must be evaluated, in their order: zero weights contribute nothing to
    Eq. 2. No validation; never raises."""
    return {k: v for k, v in weights.items() if v != 0.0}


def unet_evaluations(weights: Mapping[str, float], steps: int) -> int:
    """UNet evaluations one restoration with ``weights`` spends over ``steps`` sampling
    steps: one per active task per step (one latent)."""
    return steps * len(active_weights(weights))


def format_weights(weights: Mapping[str, float], sep: str = ",") -> str:
    """``"dn=-0.2,downlq=1.2"``: the active weights, ``sep`` between them (the form that
    ``parse_weights`` reads back when ``sep`` is ``","``)."""
    return sep.join(f"{k}={v:g}" for k, v in active_weights(weights).items())


def one_hot(code: str) -> Weights:
    """``{code: 1.0}`` for a task code or alias.

    Raises:
        ValueError: ``code`` names no task.
    """
    return {get_task(code).code: 1.0}


@dataclass(frozen=True)
class GridSpec:
    """A search grid: the arguments of ``search_grid`` (paper App. A.2's by default)."""

    vmin: float = -0.2
    vmax: float = 1.2
    step: float = 0.2
    tasks: tuple[str, ...] = PAPER_GRID_TASKS
    max_negative: int = 1

    def points(self) -> list[Weights]:
        """The grid's weight vectors (``search_grid``).

        Raises:
            WeightsError: the range is not a multiple of ``step``, or ``step`` does not
                divide 1.
        """
        return search_grid(self.vmin, self.vmax, self.step, self.tasks, self.max_negative)


def search_grid(
    vmin: float = -0.2,
    vmax: float = 1.2,
    step: float = 0.2,
    tasks: Sequence[str] = PAPER_GRID_TASKS,
    max_negative: int = 1,
) -> list[Weights]:
    """All weight vectors on the grid with sum 1 and at most ``max_negative`` negatives.

    Paper App. A.2: six tasks, -0.2..1.2 step 0.2, at most one negative -> 1512 points;
    the [0, 1] range gives 252. Values are enumerated as integers in units of ``step`` so the
    sum constraint is exact.

    Raises:
        WeightsError: the range is not a multiple of ``step``, or ``step`` does not divide 1.
    """
    lo, hi = round(vmin / step), round(vmax / step)
    if not math.isclose(lo * step, vmin, abs_tol=1e-9) or not math.isclose(
        hi * step, vmax, abs_tol=1e-9
    ):
        raise WeightsError(f"range [{vmin}, {vmax}] is not a multiple of step {step}")
    target = round(1.0 / step)
    if not math.isclose(target * step, 1.0, abs_tol=1e-9):
        raise WeightsError(f"step {step} does not divide 1: no grid point sums to 1")
    codes = [get_task(c).code for c in tasks]
    grid: list[Weights] = []
    for units in _compositions(len(codes), target, lo, hi):
        if sum(u < 0 for u in units) > max_negative:
            continue
        grid.append({c: round(u * step, 10) for c, u in zip(codes, units, strict=True)})
    return grid


def _compositions(n: int, total: int, lo: int, hi: int) -> Iterable[tuple[int, ...]]:
    """Integer vectors of length n in [lo, hi] summing to total (pruned product)."""
    if n == 1:
        if lo <= total <= hi:
            yield (total,)
        return
    for first in range(lo, hi + 1):
        rest = total - first
        if (n - 1) * lo <= rest <= (n - 1) * hi:
            for tail in _compositions(n - 1, rest, lo, hi):
                yield (first, *tail)


def grid_size_bruteforce(vmin: float, vmax: float, step: float, nvars: int) -> int:
    """The paper's own snippet (App. A.2), kept to cross-check ``search_grid`` in tests."""
    values = [vmin + i * step for i in range(round((vmax - vmin) / step) + 1)]
    count = 0
    for x in itertools.product(values, repeat=nvars):
        if abs(1 - sum(x)) < 1e-5 and sum(v < -1e-5 for v in x) <= 1:
            count += 1
    return count
