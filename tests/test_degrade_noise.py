"""Noise models against their predicted statistics, and JPEG quality against PSNR."""

from __future__ import annotations

import math

import pytest
import torch

from unires.data.procedural import procedural_photo
from unires.degrade.jpeg import jpeg_compress, random_jpeg
from unires.degrade.noise import (
    DenoiseNoiseConfig,
    SensorNoiseConfig,
    correlate_noise,
    gaussian_noise,
    inverse_smoothstep_tone,
    linear_to_srgb,
    poisson_gaussian_noise,
    poisson_gaussian_variance,
    poisson_noise,
    random_denoise_noise,
    random_sensor_noise,
    smoothstep_tone,
    srgb_to_linear,
)


@pytest.mark.parametrize(("shot", "read"), [(0.01, 1e-4), (0.002, 1e-5), (1e-4, 4e-4)])
def test_poisson_gaussian_variance_matches_the_model(shot, read):
    gen = torch.Generator().manual_seed(0)
    levels = torch.tensor([0.02, 0.1, 0.3, 0.6, 0.9]).view(5, 1, 1, 1)
    clean = levels.expand(5, 3, 64, 64).contiguous()  # 12288 samples per level
    noisy = poisson_gaussian_noise(clean, gen, shot, read)
    measured = noisy.var(dim=(1, 2, 3))
    predicted = poisson_gaussian_variance(levels.flatten(), shot, read)
    # Sample variance's relative standard error is sqrt(2 / n) ~ 1.3%: 6% is > 4 sigma.
    assert torch.allclose(measured, predicted, rtol=0.06), (measured, predicted)
    assert torch.allclose(noisy.mean(dim=(1, 2, 3)), levels.flatten(), atol=4e-3)


def test_gaussian_noise_has_its_sigma_and_grey_noise_is_shared():
    gen = torch.Generator().manual_seed(1)
    img = torch.full((1, 3, 96, 96), 0.5)
    colour = gaussian_noise(img, gen, 20 / 255) - img
    assert float(colour.std()) == pytest.approx(20 / 255, rel=0.03)
    grey = gaussian_noise(img, gen, 20 / 255, grey=True) - img
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    assert not torch.equal(colour[:, 0], colour[:, 1])


def test_realesrgan_poisson_noise_grows_with_scale():
    gen = torch.Generator().manual_seed(2)
    img = procedural_photo(0, 64, 64)[None]
    weak = (poisson_noise(img, gen, 0.1) - img).std()
    strong = (poisson_noise(img, gen, 2.0) - img).std()
    assert float(strong) == pytest.approx(20 * float(weak), rel=0.15)


def test_tone_curves_invert():
    x = torch.linspace(0, 1, 101)
    assert torch.allclose(smoothstep_tone(inverse_smoothstep_tone(x)), x, atol=1e-5)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)


def test_sensor_noise_follows_the_model_in_linear_light():
    # Flat patches: measured in linear light, the variance is shot * x + read (photon noise
    # grows with the signal), though the output is a display-referred sRGB image.
    shot = 0.004
    cfg = SensorNoiseConfig(shot_range=(shot, shot), read_log_std=0.0, tone_curve_prob=0.0)
    gen = torch.Generator().manual_seed(3)
    img = torch.cat([torch.full((1, 3, 64, 64), v) for v in (0.35, 0.6, 0.85)])
    out, params = random_sensor_noise(img, gen, cfg)
    assert out.shape == img.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    read = params[0]["read"]
    assert read == pytest.approx(math.exp(2.18 * math.log(shot) + 1.2))
    lin_in, lin_out = srgb_to_linear(img), srgb_to_linear(out)
    measured = (lin_out - lin_in).var(dim=(1, 2, 3))
    predicted = poisson_gaussian_variance(lin_in[:, 0, 0, 0], shot, read)
    assert torch.allclose(measured, predicted, rtol=0.08), (measured, predicted)
    assert measured[2] > 2 * measured[0]


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


