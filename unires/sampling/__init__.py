"""Sampling: plain functions over tensors (the UniRes DDIM loop, colour fixes, tiling)."""

from .color import adain_color_fix, apply_color_fix, wavelet_color_fix
from .conditions import down_up_lq
from .ddim import combine_task_predictions, predict_tasks, sample_unires_ddim

__all__ = [
    "adain_color_fix",
    "apply_color_fix",
    "combine_task_predictions",
    "down_up_lq",
    "predict_tasks",
    "sample_unires_ddim",
    "wavelet_color_fix",
]
