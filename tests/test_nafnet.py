"""The ConditionalNAFNet backbone behind everything above model/: the model folder, restore,
tiling, ``--auto fast``, the web app and ``unires bench speed``, unchanged (tiny model)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

from unires.model.nafnet import ConditionalNAFNet, LayerNorm2d, NAFBlock, local_mean
from unires.pipeline import TileSettings, UniResPipeline

W = {"md": 0.6, "dn": -0.2, "downlq": 0.6}


def _lq(h=64, w=64, seed=0):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_folder_holds_the_backbone_and_round_trips(tiny_nafnet_pipe, tiny_nafnet_dir, tmp_path):
    index = json.loads((tiny_nafnet_dir / "model_index.json").read_text())
    assert index["unet"] == ["unires", "ConditionalNAFNet"]
    pipe = tiny_nafnet_pipe
    assert isinstance(pipe.unet, ConditionalNAFNet)
    assert pipe.pad_multiple == pipe.vae_factor * 4  # two NAFNet levels
    lq = _lq(50, 70)  # padded to the multiple inside, cropped back
    out = pipe.restore_tensor(lq, W, steps=3, seed=2)
    assert out.shape == lq.shape and torch.isfinite(out).all()
    pipe.save_pretrained(tmp_path / "again")
    again = UniResPipeline.from_pretrained(tmp_path / "again", device="cpu", dtype="fp32")
    assert torch.equal(again.restore_tensor(lq, W, steps=3, seed=2), out)
    # The tasks are told apart (the prompt reaches every block).
    assert not torch.equal(pipe.restore_tensor(lq, {"sr": 1.0}, steps=3, seed=2), out)


def test_x4_and_strength(tiny_nafnet_pipe):
    lq = _lq(16, 24)
    assert tiny_nafnet_pipe.restore_tensor(lq, W, steps=2, scale=4).shape == (1, 3, 64, 96)
    part = tiny_nafnet_pipe.restore_tensor(_lq(), W, steps=4, strength=0.5)
    assert torch.isfinite(part).all()


def test_tiled_restore(tiny_nafnet_pipe, monkeypatch):
    import unires.pipeline as p

    pipe = tiny_nafnet_pipe
    models = []
    real = p.sample_unires_ddim
    monkeypatch.setattr(
        p, "sample_unires_ddim", lambda model, *a, **k: models.append(model) or real(model, *a, **k)
    )
    lq = _lq(96, 96, seed=6)
    tiles = TileSettings(latent_tile=8, latent_overlap=4, pixel_tile=48, pixel_overlap=16)
    out = pipe.restore_tensor(lq, W, steps=2, tiles=tiles)
    assert out.shape == lq.shape and torch.isfinite(out).all()
    assert type(models[-1]).__name__ == "TiledDenoiser" and models[-1].align == 4
    whole = pipe.restore_tensor(lq, W, steps=2, tiles=TileSettings(latent_tile=0))
    assert (out - whole).abs().mean() < 0.1  # the same picture, blended from tiles
    # The memory budget gives aligned tiles for this backbone as well.
    tile = pipe._latent_tile(6, TileSettings(), (1, 4, 64, 64))
    assert tile > 0 and tile % 4 == 0


def test_tiles_stop_at_the_networks_size_when_memory_allows_more(tiny_nafnet_pipe, tiny_pipe):
    """No attention in the NAFNet: 272-pixel tiles (a 256 crop in one call); a UNet's 128."""
    big = (1, 4, 4096, 4096)
    assert tiny_nafnet_pipe._latent_tile(1, TileSettings(), big) == 272
    assert tiny_pipe._latent_tile(1, TileSettings(), big) == 128
    assert tiny_nafnet_pipe._latent_tile(1, TileSettings(max_latent_tile=64), big) == 64
    f = tiny_nafnet_pipe.vae_factor  # tiles are in latent pixels
    assert tiny_nafnet_pipe.batches_candidates(_lq(256 * f, 256 * f), {})
    assert not tiny_nafnet_pipe.batches_candidates(_lq(288 * f, 288 * f), {})


