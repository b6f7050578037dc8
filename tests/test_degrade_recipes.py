"""Recipes end to end: sizes, determinism, parameters, per-object blur, published defaults."""

from __future__ import annotations

import json

import pytest
import torch

from unires.config import from_dict, to_dict
from unires.data.procedural import procedural_photo
from unires.degrade.kernels import filter2d, identity_kernel
from unires.degrade.objects import OIDMotionConfig, blur_per_object, oid_motion_with_masks
from unires.degrade.realesrgan import RealESRGANConfig, realesrgan_degrade
from unires.degrade.recipes import (
    RECIPES,
    TASK_RECIPES,
    DegradationConfig,
    degrade_for_task,
    run_recipe,
    sr_realesrgan,
)
from unires.degrade.shake import random_shake_kernel

HQ = procedural_photo(0, 64, 64)[None]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_sizes_range_params_and_determinism(name):
    lq, params = run_recipe(name, HQ, 11)
    assert lq.shape == HQ.shape and lq.dtype == torch.float32
    assert float(lq.min()) >= 0 and float(lq.max()) <= 1
    json.dumps(params)  # every drawn parameter is JSON-serialisable
    assert len(params) == 1
    small, _ = run_recipe(name, HQ, 11, scale=4)
    assert small.shape == (1, 3, 16, 16)
    again, params_again = run_recipe(name, HQ, 11)
    assert torch.equal(lq, again) and params == params_again
    others = [run_recipe(name, HQ, seed)[0] for seed in (12, 13, 14)]
    if name == "sr":  # plain bicubic downscaling draws nothing
        assert all(torch.equal(lq, o) for o in others)
    else:
        assert all(not torch.equal(lq, o) for o in others)


@pytest.mark.parametrize("task", sorted(TASK_RECIPES))
def test_training_tasks_keep_the_hq_size(task):
    hq = torch.stack([procedural_photo(1, 48, 40), procedural_photo(2, 48, 40)])
    lq, params = degrade_for_task(task, hq, 5)
    assert lq.shape == hq.shape  # UniRes concatenates LQ and noisy latents: same size
    assert [p["task"] for p in params] == [task, task]
    assert not torch.equal(lq[0], lq[1])
    # The degradation is not a no-op on average.
    assert float((lq - hq).abs().mean()) > 1e-3


def test_sr_task_loses_resolution():
    hq = procedural_photo(3, 64, 64)[None]
    lq, params = degrade_for_task("sr", hq, 0)
    assert params[0]["recipe"] == "realesrgan" and params[0]["scale"] == 4

    def high_freq(x):
        return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean())

    assert high_freq(lq) < 0.8 * high_freq(hq)


def test_sr_task_mixes_in_plain_bicubic_inputs_on_request():
    hq = torch.stack([procedural_photo(i, 48, 48) for i in range(8)])
    paper, _ = degrade_for_task("sr", hq, 4)
    assert torch.equal(paper, sr_realesrgan(hq, torch.Generator().manual_seed(4))[0])
    bicubic, _ = run_recipe("sr", hq, 0)
    only_bicubic, params = degrade_for_task("sr", hq, 4, DegradationConfig(sr_bicubic_prob=1.0))
    assert torch.equal(only_bicubic, bicubic)
    assert {p["recipe"] for p in params} == {"sr"} and {p["task"] for p in params} == {"sr"}
    mixed, params = degrade_for_task("sr", hq, 4, DegradationConfig(sr_bicubic_prob=0.5))
    kinds = [p["recipe"] for p in params]
    assert set(kinds) == {"sr", "realesrgan"}
    for i, kind in enumerate(kinds):  # each sample is either a clean bicubic or a realesrgan one
        assert torch.equal(mixed[i], bicubic[i]) == (kind == "sr")


