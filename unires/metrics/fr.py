"""Full-reference metrics for benchmarks: PSNR, SSIM and MS-SSIM, batched, in torch.

All take ``a`` and ``b`` of shape ``B x 3 x H x W`` (or ``B x 1 x H x W``) in [0, 1] and return
``B`` values. ``crop_border`` drops that many pixels on each side first (the super-resolution
convention); ``y_channel`` scores the BT.601 luma instead of RGB, as basicsr's ``test_y_channel``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to
# structural similarity", IEEE TIP 2004: 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03.
SSIM_WINDOW_SIZE = 11
SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03

# Wang, Simoncelli, Bovik, "Multiscale structural similarity for image quality assessment",
# Asilomar 2003: exponents of the five scales (coarsest last).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _prepare(
    a: torch.Tensor, b: torch.Tensor, crop_border: int, y_channel: bool, data_range: float
) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(
            f"expected two B x C x H x W tensors of one shape, got {a.shape}, {b.shape}"
        )
    # float32: ~20x faster than float64 convolutions on CPU and still within ~1e-5 of skimage.
    a, b = a.detach().to(torch.float32), b.detach().to(torch.float32)
    if crop_border:
        c = crop_border
        a, b = a[..., c:-c, c:-c], b[..., c:-c, c:-c]
    if y_channel:
        a, b = rgb_to_y(a, data_range), rgb_to_y(b, data_range)
    return a, b


def rgb_to_y(images: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """BT.601 luma of RGB in [0, data_range], in [16, 235] / 255 * data_range (MATLAB
    ``rgb2ycbcr``, basicsr's ``test_y_channel``); one-channel images pass through."""
    if images.shape[1] == 1:
        return images
    weights = images.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1) / 255.0
    return (images * weights).sum(dim=1, keepdim=True) + 16.0 / 255.0 * data_range


def psnr(
    a: torch.Tensor,
    b: torch.Tensor,
    data_range: float = 1.0,
    crop_border: int = 0,
    y_channel: bool = False,
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (``inf`` for identical images)."""
    a, b = _prepare(a, b, crop_border, y_channel, data_range)
    # The squared error is accumulated in float64: PSNR is read to 0.01 dB on large images.
    mse = ((a.double() - b.double()) ** 2).flatten(1).mean(-1)
    return (10 * torch.log10(data_range**2 / mse)).to(torch.float32)


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _ssim_maps(
    a: torch.Tensor, b: torch.Tensor, data_range: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel SSIM and contrast-structure maps over the valid region, per channel.

    The Gaussian filter is applied without padding: skimage filters the whole image and then
    crops (window - 1) / 2 pixels per side before averaging, which leaves exactly this region.
    Population (not sample) covariances, as skimage's ``use_sample_covariance=False``.
    """
    # One separable grouped convolution over all five moments is ~3x faster than five calls.
    moments = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    channels = moments.shape[1]
    g = _gaussian_window(SSIM_WINDOW_SIZE, SSIM_SIGMA).to(a)
    blurred = F.conv2d(moments, g.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    blurred = F.conv2d(blurred, g.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    mu_a, mu_b, mean_aa, mean_bb, mean_ab = blurred.chunk(5, dim=1)
    var_a = mean_aa - mu_a**2
    var_b = mean_bb - mu_b**2
    cov_ab = mean_ab - mu_a * mu_b
    c1 = (_SSIM_K1 * data_range) ** 2
    c2 = (_SSIM_K2 * data_range) ** 2
    contrast_structure = (2 * cov_ab + c2) / (var_a + var_b + c2)
    luminance = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return luminance * contrast_structure, contrast_structure


def _check_size(a: torch.Tensor, minimum: int, what: str) -> None:
    if min(a.shape[-2:]) < minimum:
        raise ValueError(f"{what} needs images of at least {minimum}x{minimum}, got {a.shape[-2:]}")


def ssim(
    a: torch.Tensor,
    b: torch.Tensor,
    data_range: float = 1.0,
    crop_border: int = 0,
    y_channel: bool = False,
) -> torch.Tensor:
    """Structural similarity per image, averaged over channels (or on Y with ``y_channel``).

    Matches ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=-1)``.
    """
    a, b = _prepare(a, b, crop_border, y_channel, data_range)
    _check_size(a, SSIM_WINDOW_SIZE, "SSIM")
    ssim_map, _ = _ssim_maps(a, b, data_range)
    return ssim_map.flatten(1).double().mean(-1).to(torch.float32)


def ms_ssim(
    a: torch.Tensor,
    b: torch.Tensor,
    data_range: float = 1.0,
    crop_border: int = 0,
    y_channel: bool = False,
) -> torch.Tensor:
    """Multi-scale SSIM (Wang et al. 2003) per image, five scales, averaged over channels.

    Contrast-structure terms of scales 1-4 and the full SSIM of scale 5, each raised to its
    weight; scales are built by 2x2 average pooling. Negative terms are clamped to 0 (as
    pytorch-msssim does) so that fractional powers stay real for heavily distorted images.
    """
    a, b = _prepare(a, b, crop_border, y_channel, data_range)
    levels = len(MS_SSIM_WEIGHTS)
    _check_size(a, (SSIM_WINDOW_SIZE - 1) * 2 ** (levels - 1) + 1, "MS-SSIM")
    weights = a.new_tensor(MS_SSIM_WEIGHTS)
    terms = []
    for level in range(levels):
        ssim_map, cs_map = _ssim_maps(a, b, data_range)
        last = level == levels - 1
        terms.append((ssim_map if last else cs_map).flatten(2).mean(-1).clamp_min(0))
        if not last:
            # ceil_mode keeps the last row/column of odd sizes, as a padded 2x2 mean does.
            a = F.avg_pool2d(a, 2, ceil_mode=True)
            b = F.avg_pool2d(b, 2, ceil_mode=True)
    per_channel = torch.prod(torch.stack(terms, dim=-1) ** weights, dim=-1)
    return per_channel.mean(-1).to(torch.float32)
