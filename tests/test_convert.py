"""Converting a (tiny, locally built) Stable Diffusion checkpoint into a UniRes model."""

from __future__ import annotations

import json
import string
import sys

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
from PIL import Image

from unires.model.bundle import ModelFolderError, load_model
from unires.model.convert import convert_stable_diffusion
from unires.model.prompt import CLIPPromptEncoder
from unires.pipeline import UniResPipeline


def _tiny_clip(folder):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    chars = list(string.ascii_lowercase + string.digits + "-,.")
    vocab = ["<|startoftext|>", "<|endoftext|>"] + chars + [c + "</w>" for c in chars]
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "tokenizer" / "vocab.json").write_text(
        json.dumps({t: i for i, t in enumerate(vocab)})
    )
    (folder / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(
        str(folder / "tokenizer" / "vocab.json"),
        str(folder / "tokenizer" / "merges.txt"),
        model_max_length=16,
    )
    tok.save_pretrained(folder / "tokenizer")
    torch.manual_seed(0)
    cfg = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=16,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    CLIPTextModel(cfg).save_pretrained(folder / "text_encoder")


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sd") / "tiny-sd"
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    unet.save_pretrained(folder / "unet")
    AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=8,
    ).save_pretrained(folder / "vae")
    PNDMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, skip_prk_steps=True
    ).save_pretrained(folder / "scheduler")
    _tiny_clip(folder)
    (folder / "model_index.json").write_text(
        json.dumps({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "x"]})
    )
    return folder


def test_converted_model_equals_original_with_zero_condition(tiny_sd, tmp_path):
    out = convert_stable_diffusion(tiny_sd, tmp_path / "unires")
    comps = load_model(out)
    original = UNet2DConditionModel.from_pretrained(tiny_sd / "unet").eval()
    assert comps.unet.config.in_channels == 8
    assert original.config.in_channels == 4
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 4, 8, 8, generator=g)
    ctx = torch.randn(2, 5, 32, generator=g)
    t = torch.tensor(321)
    with torch.no_grad():
        ref = original(z, t, encoder_hidden_states=ctx).sample
        new = comps.unet.eval()(torch.cat([z, torch.zeros_like(z)], 1), t, ctx).sample
        moved = comps.unet(torch.cat([z, torch.randn_like(z)], 1), t, ctx).sample
    torch.testing.assert_close(new, ref, atol=1e-6, rtol=0)
    assert torch.equal(moved, new)  # new channels start at zero: the condition is ignored
    assert comps.scheduler_config["_class_name"] == "DDIMScheduler"
    assert comps.scheduler_config["clip_sample"] is False
    assert isinstance(comps.prompt_encoder, CLIPPromptEncoder)


def test_converted_model_runs_in_the_pipeline(tiny_sd, tmp_path):
    out = convert_stable_diffusion(tiny_sd, tmp_path / "unires")
    pipe = UniResPipeline.from_pretrained(out, device="cpu", dtype="fp32")
    emb = pipe.prompt_embedding("md")
    assert emb.shape == (16, 32)
    assert not torch.equal(emb, pipe.prompt_embedding("br"))
    x = torch.rand(1, 3, 30, 30)
    res = pipe.restore_tensor(x, {"md": 0.8, "br": 0.2}, steps=2)
    assert res.shape == x.shape


def test_non_sd_folder_is_refused(tmp_path):
    with pytest.raises(ModelFolderError, match="missing unet/"):
        convert_stable_diffusion(tmp_path, tmp_path / "out")


def test_a_clip_folder_without_transformers_gets_a_one_line_error(
    tiny_sd, tmp_path, monkeypatch, capsys
):
    """transformers is the `sd` extra: without it a CLIP folder names itself and the extra."""
    from unires.cli import main

    out = convert_stable_diffusion(tiny_sd, tmp_path / "unires")
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(ImportError, match=r"unires\[sd\]"):
        CLIPPromptEncoder.from_pretrained(out)
    img = tmp_path / "in.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(img)
    capsys.readouterr()  # what loading CLIP printed above
    assert main(["restore", str(img), "-o", str(tmp_path / "o"), "--model", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unires[sd]" in err and len(err.splitlines()) == 1
