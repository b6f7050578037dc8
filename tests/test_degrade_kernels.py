"""Blur kernels: normalisation, sign, size and extent; filtering with per-sample kernels."""

from __future__ import annotations

import math

import pytest
import torch

from unires.degrade import rng
from unires.degrade.defocus import disk_kernel, polygon_kernel
from unires.degrade.kernels import (
    KernelConfig,
    filter2d,
    gaussian_kernel,
    generalized_gaussian_kernel,
    plateau_kernel,
    random_blur_kernel,
    sinc_kernel,
)
from unires.degrade.shake import ShakeConfig, random_shake_kernel


def _support_reach(k: torch.Tensor, eps: float = 1e-6) -> float:
    """Largest |dx| or |dy| (pixels) from the kernel centre over its support."""
    c = (k.shape[-1] - 1) / 2
    ys, xs = torch.nonzero(k > eps, as_tuple=True)
    return float(torch.maximum((ys - c).abs(), (xs - c).abs()).max())


@pytest.mark.parametrize(
    "kernel",
    [
        gaussian_kernel(21, 2.0, 2.0),
        gaussian_kernel(21, 3.0, 0.5, 0.7),
        generalized_gaussian_kernel(15, 1.5, 2.5, -1.0, 0.5),
        generalized_gaussian_kernel(15, 1.5, 2.5, 1.0, 4.0),
        plateau_kernel(21, 2.0, 1.0, 0.3, 1.0),
        plateau_kernel(21, 2.0, 1.0, 0.3, 2.0),
        disk_kernel(4.3),
        polygon_kernel(6.0, 6, 0.2),
    ],
)
def test_kernels_are_non_negative_and_sum_to_one(kernel):
    assert kernel.dtype == torch.float32
    assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    assert float(kernel.min()) >= 0
    assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-5)


def test_sinc_sums_to_one_and_rings():
    k = sinc_kernel(21, math.pi / 4)
    assert float(k.sum()) == pytest.approx(1.0, abs=1e-5)
    assert float(k.min()) < 0  # the negative lobes that make ringing


def test_gaussian_kernel_has_its_sigma():
    k = gaussian_kernel(41, 3.0, 1.5, 0.0).double()
    r = torch.arange(41, dtype=torch.float64) - 20
    var_x = float((k.sum(0) * r**2).sum())
    var_y = float((k.sum(1) * r**2).sum())
    assert var_x == pytest.approx(9.0, rel=0.02)
    assert var_y == pytest.approx(2.25, rel=0.02)


def test_random_blur_kernel_sizes_follow_the_config():
    cfg = KernelConfig(blur_kernel_size=15, min_kernel_size=9, sinc_prob=0.3)
    gen = torch.Generator().manual_seed(0)
    sizes, kinds = set(), set()
    for _ in range(200):
        k, p = random_blur_kernel(gen, cfg)
        assert k.shape == (15, 15)  # padded so a batch's kernels stack
        assert 9 <= p["size"] <= 15 and p["size"] % 2 == 1
        assert _support_reach(k, 0) <= p["size"] // 2
        assert float(k.sum()) == pytest.approx(1.0, abs=1e-5)
        if p["kernel"] != "sinc":
            assert float(k.min()) >= 0
        sizes.add(p["size"])
        kinds.add(p["kernel"])
    assert sizes == {9, 11, 13, 15}
    assert "sinc" in kinds and "iso" in kinds and "aniso" in kinds


def test_shake_kernels_stay_within_requested_size_and_reach():
    cfg = ShakeConfig(size_range=(9, 25), intensity_range=(0.3, 1.0))
    gen = torch.Generator().manual_seed(1)
    for _ in range(40):
        k, p = random_shake_kernel(gen, cfg)
        assert 9 <= p["size"] <= 25 and k.shape == (p["size"],) * 2
        assert float(k.min()) >= 0 and float(k.sum()) == pytest.approx(1.0, abs=1e-5)
        # The path reaches intensity * (size - 3) / 2 from its centroid along the longer
        # axis; bilinear splatting adds at most one pixel.
        target = p["intensity"] * (p["size"] - 3) / 2
        reach = _support_reach(k)
        assert target - 1 <= reach <= target + 1
        assert reach <= p["size"] // 2 - 0.5  # never touches the border


def test_shake_kernel_by_extent_and_its_centroid_is_centred():
    gen = torch.Generator().manual_seed(2)
    for extent in (4.0, 12.0, 30.0):
        k, p = random_shake_kernel(gen, extent=extent)
        assert p["size"] % 2 == 1 and p["size"] <= extent + 5
        assert _support_reach(k) == pytest.approx(extent / 2, abs=1.5)
        r = torch.arange(p["size"], dtype=torch.float32) - (p["size"] - 1) / 2
        # Centred on the centroid: the blurred image is not shifted against the sharp one.
        assert float((k.sum(0) * r).sum()) == pytest.approx(0, abs=0.05)
        assert float((k.sum(1) * r).sum()) == pytest.approx(0, abs=0.05)


def test_shake_kernels_are_not_all_alike():
    gen = torch.Generator().manual_seed(3)
    a, _ = random_shake_kernel(gen, size=21)
    b, _ = random_shake_kernel(gen, size=21)
    assert not torch.allclose(a, b)
    # A motion path is thin: far fewer pixels than the disk of the same reach.
    assert int((a > 1e-3).sum()) < 0.5 * math.pi * _support_reach(a) ** 2 + 10


def test_defocus_kernels_have_the_aperture_radius():
    for radius in (1.5, 3.0, 7.2):
        k = disk_kernel(radius)
        assert _support_reach(k) == pytest.approx(radius, abs=1.0)
        # Area of the support ~ pi r^2 (anti-aliased edge pixels count partly).
        area = float((k / k.max()).sum())
        assert area == pytest.approx(math.pi * radius**2, rel=0.08)
    hexagon = polygon_kernel(8.0, 6, 0.0)
    assert float((hexagon / hexagon.max()).sum()) == pytest.approx(
        1.5 * math.sqrt(3) * 64, rel=0.05
    )


def test_filter2d_fft_and_direct_paths_agree():
    gen = torch.Generator().manual_seed(4)
    img = torch.rand(2, 3, 40, 36, generator=gen)
    k_small = torch.stack([gaussian_kernel(15, 2.0, 1.0, 0.5), gaussian_kernel(15, 1.0, 1.0)])
    big = torch.zeros(2, 17, 17)
    big[:, 1:16, 1:16] = k_small  # same kernels, but 17 wide: goes through the FFT
    direct = filter2d(img, k_small)
    via_fft = filter2d(img, big)
    assert torch.allclose(direct, via_fft, atol=1e-5)
    # Asymmetric kernel: correlation orientation must match too.
    shifted = torch.zeros(17, 17)
    shifted[8, 10] = 1.0
    out = filter2d(img, shifted)
    assert torch.allclose(out[..., :, :-3], img[..., :, 2:-1], atol=1e-5)


def test_odd_size_draws_odd_numbers_in_range():
    gen = torch.Generator().manual_seed(5)
    draws = {rng.odd_size(gen, 7, 21) for _ in range(300)}
    assert draws == {7, 9, 11, 13, 15, 17, 19, 21}
