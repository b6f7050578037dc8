"""Saving and loading a UniRes model as a diffusers-style folder.

    model_index.json        component -> [library, class], plus a "unires" settings block
    unet/                   the denoiser network: UNet2DConditionModel (SD-class models),
                            UNetWithHead (the same plus a normalisation-free conv head;
                            model/head.py) or ConditionalNAFNet (small models; model/nafnet.py)
    vae/                    UniResAutoencoder, SpaceToDepthAutoencoder, AutoencoderKL or
                            AutoencoderTiny
    prompt_encoder/         TaskPromptTable               (small models), or
    tokenizer/, text_encoder/  CLIP tokenizer and text model (Stable-Diffusion class)
    scheduler/              DDIMScheduler config

Only the classes listed in ``_LOADERS`` are ever instantiated from a folder: a model folder
cannot make the loader import arbitrary code.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from diffusers import DDIMScheduler, ModelMixin
from diffusers.utils import is_accelerate_available

from .. import __version__
from ..config import choice, from_dict, to_dict
from ..sampling.color import COLOR_FIXES
from ..utils import atomic_write_text
from .autoencoder import vae_latent_channels
from .denoiser import ddim_scheduler, network_channels
from .prompt import CLIPPromptEncoder

if TYPE_CHECKING:
    from diffusers import UNet2DConditionModel

    from .head import UNetWithHead
    from .nafnet import ConditionalNAFNet

DIFFUSION_TARGETS = ("latent", "residual")


@dataclass
class UniResSettings:
    """What a UniRes model needs beyond its components (the "unires" block)."""

    # "latent": diffuse the clean latent (the paper). "residual": diffuse
    # (z_HQ - z_LQ) * residual_scale and output z_LQ + x0 / residual_scale (small models
    # converge far faster; every task uses the same base z_LQ so Eq. 2 stays intact).
    diffusion_target: str = choice("latent", DIFFUSION_TARGETS)
    residual_scale: float = 1.0
    downlq_factor: int = 4
    default_steps: int = 20
    default_weights: dict[str, float] = field(default_factory=lambda: {"dn": -0.2, "downlq": 1.2})
    # The colour fix after decoding when the caller names none: AdaIN (the paper's, for
    # latent models whose colours drift), or "none" for a model measured better without.
    default_color_fix: str = choice("adain", COLOR_FIXES)
    description: str = ""
    # Per-channel standardisation of the condition latents before they enter the UNet
    # (model.denoiser.Denoiser.condition). An autoencoder whose channels differ 100x in
    # scale (a PCA-initialised one) otherwise hides the detail channels from the UNet's
    # first convolution. `normalize_condition: true` asks the trainer to estimate the
    # statistics; empty lists mean no standardisation.
    normalize_condition: bool = False
    condition_mean: list[float] = field(default_factory=list)
    condition_std: list[float] = field(default_factory=list)

    def __post_init__(self):
        if self.diffusion_target not in DIFFUSION_TARGETS:
            raise ValueError(
                f"diffusion_target must be one of {DIFFUSION_TARGETS}, got {self.diffusion_target!r}"
            )
        if len(self.condition_mean) != len(self.condition_std):
            raise ValueError("condition_mean and condition_std must have the same length")
        if any(v <= 0 for v in self.condition_std):
            raise ValueError("condition_std entries must be positive")


class ModelFolderError(ValueError):
    """A model folder that cannot be loaded; the message names the folder and the problem."""


@dataclass
class ModelComponents:
    unet: UNet2DConditionModel | UNetWithHead | ConditionalNAFNet
    vae: Any
    prompt_encoder: Any
    scheduler_config: dict
    settings: UniResSettings


# model_index.json's [library, class] -> the module that defines the class, imported only when
# a folder names it: diffusers' UNet and autoencoder packages import every model they hold
# (over a second of each restore's start on 2 cores), which the embedded model never uses.
_LOADERS = {
    ("diffusers", "UNet2DConditionModel"): "diffusers",
    ("unires", "UNetWithHead"): "unires.model.head",
    ("unires", "ConditionalNAFNet"): "unires.model.nafnet",
    ("diffusers", "AutoencoderKL"): "diffusers",
    ("diffusers", "AutoencoderTiny"): "diffusers",
    ("unires", "UniResAutoencoder"): "unires.model.autoencoder",
    ("unires", "SpaceToDepthAutoencoder"): "unires.model.autoencoder",
    ("unires", "TaskPromptTable"): "unires.model.prompt",
}


def model_digest(folder: str | Path) -> str:
    """What identifies a model folder's outputs: the SHA-256 (first 16 hex digits) of its
    files (weights, configs, "unires" settings, tokenizer) with their paths relative to the
    folder; Markdown and hidden files are left out. A copy of the folder gives the same
    digest; retraining into it or editing a setting changes it. Reads every weight file
    (about a second a gigabyte).

    Raises:
        ModelFolderError: ``folder`` is not a UniRes model folder (no model_index.json).
    """
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise ModelFolderError(f"{folder}: not a UniRes model folder (no model_index.json)")
    digest = hashlib.sha256()
    files = (p for p in folder.rglob("*") if p.is_file() and p.suffix != ".md")
    for path in sorted(files, key=lambda p: p.relative_to(folder).as_posix()):
        rel = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        digest.update(rel.encode("utf-8") + b"\0")
        with path.open("rb") as f:
            digest.update(f"{path.stat().st_size}\0".encode())
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _entry(obj) -> list[str]:
    cls = type(obj)
    library = "unires" if cls.__module__.startswith("unires") else cls.__module__.split(".")[0]
    return [library, cls.__name__]


def save_model(components: ModelComponents, folder: str | Path, dtype=None) -> Path:
    """Write ``folder`` (created if needed); weights in ``dtype`` if given (e.g. fp16)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"_class_name": "UniResPipeline", "_unires_version": __version__}

    def save_module(module, sub: str):
        first = next(module.parameters(), None)
        if first is None:  # a weightless autoencoder: its dtype is its buffers'
            first = next(module.buffers())
        was = first.dtype
        if dtype is not None:
            torch.nn.Module.to(module, dtype)  # diffusers' .to() warns on dtype casts
        module.save_pretrained(folder / sub, safe_serialization=True)
        torch.nn.Module.to(module, was)

    save_module(components.unet, "unet")
    index["unet"] = _entry(components.unet)
    save_module(components.vae, "vae")
    index["vae"] = _entry(components.vae)
    pe = components.prompt_encoder
    if isinstance(pe, CLIPPromptEncoder):
        pe.tokenizer.save_pretrained(folder / "tokenizer")
        save_module(pe.text_encoder, "text_encoder")
        index["tokenizer"] = _entry(pe.tokenizer)
        index["text_encoder"] = _entry(pe.text_encoder)
    else:
        save_module(pe, "prompt_encoder")
        index["prompt_encoder"] = _entry(pe)
    ddim_scheduler(components.scheduler_config).save_pretrained(folder / "scheduler")
    index["scheduler"] = ["diffusers", "DDIMScheduler"]
    index["unires"] = to_dict(components.settings)
    atomic_write_text(folder / "model_index.json", json.dumps(index, indent=2) + "\n")
    return folder


