"""The denoiser: diffusers' ``UNet2DConditionModel`` with the LQ latent concatenated to the
noisy latent (paper Sec. 3.1), so only ``conv_in`` is wider than a text-to-image UNet."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers import UNet2DConditionModel


@dataclass
class UNetConfig:
    latent_channels: int = 4
    block_out_channels: tuple[int, ...] = (64, 128, 256)
    layers_per_block: int = 1
    # "cross" blocks attend to the prompt embedding; "plain" ones are convolutions only.
    blocks: tuple[str, ...] = ("plain", "cross", "cross")
    cross_attention_dim: int = 256
    attention_head_dim: int | tuple[int, ...] = 32
    norm_num_groups: int = 32
    use_linear_projection: bool = False
    sample_size: int = 64
    extra: dict = field(default_factory=dict)  # any other UNet2DConditionModel argument


_DOWN = {"plain": "DownBlock2D", "cross": "CrossAttnDownBlock2D"}
_UP = {"plain": "UpBlock2D", "cross": "CrossAttnUpBlock2D"}

# Presets. "sd2" is the Stable Diffusion 2 UNet (~865M parameters), used for GPU timing and
# by conversions; "embedded" is the CPU model's size class; "tiny" is for tests.
UNET_PRESETS: dict[str, UNetConfig] = {
    "tiny": UNetConfig(
        latent_channels=4,
        block_out_channels=(32, 64),
        blocks=("plain", "cross"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
        sample_size=8,
    ),
    "embedded": UNetConfig(
        latent_channels=32,
        block_out_channels=(64, 128, 256),
        blocks=("plain", "cross", "cross"),
        cross_attention_dim=256,
        attention_head_dim=32,
        sample_size=32,
    ),
    "sd2": UNetConfig(
        latent_channels=4,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        blocks=("cross", "cross", "cross", "plain"),
        cross_attention_dim=1024,
        attention_head_dim=(5, 10, 20, 20),
        use_linear_projection=True,
        sample_size=64,
    ),
}


def build_unet(cfg: UNetConfig) -> UNet2DConditionModel:
    """A fresh UNet whose input is ``[z_t, z_cond]`` (2 x latent channels)."""
    down = tuple(_DOWN[b] for b in cfg.blocks)
    up = tuple(_UP[b] for b in reversed(cfg.blocks))
    return UNet2DConditionModel(
        sample_size=cfg.sample_size,
        in_channels=2 * cfg.latent_channels,
        out_channels=cfg.latent_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        cross_attention_dim=cfg.cross_attention_dim,
        attention_head_dim=cfg.attention_head_dim,
        norm_num_groups=cfg.norm_num_groups,
        use_linear_projection=cfg.use_linear_projection,
        **cfg.extra,
    )


@torch.no_grad()
def widen_conv_in(unet: UNet2DConditionModel, in_channels: int) -> UNet2DConditionModel:
    """Grow ``conv_in`` to ``in_channels`` inputs; the new channels start at zero.

    As in InstructPix2Pix: with a zero condition weight the widened model computes exactly
    what the text-to-image model did, so fine-tuning starts from the pretrained behaviour.

    Raises:
        ValueError: ``in_channels`` is fewer than ``conv_in`` has.
    """
    old = unet.conv_in
    if old.in_channels == in_channels:
        return unet
    if old.in_channels > in_channels:
        raise ValueError(f"conv_in has {old.in_channels} inputs, cannot shrink to {in_channels}")
    new = torch.nn.Conv2d(
        in_channels,
        old.out_channels,
        old.kernel_size,
        old.stride,
        old.padding,
        dtype=old.weight.dtype,
        device=old.weight.device,
    )
    new.weight.zero_()
    new.weight[:, : old.in_channels] = old.weight
    new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)
    return unet


def count_parameters(module: torch.nn.Module) -> int:
    """Number of parameters (elements) of ``module``."""
    return sum(p.numel() for p in module.parameters())
