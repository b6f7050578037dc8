"""The Denoiser (model/denoiser.py): prediction types, the diffused variable, the condition
input, the network call and the loss, checked against the DDIM scheduler that samples."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from diffusers import DDIMScheduler

from unires.model.bundle import UniResSettings, default_scheduler_config
from unires.model.denoiser import (
    PREDICTION_TYPES,
    Denoiser,
    network_activation_channels,
    network_channels,
    network_context_dim,
    network_downsample_factor,
)
from unires.model.head import UNetWithHead
from unires.model.nafnet import ConditionalNAFNet
from unires.model.unet import UNET_PRESETS, build_unet

TIMESTEPS = torch.tensor([0, 137, 500, 999])


class SpyNet(torch.nn.Module):
    """Records its inputs; outputs the first half of the input channels plus a constant."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.seen: list[tuple] = []

    def forward(self, x, t, encoder_hidden_states):
        self.seen.append((x, t, encoder_hidden_states))
        return SimpleNamespace(sample=x[:, : x.shape[1] // 2] * self.scale + 1)


def _denoiser(prediction_type="v_prediction", **settings) -> Denoiser:
    return Denoiser(SpyNet(), default_scheduler_config(prediction_type), UniResSettings(**settings))


def _x0_noise(seed=0, shape=(4, 3, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_to_x0_inverts_the_target_at_every_timestep(prediction_type):
    d = _denoiser(prediction_type)
    x0, noise = _x0_noise()
    x_t = d.add_noise(x0, noise, TIMESTEPS)
    target = d.target(x0, noise, TIMESTEPS)
    torch.testing.assert_close(d.to_x0(target, x_t, TIMESTEPS), x0, atol=2e-4, rtol=1e-4)
    if prediction_type == "epsilon":
        torch.testing.assert_close(target, noise)
    if prediction_type == "sample":
        torch.testing.assert_close(target, x0)


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_target_is_what_the_sampler_reads(prediction_type):
    """The DDIM scheduler that samples must recover x0 from the output the loss trains."""
    config = default_scheduler_config(prediction_type)
    d = Denoiser(SpyNet(), config, UniResSettings())
    sched = DDIMScheduler.from_config(config)
    sched.set_timesteps(10)
    x0, noise = _x0_noise(1, (1, 3, 8, 8))
    for t in sched.timesteps:
        x_t = d.add_noise(x0, noise, t)
        torch.testing.assert_close(x_t, sched.add_noise(x0, noise, t.reshape(1)))
        out = sched.step(d.target(x0, noise, t), t, x_t).pred_original_sample
        torch.testing.assert_close(out, x0, atol=2e-4, rtol=1e-4)
    if prediction_type == "v_prediction":
        t = TIMESTEPS
        torch.testing.assert_close(d.target(x0, noise, t), sched.get_velocity(x0, noise, t))


@pytest.mark.parametrize("target", ["latent", "residual"])
def test_diffused_variable_round_trip(target):
    d = _denoiser(diffusion_target=target, residual_scale=4.0)
    z_hq, z_lq = _x0_noise(2)
    x0 = d.to_diffused(z_hq, z_lq)
    torch.testing.assert_close(d.from_diffused(x0, z_lq), z_hq)
    torch.testing.assert_close(d.from_diffused(d.unchanged(z_lq), z_lq), z_lq)
    if target == "residual":
        torch.testing.assert_close(x0, (z_hq - z_lq) * 4.0)
        assert torch.equal(d.unchanged(z_lq), torch.zeros_like(z_lq))
    else:
        assert torch.equal(x0, z_hq) and torch.equal(d.unchanged(z_lq), z_lq)


def test_condition_standardises_per_channel_or_passes_through():
    z = (
        torch.randn(2, 3, 8, 8) * torch.tensor([5.0, 0.1, 1.0])[:, None, None]
        + torch.tensor([3.0, -1.0, 0.0])[:, None, None]
    )
    assert torch.equal(_denoiser().condition(z), z)
    stats = _denoiser(
        condition_mean=z.mean(dim=(0, 2, 3)).tolist(), condition_std=z.std(dim=(0, 2, 3)).tolist()
    )
    out = stats.condition(z)
    assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert torch.allclose(out.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4)
    with pytest.raises(ValueError):
        UniResSettings(condition_mean=[0.0], condition_std=[0.0])


def test_call_concatenates_the_condition_and_casts():
    d = _denoiser()
    torch.nn.Module.to(d.net, torch.bfloat16)
    x_t, cond = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    ctx = torch.randn(2, 5, 7)
    out = d(x_t, torch.tensor(10), cond, ctx)
    x, t, seen_ctx = d.net.seen[-1]
    assert x.dtype == seen_ctx.dtype == torch.bfloat16 and x.shape == (2, 6, 4, 4)
    assert torch.equal(x[:, 3:], cond.bfloat16()) and int(t) == 10
    assert out.dtype == torch.float32 and out.shape == x_t.shape


def test_cpu_calls_are_channels_last_and_large_batches_go_in_parts(monkeypatch):
    """On a CPU the network sees NHWC input, and a batch over CPU_PIXELS_PER_CALL is run in
    parts (each with its own timesteps and prompts) whose outputs equal the whole call's."""
    import unires.model.denoiser as denoiser_module

    d = _denoiser()
    x_t, cond = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    t, ctx = torch.tensor([1, 2, 3, 4, 5]), torch.randn(5, 2, 7)
    whole = d(x_t, t, cond, ctx)
    assert len(d.net.seen) == 1
    assert d.net.seen[-1][0].is_contiguous(memory_format=torch.channels_last)
    assert whole.is_contiguous()
    monkeypatch.setattr(denoiser_module, "CPU_PIXELS_PER_CALL", 2 * 4 * 4)
    d.net.seen.clear()
    parts = d(x_t, t, cond, ctx)
    assert [len(x) for x, _, _ in d.net.seen] == [2, 2, 1]
    assert torch.equal(torch.cat([s[1] for s in d.net.seen]), t)
    assert torch.equal(torch.cat([s[2] for s in d.net.seen]), ctx)
    torch.testing.assert_close(parts, whole)
    d.net.seen.clear()
    d(x_t, torch.tensor(10), cond, ctx)  # one timestep for the whole batch
    assert [int(tt) for _, s, _ in d.net.seen for tt in s] == [10] * 5


def test_loss_is_per_sample_and_zero_for_a_perfect_network():
    d = _denoiser("sample")
    d.net.scale.data.zero_()  # output = 1 everywhere: perfect for x0 = 1
    x0 = torch.ones(3, 3, 4, 4)
    _, noise = _x0_noise(3, x0.shape)
    t = torch.tensor([5, 400, 990])
    loss = d.loss(x0, torch.zeros_like(x0), torch.zeros(3, 2, 4), t, noise)
    assert loss.shape == (3,) and torch.equal(loss, torch.zeros(3))
    d.net.scale.data.fill_(1.0)
    plain = d.loss(x0, torch.zeros_like(x0), torch.zeros(3, 2, 4), t, noise)
    weighted = d.loss(x0, torch.zeros_like(x0), torch.zeros(3, 2, 4), t, noise, "target_energy")
    torch.testing.assert_close(weighted, plain)  # E[x0^2] = 1: the weighting changes nothing
    psnr = d.loss(x0, torch.zeros_like(x0), torch.zeros(3, 2, 4), t, noise, "psnr")
    torch.testing.assert_close(psnr, 10 * torch.log10(plain + 1e-8))  # minus the PSNR, in dB
    plain.mean().backward()
    assert d.net.scale.grad is not None
    with pytest.raises(ValueError, match="loss_weighting"):
        d.loss(x0, x0, torch.zeros(3, 2, 4), t, noise, "snr")


def test_network_helpers_for_every_backbone():
    torch.manual_seed(0)
    unet = build_unet(UNET_PRESETS["tiny"])
    headed = UNetWithHead.around(unet, 8, 2)
    naf = ConditionalNAFNet(8, 4, width=8, encoder_blocks=(1, 1, 1), decoder_blocks=(1, 1, 1))
    for net in (unet, headed):
        assert network_channels(net) == (8, 4)
        assert network_downsample_factor(net) == 2  # two blocks: one downsampling
        assert network_context_dim(net) == 32
    assert network_activation_channels(headed) > network_activation_channels(unet)
    assert network_channels(naf) == (8, 4) and network_downsample_factor(naf) == 8
    assert network_context_dim(naf) == 256 and network_activation_channels(naf) > 0
    # Behind an accelerate / DDP wrapper the Denoiser still sees the network's geometry.
    wrapped = torch.nn.Module()
    wrapped.module = naf
    d = Denoiser(wrapped, default_scheduler_config(), UniResSettings())
    assert d.downsample_factor == 8 and d.activation_channels() == naf.activation_channels()


# ---- the self-ensemble ----------------------------------------------------------------------


class CornerNet(torch.nn.Module):
    """Not equivariant: adds the input's top-left value of channel 0 to every output pixel."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))  # the denoiser reads the dtype

    def forward(self, x, t, encoder_hidden_states):
        c = x.shape[1] // 2
        return SimpleNamespace(sample=x[:, :c] + x[:, :1, :1, :1])


def test_self_ensemble_undoes_each_transform_and_averages():
    """A per-pixel network commutes with flips and turns, so any ensemble gives its output;
    a network that reads one corner sees a different corner under each transform, and the
    ensemble is the mean over the corners it saw."""
    x_t, cond = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    ctx, t = torch.randn(2, 4, 16), torch.tensor([999, 999])
    plain = _denoiser()
    for n in (2, 4, 8):
        ensembled = plain.with_ensemble(n)(x_t, t, cond, ctx)
        torch.testing.assert_close(ensembled, plain(x_t, t, cond, ctx))
    net = CornerNet()
    d = Denoiser(net, default_scheduler_config(), UniResSettings())
    corners = x_t[:, 0, [0, 0, -1, -1], [0, -1, -1, 0]]  # (B, 4): all four corners
    for n, seen in ((2, corners[:, :2]), (4, corners), (8, corners)):
        out = d.with_ensemble(n)(x_t, t, cond, ctx)
        torch.testing.assert_close(out, x_t + seen.mean(dim=1)[:, None, None, None])
    assert d.ensemble == 1  # with_ensemble leaves the original as it was


@pytest.mark.parametrize("n", [0, 3, 16])
def test_self_ensemble_size_is_checked(n):
    with pytest.raises(ValueError, match="ensemble must be one of"):
        _denoiser().with_ensemble(n)