def test_batched_candidates_and_auto_fast(tiny_nafnet_pipe, count_rows):
    from unires.search.auto import auto_weights
    from unires.search.batched import restore_candidates
    from unires.search.grid import weights_key
    from unires.weights import MOST_FREQUENT_WEIGHTS

    pipe = tiny_nafnet_pipe
    lq = _lq()
    sets = [W, {"sr": 1.0}, {"br": 0.4, "dd": 0.6}]
    counter = count_rows(pipe.unet)
    images, evaluations = restore_candidates(pipe, lq, sets, steps=2, seed=1)
    assert evaluations == counter.rows == 6 + sum(len(w) for w in sets)
    for weights, image in zip(sets, images, strict=True):
        one = pipe.restore_tensor(lq, weights, steps=2, seed=1)
        torch.testing.assert_close(image[None], one, atol=2e-5, rtol=0)

    class CloseTo:
        name, higher_is_better = "close", True

        def __init__(self, target):
            self.target = target

        def quality(self, images):
            return -((images - self.target[..., : images.shape[-2], : images.shape[-1]]) ** 2).mean(
                dim=(1, 2, 3)
            )

    # One step: the fast search's proxy is the exact restoration, so it must find the paper
    # grid's planted optimum, spending the six tasks' first step only.
    best = MOST_FREQUENT_WEIGHTS
    metric = CloseTo(pipe.restore_tensor(lq, best, steps=1, seed=0))
    counter.rows = 0
    res = auto_weights(pipe, lq, "fast", metric=metric, steps=1, fast_options={"survivors": 4})
    assert res.image.shape == lq.shape and res.evaluations == counter.rows == 6
    assert weights_key(res.weights) == weights_key(best)
    assert res.score == pytest.approx(0.0, abs=1e-9)


