"""No-reference image quality metrics behind one interface.

The per-image weight search (paper Eq. 3-4) maximises a no-reference quality Q. Every metric here
scores a batch ``B x 3 x H x W`` in [0, 1] and returns ``B`` raw scores; ``quality()`` turns them
into values where higher is always better, so the search never needs to know the metric's sign.

- ``NIQE``: Mittal, Soundararajan, Bovik, "Making a 'Completely Blind' Image Quality Analyzer",
  IEEE SPL 2013. Own implementation matching the MATLAB release and pyiqa's ``niqe``.
- ``PIQE``: Venkatanath et al., "Blind Image Quality Evaluation Using Perception Based Features",
  NCC 2015. Own implementation following MATLAB's ``piqe``.
- ``PyIQAMetric``: learned metrics (MUSIQ, CLIP-IQA, MANIQA) through the optional ``pyiqa``.
"""

from __future__ import annotations

import importlib.resources
import math
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F


@runtime_checkable
class QualityMetric(Protocol):
    """A no-reference metric: raw ``score()`` plus ``quality()`` where higher is better."""

    name: str
    higher_is_better: bool

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """Raw scores, shape ``B``, for ``images`` of shape ``B x 3 x H x W`` in [0, 1]."""
        ...

    def quality(self, images: torch.Tensor) -> torch.Tensor:
        """Scores oriented so that higher is always better (e.g. -NIQE): for searches only;
        whatever users see is in the metric's own convention (``from_quality``)."""
        scores = self.score(images)
        return scores if self.higher_is_better else -scores


def from_quality(metric, quality: float) -> float:
    """A search's internal quality (higher is better) in the metric's own convention, as
    users read it: NIQE and PIQE positive, lower is better; MUSIQ and the like unchanged."""
    return float(quality) if getattr(metric, "higher_is_better", True) else -float(quality)


def direction(metric) -> str:
    """``"lower is better"`` or ``"higher is better"``, for labels next to shown scores."""
    return "higher is better" if getattr(metric, "higher_is_better", True) else "lower is better"


def metric_label(metric) -> str:
    """The metric's name as users know it (``NIQE``, ``MUSIQ``, ...)."""
    name = str(getattr(metric, "name", "score"))
    return _DISPLAY_NAMES.get(name.lower(), name)


def metric_info(name: str):
    """Name and direction of the metric called ``name`` without loading it (pyiqa's are
    higher-is-better): for labels of results read back from files."""
    from types import SimpleNamespace

    return SimpleNamespace(name=name, higher_is_better=name.lower() not in _LOWER_IS_BETTER)


def fit_to_size(metric, height: int, width: int):
    """(a metric that can score ``height x width`` images, a one-line note or None).

    NIQE needs two 96x96 blocks; on a smaller image it scores with the largest smaller block
    size that fits two (64, 48 or 32: comparable between candidates of one image, not with
    published NIQE figures), and says so. Other metrics are returned unchanged. Raises
    ``ValueError`` where even 32x32 blocks do not fit twice.
    """
    fits = getattr(metric, "for_size", None)
    return fits(height, width) if callable(fits) else (metric, None)


def _check_images(images: torch.Tensor) -> torch.Tensor:
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"expected images of shape B x 3 (or 1) x H x W, got {tuple(images.shape)}"
        )
    # Both classical metrics work in float64, as the MATLAB references do.
    return images.detach().to(torch.float64).clamp(0.0, 1.0)


# (RGB weights, offset) of the luma per colour space, for [0, 1] images. "yiq": Y of YIQ, the
# MATLAB rgb2gray weights, used by pyiqa's ``niqe`` (its default) and by MATLAB's ``piqe``.
# "ycbcr": BT.601 Y in [16, 235] / 255 (MATLAB rgb2ycbcr), basicsr's ``test_y_channel``.
_LUMA = {
    "yiq": ((0.299, 0.587, 0.114), 0.0),
    "ycbcr": ((65.481 / 255, 128.553 / 255, 24.966 / 255), 16.0 / 255),
}


