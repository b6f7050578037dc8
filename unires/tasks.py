"""The restoration tasks UniRes combines, each named by a constant text prompt (paper Tab. 1).

This is the one place a task is defined: its short code (used in weight strings such as
``"md=0.6,dn=-0.2"``), the prompt the model was trained with, and which condition image it
sees. Adding a task means adding one ``Task`` to ``TASKS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Condition(str, Enum):
    """Which image a task's prediction is conditioned on."""

    LQ = "lq"  # the low-quality input as given
    DOWN_LQ = "downlq"  # LQ downscaled by a factor, then bicubic-upscaled back (paper Sec. 3.2)


# Training prompts (paper Tab. 1). The empty prompt is blind restoration (BR).
PROMPT_BR = ""
PROMPT_SR = "Super-resolution"
PROMPT_MD = "Motion-deblur"
PROMPT_DD = "Defocus-deblur"
PROMPT_DN = "Denoise"
# Quality prompts (paper App. A.7), learned from 1% of training samples each.
PROMPT_POSITIVE = (
    "photorealistic, clean, high-resolution, ultra-high definition, 4k detail, "
    "8k resolution, masterpiece, cinematic, highly detailed."
)
PROMPT_NEGATIVE = (
    "oil painting, cartoon, blur, dirty, messy, low quality, deformation, "
    "low resolution, over-smooth."
)


@dataclass(frozen=True)
class Task:
    code: str
    name: str
    prompt: str
    condition: Condition = Condition.LQ
    # Part of the paper's six-task search grid (BR, SR, MD, DD, DN, DownLQ).
    in_paper_grid: bool = True


TASKS: tuple[Task, ...] = (
    Task("br", "blind restoration", PROMPT_BR),
    Task("sr", "super-resolution", PROMPT_SR),
    Task("md", "motion deblur", PROMPT_MD),
    Task("dd", "defocus deblur", PROMPT_DD),
    Task("dn", "denoise", PROMPT_DN),
    # DownLQ: the SR prediction on a pre-downscaled LQ, the fidelity-quality knob (Sec. 3.2).
    Task("downlq", "SR on down-up-scaled LQ", PROMPT_SR, Condition.DOWN_LQ),
    Task("pos", "positive quality words", PROMPT_POSITIVE, in_paper_grid=False),
    Task("neg", "negative quality words", PROMPT_NEGATIVE, in_paper_grid=False),
)

TASKS_BY_CODE: dict[str, Task] = {t.code: t for t in TASKS}
PAPER_GRID_TASKS: tuple[str, ...] = tuple(t.code for t in TASKS if t.in_paper_grid)
# Prompts a model must know; the order is the learned prompt table's row order.
TRAINING_PROMPTS: tuple[str, ...] = tuple(dict.fromkeys(t.prompt for t in TASKS))
# The four isolated training tasks and the paper's sampling probabilities (Sec. 4).
TRAINING_TASK_PROBS: dict[str, float] = {"sr": 0.32, "md": 0.28, "dd": 0.18, "dn": 0.22}


def get_task(code: str) -> Task:
    """The task of a code or alias, case and spaces ignored.

    Raises:
        ValueError: an unknown code (the message lists the known ones).
    """
    try:
        return TASKS_BY_CODE[code.strip().lower()]
    except KeyError:
        known = ", ".join(TASKS_BY_CODE)
        raise ValueError(f"unknown task code {code!r} (known: {known})") from None
