"""A conditional restoration backbone for small models: NAFNet blocks told the task and t.

NAFNet (Chen et al. 2022, "Simple Baselines for Image Restoration", ECCV; the layout of
megvii-research/NAFNet ``NAFNet_arch.py``) is the field's cheap, strong restoration network:
no GroupNorm or BatchNorm (LayerNorm over channels per pixel only), SimpleGate instead of
non-linear activations, simplified channel attention, no attention over pixels, a U-shape
with few channels. Per-sample normalisation is what made the text-to-image UNet collapse to
"predict ~0" on residuals whose scale varies ~60x between tasks (docs/TRAINING.md, run 3);
a per-pixel LayerNorm keeps each pixel's context but no global statistic.

What UniRes adds: every block is told the diffusion timestep and the task prompt. The
pooled prompt embedding (mean over tokens) and a sinusoidal embedding of t pass through a
small MLP; each block turns that vector into a scale and a shift for each of its two
LayerNorms (adaptive LayerNorm as in DiT, Peebles & Xie 2023; FiLM), zero-initialised so a
fresh block starts as NAFNet's identity block. Each task prompt therefore gives its own
prediction, which Eq. 2 mixes.

``ConditionalNAFNet`` has the call of diffusers' ``UNet2DConditionModel``
(``model(sample, timestep, encoder_hidden_states=...).sample``) and is saved as the ``unet``
component of a model folder (class ``["unires", "ConditionalNAFNet"]``). Only
``model/denoiser.py`` calls it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn
from torch.utils.checkpoint import checkpoint


@dataclass
class NAFNetOutput(BaseOutput):
    """What ``ConditionalNAFNet.forward`` returns: ``sample`` (B, out_channels, H, W), as in
    diffusers' ``UNet2DConditionOutput`` (not imported: that loads every diffusers UNet, over a
    second of a restore's start on 2 cores)."""

    sample: torch.Tensor


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(
        self, x: torch.Tensor, scale: torch.Tensor | None = None, shift: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Layer norm over the channels of (B, C, H, W), per pixel. With ``scale`` and ``shift``
        (B, C, 1, 1), the adaptive form norm(x) * (1 + scale) + shift (DiT's adaLN), its two
        affine maps folded into one: a single pass over x for one sample, two for a batch."""
        c = x.shape[1:2]
        nhwc = x.permute(0, 2, 3, 1)  # a view; contiguous when x is channels_last
        if scale is None:
            return F.layer_norm(nhwc, c, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)
        weight = self.weight[:, None, None] * (1 + scale)
        bias = self.bias[:, None, None] * (1 + scale) + shift
        if x.shape[0] == 1:
            y = F.layer_norm(nhwc, c, weight.flatten(), bias.flatten(), self.eps)
            return y.permute(0, 3, 1, 2)
        y = F.layer_norm(nhwc, c, None, None, self.eps).permute(0, 3, 1, 2)
        return torch.addcmul(bias, y, weight)


def local_mean(x: torch.Tensor, window: int | None) -> torch.Tensor:
    """Mean of ``x`` (B, C, H, W) over a ``window`` x ``window`` box: what a block's channel
    attention sees (TLC, the Test-time Local Converter of Chu et al. 2022, "Improving Image
    Restoration by Revisiting Global Information Aggregation", ECCV; megvii-research/TLC).

    NAFNet pools each feature map over the whole image. Trained on small crops, it then meets
    statistics of a far larger area on a full photo; TLC pools over the area it was trained
    on instead. ``None``, or a window covering the map, gives the global mean (B, C, 1, 1) as
    NAFNet does; otherwise (B, C, H, W): the mean of every full window (summed-area table, in
    at least fp32), the border pixels taking their nearest full window's.
    """
    h, w = x.shape[-2:]
    if window is None or (window >= h and window >= w):
        return x.mean(dim=(2, 3), keepdim=True)
    kh, kw = min(h, window), min(w, window)
    wide = x.to(torch.promote_types(x.dtype, torch.float32))  # fp16 sums lose the mean
    s = F.pad(wide.cumsum(-1).cumsum(-2), (1, 0, 1, 0))
    box = s[..., kh:, kw:] - s[..., :-kh, kw:] - s[..., kh:, :-kw] + s[..., :-kh, :-kw]
    dh, dw = h - box.shape[-2], w - box.shape[-1]
    box = F.pad(box / (kh * kw), (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="replicate")
    return box.to(x.dtype)


def simple_gate(x: torch.Tensor) -> torch.Tensor:
    """NAFNet's SimpleGate: split the channels in two halves and multiply them."""
    a, b = x.chunk(2, dim=1)
    return a * b


class NAFBlock(nn.Module):
    """NAFNet block with adaptive LayerNorms: x + beta * conv branch, then + gamma * FFN.

    ``emb`` (B, E) gives each LayerNorm a scale and a shift; both start at zero, and beta and
    gamma at zero as in NAFNet, so a fresh block is the identity. ``pool_window``: the side,
    in this block's pixels, of its channel attention's pooling (``local_mean``; None: global).
    """

    def __init__(self, channels: int, embed_dim: int, dw_expand: int = 2, ffn_expand: int = 2):
        super().__init__()
        self.pool_window: int | None = None  # set by ConditionalNAFNet for the block's level
        c, dw, ffn = channels, channels * dw_expand, channels * ffn_expand
        self.norm1 = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        # Simplified channel attention: average pool -> 1x1 conv -> channel scale.
        self.sca = nn.Conv2d(dw // 2, dw // 2, 1)
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.norm2 = LayerNorm2d(c)
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.modulation = nn.Linear(embed_dim, 4 * c)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), modulated by the time and prompt embedding ``emb`` (B, E)."""
        scale1, shift1, scale2, shift2 = self.modulation(emb)[..., None, None].chunk(4, dim=1)
        y = self.norm1(x, scale1, shift1)
        y = simple_gate(self.conv2(self.conv1(y)))
        y = y * self.sca(local_mean(y, self.pool_window))
        x = x + _scaled_conv(self.conv3, y, self.beta)
        y = simple_gate(self.conv4(self.norm2(x, scale2, shift2)))
        return x + _scaled_conv(self.conv5, y, self.gamma)


def _scaled_conv(conv: nn.Conv2d, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``conv(x) * scale`` for a per-channel ``scale`` (1, C_out, 1, 1), the scale folded into
    the (small) kernel and bias instead of a pass over the (large) output."""
    s = scale.reshape(-1)
    return F.conv2d(
        x, conv.weight * s[:, None, None, None], conv.bias * s, conv.stride, conv.padding
    )


class ConditionalNAFNet(ModelMixin, ConfigMixin):
    """U-shaped NAFNet on ``[x_t, condition]``, conditioned on t and the task prompt.

    Input ``sample``: (B, in_channels, H, W) with H, W multiples of ``downsample_factor``
    (2 ** len(encoder_blocks)); ``timestep``: a scalar or (B,) in [0, num_train_timesteps);
    ``encoder_hidden_states``: (B, L, context_dim) prompt embeddings (pooled over L here).
    Output: (B, out_channels, H, W), the model output in the prediction type it was trained
    for (``model/denoiser.py`` knows which).

    Channels double at each of the ``len(encoder_blocks)`` downsamplings (2x2 stride-2 conv)
    and halve at each upsampling (1x1 conv + pixel shuffle), as in NAFNet; skips are added.

    ``pool_window``: the side, in input pixels, of the area each block's channel attention
    averages over (``local_mean``, TLC; halved at each level). ``None``: the whole input, as
    in NAFNet. On inputs no larger than the window both are the same, so a model trained on
    crops of side s and set to a window of about 1.5 s (TLC's choice) trains as before and
    sees, on a large input, statistics of the area it learnt from. The embedded model keeps
    None: the pipeline's 272-pixel tiles bound the pooled area already, and a 192 window
    raised the ``complex`` set's NIQE (docs/TRAINING.md, "Tiles and pooling windows").

    Raises:
        ValueError: ``encoder_blocks`` and ``decoder_blocks`` of different lengths, or a
            ``pool_window`` not None nor an integer >= ``downsample_factor``.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        in_channels: int = 6,
        out_channels: int = 3,
        width: int = 32,
        encoder_blocks: tuple[int, ...] = (1, 1, 2),
        middle_blocks: int = 2,
        decoder_blocks: tuple[int, ...] = (1, 1, 1),
        context_dim: int = 256,
        embed_dim: int = 128,
        pool_window: int | None = None,
    ):
        super().__init__()
        if len(encoder_blocks) != len(decoder_blocks):
            raise ValueError(
                f"encoder_blocks {tuple(encoder_blocks)} and decoder_blocks "
                f"{tuple(decoder_blocks)} must have the same length"
            )
        _check_pool_window(pool_window, self.downsample_factor)  # the config is registered
        self.gradient_checkpointing = False
        self.time_proj = Timesteps(64, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.embed = nn.Sequential(
            nn.Linear(64 + context_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim)
        )
        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        c = width
        for n in encoder_blocks:
            self.encoders.append(nn.ModuleList(NAFBlock(c, embed_dim) for _ in range(n)))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.ModuleList(NAFBlock(c, embed_dim) for _ in range(middle_blocks))
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for n in reversed(decoder_blocks):
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.ModuleList(NAFBlock(c, embed_dim) for _ in range(n)))
        self.ending = nn.Conv2d(width, out_channels, 3, padding=1)
        self._place_pool_window(pool_window)

    def set_pool_window(self, window: int | None) -> None:
        """Pool each block's channel attention over ``window`` input pixels (None: the whole
        input); recorded in the config, so ``save_pretrained`` keeps it.

        Raises:
            ValueError: ``window`` not None nor an integer >= ``downsample_factor``.
        """
        _check_pool_window(window, self.downsample_factor)
        self.register_to_config(pool_window=window)
        self._place_pool_window(window)

    def _place_pool_window(self, window: int | None) -> None:
        levels = len(self.encoders)
        placed = [(i, blocks) for i, blocks in enumerate(self.encoders)]
        placed += [(levels, self.middle)]
        placed += [(levels - 1 - i, blocks) for i, blocks in enumerate(self.decoders)]
        for level, blocks in placed:
            for block in blocks:
                block.pool_window = None if window is None else window // 2**level

    @property
    def downsample_factor(self) -> int:
        """Input sides must be multiples of this (2 per encoder level)."""
        return 2 ** len(self.config.encoder_blocks)

    def deepened(
        self,
        encoder_blocks: tuple[int, ...] | None = None,
        middle_blocks: int | None = None,
        decoder_blocks: tuple[int, ...] | None = None,
    ) -> ConditionalNAFNet:
        """A copy with more blocks per level and the same output: growing a trained model.

        Each level keeps its blocks and their weights; the new ones are appended after them
        and start as NAFNet's identity block (beta = gamma = 0, zero modulation), so the
        deepened network computes exactly what this one does until training moves them.
        ``None`` keeps a level's count. (Function-preserving growth in the spirit of
        Net2Net, Chen et al. 2016; identity blocks need no weight surgery.)

        Raises:
            ValueError: a level with fewer blocks than now, or another number of levels.
        """
        cfg = self.config
        new = {
            "encoder_blocks": tuple(encoder_blocks or cfg.encoder_blocks),
            "middle_blocks": cfg.middle_blocks if middle_blocks is None else int(middle_blocks),
            "decoder_blocks": tuple(decoder_blocks or cfg.decoder_blocks),
        }
        for key, n in new.items():
            old = getattr(cfg, key)
            old_n, new_n = (tuple(old), n) if key != "middle_blocks" else ((old,), (n,))
            if len(new_n) != len(old_n) or any(b < a for a, b in zip(old_n, new_n, strict=True)):
                raise ValueError(
                    f"{key}: {n} cannot grow from {old} (same number of levels, no fewer blocks)"
                )
        grown = self._fresh(**new)
        # strict=False: the new blocks keep their identity initialisation; every existing
        # tensor has its place in the grown network (load_state_dict raises on a shape error).
        grown.load_state_dict(self.state_dict(), strict=False)
        return self._placed_like_self(grown)

    def widened(
        self, generator: torch.Generator | None = None, split: float = 0.2
    ) -> ConditionalNAFNet:
        """A copy with twice the channels at every level and the same output (Net2WiderNet).

        Every channel is duplicated: a feature map h becomes ``cat(h, h)``, which keeps each
        pixel's LayerNorm mean and variance, so every block computes what it did. Layers that
        read a duplicated map split each input weight between the two copies as (1 + e) / 2
        and (1 - e) / 2, e uniform in [-split, split] (drawn from ``generator``): the sum, and
        so the output, is unchanged, while the copies receive different gradients and learn
        apart (Chen et al. 2016, "Net2Net", Sec. 2.2, with exact asymmetric splits in place
        of their added noise). SimpleGate halves and PixelShuffle groups are duplicated as
        units, so the halves still pair and the shuffled channels still line up.

        About 3x the parameters and 2.5x the time on a CPU (all convolutions but the first
        and last double on both sides); the time and prompt embedding is unchanged.

        Raises:
            ValueError: ``split`` outside [0, 1).
        """
        if not 0 <= split < 1:
            raise ValueError(f"split must be in [0, 1), got {split}")
        w = _Net2Wider(self.state_dict(), generator or torch.Generator().manual_seed(0), split)
        cfg = self.config
        w.new.update({k: v for k, v in w.old.items() if k.startswith("embed.")})
        c = cfg.width
        w.conv("intro", _copies(c))
        for i, n in enumerate(cfg.encoder_blocks):
            for j in range(n):
                w.block(f"encoders.{i}.{j}", c)
            w.conv(f"downs.{i}", _copies(2 * c), _copies(c))
            c *= 2
        for j in range(cfg.middle_blocks):
            w.block(f"middle.{j}", c)
        for i, n in enumerate(reversed(cfg.decoder_blocks)):
            w.conv(f"ups.{i}.0", _shuffle_copies(2 * c), _copies(c))
            c //= 2
            for j in range(n):
                w.block(f"decoders.{i}.{j}", c)
        w.conv("ending", None, _copies(c))
        wide = self._fresh(width=2 * cfg.width)
        wide.load_state_dict(w.new)  # strict: every tensor of the wider network is set above
        return self._placed_like_self(wide)

    def _fresh(self, **changes) -> ConditionalNAFNet:
        # A newly initialised network of this one's config with ``changes``.
        kwargs = {k: v for k, v in self.config.items() if not k.startswith("_")}
        return type(self)(**{**kwargs, **changes})

    def _placed_like_self(self, net: ConditionalNAFNet) -> ConditionalNAFNet:
        # A fresh module is fp32 on the CPU; ModelMixin.to warns whenever a dtype is passed.
        net = net.to(self.device)
        return net if self.dtype == net.dtype else net.to(self.dtype)

    def activation_channels(self) -> float:
        """Channels alive per input pixel during a forward pass, roughly (memory estimates:
        each block keeps ~4 x its channels; level i has 2^i x width channels at 1/4^i)."""
        cfg = self.config
        levels = list(zip(cfg.encoder_blocks, cfg.decoder_blocks, strict=True))
        per = sum((e + d + 1) * 4 * cfg.width * 2**i / 4**i for i, (e, d) in enumerate(levels))
        deepest = len(levels)
        per += (cfg.middle_blocks + 1) * 4 * cfg.width * 2**deepest / 4**deepest
        return per

    def _run(self, block: NAFBlock, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, x, emb, use_reentrant=False)
        return block(x, emb)

    def forward(self, sample, timestep, encoder_hidden_states, return_dict=True, **kwargs):
        """The denoiser output (B, C_out, h, w) for ``sample`` (B, C_in, h, w), ``timestep`` (scalar
        or (B,)) and prompt embeddings (B, tokens, width); ``UNet2DConditionModel``'s interface.
        """
        b = sample.shape[0]
        t = torch.as_tensor(timestep, device=sample.device).flatten()
        t = t.expand(b) if t.numel() == 1 else t
        pooled = encoder_hidden_states.mean(dim=1)
        emb = self.embed(torch.cat([self.time_proj(t).to(pooled.dtype), pooled], dim=1))
        x = self.intro(sample)
        skips = []
        for blocks, down in zip(self.encoders, self.downs, strict=True):
            for block in blocks:
                x = self._run(block, x, emb)
            skips.append(x)
            x = down(x)
        for block in self.middle:
            x = self._run(block, x, emb)
        for up, blocks, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            x = up(x) + skip
            for block in blocks:
                x = self._run(block, x, emb)
        out = self.ending(x)
        return NAFNetOutput(sample=out) if return_dict else (out,)


def _check_pool_window(window: int | None, smallest: int) -> None:
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, int) or window < smallest
    ):
        raise ValueError(
            f"pool_window must be None or an integer >= {smallest} (the downsampling), got {window!r}"
        )


# ---- Net2WiderNet (ConditionalNAFNet.widened) ----------------------------------------------


def _copies(c: int) -> torch.Tensor:
    """New channel -> old channel for ``cat(h, h)`` of a map with ``c`` channels."""
    return torch.arange(2 * c) % c


def _gate_copies(c2: int) -> torch.Tensor:
    """The same for a map that SimpleGate halves: [a, b] -> [a, a, b, b], so halves still pair."""
    a = torch.arange(c2 // 2)
    return torch.cat([a, a, a + c2 // 2, a + c2 // 2])


def _shuffle_copies(c4: int) -> torch.Tensor:
    """The same for a map that PixelShuffle(2) turns into ``c4 / 4`` channels (groups of 4)."""
    o = torch.arange(2 * c4)
    return (o // 4) % (c4 // 4) * 4 + o % 4


class _Net2Wider:
    """The doubled network's state dict, built layer by layer from ``state`` (old names)."""

    def __init__(self, state: dict[str, torch.Tensor], gen: torch.Generator, split: float):
        self.old = {k: v.detach().float().cpu() for k, v in state.items()}
        self.new: dict[str, torch.Tensor] = {}
        self.gen, self.split = gen, split

    def split_factors(self, m: torch.Tensor) -> torch.Tensor:
        """(1 + e) / 2 for the first copy of each old channel in ``m``, (1 - e) / 2 for the
        second: the two sum to 1, so a layer reading both computes what it did."""
        e = (torch.rand(int(m.max()) + 1, generator=self.gen) * 2 - 1) * self.split
        first = torch.zeros(len(m), dtype=torch.bool)
        first[torch.argsort(m, stable=True)[0::2]] = True  # each old channel appears twice
        return torch.where(first, 1 + e[m], 1 - e[m]) / 2

    def conv(self, name: str, m_out=None, m_in=None) -> None:
        """Conv ``name``: output channels copied by ``m_out``, inputs split by ``m_in`` (None
        for a depthwise conv, whose one input channel per output is copied with it)."""
        w = self.old[f"{name}.weight"]
        if m_out is not None:
            w = w[m_out]
        if m_in is not None:
            w = w[:, m_in] * self.split_factors(m_in)[None, :, None, None]
        self.new[f"{name}.weight"] = w
        if f"{name}.bias" in self.old:
            b = self.old[f"{name}.bias"]
            self.new[f"{name}.bias"] = b if m_out is None else b[m_out]

    def block(self, name: str, c: int) -> None:
        """NAFBlock ``name`` of ``c`` channels."""
        x = g = _copies(c)  # the residual stream; a SimpleGate output
        for key in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"):
            self.new[f"{name}.{key}"] = self.old[f"{name}.{key}"][x]
        self.conv(f"{name}.conv1", _gate_copies(2 * c), x)
        self.conv(f"{name}.conv2", _gate_copies(2 * c))  # depthwise
        self.conv(f"{name}.sca", g, g)
        self.conv(f"{name}.conv3", x, g)
        self.conv(f"{name}.conv4", _gate_copies(2 * c), x)
        self.conv(f"{name}.conv5", x, g)
        for gain in ("beta", "gamma"):
            self.new[f"{name}.{gain}"] = self.old[f"{name}.{gain}"][:, x]
        chunks = torch.cat([k * c + _copies(c) for k in range(4)])  # scale1, shift1, ...
        for key in ("modulation.weight", "modulation.bias"):
            self.new[f"{name}.{key}"] = self.old[f"{name}.{key}"][chunks]