def _luma(images: torch.Tensor, color_space: str = "yiq") -> torch.Tensor:
    """Luma ``B x 1 x H x W`` in [0, 1] of RGB ``images`` (gray images pass through)."""
    if images.shape[1] == 1:
        return images
    weights, offset = _LUMA[color_space]
    w = images.new_tensor(weights).view(1, 3, 1, 1)
    return (images * w).sum(dim=1, keepdim=True) + offset


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    """MATLAB ``fspecial('gaussian', size, sigma)``: normalised to unit sum."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    window = torch.outer(g, g)
    return window / window.sum()


# Below any real deviation of 0-255 luma from its 7x7 mean, above float64 rounding (~1e-11).
_MSCN_ZERO = 1e-8


def _mscn(gray: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Mean-subtracted contrast-normalised (MSCN) coefficients of Mittal et al.

    Local mean/deviation with the Gaussian ``window`` and replicate borders (MATLAB ``imfilter``,
    'replicate'); the +1 keeps flat regions from dividing by zero, as in the reference code
    (0-255 scale). The window is a normalised outer product g g^T, so it is applied as two 1-D
    passes (8x faster than a 7x7 float64 convolution on CPU).
    """
    pad = window.shape[-1] // 2
    taps = window.to(gray).sum(dim=1)  # row sums of g g^T with sum(g) = 1 give g
    padded = F.pad(gray, (pad, pad, pad, pad), mode="replicate")
    moments = torch.cat([padded, padded * padded], dim=1)
    moments = F.conv2d(moments, taps.view(1, 1, 1, -1).expand(2, 1, 1, -1), groups=2)
    mu, mu_sq = F.conv2d(moments, taps.view(1, 1, -1, 1).expand(2, 1, -1, 1), groups=2).chunk(2, 1)
    sigma = (mu_sq - mu * mu).abs().sqrt()
    # Flat neighbourhoods (and symmetric cancellations) are exactly zero in exact arithmetic;
    # rounding leaves +-1e-11 whose sign would pick the AGGD side they count on in NIQE, making
    # the score depend on convolution order (CPU vs GPU, batch size). Snap those residues to 0.
    centred = gray - mu
    centred = torch.where(centred.abs() < _MSCN_ZERO, 0.0, centred)
    return centred / (sigma + 1.0)


def _to_blocks(x: torch.Tensor, size: int) -> torch.Tensor:
    """Non-overlapping ``size x size`` blocks of ``B x 1 x H x W`` -> ``B x N x size x size``.

    Partial blocks at the right/bottom are dropped, as in the NIQE reference.
    """
    b, _, h, w = x.shape
    x = x[:, 0, : h // size * size, : w // size * size]
    blocks = x.unfold(1, size, size).unfold(2, size, size)
    return blocks.reshape(b, -1, size, size)


# --------------------------------------------------------------------------------------------
# NIQE
# --------------------------------------------------------------------------------------------

# Block size of the NIQE release (computequality.m: blocksizerow = blocksizecol = 96).
NIQE_BLOCK_SIZE = 96
# Smaller blocks for images under two 96x96 blocks (``NIQE.for_size``), largest first.
NIQE_SMALL_BLOCK_SIZES = (64, 48, 32)


@lru_cache(maxsize=1)
def _niqe_pristine_model() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mu 36, cov 36x36, gaussian_window 7x7)`` from the shipped pristine model (see NOTICE)."""
    resource = importlib.resources.files("unires") / "data" / "niqe_pris_params.npz"
    with resource.open("rb") as handle, np.load(handle) as params:
        return (
            params["mu_pris_param"].reshape(-1).astype(np.float64),
            params["cov_pris_param"].astype(np.float64),
            params["gaussian_window"].astype(np.float64),
        )


@lru_cache(maxsize=1)
def _aggd_ratio_table() -> tuple[torch.Tensor, torch.Tensor]:
    """Shape grid 0.2:0.001:10 of estimateaggdparam.m and r(a) = G(2/a)^2 / (G(1/a) G(3/a))."""
    shapes = torch.arange(0.2, 10.0 + 1e-3, 1e-3, dtype=torch.float64)
    ratios = torch.exp(
        2 * torch.lgamma(2 / shapes) - torch.lgamma(1 / shapes) - torch.lgamma(3 / shapes)
    )
    # r is strictly increasing on the grid, which lets a sorted search replace the argmin.
    assert bool((ratios.diff() > 0).all())
    return shapes, ratios


def _nearest_grid_shape(target: torch.Tensor) -> torch.Tensor:
    """Grid shape whose ratio is nearest to ``target`` (first one on ties, like MATLAB ``min``).

    Where ``target`` is NaN (a block without both signs) MATLAB's ``min`` returns index 1, i.e. the
    first shape 0.2; we keep that so the NaN-aware mean sees the same values as the reference.
    """
    shapes, ratios = _aggd_ratio_table()
    shapes, ratios = shapes.to(target.device), ratios.to(target.device)
    flat = target.reshape(-1).contiguous()
    upper = torch.searchsorted(ratios, flat).clamp(1, len(ratios) - 1)
    lower = upper - 1
    pick_lower = (flat - ratios[lower]).abs() <= (ratios[upper] - flat).abs()
    index = torch.where(pick_lower, lower, upper)
    index = torch.where(flat.isnan(), torch.zeros_like(index), index)
    return shapes[index].reshape(target.shape)


def _fit_aggd(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Moment-matching AGGD fit (Lasmar et al. 2009) over the last dim: ``(alpha, beta_l, beta_r)``.

    Follows estimateaggdparam.m of the NIQE release; empty sides give NaN like MATLAB's mean([]).
    """
    left, right = samples < 0, samples > 0
    sq = samples * samples
    left_std = ((sq * left).sum(-1) / left.sum(-1)).sqrt()
    right_std = ((sq * right).sum(-1) / right.sum(-1)).sqrt()
    gamma_hat = left_std / right_std
    r_hat = samples.abs().mean(-1) ** 2 / sq.mean(-1)
    r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    alpha = _nearest_grid_shape(r_hat_norm)
    scale = torch.exp(0.5 * (torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)))
    return alpha, left_std * scale, right_std * scale