def test_lower_jpeg_quality_gives_lower_psnr():
    img = procedural_photo(4, 64, 64)[None]
    psnrs = [_psnr(jpeg_compress(img, q), img) for q in (10, 30, 60, 95)]
    assert psnrs == sorted(psnrs), psnrs
    assert psnrs[-1] - psnrs[0] > 6


def test_jpeg_is_deterministic_and_draws_per_sample_qualities():
    img = torch.stack([procedural_photo(5, 32, 32), procedural_photo(6, 32, 32)])
    a, pa = random_jpeg(img, torch.Generator().manual_seed(7))
    b, pb = random_jpeg(img, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and pa == pb
    assert all(30 <= p["jpeg_quality"] <= 95 for p in pa)
    assert torch.equal(a * 255, (a * 255).round())  # decoded 8-bit values
    assert math.isfinite(_psnr(a, img))


@pytest.mark.parametrize(("sigma_px", "lag1_expected"), [(0.5, 0.26), (0.6, 0.45), (0.8, 0.67)])
def test_correlated_noise_keeps_its_std_and_has_the_stated_correlation(sigma_px, lag1_expected):
    white = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(4))
    out = correlate_noise(white, sigma_px)
    assert float(out.std()) == pytest.approx(float(white.std()), rel=0.05)
    lag1 = float((out[..., :, 1:] * out[..., :, :-1]).mean() / out.var())
    assert lag1 == pytest.approx(lag1_expected, abs=0.04)
    assert torch.equal(correlate_noise(white, 0.0), white)


def _gaussian_only(**kw) -> DenoiseNoiseConfig:
    return DenoiseNoiseConfig(gaussian_prob=1.0, correlated_prob=0.0, **kw)


def test_denoise_noise_grey_and_colour():
    img = torch.full((2, 3, 48, 48), 0.5)
    grey, params = random_denoise_noise(
        img, torch.Generator().manual_seed(5), _gaussian_only(grey_prob=1.0)
    )
    d = grey - img
    assert all(p["grey"] for p in params)
    assert torch.equal(d[:, 0], d[:, 1]) and torch.equal(d[:, 1], d[:, 2])
    colour, params = random_denoise_noise(
        img, torch.Generator().manual_seed(5), _gaussian_only(grey_prob=0.0)
    )
    d = colour - img
    assert not any(p["grey"] for p in params) and not torch.equal(d[:, 0], d[:, 1])
    # Independent per channel: the channels' noise is uncorrelated.
    assert abs(float(torch.corrcoef(d[0].flatten(1))[0, 1])) < 0.05


@pytest.mark.parametrize("sigma", [1.0, 25.0, 50.0])
def test_denoise_noise_sigma_is_in_0_255_units(sigma):
    img = torch.full((1, 3, 96, 96), 0.5)
    cfg = _gaussian_only(gaussian_sigma_range=(sigma, sigma), grey_prob=0.0)
    out, (p,) = random_denoise_noise(img, torch.Generator().manual_seed(6), cfg)
    assert p["sigma_255"] == sigma and p["correlation_px"] == 0.0
    assert float((out - img).std() * 255) == pytest.approx(sigma, rel=0.05)
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_denoise_noise_is_a_function_of_the_generator():
    img = procedural_photo(3, 48, 48)[None].repeat(6, 1, 1, 1)
    a, pa = random_denoise_noise(img, torch.Generator().manual_seed(7))
    b, pb = random_denoise_noise(img, torch.Generator().manual_seed(7))
    c, _ = random_denoise_noise(img, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and pa == pb and not torch.equal(a, c)
    # Sensor samples keep the sensor model's parameters; correlated ones say by how much.
    cfg = DenoiseNoiseConfig(gaussian_prob=0.0, correlated_prob=1.0)
    out, params = random_denoise_noise(img, torch.Generator().manual_seed(9), cfg)
    assert all(p["noise"] == "sensor" and 0.5 <= p["correlation_px"] <= 0.8 for p in params)
    assert float(out.min()) >= 0 and float(out.max()) <= 1 and not torch.equal(out, img)
