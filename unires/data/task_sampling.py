"""Which task a training sample teaches, and the quality-prompt augmentation of App. A.7."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..degrade import rng
from ..tasks import PROMPT_NEGATIVE, PROMPT_POSITIVE

POSITIVE_PROMPT_PROB = 0.01
NEGATIVE_PROMPT_PROB = 0.01


def validate_task_probs(probs: Mapping[str, float]) -> dict[str, float]:
    """Non-negative finite weights with a positive sum, normalised to probabilities.

    Raises:
        ValueError: no weights, a negative or non-finite one, or a zero sum.
    """
    if not probs:
        raise ValueError("task probabilities are empty")
    for code, p in probs.items():
        if not (p >= 0 and p < float("inf")):
            raise ValueError(f"task {code!r}: weight {p!r} is not a finite number >= 0")
    total = float(sum(probs.values()))
    if total <= 0:
        raise ValueError("task weights sum to 0")
    return {code: float(p) / total for code, p in probs.items()}


def sample_task(gen: torch.Generator, probs: Mapping[str, float]) -> str:
    """One task code drawn with the given probabilities (paper: SR .32, MD .28, DD .18, DN .22)."""
    return rng.choice(gen, list(probs), list(probs.values()))


def augment_quality_prompt(
    lq: torch.Tensor,
    hq: torch.Tensor,
    prompt: str,
    gen: torch.Generator,
    positive_prob: float = POSITIVE_PROMPT_PROB,
    negative_prob: float = NEGATIVE_PROMPT_PROB,
) -> tuple[torch.Tensor, torch.Tensor, str, str | None]:
    """App. A.7: with ``positive_prob`` the prompt becomes the positive-quality words; with
    ``negative_prob`` the negative-quality words, and LQ and HQ swap (the model learns to
    produce degraded images from that prompt). Returns (lq, hq, prompt, "pos"/"neg"/None)."""
    u = float(torch.rand((), generator=gen, dtype=torch.float64))
    if u < positive_prob:
        return lq, hq, PROMPT_POSITIVE, "pos"
    if u < positive_prob + negative_prob:
        return hq, lq, PROMPT_NEGATIVE, "neg"
    return lq, hq, prompt, None
