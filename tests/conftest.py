"""Shared fixtures: tiny random UniRes models built and saved by the tests themselves, and
the project's tools/ scripts as modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # pytest-xdist runs one worker per core

TOOLS = Path(__file__).resolve().parents[1] / "tools"


@pytest.fixture(scope="session")
def load_tool():
    """``load_tool(NAME)``: the module tools/NAME.py (tools/ is not a package)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module

    return load


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


@pytest.fixture(scope="session")
def tiny_nafnet():
    """The NAFNet backbone at test size: width 8, two levels (latent sides multiples of 4)."""
    from unires.model.factory import NAFNetConfig

    return NAFNetConfig(
        width=8, encoder_blocks=(1, 1), middle_blocks=1, decoder_blocks=(1, 1), embed_dim=16
    )


@pytest.fixture(scope="session")
def tiny_nafnet_dir(tmp_path_factory, tiny_nafnet):
    """A tiny v-prediction UniRes model folder with the ``ConditionalNAFNet`` backbone. Its
    zero-initialised modulations and residual gains are perturbed, as training would, so
    that the tasks (and the timesteps) give different outputs."""
    from dataclasses import replace

    from unires.model.bundle import save_model
    from unires.model.factory import build_model, tiny_model_config

    torch.manual_seed(0)
    comps = build_model(replace(tiny_model_config(), backbone="nafnet", nafnet=tiny_nafnet))
    with torch.no_grad():
        for p in comps.unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp("models") / "tiny-nafnet"
    save_model(comps, folder)
    return folder


@pytest.fixture()
def tiny_nafnet_pipe(tiny_nafnet_dir):
    from unires.pipeline import UniResPipeline

    return UniResPipeline.from_pretrained(tiny_nafnet_dir, device="cpu", dtype="fp32")


class NetworkRows:
    """Counts the latents that really go through a network (batch rows of every call)."""

    def __init__(self, net: torch.nn.Module):
        self.rows = 0
        net.register_forward_pre_hook(self.hook)

    def hook(self, module, args):
        self.rows += args[0].shape[0]


@pytest.fixture()
def count_rows():
    """``count_rows(net)`` starts counting the latents ``net`` evaluates (its ``.rows``)."""
    return NetworkRows
