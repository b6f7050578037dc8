"""UniResPipeline end to end on tiny random models: sizes, determinism, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from unires.model.bundle import ModelFolderError, load_model, model_digest, save_model
from unires.model.factory import build_model, tiny_model_config
from unires.pipeline import EmbeddedModelMissing, TileSettings, UniResPipeline
from unires.sampling.conditions import down_up_lq
from unires.weights import WeightsError

W = {"md": 0.6, "dn": -0.2, "downlq": 0.6}


def test_same_seed_same_bytes_and_seeds_differ(tiny_pipe):
    x = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    a = tiny_pipe.restore_tensor(x, W, steps=3, seed=7)
    b = tiny_pipe.restore_tensor(x, W, steps=3, seed=7)
    c = tiny_pipe.restore_tensor(x, W, steps=3, seed=8)
    assert a.numpy().tobytes() == b.numpy().tobytes()
    assert not torch.equal(a, c)


@pytest.mark.parametrize("size", [(16, 16), (33, 47), (70, 21)])
def test_any_size_is_padded_and_cropped_back(tiny_pipe, size):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8))
    out = tiny_pipe(img, W, steps=2)
    assert out.size == img.size
    out4 = tiny_pipe(img, {"sr": 1.0}, steps=2, scale=4)
    assert out4.size == (4 * img.size[0], 4 * img.size[1])


def test_invalid_weights_are_rejected(tiny_pipe):
    with pytest.raises(WeightsError, match="sum to 1"):
        tiny_pipe.restore_tensor(torch.rand(1, 3, 16, 16), {"md": 0.5}, steps=1)
    with pytest.raises(ValueError, match="unknown task"):
        tiny_pipe.restore_tensor(torch.rand(1, 3, 16, 16), {"zz": 1.0}, steps=1)


def test_save_load_round_trip_gives_identical_output(tiny_pipe, tmp_path):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    before = tiny_pipe.restore_tensor(x, W, steps=2)
    tiny_pipe.save_pretrained(tmp_path / "copy")
    again = UniResPipeline.from_pretrained(tmp_path / "copy", device="cpu", dtype="fp32")
    assert torch.equal(before, again.restore_tensor(x, W, steps=2))
    index = json.loads((tmp_path / "copy" / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["vae"] == ["unires", "UniResAutoencoder"]


def test_colour_fix_default_comes_from_the_model_folder(tiny_pipe, tmp_path):
    from unires.config import ConfigError

    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    adain = tiny_pipe.restore_tensor(x, W, steps=2, color_fix="adain")
    plain = tiny_pipe.restore_tensor(x, W, steps=2, color_fix="none")
    assert not torch.allclose(adain, plain, atol=1e-3)
    assert torch.equal(tiny_pipe.restore_tensor(x, W, steps=2), adain)  # the paper's default
    tiny_pipe.save_pretrained(tmp_path / "m")
    index_path = tmp_path / "m" / "model_index.json"
    index = json.loads(index_path.read_text())
    assert index["unires"]["default_color_fix"] == "adain"
    index["unires"]["default_color_fix"] = "none"
    index_path.write_text(json.dumps(index))
    pipe = UniResPipeline.from_pretrained(tmp_path / "m", device="cpu", dtype="fp32")
    assert torch.equal(pipe.restore_tensor(x, W, steps=2), plain)
    assert torch.equal(pipe.restore_tensor(x, W, steps=2, color_fix="adain"), adain)
    index["unires"]["default_color_fix"] = "histogram"
    index_path.write_text(json.dumps(index))
    with pytest.raises(ConfigError, match="default_color_fix"):
        load_model(tmp_path / "m")


def test_fp16_save_and_bf16_run(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "half", dtype=torch.float16)
    st = (tmp_path / "half" / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size
    tiny_pipe.save_pretrained(tmp_path / "full")
    full = (tmp_path / "full" / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size
    assert st < 0.6 * full
    pipe = UniResPipeline.from_pretrained(tmp_path / "half", device="cpu", dtype="bf16")
    out = pipe.restore_tensor(torch.rand(1, 3, 16, 16), W, steps=2)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_folder_errors_are_clear(tmp_path):
    with pytest.raises(ModelFolderError, match="no model_index.json"):
        load_model(tmp_path)
    (tmp_path / "model_index.json").write_text('{"unet": ["os", "system"]}')
    with pytest.raises(ModelFolderError, match="unsupported class"):
        load_model(tmp_path)


def test_missing_embedded_model_is_a_clear_error(monkeypatch, tmp_path):
    import unires.pipeline as p

    monkeypatch.setattr(p, "EMBEDDED_MODEL_DIR", tmp_path / "nothing")
    with pytest.raises(EmbeddedModelMissing, match="embedded UniRes model"):
        UniResPipeline.from_pretrained()


class ZeroUNet(torch.nn.Module):
    """Predicts x0 = 0 ("sample" parameterisation): the sampler returns the zero latent."""

    def __init__(self, unet):
        super().__init__()
        self.inner = unet
        self.config = unet.config

    def forward(self, x, t, encoder_hidden_states):
        from types import SimpleNamespace

        return SimpleNamespace(sample=torch.zeros_like(x[:, : self.config.out_channels]))


def test_residual_target_adds_the_lq_latent_back():
    comps = build_model(tiny_model_config(prediction_type="sample", target="residual"))
    comps.unet = ZeroUNet(comps.unet)
    pipe = UniResPipeline(comps, device="cpu", dtype="fp32")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    out = pipe.restore_tensor(x, {"dn": 1.0}, steps=3, color_fix="none")
    # x0 = 0 everywhere, so the output is the autoencoder's reconstruction of the LQ.
    tiles = TileSettings()
    recon = pipe.decode(pipe.encode(x, tiles), tiles).clamp(0, 1)
    torch.testing.assert_close(out, recon, atol=1e-5, rtol=0)


def test_down_up_lq_keeps_size_and_loses_detail():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(1, 3, 64, 64, generator=g)
    d = down_up_lq(x, 4)
    assert d.shape == x.shape
    assert float(d.std()) < 0.5 * float(x.std())  # white noise: detail is gone
    assert torch.equal(down_up_lq(x, 1), x)


def test_tiled_restore_runs_and_stays_close_for_large_tiles(tiny_pipe):
    x = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(6))
    tiles = TileSettings(latent_tile=8, latent_overlap=4, pixel_tile=48, pixel_overlap=16)
    out = tiny_pipe.restore_tensor(x, W, steps=2, tiles=tiles)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_model_with_mismatched_channels_is_refused():
    cfg = tiny_model_config()
    cfg.autoencoder.latent_channels = 8
    with pytest.raises(ValueError, match="latent channels"):
        build_model(cfg)


def test_folder_whose_network_does_not_fit_the_autoencoder_is_one_line(tiny_model_dir, tmp_path):
    from unires.model.autoencoder import UniResAutoencoder

    comps = load_model(tiny_model_dir)
    comps.vae = UniResAutoencoder(
        latent_channels=3, channels=(16, 32), encoder_blocks=(1, 1), decoder_blocks=(1, 1)
    )
    save_model(comps, tmp_path / "bad")
    with pytest.raises(ModelFolderError) as e:
        load_model(tmp_path / "bad")
    message = str(e.value)
    assert "\n" not in message and str(tmp_path / "bad") in message
    assert "takes 8 channels and gives 4" in message and "latent has 3" in message


def test_saved_model_folder_uses_safetensors(tiny_model_dir, tmp_path):
    comps = load_model(tiny_model_dir)
    save_model(comps, tmp_path / "m")
    files = {p.name for p in (tmp_path / "m").rglob("*") if p.is_file()}
    assert "diffusion_pytorch_model.safetensors" in files
    assert not any(name.endswith(".bin") for name in files)


def test_self_ensemble_restores_at_the_same_size_and_is_checked(tiny_pipe):
    """Flips and quarter turns of a non-square, padded image come back in place; the random
    tiny network is not equivariant, so the ensemble changes the output."""
    x = torch.rand(1, 3, 24, 40, generator=torch.Generator().manual_seed(0))
    plain = tiny_pipe.restore_tensor(x, W, steps=2)
    for n in (2, 8):
        out = tiny_pipe.restore_tensor(x, W, steps=2, ensemble=n)
        assert out.shape == plain.shape
        assert not torch.equal(out, plain)
        assert (out - plain).abs().mean() < 0.2  # the same image, averaged differently
    assert not tiny_pipe.batches_candidates(x, {"ensemble": 8})  # the search's fast path
    with pytest.raises(ValueError, match="ensemble must be one of"):
        tiny_pipe.restore_tensor(x, W, steps=2, ensemble=3)


def test_model_digest_names_the_weights_and_settings_not_the_folder(tiny_model_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    (copy / "README.md").write_text("notes do not change the model\n")
    digest = model_digest(tiny_model_dir)
    assert len(digest) == 16 and model_digest(copy) == digest
    assert UniResPipeline.from_pretrained(copy, device="cpu").model_digest == digest
    index = json.loads((copy / "model_index.json").read_text())
    index["unires"]["default_steps"] += 1
    (copy / "model_index.json").write_text(json.dumps(index))
    assert model_digest(copy) != digest
    shutil.rmtree(copy)
    shutil.copytree(tiny_model_dir, copy)
    weights = next((copy / "unet").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of the last weight
    weights.write_bytes(bytes(data))
    assert model_digest(copy) != digest
    with pytest.raises(ModelFolderError, match="not a UniRes model folder"):
        model_digest(tmp_path)
