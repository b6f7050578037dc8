"""UNetWithHead: the UNet plus a normalisation-free, task-aware conv head (model/head.py)."""

from __future__ import annotations

import json

import pytest
import torch

from unires.model.bundle import load_model, save_model
from unires.model.factory import HeadConfig, build_model, tiny_model_config
from unires.model.head import UNetWithHead, unet_config
from unires.pipeline import UniResPipeline


@pytest.fixture()
def headed():
    torch.manual_seed(0)
    cfg = tiny_model_config(target="residual")
    cfg.head = HeadConfig(channels=8, layers=2)
    return build_model(cfg)


def _inputs(batch=2):
    g = torch.Generator().manual_seed(3)
    return torch.randn(batch, 8, 8, 8, generator=g), torch.full((batch,), 999)


def test_output_is_unet_plus_head(headed):
    model = headed.unet
    x, t = _inputs()
    ctx = headed.prompt_encoder.encode(["", ""])
    with torch.no_grad():
        total = model(x, t, encoder_hidden_states=ctx).sample
        parts = model.unet(x, t, encoder_hidden_states=ctx).sample + model.head(x, t, ctx)
    assert torch.allclose(total, parts, atol=1e-6)
    assert unet_config(model).out_channels == 4 and unet_config(model.unet) is model.unet.config


def test_head_is_told_the_task_and_the_timestep(headed):
    head = headed.unet.head
    x, t = _inputs(1)
    a, b = torch.randn(1, 2, 32), torch.randn(1, 2, 32)
    with torch.no_grad():
        # FiLM starts at the identity: a fresh head is a plain CNN, blind to task and time.
        assert torch.equal(head(x, t, a), head(x, t, b))
        torch.nn.init.normal_(head.film[-1].weight, std=0.5)
        assert not torch.allclose(head(x, t, a), head(x, t, b))
        assert not torch.allclose(head(x, t, a), head(x, torch.tensor([10]), a))
        # A scalar timestep is broadcast over the batch, as diffusers' UNet does.
        x2 = x.expand(2, -1, -1, -1)
        batched = head(x2, torch.tensor(999), a.expand(2, -1, -1))
        assert torch.allclose(batched[0], head(x, t, a)[0], atol=1e-5)


def test_head_has_no_normalisation(headed):
    norms = (torch.nn.GroupNorm, torch.nn.BatchNorm2d, torch.nn.LayerNorm, torch.nn.InstanceNorm2d)
    assert not any(isinstance(m, norms) for m in headed.unet.head.modules())
    # Scale equivariance at zero bias: doubling the input doubles the first layer's output,
    # which a normalised block would undo (the collapse the head exists to avoid).
    head = headed.unet.head
    x, _ = _inputs(1)
    with torch.no_grad():
        y1 = head.conv_in(x) - head.conv_in.bias[:, None, None]
        y2 = head.conv_in(2 * x) - head.conv_in.bias[:, None, None]
    assert torch.allclose(y2, 2 * y1, atol=1e-5)


def test_save_load_round_trip_and_restore(headed, tmp_path):
    save_model(headed, tmp_path / "m")
    index = json.loads((tmp_path / "m" / "model_index.json").read_text())
    assert index["unet"] == ["unires", "UNetWithHead"]
    config = json.loads((tmp_path / "m" / "unet" / "config.json").read_text())
    assert config["head_channels"] == 8 and config["head_layers"] == 2
    assert not any(k.startswith("_") for k in config["unet_config"])
    again = load_model(tmp_path / "m")
    assert isinstance(again.unet, UNetWithHead)
    x, t = _inputs()
    ctx = headed.prompt_encoder.encode(["", ""])
    with torch.no_grad():
        assert torch.equal(
            headed.unet(x, t, encoder_hidden_states=ctx).sample,
            again.unet(x, t, encoder_hidden_states=ctx).sample,
        )
    pipe = UniResPipeline.from_pretrained(tmp_path / "m", device="cpu", dtype="fp32")
    img = torch.rand(1, 3, 24, 40, generator=torch.Generator().manual_seed(0))
    out = pipe.restore_tensor(img, {"dn": 0.5, "sr": 0.5}, steps=2)
    assert out.shape == img.shape and torch.isfinite(out).all()


def test_around_keeps_the_unet_weights(headed):
    plain = build_model(tiny_model_config()).unet
    wrapped = UNetWithHead.around(plain, channels=4, layers=1)
    for name, p in plain.state_dict().items():
        assert torch.equal(wrapped.unet.state_dict()[name], p)