# Neighbour directions of the paired products: horizontal, vertical, main and anti diagonal
# (computefeature.m: shifts [0 1; 1 0; 1 1; -1 1], applied with circshift inside each block).
_PAIR_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _niqe_block_features(blocks: torch.Tensor) -> torch.Tensor:
    """18 NSS features per MSCN block (``B x N x h x w`` -> ``B x N x 18``), computefeature.m."""
    # The coefficients and their four neighbour products are fitted in one batched call.
    products = [blocks * torch.roll(blocks, shifts=shift, dims=(2, 3)) for shift in _PAIR_SHIFTS]
    samples = torch.stack([blocks, *products], dim=2).flatten(3)  # B x N x 5 x h*w
    alpha, beta_l, beta_r = _fit_aggd(samples)
    features = [alpha[..., 0], (beta_l[..., 0] + beta_r[..., 0]) / 2]
    # Mean of the fitted AGGD (BRISQUE, Mittal et al. 2012), as computefeature.m.
    mean = (beta_r - beta_l) * torch.exp(torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha))
    for k in range(1, 1 + len(_PAIR_SHIFTS)):
        features += [alpha[..., k], mean[..., k], beta_l[..., k], beta_r[..., k]]
    return torch.stack(features, dim=-1)


def _matlab_bicubic_halve(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``imresize(x, 0.5)`` (bicubic, antialiased) for even H and W.

    For a factor of 2 every output pixel sits at input position 2i + 0.5 and MATLAB's antialiased
    kernel cubic(0.5 * d) spans 8 taps, so the resize is one separable stride-2 convolution with
    symmetric ("boundary pixel repeated") borders of 3 pixels.
    """

    def keys_cubic(d: torch.Tensor) -> torch.Tensor:
        # Keys (1981) cubic convolution kernel with a = -0.5, as in MATLAB's imresize.
        d = d.abs()
        near = 1.5 * d**3 - 2.5 * d**2 + 1
        far = -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2
        return torch.where(d <= 1, near, torch.where(d <= 2, far, torch.zeros_like(d)))

    offsets = torch.arange(-3, 5, dtype=torch.float64) - 0.5  # taps 2i-3 .. 2i+4 around 2i+0.5
    taps = keys_cubic(0.5 * offsets)
    taps = (taps / taps.sum()).to(x)
    padded = torch.cat([x[..., :3].flip(-1), x, x[..., -3:].flip(-1)], dim=-1)
    padded = torch.cat([padded[..., :3, :].flip(-2), padded, padded[..., -3:, :].flip(-2)], dim=-2)
    out = F.conv2d(padded, taps.view(1, 1, 1, 8), stride=(1, 2))
    return F.conv2d(out, taps.view(1, 1, 8, 1), stride=(2, 1))


def _nan_mean_and_cov(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MATLAB ``nanmean`` (per feature) and ``nancov`` (complete rows) over blocks, per image.

    ``features`` is ``B x N x D``; returns mean ``B x D``, covariance ``B x D x D`` and the count
    of complete rows ``B``.
    """
    nan = features.isnan()
    mean = torch.where(nan, 0.0, features).sum(1) / (~nan).sum(1)
    complete = ~nan.any(-1, keepdim=True)
    count = complete.sum(1).squeeze(-1)
    clean = torch.where(complete, features, 0.0)
    row_mean = clean.sum(1, keepdim=True) / count.clamp_min(1).view(-1, 1, 1)
    centred = torch.where(complete, clean - row_mean, 0.0)
    cov = centred.transpose(1, 2) @ centred / (count - 1).clamp_min(1).view(-1, 1, 1)
    return mean, cov, count


class NIQE(QualityMetric):
    """Natural Image Quality Evaluator (Mittal et al., IEEE SPL 2013); lower is better.

    Matches pyiqa's ``niqe`` / basicsr / the MATLAB release: luma rounded to 0-255 (YIQ's Y as
    pyiqa, or ``color_space="ycbcr"`` for basicsr's BT.601 Y), 96x96 blocks, two scales (the
    second by MATLAB bicubic halving), 36 features per block, a Gaussian fitted to the blocks,
    and the Eq. 10 distance to the pristine model shipped in ``unires/data``.
    Images smaller than 96 x 192 (two blocks) are rejected. Where fewer than two blocks are
    textured the reference gives NaN; this returns ``inf`` so a maximiser never picks such an image.
    """

    name = "niqe"
    higher_is_better = False

    def __init__(
        self, crop_border: int = 0, color_space: str = "yiq", block_size: int = NIQE_BLOCK_SIZE
    ) -> None:
        if block_size % 2:
            raise ValueError("NIQE needs an even block size (the second scale halves it)")
        if color_space not in _LUMA:
            raise ValueError(f"unknown color space {color_space!r}; use one of {sorted(_LUMA)}")
        self.crop_border = crop_border
        self.color_space = color_space
        self.block_size = block_size

    def fits(self, height: int, width: int, block_size: int | None = None) -> bool:
        """Whether an image of ``height x width`` holds the two blocks NIQE needs."""
        size = block_size or self.block_size
        h, w = height - 2 * self.crop_border, width - 2 * self.crop_border
        return (h // size) * (w // size) >= 2

    def for_size(self, height: int, width: int) -> tuple[NIQE, str | None]:
        """This NIQE, or one with smaller blocks for an image too small for two of them
        (``fit_to_size``), with a one-line note saying so.

        Raises:
            ValueError: the image is too small even for the smallest blocks.
        """
        if self.fits(height, width):
            return self, None
        for size in NIQE_SMALL_BLOCK_SIZES:
            if size < self.block_size and self.fits(height, width, size):
                note = (
                    f"{width}x{height} px is under NIQE's two {self.block_size}x"
                    f"{self.block_size} blocks: NIQE scored with {size}x{size} blocks"
                )
                return NIQE(self.crop_border, self.color_space, size), note
        raise ValueError(
            f"{width}x{height} px is too small for NIQE (two {NIQE_SMALL_BLOCK_SIZES[-1]}x"
            f"{NIQE_SMALL_BLOCK_SIZES[-1]} blocks at least)"
        )

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """NIQE per image of (B, 3, H, W) in [0, 1]: (B,) float32, lower is better.

        Raises:
            ValueError: fewer than two blocks fit in the image (see ``for_size``).
        """
        images = _check_images(images)
        if self.crop_border:
            c = self.crop_border
            images = images[..., c:-c, c:-c]
        h, w = images.shape[-2:]
        n_blocks = (h // self.block_size) * (w // self.block_size)
        if n_blocks < 2:
            raise ValueError(
                f"NIQE needs at least two {self.block_size}x{self.block_size} blocks, "
                f"got an image of {h}x{w}"
            )
        mu_pris, cov_pris, window = (torch.from_numpy(a).to(images) for a in _niqe_pristine_model())

        # The reference scores integer luma on 0-255 (MATLAB reads uint8 and rgb2gray's it).
        gray = torch.round(_luma(images, self.color_space) * 255.0)
        size = self.block_size
        gray = gray[..., : h // size * size, : w // size * size]
        fine = _niqe_block_features(_to_blocks(_mscn(gray, window), size))
        # Second scale: half resolution, half-size blocks, so both scales share the block grid.
        coarse_gray = _matlab_bicubic_halve(gray)
        coarse = _niqe_block_features(_to_blocks(_mscn(coarse_gray, window), size // 2))
        mu_dist, cov_dist, complete_rows = _nan_mean_and_cov(torch.cat([fine, coarse], dim=-1))

        # Eq. 10: distance between the pristine and the image's multivariate Gaussians.
        diff = (mu_pris - mu_dist).unsqueeze(-1)
        inv_cov = torch.linalg.pinv((cov_pris + cov_dist) / 2)
        distance = (diff.transpose(1, 2) @ inv_cov @ diff).reshape(-1).clamp_min(0).sqrt()
        return torch.where(complete_rows >= 2, distance, math.inf).to(torch.float32)


# --------------------------------------------------------------------------------------------
# PIQE
# --------------------------------------------------------------------------------------------

# Constants of the PIQE paper / MATLAB piqe.m: 16x16 blocks, activity threshold T_A = 0.1,
# edge-segment threshold 0.1, segments of 6 pixels, pooling constant C = 1.
PIQE_BLOCK_SIZE = 16
_PIQE_ACTIVITY_THRESHOLD = 0.1
_PIQE_SEGMENT_THRESHOLD = 0.1
_PIQE_SEGMENT_LENGTH = 6
_PIQE_POOLING_CONSTANT = 1.0


def _edge_has_flat_segment(edges: torch.Tensor) -> torch.Tensor:
    """Any 6-pixel segment of a block edge (``... x 16``) with std below the threshold."""
    segments = edges.unfold(-1, _PIQE_SEGMENT_LENGTH, 1)
    return (segments.std(-1) < _PIQE_SEGMENT_THRESHOLD).any(-1)


def _centre_surround_deviation(blocks: torch.Tensor) -> torch.Tensor:
    """Std of the two centre columns over std of the surround, NaN -> 0 (noise criterion).

    The surround keeps column 9 and drops 8 and 10 (1-based): the ports of MATLAB's piqe.m that we
    checked (pypiqe, pyiqa) delete the second centre column after the first deletion has shifted
    the indices. We follow them so scores stay comparable.
    """
    n = blocks.shape[-1]
    first = n // 2 - 1  # columns 8 and 9 (1-based) for 16x16 blocks
    centre = blocks[..., first : first + 2].flatten(-2)
    keep = [c for c in range(n) if c not in (first, first + 2)]
    surround = blocks[..., keep].flatten(-2)
    return torch.nan_to_num(centre.std(-1) / surround.std(-1), nan=0.0)


class PIQE(QualityMetric):
    """Perception-based Image Quality Evaluator (Venkatanath et al., NCC 2015); lower is better.

    Scores lie in [0, 100]. Own vectorised implementation of MATLAB's ``piqe``: luma rescaled to
    0-255 by its maximum, symmetric padding to a multiple of 16, MSCN with the 7x7 Gaussian
    (sigma 7/6), then block activity, noticeable-distortion and noise criteria pooled per image.
    """

    name = "piqe"
    higher_is_better = False

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """PIQE per image of (B, 3, H, W) in [0, 1]: (B,) float32 in [0, 100], lower is better.

        Raises:
            ValueError: not a B x 3 x H x W batch.
        """
        images = _check_images(images)
        gray = _luma(images)
        peak = gray.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
        gray = torch.round(255.0 * gray / peak)

        n = PIQE_BLOCK_SIZE
        pad_h, pad_w = -gray.shape[-2] % n, -gray.shape[-1] % n
        gray = _symmetric_pad(gray, pad_h, pad_w)
        blocks = _to_blocks(_mscn(gray, _gaussian_window(7, 7 / 6)), n)

        variance = blocks.flatten(2).var(-1)
        active = variance > _PIQE_ACTIVITY_THRESHOLD
        impaired = (
            _edge_has_flat_segment(blocks[..., 0, :])
            | _edge_has_flat_segment(blocks[..., :, -1])
            | _edge_has_flat_segment(blocks[..., -1, :])
            | _edge_has_flat_segment(blocks[..., :, 0])
        )
        sigma = variance.sqrt()
        centre_surround = _centre_surround_deviation(blocks)
        beta = (sigma - centre_surround).abs() / torch.maximum(sigma, centre_surround)
        noisy = sigma > 2 * beta

        # Distortion of the active blocks, pooled with C against their count (piqe.m).
        distortion = impaired * (1 - variance) + noisy * variance
        total = (distortion * active).sum(-1)
        n_active = active.sum(-1)
        c = _PIQE_POOLING_CONSTANT
        return ((total + c) / (n_active + c) * 100.0).to(torch.float32)


def _symmetric_pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Pad bottom/right by mirroring with the edge pixel repeated (MATLAB/numpy 'symmetric')."""
    if pad_w:
        x = torch.cat([x, x[..., -pad_w:].flip(-1)], dim=-1)
    if pad_h:
        x = torch.cat([x, x[..., -pad_h:, :].flip(-2)], dim=-2)
    return x


# --------------------------------------------------------------------------------------------
# Learned metrics through the optional pyiqa package
# --------------------------------------------------------------------------------------------

# Display names for error messages; pyiqa's own metric names are the keys.
_PYIQA_METRICS = {"musiq": "MUSIQ", "clipiqa": "CLIP-IQA", "maniqa": "MANIQA"}


class PyIQAMetric(QualityMetric):
    """A learned metric from ``pyiqa`` ("musiq", "clipiqa", "maniqa"); higher is better.

    pyiqa is PolyForm-Noncommercial and pulls torchvision, so it is only an optional extra
    (``unires[iqa]``), imported here and nowhere else. A missing package or missing weights
    raise ``ImportError`` with a one-line install hint.
    """

    def __init__(self, name: str, device: str | torch.device = "cpu") -> None:
        if name not in _PYIQA_METRICS:
            raise ValueError(f"unknown pyiqa metric {name!r}; choose from {sorted(_PYIQA_METRICS)}")
        hint = (
            f"{_PYIQA_METRICS[name]} needs the optional pyiqa package and its weights: "
            "pip install 'unires[iqa]' on a machine that can download them"
        )
        try:
            import pyiqa
        except ImportError as err:
            raise ImportError(hint) from err
        try:
            self._metric = pyiqa.create_metric(name, device=torch.device(device), as_loss=False)
        except Exception as err:  # missing weights surface as download/IO errors of many kinds
            # Same one-line hint and type as a missing package; the cause stays chained.
            raise ImportError(f"{hint} ({type(err).__name__})") from err
        self.name = name
        self.higher_is_better = not bool(getattr(self._metric, "lower_better", False))
        self._device = torch.device(device)

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """The pyiqa metric per image of (B, 3, H, W) in [0, 1]: (B,) float32 on the images' device.

        Raises:
            ValueError: not a B x 3 x H x W batch.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape B x 3 x H x W, got {tuple(images.shape)}")
        with torch.no_grad():
            scores = self._metric(images.detach().float().clamp(0, 1).to(self._device))
        return scores.reshape(-1).float().to(images.device)


# --------------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------------

METRIC_NAMES = ("niqe", "piqe", "musiq", "clipiqa", "maniqa")
_DISPLAY_NAMES = {"niqe": "NIQE", "piqe": "PIQE", **_PYIQA_METRICS}
_LOWER_IS_BETTER = ("niqe", "piqe")


def get_metric(name: str = "niqe", device: str | torch.device = "cpu") -> QualityMetric:
    """The no-reference metric called ``name`` (one of ``METRIC_NAMES``); default NIQE.

    ``device`` only matters for the pyiqa metrics; NIQE and PIQE run where the images are.

    Raises:
        ValueError: an unknown name.
        ImportError: a pyiqa metric without the ``iqa`` extra (or its weights).
    """
    key = name.lower()
    if key == "niqe":
        return NIQE()
    if key == "piqe":
        return PIQE()
    if key in _PYIQA_METRICS:
        return PyIQAMetric(key, device=device)
    raise ValueError(f"unknown quality metric {name!r}; choose from {', '.join(METRIC_NAMES)}")
