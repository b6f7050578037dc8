"""Sampler speed: batched task evaluation (one network call per step) vs one call per task.

Times the DDIM loop of ``sample_unires_ddim`` with ``TaskMixture`` on random latents, for a
UNet preset (random weights are fine for timing) or a saved model's ``Denoiser`` (any
backbone). Figures are seconds per image per weight set, over ``steps`` DDIM steps.
"""

from __future__ import annotations

import platform
import resource
import time
from dataclasses import asdict, dataclass

import torch

from ..model.bundle import UniResSettings, default_scheduler_config
from ..model.denoiser import Denoiser, network_channels, network_context_dim
from ..model.unet import UNET_PRESETS, build_unet, count_parameters
from ..sampling.ddim import TaskMixture, combine_task_predictions, predict_tasks, sample_unires_ddim
from ..tasks import PAPER_GRID_TASKS
from ..utils import plural


@dataclass
class SpeedResult:
    model: str
    parameters_m: float
    device: str
    dtype: str
    image_size: int
    latent_size: int
    tasks: int
    steps: int
    timed_steps: int
    batched_s: float
    one_by_one_s: float
    speedup: float
    peak_memory_mb: float
    torch_threads: int


class OneByOne:
    """The naive alternative: one network call per task per step (same Eq. 2 result)."""

    def __init__(self, mixture: TaskMixture):
        self.m = mixture

    def __call__(self, z_t, t):
        preds = torch.cat(
            [
                predict_tasks(
                    self.m.denoiser, z_t, t, self.m.cond[i : i + 1], self.m.embeds[i : i + 1]
                )
                for i in range(len(self.m.tasks))
            ]
        )
        return combine_task_predictions(preds, self.m.weights.float())


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's with the torch thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_speed_benchmark(
    model: str = "embedded",
    image_size: int = 512,
    tasks: int = 6,
    steps: int = 50,
    timed_steps: int | None = None,
    device: str = "cpu",
    dtype: str = "fp32",
    vae_factor: int = 8,
    prompt_tokens: int | None = None,
    denoiser: Denoiser | None = None,
) -> SpeedResult:
    """Time ``timed_steps`` steps (default: all) and scale to ``steps``. ``denoiser``: a
    model's (``UniResPipeline.denoiser``); default: a fresh UNet of preset ``model``.

    Raises:
        ValueError: more ``tasks`` than the paper's grid has.
    """
    dev = torch.device(device)
    dt = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    if denoiser is None:
        net = build_unet(UNET_PRESETS[model])
        denoiser = Denoiser(net, default_scheduler_config(), UniResSettings())
    net = torch.nn.Module.to(denoiser.net.eval(), dev, dt)
    c = network_channels(net)[1]
    size = image_size // vae_factor
    cfg_dim = network_context_dim(net)
    tokens = prompt_tokens or (77 if cfg_dim >= 768 else 4)
    gen = torch.Generator("cpu").manual_seed(0)
    codes = PAPER_GRID_TASKS[:tasks] if tasks <= len(PAPER_GRID_TASKS) else None
    if codes is None:
        raise ValueError(f"at most {len(PAPER_GRID_TASKS)} tasks")
    cond = {k: torch.randn(1, c, size, size, generator=gen).to(dev) for k in codes}
    emb = {k: torch.randn(tokens, cfg_dim, generator=gen).to(dev, dt) for k in codes}
    weights = {k: 1.0 / len(codes) for k in codes}
    mixture = TaskMixture(denoiser, cond, emb, weights)
    x = torch.randn(1, c, size, size, generator=gen).to(dev)
    sched = {
        "num_train_timesteps": 1000,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "clip_sample": False,
        "prediction_type": "v_prediction",
        "timestep_spacing": "trailing",
    }
    n = timed_steps or steps

    def timed(model_fn) -> float:
        sample_unires_ddim(model_fn, x, sched, 1, disable=True)  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        sample_unires_ddim(model_fn, x, sched, n, disable=True)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return (time.perf_counter() - t0) * steps / n

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    batched = timed(mixture)
    peak = _peak_memory_mb(dev)
    single = timed(OneByOne(mixture))
    return SpeedResult(
        model=model,
        parameters_m=round(count_parameters(net) / 1e6, 2),
        device=device_name(dev),
        dtype=dtype,
        image_size=image_size,
        latent_size=size,
        tasks=len(codes),
        steps=steps,
        timed_steps=n,
        batched_s=round(batched, 3),
        one_by_one_s=round(single, 3),
        speedup=round(single / batched, 2),
        peak_memory_mb=round(peak, 1),
        torch_threads=torch.get_num_threads(),
    )


def _relative(r: SpeedResult) -> str:
    """One task per call against batched: "1.52x slower", "1.10x faster", "as fast"."""
    if r.speedup > 1.0:
        return f"{r.speedup:.2f}x slower"
    if r.speedup < 1.0:
        return f"{1.0 / r.speedup:.2f}x faster"
    return "as fast"


def format_result(r: SpeedResult) -> str:
    """The result as a few lines of text."""
    extrapolated = "" if r.timed_steps == r.steps else f" (timed {r.timed_steps}, scaled)"
    return "\n".join(
        [
            f"model {r.model}: {r.parameters_m} M UNet parameters, {r.dtype} on {r.device}",
            f"image {r.image_size}x{r.image_size} (latent {r.latent_size}), {plural(r.tasks, 'task')}, "
            f"{plural(r.steps, 'DDIM step')}{extrapolated}",
            f"  batched (one UNet call per step): {r.batched_s:8.2f} s per image per weight set",
            f"  one task per call:                {r.one_by_one_s:8.2f} s  ({_relative(r)})",
            f"  peak memory: {r.peak_memory_mb:.0f} MB",
        ]
    )


def result_dict(r: SpeedResult) -> dict:
    """The result as a JSON-ready dict."""
    return asdict(r)
