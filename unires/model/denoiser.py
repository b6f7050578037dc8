"""The denoiser: the one place that knows how the network is called and what it predicts.

k-diffusion's ``layers.Denoiser`` is the pattern: one object owns the condition input, the
network call, the prediction type and its conversions, the diffused variable and its
inverse, and the training loss. Sampling (``sampling/ddim.py``), the search's candidate
batching (``search/batched.py``), training and validation (``train/diffusion.py``) and the
pipeline call only this; none of them writes ``unet(cat[z_t, cond], t, ...)`` again.

Conventions (diffusers' DDPM/DDIM, which the scheduler follows):
    x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps                 (Ho et al. 2020, Eq. 4)
    v   = sqrt(abar_t) eps - sqrt(1 - abar_t) x0                  (Salimans & Ho 2022, Sec. 4)
x0 is the *diffused variable*: the clean latent z_HQ (the paper) or, for small models, the
scaled residual (z_HQ - z_LQ) * s (``UniResSettings.diffusion_target``), every task taken
against the same base z_LQ so Eq. 2 stays a mixture of predictions of one variable.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from diffusers import DDIMScheduler

from .head import UNetWithHead, unet_config
from .nafnet import ConditionalNAFNet

if TYPE_CHECKING:
    from .bundle import UniResSettings

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
# The dihedral transforms of the self-ensemble as (quarter turns, horizontal flip), ordered
# so that the first 2 and the first 4 keep the image's height and width.
DIHEDRAL = (
    (0, False),
    (0, True),
    (2, False),
    (2, True),
    (1, False),
    (1, True),
    (3, False),
    (3, True),
)
ENSEMBLE_SIZES = (1, 2, 4, 8)
LOSS_WEIGHTINGS = ("none", "target_energy", "psnr")


def network_channels(net: torch.nn.Module) -> tuple[int, int]:
    """(input, output) channels of a denoiser network of any supported class."""
    cfg = unet_config(net)
    return int(cfg.in_channels), int(cfg.out_channels)


def network_context_dim(net: torch.nn.Module) -> int:
    """Width D of the prompt embeddings (B, L, D) the network takes."""
    if isinstance(net, ConditionalNAFNet):
        return int(net.config.context_dim)
    return int(unet_config(net).cross_attention_dim)


def network_downsample_factor(net: torch.nn.Module) -> int:
    """How many latent pixels one pixel of the network's deepest level covers, per side:
    latent sides must be multiples of it."""
    if isinstance(net, ConditionalNAFNet):
        return net.downsample_factor
    cfg = unet_config(net)
    return 2 ** (len(cfg.block_out_channels) - 1)


def network_activation_channels(net: torch.nn.Module) -> float:
    """Rough activation channels alive per latent pixel in one forward pass (memory budget)."""
    if isinstance(net, ConditionalNAFNet):
        return net.activation_channels()
    cfg = unet_config(net)
    per = sum(
        c * (4 * cfg.layers_per_block + 4) / 4**i for i, c in enumerate(cfg.block_out_channels)
    )
    if isinstance(net, UNetWithHead):  # full-resolution head features, two alive at a time
        per += 2 * net.head.conv_in.out_channels
    return per


def network_max_tile(net: torch.nn.Module) -> int:
    """The largest latent tile side worth one network call when memory allows more.

    A UNet's self-attention costs the square of the tile's area: 128. The NAFNet has none:
    272, so that a 256x256 input goes in one call (nothing to blend) and a 512x512 one in 2x2
    tiles. Since a CPU call runs channels-last, larger calls are no faster per pixel (a
    512x512 restore of the embedded model on 2 cores: 3.5-3.9 s in one call per task against
    3.3-3.7 s in 2x2 tiles) and need more memory (peak RSS 743-837 MB against 550-566 MB),
    and the NAFNet's channel attention, pooled over the whole tile, would meet statistics of
    an area far beyond its training crops (docs/TRAINING.md, "Tiles and pooling windows").
    """
    return 272 if isinstance(net, ConditionalNAFNet) else 128


def ddim_scheduler(config: Mapping) -> DDIMScheduler:
    """``DDIMScheduler.from_config(config)``: the keys of ``DDIMScheduler.__init__`` are used,
    others ignored. Built directly because ``from_config`` looks up the compatible schedulers,
    which imports every diffusers scheduler (scipy among them: half a second of each restore's
    start on 2 cores)."""
    params = inspect.signature(DDIMScheduler.__init__).parameters
    return DDIMScheduler(**{k: v for k, v in config.items() if k in params and k != "self"})


# The most pixels (batch x height x width) of one network call on a CPU: measured with the
# embedded model on 2 cores, batches up to 4 x 128 x 128 beat their samples one by one, and
# 2 x 192 x 192 lost (``Denoiser._network``).
CPU_PIXELS_PER_CALL = 128 * 128 * 4


class Denoiser:
    """Wraps a network (``UNet2DConditionModel``, ``UNetWithHead`` or ``ConditionalNAFNet``)
    with everything needed to call it and to train it.

    ``scheduler_config``: the model folder's DDIM config (its ``prediction_type`` is what the
    network outputs: "epsilon", "v_prediction" or "sample"). ``settings``: the folder's
    ``UniResSettings`` (diffused variable, residual scale, condition statistics).
    ``ensemble``: 1, or 2, 4 or 8 for the geometric self-ensemble at inference (set by
    ``with_ensemble``).

    Raises:
        ValueError: an unknown prediction type.
    """

    def __init__(self, net: torch.nn.Module, scheduler_config: Mapping, settings: UniResSettings):
        self.net = net
        self.settings = settings
        self.ensemble = 1
        scheduler = ddim_scheduler(scheduler_config)
        self.prediction_type = scheduler.config.prediction_type
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"prediction_type {self.prediction_type!r} is not one of {PREDICTION_TYPES}"
            )
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)
        self.alphas_cumprod = scheduler.alphas_cumprod.float()

    # ---- the diffused variable ------------------------------------------------------------
    @property
    def residual(self) -> bool:
        """True when the model diffuses the residual (z_HQ - z_LQ) rather than z_HQ."""
        return self.settings.diffusion_target == "residual"

    def to_diffused(self, z_hq: torch.Tensor, z_lq: torch.Tensor) -> torch.Tensor:
        """x0 for training: z_HQ, or (z_HQ - z_LQ) * residual_scale. Shapes (B, C, h, w)."""
        return (z_hq - z_lq) * self.settings.residual_scale if self.residual else z_hq

    def from_diffused(self, x0: torch.Tensor, z_lq: torch.Tensor) -> torch.Tensor:
        """The inverse: a sampled x0 -> the restored latent z_HQ."""
        return z_lq + x0 / self.settings.residual_scale if self.residual else x0

    def unchanged(self, z_lq: torch.Tensor) -> torch.Tensor:
        """The x0 that means "the LQ as it is" (start point of strength < 1 sampling)."""
        return torch.zeros_like(z_lq) if self.residual else z_lq

    # ---- the condition input --------------------------------------------------------------
    def condition(self, z: torch.Tensor) -> torch.Tensor:
        """A condition latent (B, C, h, w) as the network sees it: standardised per channel
        when the model carries statistics (``condition_mean`` / ``condition_std``)."""
        s = self.settings
        if not s.condition_mean:
            return z
        mean = torch.tensor(s.condition_mean, dtype=z.dtype, device=z.device)
        std = torch.tensor(s.condition_std, dtype=z.dtype, device=z.device)
        return (z - mean[:, None, None]) / std[:, None, None]

    # ---- the network call -----------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        """The network's parameter dtype."""
        return next(self.net.parameters()).dtype

    @property
    def downsample_factor(self) -> int:
        """How many times the network halves the latent: latent sides must be multiples of 2**this."""
        return network_downsample_factor(_unwrap(self.net))

    def activation_channels(self) -> float:
        """Activation channels per latent cell (for memory estimates of tiles)."""
        return network_activation_channels(_unwrap(self.net))

    @property
    def max_tile(self) -> int:
        """The largest latent tile side worth one call (``network_max_tile``)."""
        return network_max_tile(_unwrap(self.net))

    def with_ensemble(self, n: int) -> Denoiser:
        """This denoiser with an ``n``-transform self-ensemble (1, 2, 4 or 8): each call
        averages the network output over the first ``n`` dihedral transforms of its input
        (identity, horizontal flip, half turn, ... ; ``DIHEDRAL``), each undone on the output,
        as EDSR's "+" models do (Lim et al. 2017, "Enhanced Deep Residual Networks", Sec.
        4.4). ``n`` times the network cost; the network and settings are shared, not copied.

        Raises:
            ValueError: ``n`` not in (1, 2, 4, 8).
        """
        if n not in ENSEMBLE_SIZES:
            raise ValueError(f"ensemble must be one of {ENSEMBLE_SIZES}, got {n}")
        twin = copy.copy(self)
        twin.ensemble = n
        return twin

    def __call__(
        self, x_t: torch.Tensor, t, cond: torch.Tensor, context: torch.Tensor
    ) -> torch.Tensor:
        """The model output F(x_t, t, cond, context), float32, in ``prediction_type``;
        averaged over the self-ensemble's transforms when ``ensemble`` > 1.

        x_t, cond: (B, C, h, w) (cond already through ``condition``); t: a scalar or (B,);
        context: (B, L, D) prompt embeddings. The condition is concatenated to the noisy
        latent on channels (paper Sec. 3.1).
        """
        x = torch.cat([x_t, cond], dim=1)
        if self.ensemble == 1:
            return self._network(x, t, context)
        total = torch.zeros((), dtype=torch.float32)
        for turns, flip in DIHEDRAL[: self.ensemble]:
            y = self._network(_dihedral(x, turns, flip), t, context)
            total = total + _dihedral_inverse(y, turns, flip)
        return total / self.ensemble

    def _network(self, x: torch.Tensor, t, context: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return self._call_net(x, t, context, torch.preserve_format)
        # On a CPU the input goes in channels-last (NHWC): oneDNN's convolutions then skip a
        # layout reorder per layer and the per-pixel LayerNorms read contiguous channels
        # (the embedded model's call at 512 x 512 on 2 cores: 2.8 s -> 2.0 s, same output).
        # And a large batch is slower than its samples one after another (activations fall
        # out of cache: two 512 x 512 samples 4.1 s together, 2.3 s apart; eight 64 x 64 ones
        # 0.17 s together, 0.33 s apart), so calls hold at most CPU_PIXELS_PER_CALL.
        n = max(1, CPU_PIXELS_PER_CALL // (x.shape[-2] * x.shape[-1]))
        if n >= x.shape[0]:
            return self._call_net(x, t, context, torch.channels_last)
        t = torch.as_tensor(t).flatten().expand(x.shape[0])
        parts = zip(x.split(n), t.split(n), context.split(n), strict=True)
        return torch.cat([self._call_net(*part, torch.channels_last) for part in parts])

    def _call_net(self, x: torch.Tensor, t, context: torch.Tensor, memory_format) -> torch.Tensor:
        dtype = self.dtype
        out = self.net(
            x.to(dtype, memory_format=memory_format), t, encoder_hidden_states=context.to(dtype)
        )
        return out.sample.float().contiguous()

    # ---- prediction types -----------------------------------------------------------------
    def _coefficients(self, t, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sqrt(abar_t), sqrt(1 - abar_t)) broadcastable to ``like``."""
        t = torch.as_tensor(t, device=self.alphas_cumprod.device).long().flatten()
        abar = self.alphas_cumprod[t].to(like.device, torch.float32)
        shape = (-1, *([1] * (like.dim() - 1)))
        return abar.sqrt().reshape(shape), (1 - abar).sqrt().reshape(shape)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (DDPM Eq. 4)."""
        a, s = self._coefficients(t, x0)
        return a * x0 + s * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
        """What the network is trained to output: eps, v = a eps - s x0, or x0."""
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "v_prediction":
            a, s = self._coefficients(t, x0)
            return a * noise - s * x0
        return x0

    def to_x0(self, output: torch.Tensor, x_t: torch.Tensor, t) -> torch.Tensor:
        """The clean-variable estimate implied by a model output (any prediction type)."""
        if self.prediction_type == "sample":
            return output
        a, s = self._coefficients(t, x_t)
        if self.prediction_type == "v_prediction":
            return a * x_t - s * output
        return (x_t - s * output) / a.clamp_min(1e-8)

    def predict_x0(self, x_t: torch.Tensor, t, cond: torch.Tensor, context: torch.Tensor):
        """x0 estimate of one network call. At the last timestep of a zero-terminal-SNR
        schedule this is the one-step (MMSE) restoration: one DDIM step from pure noise."""
        return self.to_x0(self(x_t, t, cond, context), x_t, t)

    # ---- training -------------------------------------------------------------------------
    def loss(
        self,
        x0: torch.Tensor,
        cond: torch.Tensor,
        context: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        weighting: str = "none",
    ) -> torch.Tensor:
        """Per-sample loss (B,): mean squared error of the model output against ``target``.

        ``weighting``: "none" (plain MSE, the paper); "target_energy": each sample divided
        by the expected energy of its target given x0, so tasks whose residuals are small
        (mild noise) weigh as much as those with large ones (x4 SR; docs/TRAINING.md); or
        "psnr": ``10 log10(MSE + 1e-8)`` per sample, NAFNet's PSNR loss (Chen et al. 2022):
        its mean over a batch is minus the mean PSNR that the benchmarks report, so a 1%
        smaller error counts as much on a mild-noise sample as on a heavy blur (the
        gradient of a sample is its MSE's divided by the MSE itself).

        Raises:
            ValueError: an unknown ``weighting``.
        """
        if weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"unknown loss_weighting {weighting!r} (one of {LOSS_WEIGHTINGS})")
        pred = self(self.add_noise(x0, noise, t), t, cond, context)
        target = self.target(x0, noise, t)
        per_sample = (pred - target.float()).pow(2).flatten(1).mean(1)
        if weighting == "none":
            return per_sample
        if weighting == "psnr":
            return 10 * torch.log10(per_sample + 1e-8)
        energy = x0.detach().float().pow(2).flatten(1).mean(1)
        if self.prediction_type == "v_prediction":  # E[v^2 | x0] = abar + (1 - abar) |x0|^2
            a, _ = self._coefficients(t, energy)
            expected = a**2 + (1 - a**2) * energy
        elif self.prediction_type == "epsilon":
            expected = torch.ones_like(energy)
        else:
            expected = energy
        return per_sample / expected.clamp_min(1e-2)


def _dihedral(x: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    """Flip (B, C, H, W) left-right if ``flip``, then turn it ``turns`` quarter turns."""
    return torch.rot90(x.flip(-1) if flip else x, turns, (-2, -1))


def _dihedral_inverse(x: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    """Undo ``_dihedral(., turns, flip)``."""
    x = torch.rot90(x, -turns, (-2, -1))
    return x.flip(-1) if flip else x


def _unwrap(net: torch.nn.Module) -> torch.nn.Module:
    """The network inside a DistributedDataParallel / accelerate wrapper."""
    return getattr(net, "module", net)
