"""The UniRes sampler: Eq. 2 mixing, batching, eps/v equivalence, colour fix, tiling."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from diffusers import DDIMScheduler

from unires.model.bundle import UniResSettings, default_scheduler_config
from unires.model.denoiser import Denoiser
from unires.model.unet import UNET_PRESETS, build_unet
from unires.sampling.color import adain_color_fix, wavelet_color_fix
from unires.sampling.ddim import (
    TaskMixture,
    combine_task_predictions,
    predict_tasks,
    sample_unires_ddim,
)
from unires.sampling.tiling import TiledDenoiser, tile_starts, tiled_apply

TASKS = ("br", "sr", "md", "dd", "dn", "downlq")


class CountingUNet(torch.nn.Module):
    """Wraps a UNet and records the batch size of every call."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet
        self.calls: list[int] = []

    def forward(self, x, t, encoder_hidden_states):
        self.calls.append(x.shape[0])
        return self.unet(x, t, encoder_hidden_states=encoder_hidden_states)


class LocalNet(torch.nn.Module):
    """A UNet stand-in with a small receptive field (kernel k), for exact tiling tests."""

    def __init__(self, channels: int = 4, embed_dim: int = 8, k: int = 1):
        super().__init__()
        torch.manual_seed(3)
        self.conv = torch.nn.Conv2d(2 * channels, channels, k, padding=k // 2)
        self.proj = torch.nn.Linear(embed_dim, channels)

    def forward(self, x, t, encoder_hidden_states):
        bias = self.proj(encoder_hidden_states.mean(1))[..., None, None]
        return SimpleNamespace(sample=torch.tanh(self.conv(x)) + bias + 1e-4 * float(t))


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return build_unet(UNET_PRESETS["tiny"]).eval()


def _inputs(k=len(TASKS), c=4, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    cond = {t: torch.randn(1, c, size, size, generator=g) for t in TASKS[:k]}
    emb = {t: torch.randn(2, 32, generator=g) for t in TASKS[:k]}
    x = torch.randn(1, c, size, size, generator=g)
    return cond, emb, x


SCHED = default_scheduler_config("v_prediction")


def _denoiser(net: torch.nn.Module) -> Denoiser:
    """The network behind the ``Denoiser`` the sampler calls (no condition statistics)."""
    return Denoiser(net, SCHED, UniResSettings())


@torch.no_grad()
def test_one_hot_reproduces_single_task_sampling(unet):
    cond, emb, x = _inputs()
    mixed = sample_unires_ddim(
        TaskMixture(_denoiser(unet), cond, emb, {"md": 1.0, "dn": 0.0, "br": 0.0}),
        x,
        SCHED,
        4,
        disable=True,
    )

    def single_task(z, t):  # the plain conditional model, no mixing code involved
        inp = torch.cat([z, cond["md"]], dim=1)
        return unet(inp, t, encoder_hidden_states=emb["md"][None]).sample

    reference = sample_unires_ddim(single_task, x, SCHED, 4, disable=True)
    # Not bit-equal: on a CPU the denoiser feeds the network channels-last (another order
    # of summation inside the convolutions).
    torch.testing.assert_close(mixed, reference)


@torch.no_grad()
def test_conditional_and_negative_br_is_classifier_free_guidance(unet):
    cond, emb, x = _inputs()
    s = 0.7
    t = torch.tensor(500)
    mixed = TaskMixture(_denoiser(unet), cond, emb, {"md": 1 + s, "br": -s})(x, t)
    eps_c = unet(torch.cat([x, cond["md"]], 1), t, encoder_hidden_states=emb["md"][None]).sample
    eps_u = unet(torch.cat([x, cond["br"]], 1), t, encoder_hidden_states=emb["br"][None]).sample
    cfg = eps_u + (1 + s) * (eps_c - eps_u)  # Ho & Salimans with guidance scale 1 + s
    torch.testing.assert_close(mixed, cfg, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_batched_and_one_by_one_predictions_agree(unet):
    cond, emb, x = _inputs()
    t = torch.tensor(300)
    c = torch.stack([cond[k] for k in TASKS])
    e = torch.stack([emb[k] for k in TASKS])
    den = _denoiser(unet)
    batched = predict_tasks(den, x, t, c, e)
    single = torch.cat([predict_tasks(den, x, t, c[i : i + 1], e[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


@torch.no_grad()
def test_zero_weight_tasks_are_never_evaluated(unet):
    counting = CountingUNet(unet)
    cond, emb, x = _inputs()
    w = {"br": 0.0, "sr": 0.0, "md": 0.6, "dd": 0.0, "dn": -0.2, "downlq": 0.6}
    sample_unires_ddim(TaskMixture(_denoiser(counting), cond, emb, w), x, SCHED, 5, disable=True)
    assert counting.calls == [3] * 5  # one call per step, batch = the 3 non-zero tasks


def test_mixing_eps_or_v_predictions_gives_the_same_x0():
    g = torch.Generator().manual_seed(1)
    x0_k = torch.randn(3, 1, 4, 8, 8, generator=g)  # what each of 3 tasks believes
    eps = torch.randn(1, 4, 8, 8, generator=g)
    w = torch.tensor([1.3, -0.5, 0.2], dtype=torch.float64)
    assert abs(float(w.sum()) - 1) < 1e-12
    eps_cfg, v_cfg = (
        default_scheduler_config("epsilon"),
        default_scheduler_config("v_prediction"),
    )
    v_cfg["rescale_betas_zero_snr"] = False  # same alphas for both parameterisations
    sch_e = DDIMScheduler.from_config(eps_cfg)
    sch_v = DDIMScheduler.from_config(v_cfg)
    for s in (sch_e, sch_v):
        s.set_timesteps(10)
    t = sch_e.timesteps[3]
    a = sch_e.alphas_cumprod[t].sqrt()
    sig = (1 - sch_e.alphas_cumprod[t]).sqrt()
    z_t = a * x0_k[0] + sig * eps
    # Each task's prediction, as an eps-model and as a v-model would output it.
    eps_k = (z_t - a * x0_k) / sig
    v_k = a * eps_k - sig * x0_k
    out_e = sch_e.step(combine_task_predictions(eps_k, w), t, z_t).pred_original_sample
    out_v = sch_v.step(combine_task_predictions(v_k, w), t, z_t).pred_original_sample
    torch.testing.assert_close(out_e, out_v, atol=1e-4, rtol=1e-4)
    expected = combine_task_predictions(x0_k, w)  # both equal the mixed x0 estimate
    torch.testing.assert_close(out_e, expected, atol=1e-4, rtol=1e-4)


def test_adain_matches_reference_statistics():
    g = torch.Generator().manual_seed(2)
    result = torch.rand(2, 3, 40, 50, generator=g) * 0.5
    reference = torch.rand(2, 3, 40, 50, generator=g) * 0.9 + 0.05
    fixed = adain_color_fix(result, reference)
    torch.testing.assert_close(fixed.mean((-2, -1)), reference.mean((-2, -1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(fixed.std((-2, -1)), reference.std((-2, -1)), atol=1e-4, rtol=0)


def test_wavelet_fix_takes_low_frequencies_from_reference():
    g = torch.Generator().manual_seed(4)
    detail = torch.randn(1, 3, 64, 64, generator=g) * 0.05
    result = 0.2 + detail
    reference = torch.full((1, 3, 64, 64), 0.7)
    fixed = wavelet_color_fix(result, reference)
    assert abs(float(fixed.mean()) - 0.7) < 0.01  # colour from the reference
    assert float((fixed - 0.7).std()) > 0.5 * float(detail.std())  # detail kept


def test_tile_starts_cover_and_align():
    for size, tile, ov, al in [(100, 32, 8, 4), (64, 64, 8, 1), (40, 16, 4, 8), (17, 8, 2, 1)]:
        starts = tile_starts(size, tile, ov, al)
        covered = torch.zeros(size, dtype=torch.bool)
        for s in starts:
            assert s % al == 0
            covered[s : s + tile] = True
        assert covered.all()
        assert starts[-1] + tile == size or tile >= size


@torch.no_grad()
def test_tiled_sampling_equals_untiled_for_a_pointwise_model():
    net = LocalNet(k=1)
    cond, emb, x = _inputs(size=24)
    emb = {k: torch.randn(2, 8) for k in emb}
    w = {"md": 0.8, "dn": -0.2, "downlq": 0.4}
    mix = TaskMixture(_denoiser(net), cond, emb, w)
    full = sample_unires_ddim(mix, x, SCHED, 4, disable=True)
    tiled = sample_unires_ddim(TiledDenoiser(mix, 10, 4), x, SCHED, 4, disable=True)
    torch.testing.assert_close(tiled, full, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_tiled_sampling_of_a_local_model_has_no_seams():
    net = LocalNet(k=3)
    cond, emb, x = _inputs(size=48)
    emb = {k: torch.randn(2, 8) for k in emb}
    # A smooth condition so that any seam would stand out against the signal.
    ramp = torch.linspace(-1, 1, 48)
    for k in cond:
        cond[k] = (ramp[None, :] + ramp[:, None]).expand(1, 4, 48, 48).clone()
    w = {"md": 0.8, "dn": -0.2, "downlq": 0.4}
    mix = TaskMixture(_denoiser(net), cond, emb, w)
    full = mix(x, torch.tensor(400))
    tiled = TiledDenoiser(mix, 16, 8)(x, torch.tensor(400))
    err = (tiled - full).abs()
    assert float(err.max()) < 0.05 * float(full.abs().max())
    # Seam check: the jump across tile borders is no larger than jumps elsewhere.
    borders = {s for s in tile_starts(48, 16, 8) if s > 0}
    dx = (tiled[..., 1:] - tiled[..., :-1]).abs().mean(dim=(0, 1, 2))
    at_border = torch.stack([dx[b - 1] for b in borders]).max()
    elsewhere = torch.stack([dx[i] for i in range(47) if i + 1 not in borders]).mean()
    assert float(at_border) < 2.0 * float(elsewhere)


def test_tiled_apply_with_scale_matches_untiled_for_local_op():
    x = torch.rand(1, 3, 64, 48)
    down = lambda crop, _: torch.nn.functional.avg_pool2d(crop, 8)  # noqa: E731
    up = lambda crop, _: torch.nn.functional.interpolate(crop, scale_factor=8)  # noqa: E731
    torch.testing.assert_close(tiled_apply(down, x, 32, 16, scale=1 / 8, align=8), down(x, None))
    z = torch.rand(1, 4, 8, 6)
    torch.testing.assert_close(tiled_apply(up, z, 4, 2, scale=8), up(z, None))


def test_out_of_memory_halves_the_tile_and_retries():
    from unires.sampling.tiling import with_oom_retry

    tried = []

    def run(tile):
        tried.append(tile)
        if tile > 24:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return tile

    assert with_oom_retry(run, 96, min_tile=16, align=8) == 24
    assert tried == [96, 48, 24]
    with pytest.raises(RuntimeError, match="out of memory"):
        with_oom_retry(lambda t: (_ for _ in ()).throw(RuntimeError("out of memory")), 32, 16)
    with pytest.raises(ValueError):  # other errors are not retried
        with_oom_retry(lambda t: (_ for _ in ()).throw(ValueError("bad")), 96, 16)


@torch.no_grad()
def test_pipeline_retries_sampling_with_smaller_tiles(tiny_pipe, monkeypatch):
    import unires.pipeline as p

    calls = []
    real = p.sample_unires_ddim

    def flaky(model, x, *a, **k):
        calls.append(type(model).__name__)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(model, x, *a, **k)

    monkeypatch.setattr(p, "sample_unires_ddim", flaky)
    out = tiny_pipe.restore_tensor(torch.rand(1, 3, 64, 64), {"dn": 1.0}, steps=1)
    assert out.shape == (1, 3, 64, 64)
    assert calls == ["TaskMixture", "TiledDenoiser"]  # whole latent first, then tiles


@torch.no_grad()
def test_strength_runs_the_last_fraction_from_the_noised_start(unet):
    counting = CountingUNet(unet)
    cond, emb, x = _inputs()
    mix = TaskMixture(_denoiser(counting), cond, emb, {"md": 1.0})
    start = torch.randn_like(x)
    full = sample_unires_ddim(mix, x, SCHED, 10, disable=True)
    assert len(counting.calls) == 10
    counting.calls.clear()
    part = sample_unires_ddim(mix, x, SCHED, 10, disable=True, strength=0.3, x0_init=start)
    assert len(counting.calls) == 3
    assert not torch.equal(part, full)
    same = sample_unires_ddim(mix, x, SCHED, 10, disable=True, strength=1.0, x0_init=start)
    assert torch.equal(same, full)  # strength 1 ignores the start: the paper's sampler


def test_pipeline_feeds_the_unet_standardised_conditions(tiny_pipe, monkeypatch):
    seen = []
    forward = tiny_pipe.unet.forward

    def spy(sample, *args, **kwargs):
        seen.append(sample[:, sample.shape[1] // 2 :].clone())  # the condition half
        return forward(sample, *args, **kwargs)

    monkeypatch.setattr(tiny_pipe.unet, "forward", spy)
    lq = torch.rand(1, 3, 32, 32)
    tiny_pipe.restore_tensor(lq, {"dn": 1.0}, steps=1)
    raw = seen[-1]
    c = raw.shape[1]
    monkeypatch.setattr(tiny_pipe.settings, "condition_mean", [1.0] * c)
    monkeypatch.setattr(tiny_pipe.settings, "condition_std", [2.0] * c)
    tiny_pipe.restore_tensor(lq, {"dn": 1.0}, steps=1)
    assert torch.allclose(seen[-1], (raw - 1.0) / 2.0, atol=1e-5)


def test_cli_colour_fix_choices_are_the_pipelines():
    from unires.cli import build_parser
    from unires.sampling.color import COLOR_FIXES

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    commands = [sub["restore"]]
    bench = next(a for a in sub["bench"]._actions if a.choices and "quality" in a.choices)
    commands += [bench.choices["quality"], bench.choices["run"]]
    for p in commands:
        fix = next(a for a in p._actions if a.dest == "color_fix")
        assert tuple(fix.choices) == COLOR_FIXES and fix.default is None
