"""Autoencoders behind one small interface: images in [-1, 1] <-> scaled latents.

``UniResAutoencoder`` is the project's own small deterministic autoencoder for CPU models
(no pretrained VAE can be downloaded here). It has no normalisation layers, so a tile
encodes the same as the same region of the whole image (tiling needs that), and it moves
between pixels and latents by pixel-(un)shuffle, which is cheap on a CPU.
``encode_latents`` / ``decode_latents`` give it and diffusers' ``AutoencoderKL`` /
``AutoencoderTiny`` the one interface the pipeline uses.
"""

from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + conv2(act(conv1(act(x)))): (B, C, H, W) -> (B, C, H, W)."""
        return x + self.conv2(self.act(self.conv1(self.act(x))))


class UniResAutoencoder(ModelMixin, ConfigMixin):
    """Deterministic f=8 autoencoder: 3 x H x W  <->  latent_channels x H/8 x W/8.

    Encoder: pixel-unshuffle x4, convs at H/4, strided conv to H/8, convs, project.
    Decoder mirrors it with pixel-shuffle. With ``linear_skip`` a linear path (8x8 patch ->
    latent -> 8x8 patch) runs beside the convolutions; initialised to the PCA of 8x8 patches
    (``init_linear_skip``) with the convolutional outputs at zero, training starts from the
    best linear autoencoder instead of from noise. ``scaling_factor`` / ``shift_factor`` map
    raw latents to roughly unit variance for diffusion (set after training from data).
    """

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 32,
        channels: tuple[int, int] = (96, 192),
        encoder_blocks: tuple[int, int] = (2, 2),
        decoder_blocks: tuple[int, int] = (3, 3),
        scaling_factor: float = 1.0,
        shift_factor: float = 0.0,
        linear_skip: bool = False,
    ):
        super().__init__()
        c_hi, c_lo = channels
        self.enc_in = nn.Conv2d(3 * 16, c_hi, 3, padding=1)
        self.enc_hi = nn.Sequential(*[ResBlock(c_hi) for _ in range(encoder_blocks[0])])
        self.enc_down = nn.Conv2d(c_hi, c_lo, 4, stride=2, padding=1)
        self.enc_lo = nn.Sequential(*[ResBlock(c_lo) for _ in range(encoder_blocks[1])])
        self.enc_out = nn.Conv2d(c_lo, latent_channels, 3, padding=1)

        self.dec_in = nn.Conv2d(latent_channels, c_lo, 3, padding=1)
        self.dec_lo = nn.Sequential(*[ResBlock(c_lo) for _ in range(decoder_blocks[1])])
        self.dec_up = nn.Conv2d(c_lo, c_hi * 4, 3, padding=1)
        self.dec_hi = nn.Sequential(*[ResBlock(c_hi) for _ in range(decoder_blocks[0])])
        self.dec_out = nn.Conv2d(c_hi, 3 * 16, 3, padding=1)
        self.act = nn.SiLU()
        if linear_skip:
            self.enc_skip = nn.Conv2d(3 * 64, latent_channels, 1)
            self.dec_skip = nn.Conv2d(latent_channels, 3 * 64, 1)

    downscale_factor = 8

    @torch.no_grad()
    def init_linear_skip(self, patches: torch.Tensor) -> None:
        """PCA of flattened 8x8 patches (N x 192, pixel-unshuffle order) initialises the
        linear path; the convolutional paths' last layers start at zero."""
        mean = patches.mean(0)
        cov = torch.cov((patches - mean).T.double())
        _, vecs = torch.linalg.eigh(cov)
        basis = vecs[:, -self.config.latent_channels :].flip(-1).float()  # 192 x C
        self.enc_skip.weight.copy_(basis.T[..., None, None])
        self.enc_skip.bias.copy_(-(basis.T @ mean))
        self.dec_skip.weight.copy_(basis[..., None, None])
        self.dec_skip.bias.copy_(mean)
        for conv in (self.enc_out, self.dec_out):
            conv.weight.zero_()
            conv.bias.zero_()

    @property
    def latent_channels(self) -> int:
        """Channels of the latent (C of z: (B, C, H/8, W/8))."""
        return self.config.latent_channels

    def encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B, 3, H, W) in [-1, 1], H and W multiples of 8 -> unscaled latent (B, C, H/8, W/8)."""
        h = self.enc_in(nn.functional.pixel_unshuffle(x, 4))
        h = self.enc_down(self.act(self.enc_hi(h)))
        z = self.enc_out(self.act(self.enc_lo(h)))
        if self.config.linear_skip:
            z = z + self.enc_skip(nn.functional.pixel_unshuffle(x, 8))
        return z

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Unscaled latent (B, C, h, w) -> image (B, 3, 8h, 8w), about [-1, 1] (not clamped)."""
        h = self.dec_lo(self.dec_in(z))
        h = nn.functional.pixel_shuffle(self.dec_up(self.act(h)), 2)
        h = nn.functional.pixel_shuffle(self.dec_out(self.act(self.dec_hi(h))), 4)
        if self.config.linear_skip:
            h = h + nn.functional.pixel_shuffle(self.dec_skip(z), 8)
        return h

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B, 3, H, W) in [-1, 1] -> latent (B, C, H/8, W/8), shifted and scaled to unit scale."""
        return (self.encode_raw(x) - self.config.shift_factor) * self.config.scaling_factor

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent (B, C, h, w) from ``encode`` -> image (B, 3, 8h, 8w), about [-1, 1]."""
        return self.decode_raw(z / self.config.scaling_factor + self.config.shift_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction (B, 3, H, W) of an image in [-1, 1] (training the autoencoder)."""
        return self.decode_raw(self.encode_raw(x))


class SpaceToDepthAutoencoder(ModelMixin, ConfigMixin):
    """Lossless "autoencoder": f x f pixel blocks <-> 3 f^2 latent channels (pixel unshuffle).

    No learned weights and no reconstruction error, so restoration quality is not capped by
    an autoencoder and the latent residual z_HQ - z_LQ is the pixel residual, rearranged.
    The embedded CPU model uses it (f = 4): with the learned f = 8 autoencoder the latent
    residual proved unpredictable from z_LQ on a CPU budget (docs/TRAINING.md, run 2).
    """

    @register_to_config
    def __init__(self, factor: int = 4, scaling_factor: float = 1.0, shift_factor: float = 0.0):
        super().__init__()
        # A (saved) buffer so the module has a dtype, a device and a weights file like the
        # other autoencoders; it is 1 and changes nothing.
        self.register_buffer("unit", torch.ones(()))

    @property
    def downscale_factor(self) -> int:
        """Pixels per latent cell a side (``factor``)."""
        return int(self.config.factor)

    @property
    def latent_channels(self) -> int:
        """3 * factor**2 latent channels."""
        return 3 * int(self.config.factor) ** 2

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B, 3, H, W) in [-1, 1] -> (B, 3 f^2, H/f, W/f), shifted and scaled (lossless)."""
        z = nn.functional.pixel_unshuffle(x, self.config.factor)
        return (z - self.config.shift_factor) * self.config.scaling_factor * self.unit

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The exact inverse of ``encode``: (B, 3 f^2, h, w) -> (B, 3, f h, f w)."""
        z = z / self.config.scaling_factor + self.config.shift_factor
        return nn.functional.pixel_shuffle(z * self.unit, self.config.factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``: the input itself, up to rounding."""
        return self.decode(self.encode(x))


OWN_AUTOENCODERS = (UniResAutoencoder, SpaceToDepthAutoencoder)


def load_own_autoencoder(path, torch_dtype: torch.dtype = torch.float32):
    """A project autoencoder folder (either class), chosen by its config's class name.

    Raises:
        ValueError: the folder's config names no UniRes autoencoder class.
        OSError: the folder or its config.json cannot be read.
    """
    import json
    from pathlib import Path

    name = json.loads((Path(path) / "config.json").read_text()).get("_class_name")
    for cls in OWN_AUTOENCODERS:
        if cls.__name__ == name:
            return cls.from_pretrained(path, torch_dtype=torch_dtype)
    raise ValueError(f"{path}: not a UniRes autoencoder (class {name!r})")


def _is_own(vae) -> bool:
    return isinstance(vae, OWN_AUTOENCODERS)


def encode_latents(vae, images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> latents scaled for diffusion (deterministic: the mode)."""
    if _is_own(vae):
        return vae.encode(images)
    out = vae.encode(images)
    if hasattr(out, "latent_dist"):  # AutoencoderKL
        z = out.latent_dist.mode()
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return (z - shift) * vae.config.scaling_factor
    return out.latents * vae.config.scaling_factor  # AutoencoderTiny


def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents -> images in about [-1, 1]."""
    if _is_own(vae):
        return vae.decode(latents)
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return vae.decode(latents / vae.config.scaling_factor + shift).sample


def vae_downscale_factor(vae) -> int:
    """Image pixels per latent cell a side of any autoencoder (ours, AutoencoderKL, Tiny)."""
    if _is_own(vae):
        return vae.downscale_factor
    cfg = vae.config
    if hasattr(cfg, "upsampling_scaling_factor"):  # AutoencoderTiny
        return int(cfg.upsampling_scaling_factor ** (len(cfg.decoder_block_out_channels) - 1))
    return 2 ** (len(cfg.block_out_channels) - 1)  # AutoencoderKL: one x2 per extra block


def vae_latent_channels(vae) -> int:
    """Latent channels of any autoencoder (ours or a diffusers one)."""
    if _is_own(vae):
        return vae.latent_channels
    return int(vae.config.latent_channels)