def test_realesrgan_defaults_are_the_published_ones():
    c = RealESRGANConfig()
    assert c.resize1.resize_prob == (0.2, 0.7, 0.1) and c.resize1.resize_range == (0.15, 1.5)
    assert c.noise1.gaussian_noise_prob == 0.5 and c.noise1.noise_range == (1, 30)
    assert c.noise1.poisson_scale_range == (0.05, 3) and c.noise1.gray_noise_prob == 0.4
    assert c.jpeg_range == (30, 95) and c.jpeg_range2 == (30, 95)
    assert c.second_blur_prob == 0.8 and c.final_sinc_prob == 0.8
    assert c.resize2.resize_prob == (0.3, 0.4, 0.3) and c.resize2.resize_range == (0.3, 1.2)
    assert c.noise2.noise_range == (1, 25) and c.noise2.poisson_scale_range == (0.05, 2.5)
    assert c.kernel1.kernel_prob == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    assert c.kernel1.blur_sigma == (0.2, 3) and c.kernel2.blur_sigma == (0.2, 1.5)
    assert c.kernel1.betag_range == (0.5, 4) and c.kernel1.betap_range == (1, 2)
    assert c.kernel1.sinc_prob == 0.1 and c.kernel2.sinc_prob == 0.1
    assert c.kernel1.blur_kernel_size == 21 and c.kernel1.min_kernel_size == 7


def test_realesrgan_batch_draws_per_sample():
    hq = torch.stack([procedural_photo(i, 48, 48) for i in range(3)])
    lq, params = realesrgan_degrade(hq, torch.Generator().manual_seed(0))
    assert lq.shape == (3, 3, 12, 12) and len(params) == 3
    assert len({json.dumps(p, sort_keys=True) for p in params}) == 3


def test_config_round_trips_through_a_mapping():
    cfg = DegradationConfig()
    data = to_dict(cfg)
    data["realesrgan"]["noise1"]["noise_range"] = [2, 10]
    back = from_dict(DegradationConfig, data)
    assert back.realesrgan.noise1.noise_range == (2.0, 10.0)
    assert back.shake == cfg.shake


def _texture(seed: int, size: int) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_per_object_blur_differs_inside_and_outside_the_region():
    img = _texture(0, 64)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1.0
    kernel, _ = random_shake_kernel(torch.Generator().manual_seed(1), extent=12.0)
    out = blur_per_object(img, [mask], [kernel], identity_kernel(1))
    change = (out - img).abs().mean(1)[0]
    inside = float(change[24:40, 24:40].mean())
    outside = float(change[:8].mean() + change[-8:].mean()) / 2
    assert outside < 1e-6  # the background's kernel is the identity
    assert inside > 0.1  # uniform noise blurred over 12 px loses most of its contrast
    # And the object's own kernel acts there: same as blurring the whole image.
    whole = filter2d(img, kernel)
    assert torch.allclose(out[..., 28:36, 28:36], whole[..., 28:36, 28:36], atol=1e-5)


def test_oid_motion_recipe_blurs_objects_more_than_the_background():
    cfg = OIDMotionConfig(
        severity_range=(1.0, 1.0),
        background_shake_prob=0.0,
        lens_sigma_max=0.0,
        shot_max=0.0,
        read_std_max=0.0,
        jpeg_prob=0.0,
        object_blur_px=(16.0, 16.0),
    )
    img = _texture(2, 96)
    for seed in range(3):
        out, params, masks = oid_motion_with_masks(img, torch.Generator().manual_seed(seed), cfg)
        cover = torch.stack(masks).amax(0)[0, 0]
        change = (out - img).abs().mean(1)[0]
        if (cover > 0.99).sum() < 20 or (cover < 1e-3).sum() < 20:
            continue
        assert float(change[cover > 0.99].mean()) > 0.05
        assert float(change[cover < 1e-3].mean()) < 0.02
        assert params["blur"]["background_kernel"] == {"kernel": "none"}
        assert all(o["kernel"]["size"] >= 17 for o in params["blur"]["objects"])
        json.dumps(params)
        return
    pytest.fail("no sample had both object and background pixels")
