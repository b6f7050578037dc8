"""Colour correction after decoding (paper Sec. 4: AdaIN, following StableSR).

Diffusion outputs can drift in global colour; these pull the result's colour statistics
back to the reference (the LQ input, upscaled to the output size for x4). AdaIN also gives
the result the reference's contrast, which a noisy reference inflates (its variance is the
clean image's plus the noise's) and a blurred one deflates: a model that does not drift
(the embedded one) restores better without it, and says so in its folder
(``default_color_fix``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

COLOR_FIXES = ("adain", "wavelet", "none")


def adain_color_fix(result: torch.Tensor, reference: torch.Tensor, eps: float = 1e-5):
    """AdaIN: give each channel of ``result`` the mean and std of ``reference``'s channel.

    Tensors are B x C x H x W; statistics are per image and channel over all pixels.
    """
    r_mean = result.mean(dim=(-2, -1), keepdim=True)
    r_std = result.std(dim=(-2, -1), keepdim=True)
    ref_mean = reference.mean(dim=(-2, -1), keepdim=True)
    ref_std = reference.std(dim=(-2, -1), keepdim=True)
    return (result - r_mean) / (r_std + eps) * ref_std + ref_mean


def _wavelet_blur(x: torch.Tensor, radius: int) -> torch.Tensor:
    kernel = torch.tensor(
        [[1 / 16, 1 / 8, 1 / 16], [1 / 8, 1 / 4, 1 / 8], [1 / 16, 1 / 8, 1 / 16]],
        dtype=x.dtype,
        device=x.device,
    )
    kernel = kernel.expand(x.shape[1], 1, 3, 3)
    x = F.pad(x, (radius,) * 4, mode="replicate")
    return F.conv2d(x, kernel, groups=x.shape[1], dilation=radius)


def _wavelet_split(x: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(high frequencies, low frequencies) by an a-trous wavelet decomposition."""
    high = torch.zeros_like(x)
    low = x
    for i in range(levels):
        blurred = _wavelet_blur(low, 2**i)
        high = high + (low - blurred)
        low = blurred
    return high, low


def wavelet_color_fix(result: torch.Tensor, reference: torch.Tensor, levels: int = 5):
    """Keep ``result``'s high frequencies, take the low frequencies from ``reference``."""
    high, _ = _wavelet_split(result, levels)
    _, low = _wavelet_split(reference, levels)
    return high + low


def apply_color_fix(result: torch.Tensor, reference: torch.Tensor, method: str | None):
    """``result`` (B, 3, H, W) with the colours of ``reference`` (same shape): "adain" (mean and
    std per channel), "wavelet" (low frequencies), or None / "none" (unchanged). (The
    pipeline's ``color_fix=None`` means the model's ``default_color_fix`` instead.)

    Raises:
        ValueError: an unknown method.
    """
    if method in (None, "none"):
        return result
    if method == "adain":
        return adain_color_fix(result, reference)
    if method == "wavelet":
        return wavelet_color_fix(result, reference)
    raise ValueError(f"unknown colour fix {method!r} (choose adain, wavelet or none)")
