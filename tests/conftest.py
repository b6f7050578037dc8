"""Shared fixtures: tiny random UniRes models built and saved by the tests themselves."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)  # pytest-xdist runs one worker per core


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny v-prediction UniRes model folder (random weights)."""
    from unires.model.bundle import save_model
    from unires.model.factory import build_model, tiny_model_config

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_model(build_model(tiny_model_config()), folder)
    return folder


@pytest.fixture()
def tiny_pipe(tiny_model_dir):
    from unires.pipeline import UniResPipeline

    return UniResPipeline.from_pretrained(tiny_model_dir, device="cpu", dtype="fp32")
