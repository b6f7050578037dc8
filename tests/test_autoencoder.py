"""The project's autoencoder: PCA start, f=8 shapes, tiling-friendly, and its trainer."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from unires.model.autoencoder import UniResAutoencoder, decode_latents, encode_latents
from unires.train.autoencoder import AutoencoderModelConfig, AutoencoderTrainConfig, train


def _patches(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.pixel_unshuffle(x, 8).permute(0, 2, 3, 1).reshape(-1, 192)


def test_full_rank_pca_start_reconstructs_exactly():
    torch.manual_seed(0)
    ae = UniResAutoencoder(
        latent_channels=192,
        channels=(8, 16),
        encoder_blocks=(1, 1),
        decoder_blocks=(1, 1),
        linear_skip=True,
    )
    x = torch.rand(2, 3, 32, 40) * 2 - 1
    ae.init_linear_skip(_patches(x))
    with torch.no_grad():
        torch.testing.assert_close(ae(x), x, atol=1e-4, rtol=0)


def test_pca_start_beats_mean_and_keeps_shapes():
    torch.manual_seed(0)
    ae = UniResAutoencoder(
        latent_channels=8,
        channels=(8, 16),
        encoder_blocks=(1, 1),
        decoder_blocks=(1, 1),
        linear_skip=True,
    )
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    x = torch.stack([torch.sin(xx / 6), torch.cos(yy / 5), torch.sin((xx + yy) / 9)])[None]
    ae.init_linear_skip(_patches(x))
    with torch.no_grad():
        z = encode_latents(ae, x)
        y = decode_latents(ae, z)
    assert z.shape == (1, 8, 8, 8) and y.shape == x.shape
    assert float((y - x).pow(2).mean()) < 0.05 * float((x - x.mean()).pow(2).mean())


def test_trainer_runs_resumes_and_exports(tmp_path):
    data = tmp_path / "hq"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(data / f"{i}.png")
    cfg = AutoencoderTrainConfig(
        train_dirs=[str(data)],
        val_dir=str(data),
        output_dir=str(tmp_path / "run"),
        model=AutoencoderModelConfig(
            latent_channels=8, channels=(8, 16), encoder_blocks=(1, 1), decoder_blocks=(1, 1)
        ),
        steps=4,
        batch_size=2,
        crop=32,
        checkpoint_every=2,
        eval_every=4,
        warmup=1,
    )
    final = train(cfg)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and "val_psnr" in log[-1]
    ae = UniResAutoencoder.from_pretrained(final)
    assert ae.config.linear_skip and ae.config.scaling_factor > 0
    cfg.steps = 6
    train(cfg, resume=True)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log][-2:] == [5, 6]


def test_shipped_autoencoder_reconstructs_a_photo():
    """The embedded model's autoencoder (whichever kind ships) loads and reconstructs well."""
    from pathlib import Path

    import pytest

    from unires.model.autoencoder import load_own_autoencoder

    folder = Path(__file__).parents[1] / "unires" / "weights" / "embedded" / "vae"
    if not (folder / "config.json").is_file():
        pytest.skip("no shipped autoencoder in this checkout")
    data = pytest.importorskip("skimage.data")
    ae = load_own_autoencoder(folder).eval()
    x = torch.from_numpy(data.astronaut()[128:384, 128:384].copy()).permute(2, 0, 1)
    x = x[None].float() / 127.5 - 1
    with torch.no_grad():
        y = decode_latents(ae, encode_latents(ae, x)).clamp(-1, 1)
    mse = float(((y - x) / 2).pow(2).mean())
    assert 10 * np.log10(1 / max(mse, 1e-12)) > 28.0


def test_space_to_depth_autoencoder_is_lossless_and_travels_in_a_model_folder(tmp_path):
    import dataclasses

    from unires.model.autoencoder import SpaceToDepthAutoencoder, vae_latent_channels
    from unires.model.bundle import load_model, save_model
    from unires.model.factory import build_model, tiny_model_config
    from unires.model.unet import UNET_PRESETS
    from unires.pipeline import UniResPipeline

    ae = SpaceToDepthAutoencoder(factor=2, scaling_factor=1.5, shift_factor=0.1)
    x = torch.rand(2, 3, 16, 24) * 2 - 1
    z = encode_latents(ae, x)
    assert z.shape == (2, 12, 8, 12) and vae_latent_channels(ae) == 12
    assert torch.allclose(decode_latents(ae, z), x, atol=1e-6)
    # Block (i, j) of the image is latent pixel (i, j): the latent residual is the pixel one.
    assert torch.equal(z[0, :, 0, 0], (x[0, :, :2, :2].reshape(3, 4).flatten() - 0.1) * 1.5)

    cfg = tiny_model_config(target="residual")
    cfg = dataclasses.replace(
        cfg,
        unet=dataclasses.replace(UNET_PRESETS["tiny"], latent_channels=12),
        autoencoder=dataclasses.replace(cfg.autoencoder, space_to_depth=2),
    )
    save_model(build_model(cfg), tmp_path / "m")
    comps = load_model(tmp_path / "m")
    assert isinstance(comps.vae, SpaceToDepthAutoencoder) and comps.vae.config.factor == 2
    pipe = UniResPipeline(comps, device="cpu", dtype="fp32")
    out = pipe.restore_tensor(torch.rand(1, 3, 20, 28), {"dn": 1.0}, steps=1)
    assert out.shape == (1, 3, 20, 28)