def test_app_restore_handler(tiny_nafnet_pipe, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    pytest.importorskip("gradio", reason="the app extra is not installed: pip install .[app]")
    from unires.app import logic
    from unires.app.server import Context, restore

    rng = np.random.default_rng(0)
    photo = tmp_path / "p.png"
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(photo)
    ctx = Context(tiny_nafnet_pipe, tmp_path / "work")
    values = logic.values_from_weights({"dn": -0.2, "downlq": 1.2})
    pair, download, text = restore(ctx, str(photo), "x1", 2, 0, *values)
    assert pair[1].shape == (48, 64, 3) and Image.open(download["value"]).size == (64, 48)
    assert "64×48" in text


def test_bench_speed_times_the_model_folder(tiny_nafnet_dir, capsys):
    from unires.cli import main

    code = main(["bench", "speed", "--model", str(tiny_nafnet_dir), "--size", "64", "--steps", "2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "image 64x64 (latent 8), 6 tasks, 2 DDIM steps" in out


def test_deepened_network_computes_the_same_with_more_blocks(tiny_nafnet_pipe):
    """Growing a trained model: new blocks start as the identity, the old keep their weights."""
    net = tiny_nafnet_pipe.unet  # perturbed weights, as after training
    grown = net.deepened(encoder_blocks=(2, 3), middle_blocks=2)
    assert tuple(grown.config.encoder_blocks) == (2, 3) and grown.config.middle_blocks == 2
    assert tuple(grown.config.decoder_blocks) == tuple(net.config.decoder_blocks)
    assert sum(p.numel() for p in grown.parameters()) > sum(p.numel() for p in net.parameters())
    x = torch.randn(2, net.config.in_channels, 16, 16, generator=torch.Generator().manual_seed(0))
    ctx = torch.randn(2, 4, net.config.context_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(grown(x, 300, ctx).sample, net(x, 300, ctx).sample)
    # The new blocks learn: their residual gains get gradients although they start at zero.
    grown(x, 300, ctx).sample.square().mean().backward()
    assert grown.middle[1].beta.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="encoder_blocks"):
        net.deepened(encoder_blocks=(1,))  # another number of levels
    with pytest.raises(ValueError, match="middle_blocks"):
        grown.deepened(middle_blocks=1)  # fewer blocks


def test_widened_network_computes_the_same_with_twice_the_channels(tiny_nafnet_pipe):
    """Net2WiderNet: every channel duplicated, input weights split between the copies."""
    net = tiny_nafnet_pipe.unet  # perturbed weights, as after training
    wide = net.widened(torch.Generator().manual_seed(3))
    assert wide.config.width == 2 * net.config.width
    assert tuple(wide.config.encoder_blocks) == tuple(net.config.encoder_blocks)
    n_old = sum(p.numel() for p in net.parameters())
    assert sum(p.numel() for p in wide.parameters()) > 2.5 * n_old
    x = torch.randn(2, net.config.in_channels, 16, 16, generator=torch.Generator().manual_seed(0))
    ctx = torch.randn(2, 4, net.config.context_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(wide(x, 300, ctx).sample, net(x, 300, ctx).sample)
    # The two copies of a channel get different gradients, so training moves them apart.
    wide(x, 300, ctx).sample.square().mean().backward()
    w = net.config.width
    g = wide.intro.weight.grad
    assert g[:w].abs().sum() > 0 and not torch.allclose(g[:w], g[w:])
    with pytest.raises(ValueError, match="split"):
        net.widened(split=1.0)


def test_local_mean_averages_each_window_and_is_global_when_the_window_covers_the_map():
    """TLC's pooling: a box mean per pixel (borders take the nearest full window's)."""
    x = torch.rand(2, 3, 12, 9, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    box = local_mean(x, 4)
    full = torch.nn.functional.avg_pool2d(x, 4, stride=1)  # (9, 6): every full window
    assert box.shape == x.shape
    torch.testing.assert_close(box[..., 1:10, 1:7], full)
    torch.testing.assert_close(box[..., 0, 0], full[..., 0, 0])
    torch.testing.assert_close(box[..., -1, -1], full[..., -1, -1])
    whole = x.mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(local_mean(x, None), whole)
    torch.testing.assert_close(local_mean(x, 12), whole)
    half = local_mean(x.to(torch.bfloat16), 4)  # summed in fp32, returned in the input's dtype
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.double(), box, atol=2e-2, rtol=0)


def test_pool_window_changes_only_inputs_larger_than_the_window(tiny_nafnet_pipe, tmp_path):
    net = copy.deepcopy(tiny_nafnet_pipe.unet)
    ctx = torch.randn(1, 4, net.config.context_dim, generator=torch.Generator().manual_seed(1))

    def run(side):
        x = torch.randn(
            1, net.config.in_channels, side, side, generator=torch.Generator().manual_seed(0)
        )
        with torch.no_grad():
            return net(x, 300, ctx).sample

    small, large = run(16), run(32)
    net.set_pool_window(16)
    assert [b.pool_window for b in net.encoders[1]] == [8] * len(net.encoders[1])
    assert net.middle[0].pool_window == 16 // net.downsample_factor
    torch.testing.assert_close(run(16), small)  # the window covers it: NAFNet's global pool
    assert not torch.allclose(run(32), large)
    net.save_pretrained(tmp_path / "unet")
    again = ConditionalNAFNet.from_pretrained(tmp_path / "unet")
    assert again.config.pool_window == 16 and again.decoders[-1][0].pool_window == 16
    for bad in (2, 0, 16.5):
        with pytest.raises(ValueError, match="pool_window"):
            net.set_pool_window(bad)


@pytest.mark.parametrize("batch", [1, 3])
def test_block_folds_its_affine_maps_into_the_norm_and_the_kernels(batch):
    """NAFBlock's adaptive LayerNorm and its beta / gamma gains, folded for speed, compute
    norm(x) * (1 + scale) + shift and x + conv(y) * beta as written (NAFNet, DiT's adaLN),
    in NCHW and in channels-last."""
    g = torch.Generator().manual_seed(5)
    block = NAFBlock(4, 6)
    for p in block.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.5
    x = torch.randn(batch, 4, 5, 6, generator=g, dtype=torch.float64)
    emb = torch.randn(batch, 6, generator=g, dtype=torch.float64)
    block = block.double()

    def layer_norm(norm: LayerNorm2d, v):
        mean = v.mean(1, keepdim=True)
        var = v.var(1, keepdim=True, unbiased=False)
        return (v - mean) / (var + norm.eps).sqrt() * norm.weight[:, None, None] + norm.bias[
            :, None, None
        ]

    def gate(v):
        a, b = v.chunk(2, dim=1)
        return a * b

    s1, h1, s2, h2 = block.modulation(emb)[..., None, None].chunk(4, dim=1)
    y = gate(block.conv2(block.conv1(layer_norm(block.norm1, x) * (1 + s1) + h1)))
    y = y * block.sca(y.mean(dim=(2, 3), keepdim=True))
    expected = x + block.conv3(y) * block.beta
    y = block.conv5(gate(block.conv4(layer_norm(block.norm2, expected) * (1 + s2) + h2)))
    expected = expected + y * block.gamma
    with torch.no_grad():
        torch.testing.assert_close(block(x, emb), expected)
        nhwc = block(x.contiguous(memory_format=torch.channels_last), emb)
    torch.testing.assert_close(nhwc, expected)
    assert not torch.allclose(expected, x)  # the block did something
