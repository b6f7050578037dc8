"""Build a fresh (untrained) UniRes model from configs: for training and for tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import choice
from ..tasks import TRAINING_PROMPTS
from .autoencoder import SpaceToDepthAutoencoder, UniResAutoencoder
from .bundle import ModelComponents, UniResSettings, default_scheduler_config
from .denoiser import PREDICTION_TYPES
from .head import UNetWithHead
from .nafnet import ConditionalNAFNet
from .prompt import TaskPromptTable
from .unet import UNET_PRESETS, UNetConfig, build_unet


@dataclass
class AutoencoderConfig:
    latent_channels: int = 32
    channels: tuple[int, int] = (128, 256)
    encoder_blocks: tuple[int, int] = (2, 2)
    decoder_blocks: tuple[int, int] = (3, 3)
    # > 0: no learned autoencoder but the lossless SpaceToDepthAutoencoder with this factor
    # (latent_channels is then 3 * factor^2); nothing to train, no reconstruction ceiling.
    space_to_depth: int = 0


@dataclass
class HeadConfig:
    """The normalisation-free head added to the UNet's output (model/head.py)."""

    channels: int = 96
    layers: int = 4


@dataclass
class NAFNetConfig:
    """The restoration backbone for small models (model/nafnet.py, ``ConditionalNAFNet``)."""

    width: int = 32
    encoder_blocks: tuple[int, ...] = (1, 1, 2)
    middle_blocks: int = 2
    decoder_blocks: tuple[int, ...] = (1, 1, 1)
    embed_dim: int = 128
    # Channel attention's pooling window, latent pixels (TLC; ConditionalNAFNet.pool_window):
    # about 1.5x the training crop; None pools over the whole input as NAFNet does.
    pool_window: int | None = None


BACKBONES = ("unet", "nafnet")


@dataclass
class ModelConfig:
    """A fresh model. ``backbone`` picks the network: "unet" (diffusers'
    ``UNet2DConditionModel``, optionally with ``head``; SD-class models) or "nafnet" (the
    restoration backbone for small models, configured by ``nafnet``); ``unet`` also gives
    the latent channels and the prompt embedding width for either."""

    unet: UNetConfig = field(default_factory=lambda: UNET_PRESETS["embedded"])
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    head: HeadConfig | None = None  # None: the plain UNet (the paper's model)
    backbone: str = choice("unet", BACKBONES)
    nafnet: NAFNetConfig = field(default_factory=NAFNetConfig)
    prompt_tokens: int = 4
    prediction_type: str = choice("v_prediction", PREDICTION_TYPES)
    settings: UniResSettings = field(default_factory=UniResSettings)


def build_model(cfg: ModelConfig, vae=None) -> ModelComponents:
    """Untrained components; ``vae`` lets training start from a trained autoencoder.

    Raises:
        ValueError: the autoencoder's latent channels differ from the UNet's, or an unknown
            ``backbone``.
    """
    a = cfg.autoencoder
    if vae is None and a.space_to_depth > 0:
        vae = SpaceToDepthAutoencoder(factor=a.space_to_depth)
    elif vae is None:
        vae = UniResAutoencoder(
            latent_channels=a.latent_channels,
            channels=tuple(a.channels),
            encoder_blocks=tuple(a.encoder_blocks),
            decoder_blocks=tuple(a.decoder_blocks),
        )
    if vae.latent_channels != cfg.unet.latent_channels:
        raise ValueError(
            f"autoencoder has {vae.latent_channels} latent channels, "
            f"UNet expects {cfg.unet.latent_channels}"
        )
    if cfg.backbone not in BACKBONES:
        raise ValueError(f"model.backbone must be one of {BACKBONES}, got {cfg.backbone!r}")
    if cfg.backbone == "nafnet":
        n = cfg.nafnet
        unet = ConditionalNAFNet(
            in_channels=2 * cfg.unet.latent_channels,
            out_channels=cfg.unet.latent_channels,
            width=n.width,
            encoder_blocks=tuple(n.encoder_blocks),
            middle_blocks=n.middle_blocks,
            decoder_blocks=tuple(n.decoder_blocks),
            context_dim=cfg.unet.cross_attention_dim,
            embed_dim=n.embed_dim,
            pool_window=n.pool_window,
        )
    else:
        unet = build_unet(cfg.unet)
        if cfg.head is not None:
            unet = UNetWithHead.around(unet, cfg.head.channels, cfg.head.layers)
    prompts = TaskPromptTable(
        prompts=list(TRAINING_PROMPTS),
        embed_dim=cfg.unet.cross_attention_dim,
        tokens=cfg.prompt_tokens,
    )
    return ModelComponents(
        unet, vae, prompts, default_scheduler_config(cfg.prediction_type), cfg.settings
    )


def tiny_model_config(prediction_type: str = "v_prediction", target: str = "latent") -> ModelConfig:
    """A model small enough for unit tests (random weights: it restores nothing)."""
    return ModelConfig(
        unet=UNET_PRESETS["tiny"],
        autoencoder=AutoencoderConfig(
            latent_channels=4, channels=(16, 32), encoder_blocks=(1, 1), decoder_blocks=(1, 1)
        ),
        prompt_tokens=2,
        prediction_type=prediction_type,
        settings=UniResSettings(diffusion_target=target, default_steps=4),
    )