def _load_component(folder: Path, index: dict, name: str, dtype):
    entry = index.get(name)
    if entry is None:
        raise ModelFolderError(f"{folder}: model_index.json names no {name!r} component")
    well_formed = isinstance(entry, list) and all(isinstance(x, str) for x in entry)
    module = _LOADERS.get(tuple(entry)) if well_formed else None
    if module is None:
        raise ModelFolderError(f"{folder}: component {name!r} has unsupported class {entry}")
    cls = getattr(importlib.import_module(module), entry[1])
    if not (folder / name).is_dir():
        raise ModelFolderError(f"{folder}: missing sub-folder {name}/")
    kwargs = {"torch_dtype": dtype} if dtype is not None else {}
    if issubclass(cls, ModelMixin) and not is_accelerate_available():
        # diffusers wants accelerate for its low-memory loading and warns on every component
        # without it; a core install (`pip install unires`) does not have it.
        kwargs["low_cpu_mem_usage"] = False
    return cls.from_pretrained(folder / name, **kwargs)


def load_model(folder: str | Path, dtype: torch.dtype | None = None) -> ModelComponents:
    """The components of a UniRes model folder (``model_index.json`` and one folder a component),
    in ``dtype`` (None: as stored).

    Raises:
        ModelFolderError: no or invalid ``model_index.json``, or a component that is missing or
            of an unknown class.
        ConfigError: the "unires" settings have an unknown key or value.
    """
    folder = Path(folder)
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ModelFolderError(f"{folder}: not a UniRes model folder (no model_index.json)")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelFolderError(f"{index_path}: invalid JSON ({e})") from None
    unet = _load_component(folder, index, "unet", dtype)
    vae = _load_component(folder, index, "vae", dtype)
    if "prompt_encoder" in index:
        prompt_encoder = _load_component(folder, index, "prompt_encoder", dtype)
    elif "text_encoder" in index:
        prompt_encoder = CLIPPromptEncoder.from_pretrained(folder, torch_dtype=dtype)
    else:
        raise ModelFolderError(f"{folder}: no prompt_encoder or text_encoder component")
    latent = vae_latent_channels(vae)
    net_in, net_out = network_channels(unet)
    if (net_in, net_out) != (2 * latent, latent):
        raise ModelFolderError(
            f"{folder}: the unet takes {net_in} channels and gives {net_out}, but the vae's "
            f"latent has {latent}: a UniRes network needs {2 * latent} in "
            f"([z_t, condition]) and {latent} out"
        )
    scheduler_config = dict(DDIMScheduler.load_config(folder / "scheduler"))
    settings = from_dict(UniResSettings, index.get("unires", {}), where=str(index_path))
    return ModelComponents(unet, vae, prompt_encoder, scheduler_config, settings)


def default_scheduler_config(prediction_type: str = "v_prediction") -> dict:
    """DDIM over SD's scaled-linear betas. With v-prediction the schedule is rescaled to
    zero terminal SNR so sampling starts from pure noise, as training saw it."""
    return dict(
        DDIMScheduler(
            num_train_timesteps=1000,
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            clip_sample=False,
            set_alpha_to_one=True,  # the last step lands on the clean estimate
            prediction_type=prediction_type,
            timestep_spacing="trailing",
            rescale_betas_zero_snr=prediction_type == "v_prediction",
        ).config
    )
