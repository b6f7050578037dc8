"""Condition images derived from the LQ input."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def down_up_lq(lq: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """DownLQ (paper Sec. 3.2): downscale the LQ by ``factor`` in pixel space, then
    bicubic-upscale it back to its original size. Larger factors elicit more detail (Fig. 3).

    ``lq``: B x 3 x H x W in [0, 1]. Antialiased downscaling, so the result is what a
    camera at 1/factor resolution would have seen, not an aliased subsample.
    """
    if factor <= 1:
        return lq
    h, w = lq.shape[-2:]
    small = F.interpolate(
        lq,
        size=(max(1, round(h / factor)), max(1, round(w / factor))),
        mode="bicubic",
        antialias=True,
        align_corners=False,
    )
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
