"""Seeded draws from a ``torch.Generator``: the only randomness the degradations use.

Everything random goes through these helpers so that one generator, seeded from
(seed, file name, index), reproduces a sample exactly, whatever the processing order.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import TypeVar

import torch

T = TypeVar("T")


def generator_for(seed: int, *keys: object) -> torch.Generator:
    """A CPU generator whose state depends only on ``seed`` and ``keys`` (stable across runs)."""
    text = repr((int(seed), *(str(k) for k in keys))).encode("utf-8")
    digest = hashlib.sha256(text).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def as_generator(gen: torch.Generator | int | None) -> torch.Generator:
    """``gen`` itself, or a CPU generator seeded with it (None: 0)."""
    if isinstance(gen, torch.Generator):
        return gen
    return torch.Generator().manual_seed(0 if gen is None else int(gen))


def uniform(gen: torch.Generator, low: float, high: float) -> float:
    """A float uniform in [low, high) (float64 draw)."""
    return float(low + (high - low) * torch.rand((), generator=gen, dtype=torch.float64))


def log_uniform(gen: torch.Generator, low: float, high: float) -> float:
    """A float whose log is uniform in [log low, log high); low, high > 0."""
    return math.exp(uniform(gen, math.log(low), math.log(high)))


def bernoulli(gen: torch.Generator, p: float) -> bool:
    """True with probability ``p``."""
    return bool(torch.rand((), generator=gen, dtype=torch.float64) < p)


def randint(gen: torch.Generator, low: int, high: int) -> int:
    """Integer in [low, high] (both inclusive)."""
    return int(torch.randint(int(low), int(high) + 1, (), generator=gen))


def choice(gen: torch.Generator, items: Sequence[T], probs: Sequence[float] | None = None) -> T:
    """One of ``items``, uniformly or with weights ``probs`` (need not sum to 1).

    Raises:
        ValueError: ``probs`` and ``items`` differ in length.
    """
    if probs is None:
        return items[randint(gen, 0, len(items) - 1)]
    if len(probs) != len(items):
        raise ValueError(f"{len(items)} items but {len(probs)} probabilities")
    weights = torch.tensor([float(p) for p in probs], dtype=torch.float64)
    return items[int(torch.multinomial(weights, 1, generator=gen))]


def odd_size(gen: torch.Generator, low: int, high: int) -> int:
    """An odd integer in [low, high] (kernel sizes)."""
    low, high = low | 1, high if high % 2 else high - 1
    return low + 2 * randint(gen, 0, (high - low) // 2)


def randn_like(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device, moved to ``x``'s device."""
    return torch.randn(x.shape, generator=gen, dtype=torch.float32, device=gen.device).to(x.device)
