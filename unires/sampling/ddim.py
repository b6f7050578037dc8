"""The UniRes DDIM loop: task predictions mixed by Eq. 2 at every step.

``TaskMixture`` is the model wrapper (as k-diffusion's CFG denoisers): it evaluates every
task with a non-zero weight in ONE batched call of the ``Denoiser`` (model/denoiser.py) and
mixes the outputs with Eq. 2. ``sample_unires_ddim`` is the sampler: a plain loop over DDIM
steps with no hidden state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import torch
from diffusers import DDIMScheduler
from tqdm.auto import tqdm

from ..model.denoiser import ddim_scheduler
from ..weights import active_weights

if TYPE_CHECKING:
    from ..model.denoiser import Denoiser

# What the sampler calls: (x_t (B, C, h, w), t) -> the mixed model output (B, C, h, w).
Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def predict_tasks(
    denoiser: Denoiser,
    z_t: torch.Tensor,
    t: torch.Tensor,
    cond_latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
) -> torch.Tensor:
    """All task predictions in one network call.

    z_t: (B, C, h, w) noisy latent; cond_latents: (K, B, C, h, w), the condition input
    (``denoiser.condition`` applied) of each of K tasks; prompt_embeds: (K, L, D). Returns
    (K, B, C, h, w) float32 model outputs in the denoiser's prediction type (eps, v or x0):
    eps_theta(z_t, z_cond_k, s_k).
    """
    k, b = cond_latents.shape[:2]
    x = z_t.unsqueeze(0).expand(k, *z_t.shape).reshape(k * b, *z_t.shape[1:])
    cond = cond_latents.reshape(k * b, *cond_latents.shape[2:])
    ctx = prompt_embeds.unsqueeze(1).expand(k, b, *prompt_embeds.shape[1:])
    out = denoiser(x, t, cond, ctx.reshape(k * b, *prompt_embeds.shape[1:]))
    return out.reshape(k, b, *out.shape[1:])


def combine_task_predictions(predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq. 2: eps~(z_t, z_LQ; w) = sum_k w_k * eps_theta(z_t, z_LQ, s_k), with sum_k w_k = 1.

    predictions: (K, ...); weights: (K,). Because the weights sum to one, mixing
    v-predictions gives the same x0 as mixing eps-predictions (v is affine in eps at fixed z_t).
    """
    w = weights.to(predictions).reshape(-1, *([1] * (predictions.dim() - 1)))
    return (w * predictions).sum(dim=0)


class TaskMixture:
    """Model ``(z_t, t) -> mixed model output`` over the tasks with non-zero weight.

    cond_latents / prompt_embeds map task code -> (B, C, h, w) condition input (already
    through ``denoiser.condition``) / (L, D) prompt embedding. Tasks whose weight
    is zero are dropped here and never evaluated. Large latents are tiled outside, by
    ``tiling.TiledDenoiser`` around this model.

    Raises:
        ValueError: every weight is zero.
    """

    def __init__(
        self,
        denoiser: Denoiser,
        cond_latents: Mapping[str, torch.Tensor],
        prompt_embeds: Mapping[str, torch.Tensor],
        weights: Mapping[str, float],
    ):
        self.denoiser = denoiser
        self.tasks = list(active_weights(weights))
        if not self.tasks:
            raise ValueError("all task weights are zero")
        self.cond = torch.stack([cond_latents[k] for k in self.tasks])
        self.embeds = torch.stack([prompt_embeds[k] for k in self.tasks])
        self.weights = torch.tensor([float(weights[k]) for k in self.tasks], dtype=torch.float64)

    def predict(self, z_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Eq. 2: the weighted sum of the tasks' model outputs at (z_t, t); ``cond`` unused."""
        preds = predict_tasks(self.denoiser, z_t, t, cond, self.embeds)
        return combine_task_predictions(preds, self.weights.float())

    def __call__(self, z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.predict(z_t, t, self.cond)


def make_scheduler(scheduler_config: Mapping, steps: int) -> DDIMScheduler:
    """A fresh DDIM scheduler for one sampling run (the loop keeps no state between runs)."""
    scheduler = ddim_scheduler(scheduler_config)
    scheduler.set_timesteps(steps)
    return scheduler


def strength_timesteps(scheduler: DDIMScheduler, strength: float) -> torch.Tensor:
    """The timesteps a run of ``strength`` (0, 1] visits: the last fraction of the schedule,
    at least one (img2img / SDEdit; 1 = all of them, as in the paper)."""
    timesteps = scheduler.timesteps
    if strength >= 1.0:
        return timesteps
    return timesteps[-max(1, round(len(timesteps) * strength)) :]


@torch.no_grad()
def sample_unires_ddim(
    model: Model,
    x: torch.Tensor,
    scheduler_config: Mapping,
    steps: int,
    *,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    disable: bool | None = None,
    callback: Callable[[dict], None] | None = None,
    strength: float = 1.0,
    x0_init: torch.Tensor | None = None,
) -> torch.Tensor:
    """DDIM from ``x`` = x_T (already scaled by the scheduler's init noise sigma) to x_0.

    ``model(x_t, t)`` returns the mixed model output (``TaskMixture``). ``callback`` gets
    {"i", "t", "x", "model_output", "pred_x0"} after every step (for previews and searches).
    ``strength`` < 1 (not in the paper; img2img / SDEdit): run only the last ``strength``
    fraction of the steps, starting from ``x0_init`` noised to that level with ``x`` as the
    noise. Lower strength stays closer to ``x0_init``.

    Raises:
        ValueError: ``strength`` < 1 without ``x0_init``.
    """
    scheduler = make_scheduler(scheduler_config, steps)
    timesteps = strength_timesteps(scheduler, strength)
    if strength < 1.0:
        if x0_init is None:
            raise ValueError("strength < 1 needs x0_init")
        x = scheduler.add_noise(x0_init, x, timesteps[:1])
    for i, t in enumerate(tqdm(timesteps, disable=disable, desc="sampling")):
        model_output = model(x, t)
        out = scheduler.step(model_output, t, x, eta=eta, generator=generator)
        x = out.prev_sample
        if callback is not None:
            callback(
                {
                    "i": i,
                    "t": t,
                    "x": x,
                    "model_output": model_output,
                    "pred_x0": out.pred_original_sample,
                }
            )
    return x
