"""Blur kernels of Real-ESRGAN's degradation model, and filtering with per-sample kernels.

Gaussian (isotropic / anisotropic), generalized Gaussian and plateau kernels, and the
circular low-pass (sinc) filter that imitates ringing. Kernels are (k, k) float32 tensors;
all except sinc are non-negative, and all sum to 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from scipy import special

from . import rng

KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)


@dataclass
class KernelConfig:
    """Ranges of one Real-ESRGAN blur stage (``options/train_realesrgan_x4plus.yml``)."""

    kernel_list: tuple[str, ...] = KERNEL_TYPES
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    sinc_prob: float = 0.1
    blur_kernel_size: int = 21  # the largest size; sizes are odd, 7..blur_kernel_size
    min_kernel_size: int = 7


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    return xx, yy


def _quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """x^T Sigma^-1 x over the kernel grid, Sigma = R diag(sx^2, sy^2) R^T."""
    xx, yy = _grid(size)
    c, s = math.cos(theta), math.sin(theta)
    u = c * xx + s * yy  # coordinates along the principal axes
    v = -s * xx + c * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalised(k: torch.Tensor) -> torch.Tensor:
    return (k / k.sum()).to(torch.float32)


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float = 0.0) -> torch.Tensor:
    """(size, size) anisotropic Gaussian, std ``sigma_x`` / ``sigma_y`` pixels, rotated by
    ``theta`` radians; sums to 1.
    """
    return _normalised(torch.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, theta)))


def generalized_gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float
) -> torch.Tensor:
    """exp(-0.5 (x^T S^-1 x)^beta): beta < 1 heavier tails, beta > 1 flatter top."""
    q = _quadratic_form(size, sigma_x, sigma_y, theta)
    return _normalised(torch.exp(-0.5 * q.pow(beta)))


def plateau_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float
) -> torch.Tensor:
    """1 / (1 + (x^T S^-1 x)^beta): a flat top with long tails."""
    q = _quadratic_form(size, sigma_x, sigma_y, theta)
    return _normalised(1.0 / (q.pow(beta) + 1.0))


def sinc_kernel(size: int, cutoff: float, pad_to: int = 0) -> torch.Tensor:
    """Circular low-pass filter (2-D sinc, jinc) with angular cutoff frequency in (0, pi]."""
    xx, yy = _grid(size)
    r = torch.sqrt(xx**2 + yy**2).numpy()
    with torch.no_grad():
        safe = r.copy()
        safe[safe == 0] = 1.0
        k = cutoff * special.j1(cutoff * safe) / (2 * math.pi * safe)
        k[r == 0] = cutoff**2 / (4 * math.pi)
    kernel = _normalised(torch.from_numpy(k))
    return pad_kernel(kernel, pad_to) if pad_to > size else kernel


def identity_kernel(size: int) -> torch.Tensor:
    """(size, size) kernel that leaves an image unchanged (a centred 1)."""
    k = torch.zeros(size, size)
    k[size // 2, size // 2] = 1.0
    return k


def pad_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a centred odd kernel to ``size`` (so kernels of a batch stack)."""
    p = (size - kernel.shape[-1]) // 2
    return F.pad(kernel, (p, p, p, p)) if p > 0 else kernel


def _beta(gen: torch.Generator, beta_range: tuple[float, float]) -> float:
    # As in Real-ESRGAN: half the draws below 1, half above, whatever the range's width.
    if rng.bernoulli(gen, 0.5) and beta_range[0] < 1:
        return rng.uniform(gen, beta_range[0], 1.0)
    return rng.uniform(gen, max(1.0, beta_range[0]), beta_range[1])


def random_mixed_kernel(
    gen: torch.Generator, size: int, cfg: KernelConfig
) -> tuple[torch.Tensor, dict]:
    """One of the six kernel families, with Real-ESRGAN's probabilities and ranges."""
    kind = rng.choice(gen, cfg.kernel_list, cfg.kernel_prob)
    iso = kind.endswith("iso") and not kind.endswith("aniso")
    sx = rng.uniform(gen, *cfg.blur_sigma)
    sy = sx if iso else rng.uniform(gen, *cfg.blur_sigma)
    theta = 0.0 if iso else rng.uniform(gen, -math.pi, math.pi)
    params = {"kernel": kind, "size": size, "sigma_x": sx, "sigma_y": sy, "theta": theta}
    if kind.startswith("generalized"):
        params["beta"] = _beta(gen, cfg.betag_range)
        k = generalized_gaussian_kernel(size, sx, sy, theta, params["beta"])
    elif kind.startswith("plateau"):
        params["beta"] = _beta(gen, cfg.betap_range)
        k = plateau_kernel(size, sx, sy, theta, params["beta"])
    else:
        k = gaussian_kernel(size, sx, sy, theta)
    return k, params


def random_blur_kernel(gen: torch.Generator, cfg: KernelConfig) -> tuple[torch.Tensor, dict]:
    """A Real-ESRGAN stage kernel: sinc with ``sinc_prob``, else a mixed kernel; padded."""
    size = rng.odd_size(gen, cfg.min_kernel_size, cfg.blur_kernel_size)
    if rng.bernoulli(gen, cfg.sinc_prob):
        # Small kernels cannot hold a low cutoff's ringing: Real-ESRGAN's lower bound.
        low = math.pi / 3 if size < 13 else math.pi / 5
        cutoff = rng.uniform(gen, low, math.pi)
        k, params = sinc_kernel(size, cutoff), {"kernel": "sinc", "size": size, "cutoff": cutoff}
    else:
        k, params = random_mixed_kernel(gen, size, cfg)
    return pad_kernel(k, cfg.blur_kernel_size | 1), params


def filter2d(img: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Correlate each image of a batch with its own kernel (B, k, k) or one kernel (k, k).

    Borders are reflected. Large kernels go through the FFT, where direct convolution would
    cost k^2 multiply-adds per pixel.
    """
    b, c, h, w = img.shape
    if kernels.dim() == 2:
        kernels = kernels.expand(b, -1, -1)
    kernels = kernels.to(img.device, img.dtype)
    k = kernels.shape[-1]
    if k == 1:
        return img * kernels.view(b, 1, 1, 1)
    p = k // 2
    mode = "reflect" if p < min(h, w) else "replicate"
    padded = F.pad(img, (p, p, p, p), mode=mode)
    if k > 15:
        return _fft_correlate(padded, kernels, h, w)
    weight = kernels.repeat_interleave(c, dim=0).unsqueeze(1)  # (B*C, 1, k, k)
    out = F.conv2d(padded.reshape(1, b * c, h + 2 * p, w + 2 * p), weight, groups=b * c)
    return out.view(b, c, h, w)


def _fft_correlate(padded: torch.Tensor, kernels: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """'valid' correlation of padded images with kernels, through the FFT."""
    hp, wp = padded.shape[-2:]
    k = kernels.shape[-1]
    # Correlation is convolution with the flipped kernel; the valid part starts at k - 1.
    flipped = kernels.flip(-1, -2).float()
    spec = torch.fft.rfft2(padded.float(), s=(hp, wp)) * torch.fft.rfft2(
        flipped, s=(hp, wp)
    ).unsqueeze(1)
    full = torch.fft.irfft2(spec, s=(hp, wp))
    return full[..., k - 1 : k - 1 + h, k - 1 : k - 1 + w].to(padded.dtype).contiguous()
