"""Full-reference metrics: PSNR on a constructed pair, SSIM against scikit-image, MS-SSIM."""

import math

import numpy as np
import pytest
import torch
from skimage import data
from skimage.color import rgb2ycbcr
from skimage.metrics import structural_similarity

from unires.metrics import ms_ssim, psnr, ssim


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float()


def _noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noisy = image + np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(noisy, 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    # Not square, not a multiple of the window: exercises the valid-region bookkeeping.
    return (data.astronaut()[40:290, 100:323] / 255.0).astype(np.float32)


def _skimage_ssim(a: np.ndarray, b: np.ndarray, **kwargs) -> float:
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, **kwargs
    )


def test_psnr_of_constructed_pair_is_20_db():
    a = torch.full((2, 3, 32, 48), 0.5)
    b = a.clone()
    b[0] += 0.1  # MSE 0.01 everywhere
    b[1, :, :16, :24] += 0.2  # MSE 0.04 on a quarter of the pixels: 0.01 as well
    assert psnr(a, b).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)
    assert psnr(a * 255, b * 255, data_range=255.0).tolist() == pytest.approx(
        [20.0, 20.0], abs=1e-4
    )


def test_psnr_identical_is_inf_and_crop_border_drops_edges():
    a = torch.rand(1, 3, 20, 20)
    b = a.clone()
    b[..., :2, :] = 0.0
    assert psnr(a, a).item() == math.inf
    assert psnr(a, b).item() < 40
    assert psnr(a, b, crop_border=2).item() == math.inf


@pytest.mark.parametrize("sigma", [0.01, 0.05, 0.2])
def test_ssim_matches_skimage_on_rgb(crop, sigma):
    noisy = _noisy(crop, sigma)
    expected = _skimage_ssim(crop, noisy, channel_axis=-1)
    assert ssim(_to_tensor(crop), _to_tensor(noisy)).item() == pytest.approx(expected, abs=1e-4)


def test_ssim_matches_skimage_on_y_channel(crop):
    noisy = _noisy(crop, 0.05)
    # skimage's rgb2ycbcr is the same BT.601 conversion, with Y in [16, 235].
    expected = _skimage_ssim(rgb2ycbcr(crop)[..., 0] / 255, rgb2ycbcr(noisy)[..., 0] / 255)
    got = ssim(_to_tensor(crop), _to_tensor(noisy), y_channel=True).item()
    assert got == pytest.approx(expected, abs=1e-4)


def test_ssim_and_psnr_do_not_depend_on_the_value_scale(crop):
    a, b = _to_tensor(crop), _to_tensor(_noisy(crop, 0.05))
    for y_channel in (False, True):
        unit = ssim(a, b, y_channel=y_channel).item()
        scaled = ssim(a * 255, b * 255, data_range=255.0, y_channel=y_channel).item()
        assert scaled == pytest.approx(unit, abs=1e-5)
        unit_psnr = psnr(a, b, y_channel=y_channel).item()
        assert psnr(a * 255, b * 255, 255.0, y_channel=y_channel).item() == pytest.approx(unit_psnr)


def test_ssim_is_batched_and_one_for_identical_images(crop):
    a = _to_tensor(crop).repeat(3, 1, 1, 1)
    b = torch.cat([_to_tensor(crop), _to_tensor(_noisy(crop, 0.05)), _to_tensor(_noisy(crop, 0.2))])
    batched = ssim(a, b)
    assert batched.shape == (3,)
    assert batched[0].item() == pytest.approx(1.0, abs=1e-6)
    singles = [ssim(a[i : i + 1], b[i : i + 1]).item() for i in range(3)]
    assert batched.tolist() == pytest.approx(singles, abs=1e-6)
    assert batched[0] > batched[1] > batched[2]


def test_ms_ssim_is_one_for_identical_images_and_decreases_with_noise(crop):
    clean = _to_tensor(crop)
    assert ms_ssim(clean, clean).item() == pytest.approx(1.0, abs=1e-6)
    noisy = torch.cat([_to_tensor(_noisy(crop, s)) for s in (0.02, 0.05, 0.1)])
    scores = ms_ssim(clean.expand_as(noisy), noisy)
    assert scores[0] > scores[1] > scores[2] > 0
    # Coarse scales forgive pixel noise: MS-SSIM sits above single-scale SSIM.
    assert bool((scores > ssim(clean.expand_as(noisy), noisy)).all())


def test_ms_ssim_rejects_images_too_small_for_five_scales():
    with pytest.raises(ValueError, match="at least 161x161"):
        ms_ssim(torch.rand(1, 3, 160, 200), torch.rand(1, 3, 160, 200))
