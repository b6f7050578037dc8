"""The shipped embedded model: loads by default, restores, and respects the repository's
weight policy (fp16 safetensors, diffusers folder layout, <= 20 MB in all)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from unires.pipeline import EMBEDDED_MODEL_DIR, EmbeddedModelMissing, UniResPipeline

MAX_BYTES = 20 * 1024 * 1024  # DEVELOPERS: the shipped folder is <= 20 MB in all


@pytest.fixture(scope="module")
def embedded():
    try:
        return UniResPipeline.from_pretrained(device="cpu", dtype="fp32")
    except EmbeddedModelMissing as e:
        pytest.skip(str(e))


def test_weights_are_fp16_safetensors_within_budget(embedded):
    from safetensors import safe_open

    files = [p for p in Path(EMBEDDED_MODEL_DIR).rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= MAX_BYTES
    assert (Path(EMBEDDED_MODEL_DIR) / "model_index.json").is_file()
    weights = [p for p in files if p.suffix == ".safetensors"]
    assert weights and not [p for p in files if p.suffix in (".bin", ".pt", ".pkl", ".ckpt")]
    for path in weights:
        with safe_open(str(path), "pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                assert f.get_slice(key).get_dtype() == "F16", (path, key)


def test_embedded_model_restores_with_its_defaults(embedded):
    lq = torch.rand(1, 3, 40, 56)
    out = embedded.restore_tensor(lq)
    assert out.shape == lq.shape and torch.isfinite(out).all()
    assert embedded.settings.default_steps >= 1
    assert sum(embedded.settings.default_weights.values()) == pytest.approx(1.0)
    x4 = embedded.restore_tensor(lq[..., :20, :28], {"sr": 1.0}, scale=4)
    assert x4.shape[-2:] == (80, 112)


def test_loading_and_restoring_import_none_of_diffusers_sd_models_or_scipy(tmp_path):
    """The CLI's parser and a restore with the embedded model load only what they use:
    diffusers' UNet/autoencoder packages and its other schedulers (scipy) import every model
    they hold, over a second of each restore's start on 2 cores."""
    import subprocess
    import sys

    if not (Path(EMBEDDED_MODEL_DIR) / "model_index.json").is_file():
        pytest.skip("no embedded model")
    code = (
        "import sys, torch\n"
        "from unires.cli import build_parser\n"
        "build_parser()\n"
        "from unires.pipeline import UniResPipeline\n"
        "pipe = UniResPipeline.from_pretrained(device='cpu', dtype='fp32')\n"
        "pipe.restore_tensor(torch.rand(1, 3, 32, 32), steps=1, seed=0)\n"
        "heavy = ('diffusers.models.unets', 'diffusers.models.autoencoders', 'scipy.stats')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
