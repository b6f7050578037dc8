"""The reduced search of Sec. 4.2 ("Search Complexity"): count the per-image optima of a full
grid search, keep the most frequent sets (the paper keeps 8), and search only among those."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import torch

from ..weights import Weights
from .grid import SearchResult, grid_search, weights_key


def mine_frequent_sets(
    best_weights: Sequence[Mapping[str, float]], top: int = 8
) -> list[tuple[Weights, int]]:
    """The ``top`` most frequent weight sets with their counts, most frequent first.

    Sets equal to 1e-6 are the same set; ties keep the order in which sets first appear.

    Raises:
        ValueError: ``top`` < 1.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    counts: Counter = Counter()
    first_seen: dict = {}
    for weights in best_weights:
        key = weights_key(weights)
        counts[key] += 1
        first_seen.setdefault(key, {k: v for k, v in key})
    # Counter.most_common is stable for equal counts: insertion (first-seen) order.
    return [(first_seen[key], n) for key, n in counts.most_common(top)]


def select_among(
    pipe,
    lq: torch.Tensor,
    sets: Sequence[Mapping[str, float]],
    metric,
    *,
    steps: int | None,
    seed: int,
    **kwargs,
) -> SearchResult:
    """Eq. 3-4 with Omega reduced to ``sets`` (e.g. the mined most frequent ones)."""
    return grid_search(pipe, lq, sets, metric, steps=steps, seed=seed, **kwargs)
