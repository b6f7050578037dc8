"""Initialise a UniRes model from a Stable Diffusion or InstructPix2Pix checkpoint folder.

The paper fine-tunes a pretrained text-to-image LDM with the LQ latent concatenated to the
noisy latent. From a diffusers-format SD folder (unet/, vae/, text_encoder/, tokenizer/,
scheduler/) we keep every component and widen ``conv_in`` from 4 to 8 input channels with
the new channels zero-initialised (InstructPix2Pix-style), so the converted model computes
exactly what the original did when the condition latent is zero. An InstructPix2Pix UNet
already takes 8 channels and is kept as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

from .bundle import ModelComponents, ModelFolderError, UniResSettings, save_model
from .prompt import CLIPPromptEncoder
from .unet import widen_conv_in


def load_stable_diffusion(folder: str | Path, settings: UniResSettings | None = None):
    """A diffusers Stable Diffusion / InstructPix2Pix folder as UniRes components: the UNet's
    ``conv_in`` widened for the LQ latent (new channels zero), its VAE, CLIP text encoder and a
    DDIM scheduler config.

    Raises:
        ModelFolderError: a component folder is missing, or the UNet's input channels fit
            neither SD nor InstructPix2Pix.
    """
    folder = Path(folder)
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        if not (folder / sub).is_dir():
            raise ModelFolderError(
                f"{folder}: not a diffusers Stable Diffusion folder (missing {sub}/)"
            )
    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    vae = AutoencoderKL.from_pretrained(folder / "vae")
    latent = vae.config.latent_channels
    if unet.config.in_channels not in (latent, 2 * latent):
        raise ModelFolderError(
            f"{folder}: UNet takes {unet.config.in_channels} channels; expected {latent} (SD) "
            f"or {2 * latent} (InstructPix2Pix)"
        )
    widen_conv_in(unet, 2 * latent)
    prompt_encoder = CLIPPromptEncoder.from_pretrained(folder)
    sched_cfg = DDIMScheduler.load_config(folder / "scheduler")
    # Any SD scheduler config carries the training betas and prediction type. Latents are
    # not clipped to [-1, 1], and the last step lands on the clean estimate.
    scheduler = DDIMScheduler.from_config(sched_cfg, clip_sample=False, set_alpha_to_one=True)
    return ModelComponents(
        unet, vae, prompt_encoder, dict(scheduler.config), settings or UniResSettings()
    )


def convert_stable_diffusion(
    src: str | Path, dst: str | Path, settings: UniResSettings | None = None
) -> Path:
    """Write ``src`` (a diffusers SD folder) as a UniRes model folder ``dst``; returns ``dst``.

    Raises:
        ModelFolderError: as ``load_stable_diffusion``.
    """
    components = load_stable_diffusion(src, settings)
    src_index = Path(src) / "model_index.json"
    if src_index.is_file():
        origin = json.loads(src_index.read_text()).get("_class_name", "unknown")
        components.settings.description = f"converted from {Path(src).name} ({origin})"
    return save_model(components, dst)
