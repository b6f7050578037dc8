"""A normalisation-free convolutional head added to the UNet's output.

Why it exists (docs/TRAINING.md, run 3 and the overfit probes): a small UNet whose every
block starts with GroupNorm settles on "predict ~0" for the one-step restoration, because
per-sample normalisation throws away the input's scale while the residual targets differ
~60x in scale between samples and tasks (EDSR drops normalisation in SR networks for the
same reason). A few plain convolutions on the same input ``[z_t, z_cond]``, whose output is
added to the UNet's, keep the scale and let the model learn (overfit probe: relative loss
0.82 vs 0.96 after 150 steps). The head is told the task and the noise level by FiLM from
the pooled prompt embedding and the timestep, so each task prompt still gives its own
prediction and Eq. 2 mixes predictions that really differ.

``UNetWithHead`` has the UNet's call signature (``model(x, t, encoder_hidden_states=...)
.sample``), so the samplers, the search and the trainer use it unchanged; it is saved as the
``unet`` component of a model folder (class ``["unires", "UNetWithHead"]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import Timesteps
from diffusers.models.modeling_utils import ModelMixin

if TYPE_CHECKING:  # imported where used: diffusers' UNets take over a second to import
    from diffusers import UNet2DConditionModel


class RestorationHead(torch.nn.Module):
    """conv -> SiLU -> [conv -> FiLM(task, t) -> SiLU] x layers -> conv; no normalisation."""

    def __init__(
        self, in_channels: int, out_channels: int, channels: int, layers: int, context_dim: int
    ):
        super().__init__()
        self.conv_in = torch.nn.Conv2d(in_channels, channels, 3, padding=1)
        self.convs = torch.nn.ModuleList(
            torch.nn.Conv2d(channels, channels, 3, padding=1) for _ in range(layers)
        )
        self.conv_out = torch.nn.Conv2d(channels, out_channels, 3, padding=1)
        self.time_proj = Timesteps(64, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.film = torch.nn.Sequential(
            torch.nn.Linear(64 + context_dim, 128),
            torch.nn.SiLU(),
            torch.nn.Linear(128, 2 * channels * layers),
        )
        # FiLM starts as the identity (scale 1, shift 0): the head begins as a plain CNN.
        torch.nn.init.zeros_(self.film[-1].weight)
        torch.nn.init.zeros_(self.film[-1].bias)

    def forward(
        self, x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor
    ) -> torch.Tensor:
        """The head's output (B, C, h, w) for latent input ``x`` (B, C_in, h, w), ``timestep``
        (scalar or (B,)) and prompt embeddings ``context`` (B, tokens, width).
        """
        b = x.shape[0]
        t = timestep if torch.is_tensor(timestep) else torch.tensor([timestep])
        t = t.to(x.device).flatten().expand(b) if t.numel() == 1 else t.to(x.device)
        # The task is the prompt; its embedding averaged over tokens is enough to tell
        # four constant prompts (and the empty one) apart.
        cond = torch.cat([self.time_proj(t).to(x.dtype), context.mean(dim=1).to(x.dtype)], 1)
        film = self.film(cond).view(b, len(self.convs), 2, -1, 1, 1)
        h = F.silu(self.conv_in(x))
        for i, conv in enumerate(self.convs):
            h = F.silu(conv(h) * (1 + film[:, i, 0]) + film[:, i, 1])
        return self.conv_out(h)


class UNetWithHead(ModelMixin, ConfigMixin):
    """``UNet2DConditionModel`` plus a ``RestorationHead``; outputs are summed."""

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self, unet_config: dict | None = None, head_channels: int = 96, head_layers: int = 4
    ):
        from diffusers import UNet2DConditionModel

        super().__init__()
        self.unet = UNet2DConditionModel.from_config(dict(unet_config or {}))
        c = self.unet.config
        self.head = RestorationHead(
            c.in_channels, c.out_channels, head_channels, head_layers, c.cross_attention_dim
        )

    @classmethod
    def around(cls, unet: UNet2DConditionModel, channels: int, layers: int) -> UNetWithHead:
        """Wrap an existing UNet (its weights kept) with a fresh head."""
        config = {k: v for k, v in unet.config.items() if not k.startswith("_")}
        model = cls(config, channels, layers)
        model.unet.load_state_dict(unet.state_dict())
        return model

    def forward(
        self,
        sample: torch.Tensor,
        timestep,
        encoder_hidden_states: torch.Tensor,
        return_dict: bool = True,
        **kwargs,
    ):
        """The UNet's output plus the head's, as ``UNet2DConditionModel.forward`` returns it."""
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        out = self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, **kwargs)
        out = out.sample + self.head(sample, timestep, encoder_hidden_states)
        return UNet2DConditionOutput(sample=out) if return_dict else (out,)


def unet_config(model: torch.nn.Module):
    """The UNet2DConditionModel config of a denoiser, with or without a head."""
    return model.unet.config if isinstance(model, UNetWithHead) else model.config
