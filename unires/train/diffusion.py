"""Multi-task training of the UniRes denoiser on HF accelerate (paper Sec. 3.1-3.2, Sec. 4).

Each sample is one isolated task (SR, MD, DD, DN, drawn with the paper's probabilities)
with its constant prompt; the LQ latent is concatenated to the noisy latent. The image and
the text condition are each dropped with p = 0.1 (independent draws, so BR -- LQ with an
empty prompt -- and the fully unconditional model are both learned).

    unires train --config configs/tiny.yaml [--resume]
    accelerate launch -m unires.train --config configs/sd-finetune.yaml

Checkpoints are written atomically (a new folder renamed over the old one) every
``checkpoint_every`` steps and when the run ends or gets SIGINT/SIGTERM; ``--resume``
restores the exact step, optimizer, learning-rate schedule, EMA and RNG state, and the data
stream continues where it stopped (every sample is a function of (seed, sample index)).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from diffusers.optimization import SchedulerType
from tqdm.auto import tqdm

from ..config import choice, to_dict
from ..data.loader import collate, worker_init
from ..degrade.recipes import DegradationConfig
from ..metrics.fr import psnr
from ..model.autoencoder import encode_latents, load_own_autoencoder
from ..model.bundle import ModelComponents, load_model, save_model
from ..model.denoiser import LOSS_WEIGHTINGS, Denoiser
from ..model.factory import ModelConfig, build_model
from ..model.nafnet import ConditionalNAFNet
from ..model.prompt import TaskPromptTable
from ..tasks import TRAINING_TASK_PROBS
from ..utils import atomic_dir, atomic_path, atomic_write_text
from .ema import EMA

# Learning-rate schedules (diffusers' get_scheduler) and accelerate's precisions.
LR_SCHEDULES = tuple(t.value for t in SchedulerType)
MIXED_PRECISIONS = ("no", "fp16", "bf16", "fp8")


@dataclass
class DataConfig:
    hq_dirs: list[str] = field(default_factory=list)  # folders of clean photos (required)
    crop: int = 256
    task_probs: dict[str, float] = field(default_factory=lambda: dict(TRAINING_TASK_PROBS))
    prompt_augmentation: bool = True  # paper App. A.7: 1% positive, 1% negative words
    # Training degradations (validation keeps the defaults, so runs stay comparable).
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    workers: int = 2
    val_dir: str | None = None
    val_images: int = 4
    val_crop: int = 128


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = choice("cosine", LR_SCHEDULES)  # diffusers.optimization.get_scheduler
    warmup: int = 200
    grad_clip: float = 1.0


@dataclass
class GrowConfig:
    """Grow the ``init_from`` NAFNet before training, keeping what it computes: the blocks per
    level (``ConditionalNAFNet.deepened``; new blocks start as the identity) and the width
    (``ConditionalNAFNet.widened``, doubled until it is reached: the init's width times a
    power of two). Unset keeps a level's count or the width."""

    encoder_blocks: tuple[int, ...] | None = None
    middle_blocks: int | None = None
    decoder_blocks: tuple[int, ...] | None = None
    width: int | None = None


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    # Frozen autoencoder folder (a trained UniResAutoencoder); required unless init_from.
    autoencoder: str | None = None
    # Start from a UniRes model folder (e.g. one converted from Stable Diffusion).
    init_from: str | None = None
    # With init_from (a NAFNet model): grow it to these block counts first.
    grow: GrowConfig | None = None
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output_dir: str = "runs/unires"
    steps: int = 1000
    batch_size: int = 8
    grad_accum: int = 1
    mixed_precision: str = choice("no", MIXED_PRECISIONS)
    gradient_checkpointing: bool = False
    ema_decay: float = 0.999
    image_drop: float = 0.1
    text_drop: float = 0.1
    # "none": plain MSE (the paper). "target_energy": each sample's MSE divided by the
    # expected energy of its target, so tasks with small residuals (mild noise) weigh as
    # much as tasks with large ones (x4 super-resolution) -- see docs/TRAINING.md.
    loss_weighting: str = choice("none", LOSS_WEIGHTINGS)
    # Fraction of samples trained at the last timestep. With zero terminal SNR the input
    # there is pure noise, so the loss is plain regression of x0 from the LQ latent and the
    # prompt: the one-step (MMSE) restoration that maximises PSNR (docs/TRAINING.md).
    terminal_t_prob: float = 0.0
    checkpoint_every: int = 200
    validate_every: int = 500
    val_steps: int = 10
    log_every: int = 10
    seed: int = 0
    threads: int = 0  # 0: torch default
    # > 0: stop after this many minutes of training (checkpoint, then export the EMA model
    # to OUTPUT_DIR/final as at the last step): for lent machines with a fixed time budget.
    max_minutes: float = 0.0


# ---- data ---------------------------------------------------------------------------------


class SampleIndices(torch.utils.data.Sampler):
    """Sample indices start..end: resuming continues the same data stream."""

    def __init__(self, start: int, end: int):
        self.start, self.end = start, end

    def __iter__(self):
        return iter(range(self.start, self.end))

    def __len__(self) -> int:
        return self.end - self.start


def build_train_dataset(cfg: TrainConfig):
    """The training set of ``cfg.data``: HQ crops degraded on the fly (``MultiTaskDataset``)."""
    from ..data.hq_folder import MultiTaskDataset

    return MultiTaskDataset(
        cfg.data.hq_dirs,
        crop=cfg.data.crop,
        task_probs=cfg.data.task_probs,
        prompt_augmentation=cfg.data.prompt_augmentation,
        seed=cfg.seed,
        degradation=cfg.data.degradation,
    )


def build_val_batch(cfg: TrainConfig) -> dict | None:
    """Fixed validation crops, each degraded with the task of its row (seeded)."""
    if not cfg.data.val_dir or not Path(cfg.data.val_dir).is_dir():
        return None
    from ..data.hq_folder import MultiTaskDataset

    tasks = list(TRAINING_TASK_PROBS)
    ds = MultiTaskDataset(
        [cfg.data.val_dir],
        crop=cfg.data.val_crop,
        task_probs={t: 1.0 for t in tasks},
        prompt_augmentation=False,
        seed=cfg.seed + 1,
        random_crop=False,
    )
    items = [ds.sample(i, task=tasks[i % len(tasks)]) for i in range(cfg.data.val_images)]
    return {
        "lq": torch.stack([it["lq"] for it in items]),
        "hq": torch.stack([it["hq"] for it in items]),
        "task": [it["task"] for it in items],
    }


# ---- checkpoints --------------------------------------------------------------------------


def _checkpoint_dirs(out: Path) -> tuple[Path, Path, Path]:
    return out / "checkpoint", out / ".checkpoint-new", out / ".checkpoint-old"


def latest_checkpoint(out: Path) -> Path | None:
    """The complete checkpoint folder under ``out`` (also one a kill left half-renamed), or None."""
    final, _, old = _checkpoint_dirs(out)
    if (final / "trainer_state.json").is_file():
        return final
    if (old / "trainer_state.json").is_file():  # killed between the two renames
        return old
    return None


def save_checkpoint(accelerator, out: Path, state: dict) -> None:
    """Write into a fresh folder, then swap it in: a kill leaves one complete checkpoint."""
    final, new, old = _checkpoint_dirs(out)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(new, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(new))
    # Every process writes its own RNG state into `new`: all must be done before it moves.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_text(new / "trainer_state.json", json.dumps(state, indent=2))
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        new.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


# ---- the trainer --------------------------------------------------------------------------


def _widen_to(net: ConditionalNAFNet, width: int | None, seed: int) -> ConditionalNAFNet:
    """``net`` doubled in width until it has ``width`` channels (None: as it is).

    Raises:
        ValueError: ``width`` is not the net's width times a power of two.
    """
    if width is None or width == net.config.width:
        return net
    factor, rest = divmod(width, net.config.width)
    if rest or factor < 1 or factor & (factor - 1):
        raise ValueError(
            f"grow.width: {width} is not {net.config.width} times a power of two "
            "(widening doubles every channel)"
        )
    gen = torch.Generator().manual_seed(seed)
    while net.config.width < width:
        net = net.widened(gen)
    return net


def _initial_components(cfg: TrainConfig) -> ModelComponents:
    if cfg.init_from:
        comps = load_model(cfg.init_from)
        if cfg.grow is not None:
            if not isinstance(comps.unet, ConditionalNAFNet):
                raise ValueError(
                    f"grow: needs a NAFNet model; {cfg.init_from} has a {type(comps.unet).__name__}"
                )
            blocks = {k: v for k, v in asdict(cfg.grow).items() if k != "width"}
            comps.unet = _widen_to(comps.unet.deepened(**blocks), cfg.grow.width, cfg.seed)
        return comps
    if cfg.grow is not None:
        raise ValueError("grow: deepens the model of init_from:, which is not set")
    if cfg.model.autoencoder.space_to_depth > 0 and not cfg.autoencoder:
        return build_model(cfg.model)  # the lossless autoencoder has nothing to load
    if not cfg.autoencoder:
        raise ValueError(
            "set `autoencoder:` (a trained autoencoder folder), "
            "`model.autoencoder.space_to_depth`, or `init_from:`"
        )
    return build_model(cfg.model, vae=load_own_autoencoder(cfg.autoencoder))


@torch.no_grad()
def estimate_latent_statistics(vae, dataset, n: int = 32) -> dict:
    """From n training samples: ``residual_scale`` = 1 / std of (z_HQ - z_LQ), which makes
    the diffused residual roughly unit-variance, and the per-channel mean / std of z_LQ
    used to standardise the network's condition input (``Denoiser.condition``)."""
    items = [dataset[i] for i in range(n)]
    hq = torch.stack([it["hq"] for it in items])
    lq = torch.stack([it["lq"] for it in items])
    z_lq = encode_latents(vae, lq * 2 - 1)
    r = encode_latents(vae, hq * 2 - 1) - z_lq
    return {
        "residual_scale": float(1.0 / r.std().clamp_min(1e-3)),
        "condition_mean": z_lq.mean(dim=(0, 2, 3)).tolist(),
        "condition_std": z_lq.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist(),
    }


@torch.no_grad()
def validation_loss(comps: ModelComponents, batch: dict, n_timesteps: int = 8) -> float:
    """The training loss on a fixed batch, fixed noise and a fixed grid of timesteps (no
    condition dropout, no weighting): a deterministic figure to compare models or checkpoints.

    batch: "hq" / "lq" (B, 3, H, W) in [0, 1] and "prompt" (B strings)."""
    denoiser = Denoiser(comps.unet, comps.scheduler_config, comps.settings)
    device = next(comps.unet.parameters()).device
    z_hq = encode_latents(comps.vae, batch["hq"].to(device) * 2 - 1)
    z_lq = encode_latents(comps.vae, batch["lq"].to(device) * 2 - 1)
    x0 = denoiser.to_diffused(z_hq, z_lq)
    cond = denoiser.condition(z_lq)
    ctx = comps.prompt_encoder.encode(list(batch["prompt"]))
    gen = torch.Generator().manual_seed(1234)
    losses = []
    for t_val in torch.linspace(20, denoiser.num_train_timesteps - 20, n_timesteps):
        t = torch.full((x0.shape[0],), int(t_val), device=device)
        noise = torch.randn(x0.shape, generator=gen).to(x0)
        losses.append(denoiser.loss(x0, cond, ctx, t, noise).mean().item())
    return float(sum(losses) / len(losses))


@dataclass
class Trainer:
    """What one training run holds between steps: the accelerate-prepared network, optimizer
    and data, the EMA, the settings (with the data statistics) and the step counter.

    Built by ``build_trainer``; ``train`` runs its steps. ``unet`` / ``prompt_encoder`` are
    the prepared modules (DDP-wrapped when distributed); ``comps`` the unprepared originals."""

    cfg: TrainConfig
    accelerator: object
    out: Path
    comps: ModelComponents
    unet: torch.nn.Module
    prompt_encoder: torch.nn.Module
    trainable_prompts: bool
    settings: object  # the model's UniResSettings, statistics filled in
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    lr_scheduler: object
    ema: EMA
    loader: torch.utils.data.DataLoader
    denoiser: Denoiser
    step: int
    per_step: int  # samples per optimizer step, over all processes
    logging: bool  # tensorboard is installed
    val_batch: dict | None = None
    prompt_cache: dict[str, torch.Tensor] = field(default_factory=dict)

    def state(self) -> dict:
        """The trainer state saved with a checkpoint (``trainer_state.json``)."""
        return {
            "step": self.step,
            "residual_scale": self.settings.residual_scale,
            "condition_mean": self.settings.condition_mean,
            "condition_std": self.settings.condition_std,
            "samples_seen": self.step * self.per_step,
            "time": time.time(),
        }

    def embed(self, prompts: list[str]) -> torch.Tensor:
        """(B, tokens, width) prompt embeddings; a frozen encoder's are cached per prompt."""
        if self.trainable_prompts:
            table = self.accelerator.unwrap_model(self.prompt_encoder)
            return self.prompt_encoder(table.index(prompts))
        missing = [p for p in set(prompts) if p not in self.prompt_cache]
        if missing:
            with torch.no_grad():
                for p, e in zip(missing, self.prompt_encoder.encode(missing), strict=True):
                    self.prompt_cache[p] = e
        return torch.stack([self.prompt_cache[p] for p in prompts])

    def ema_model(self) -> ModelComponents:
        """A copy of the model carrying the EMA weights (training weights untouched)."""
        return _ema_components(
            self.accelerator, self.comps, self.unet, self.prompt_encoder, self.ema, self.settings
        )


def train(cfg: TrainConfig, resume: bool = False, max_steps: int | None = None) -> Path:
    """Train the denoiser of ``cfg``; returns the output folder (``cfg.output_dir``).

    ``resume`` continues from the latest checkpoint there. ``max_steps`` stops early (tests),
    checkpointing. The run also stops, checkpointed, on SIGINT / SIGTERM and after
    ``cfg.max_minutes``; the EMA model is exported to ``OUTPUT_DIR/final`` when all
    ``cfg.steps`` are done or the time is up.

    Raises:
        ValueError: the config names no autoencoder it can use (``_initial_components``).
        RuntimeError: WORLD_SIZE and accelerate's process count disagree.
        ImportError: accelerate (the ``train`` extra) is not installed.
    """
    trainer = build_trainer(cfg, resume)
    accelerator = trainer.accelerator
    last = min(cfg.steps, max_steps if max_steps is not None else cfg.steps)
    stop = {"now": False}

    def request_stop(signum, frame):
        stop["now"] = True

    old_handlers = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    bar = tqdm(
        total=cfg.steps,
        initial=trainer.step,
        desc="training",
        disable=not accelerator.is_local_main_process,
        dynamic_ncols=True,
    )
    smoothed = None
    started, first_step = time.monotonic(), trainer.step
    out_of_time = False
    gen = torch.Generator(device="cpu")
    micro = trainer.step * cfg.grad_accum  # micro-batch counter
    try:
        for batch in trainer.loader:
            if trainer.step >= last or stop["now"]:
                break
            elapsed = time.monotonic() - started
            if cfg.max_minutes > 0 and trainer.step > first_step and elapsed > 60 * cfg.max_minutes:
                out_of_time = True
                break
            # Noise, timesteps and dropout drawn from (seed, step): a resumed run continues
            # exactly as an uninterrupted one would.
            gen.manual_seed((cfg.seed * 1_000_003 + micro) * 64 + accelerator.process_index)
            micro += 1
            loss = training_step(trainer, batch, gen)
            if not accelerator.sync_gradients:
                continue
            trainer.ema.update()
            trainer.step += 1
            value = accelerator.gather(loss.detach()[None]).mean().item()
            smoothed = value if smoothed is None else 0.98 * smoothed + 0.02 * value
            bar.update(1)
            lr_now = trainer.lr_scheduler.get_last_lr()[0]
            bar.set_postfix(loss=f"{smoothed:.4f}", lr=f"{lr_now:.1e}")
            after_step(trainer, value, lr_now, bar)
    finally:
        bar.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)
    save_checkpoint(accelerator, trainer.out, trainer.state())
    if (trainer.step >= cfg.steps or out_of_time) and accelerator.is_main_process:
        export_model(
            accelerator,
            trainer.comps,
            trainer.unet,
            trainer.prompt_encoder,
            trainer.ema,
            trainer.settings,
            trainer.out / "final",
        )
    accelerator.end_training()
    return trainer.out


# ---- build and prepare ----------------------------------------------------------------------


def build_accelerator(cfg: TrainConfig):
    """The ``Accelerator`` of a run (and whether tensorboard logs), seeded with ``cfg.seed``;
    the main process writes ``train_config.json``.

    Raises:
        RuntimeError: launched with WORLD_SIZE=n but accelerate runs another number of
            processes (check the accelerate config).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.output_dir)
    try:
        import tensorboard  # noqa: F401

        log_with = "tensorboard"
    except ImportError:
        log_with = None
    # torchrun / accelerate launch set WORLD_SIZE. Without a GPU, accelerate only builds the
    # process group (gloo) when told the run is on CPU; otherwise every process would act as
    # the main one and race on the checkpoint folder.
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.grad_accum,
        log_with=log_with,
        project_dir=str(out),
        cpu=world_size > 1 and not torch.cuda.is_available(),
    )
    if world_size > 1 and accelerator.num_processes != world_size:
        raise RuntimeError(
            f"launched with WORLD_SIZE={world_size} but accelerate runs "
            f"{accelerator.num_processes} process(es) ({accelerator.distributed_type}): "
            "check the accelerate config"
        )
    set_seed(cfg.seed)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "train_config.json", json.dumps(to_dict(cfg), indent=2))
    return accelerator, log_with is not None


def build_trainer(cfg: TrainConfig, resume: bool = False) -> Trainer:
    """Everything a run needs, in the order that keeps runs reproducible (the model is
    initialised right after seeding): accelerator, model, data, statistics, optimizer,
    loader; then accelerate's ``prepare`` and, with ``resume``, the latest checkpoint.

    Raises:
        ValueError: from ``_initial_components``. RuntimeError: from ``build_accelerator``.
    """
    accelerator, logging = build_accelerator(cfg)
    out = Path(cfg.output_dir)
    comps = _initial_components(cfg)
    unet, vae, prompt_encoder = comps.unet, comps.vae, comps.prompt_encoder
    settings = copy.deepcopy(comps.settings)
    vae.requires_grad_(False).eval().to(accelerator.device)
    trainable_prompts = isinstance(prompt_encoder, TaskPromptTable)
    if not trainable_prompts:
        prompt_encoder.requires_grad_(False).eval().to(accelerator.device)
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()

    dataset = build_train_dataset(cfg)
    ckpt = latest_checkpoint(out) if resume else None
    trainer_state = json.loads((ckpt / "trainer_state.json").read_text()) if ckpt else {}
    fill_latent_statistics(settings, trainer_state, vae, dataset, accelerator)
    params = list(unet.parameters())
    if trainable_prompts:
        params += list(prompt_encoder.parameters())
    optimizer, lr_scheduler = build_optimizer(cfg, params, accelerator.num_processes)
    ema = EMA(params, cfg.ema_decay)
    accelerator.register_for_checkpointing(ema)

    step = int(trainer_state.get("step", 0))
    per_step = cfg.batch_size * cfg.grad_accum * accelerator.num_processes
    loader = build_loader(cfg, dataset, step * per_step, cfg.steps * per_step)
    if trainable_prompts:
        unet, prompt_encoder, optimizer, loader, lr_scheduler = accelerator.prepare(
            unet, prompt_encoder, optimizer, loader, lr_scheduler
        )
    else:
        unet, optimizer, loader, lr_scheduler = accelerator.prepare(
            unet, optimizer, loader, lr_scheduler
        )
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        accelerator.print(f"resumed from {ckpt} at step {step}")
    if logging:
        accelerator.init_trackers("unires", config={"steps": cfg.steps, "lr": cfg.optim.lr})
    return Trainer(
        cfg=cfg,
        accelerator=accelerator,
        out=out,
        comps=comps,
        unet=unet,
        prompt_encoder=prompt_encoder,
        trainable_prompts=trainable_prompts,
        settings=settings,
        params=params,
        optimizer=optimizer,
        lr_scheduler=lr_scheduler,
        ema=ema,
        loader=loader,
        # The accelerate-prepared network (DDP when distributed) behind the one Denoiser.
        denoiser=Denoiser(unet, comps.scheduler_config, settings),
        step=step,
        per_step=per_step,
        logging=logging,
        val_batch=build_val_batch(cfg) if accelerator.is_main_process else None,
    )


def fill_latent_statistics(settings, trainer_state: dict, vae, dataset, accelerator) -> None:
    """Set ``settings.residual_scale`` / ``condition_mean`` / ``condition_std`` where the
    model asks for them: from the trainer state of a resumed run, else estimated once on
    the training data (``estimate_latent_statistics``) and shared by every process."""
    residual = settings.diffusion_target == "residual"
    need_scale = residual and settings.residual_scale <= 0
    need_norm = settings.normalize_condition and not settings.condition_mean
    if not (need_scale or need_norm):
        return
    keys = ("residual_scale", "condition_mean", "condition_std")
    stats = {k: trainer_state[k] for k in keys if k in trainer_state}
    if (need_scale and "residual_scale" not in stats) or (
        need_norm and "condition_mean" not in stats
    ):
        stats = estimate_latent_statistics(vae.to("cpu"), dataset)
        vae.to(accelerator.device)
        if accelerator.num_processes > 1:  # every process must diffuse the same variable
            from accelerate.utils import broadcast_object_list

            stats = broadcast_object_list([stats])[0]
    if need_scale:
        settings.residual_scale = stats["residual_scale"]
    if need_norm:
        settings.condition_mean = stats["condition_mean"]
        settings.condition_std = stats["condition_std"]


def build_optimizer(cfg: TrainConfig, params: list, num_processes: int):
    """AdamW over ``params`` and its learning-rate schedule (``cfg.optim``); warm-up and
    length are counted in optimizer steps of all processes, as accelerate steps it."""
    from diffusers.optimization import get_scheduler

    optimizer = torch.optim.AdamW(
        params, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay
    )
    lr_scheduler = get_scheduler(
        cfg.optim.schedule,
        optimizer=optimizer,
        num_warmup_steps=cfg.optim.warmup * num_processes,
        num_training_steps=cfg.steps * num_processes,
    )
    return optimizer, lr_scheduler


def build_loader(cfg: TrainConfig, dataset, start: int, end: int) -> torch.utils.data.DataLoader:
    """Batches of samples ``start``..``end`` of the data stream (a resumed run continues it)."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=SampleIndices(start, end),
        num_workers=cfg.data.workers,
        collate_fn=collate,
        worker_init_fn=worker_init,
        drop_last=True,
        # One pass over the whole run: nothing to persist. A persistent iterator is held by
        # the DataLoader, which a crash's traceback keeps alive until interpreter exit; there
        # multiprocessing ends the workers with SIGTERM, which they ignore (data/loader.py),
        # and the crashed run hung instead of exiting.
        persistent_workers=False,
    )


# ---- one step -------------------------------------------------------------------------------


def training_step(trainer: Trainer, batch: dict, gen: torch.Generator) -> torch.Tensor:
    """One micro-batch: encode, draw noise, timesteps and condition dropout from ``gen``,
    backward, and (when gradients sync) clip and step. Returns the batch's mean loss.

    ``batch``: "hq" / "lq" (B, 3, H, W) in [0, 1] and "prompt" (B strings)."""
    cfg, accelerator, denoiser = trainer.cfg, trainer.accelerator, trainer.denoiser
    num_train_timesteps = denoiser.num_train_timesteps
    with accelerator.accumulate(trainer.unet):
        hq = batch["hq"].to(accelerator.device)
        lq = batch["lq"].to(accelerator.device)
        with torch.no_grad():
            z_hq = encode_latents(trainer.comps.vae, hq * 2 - 1)
            z_lq = encode_latents(trainer.comps.vae, lq * 2 - 1)
        x0 = denoiser.to_diffused(z_hq, z_lq)
        b = x0.shape[0]
        noise = torch.randn(x0.shape, generator=gen).to(x0)
        t = torch.randint(0, num_train_timesteps, (b,), generator=gen)
        if cfg.terminal_t_prob > 0:
            terminal = torch.rand(b, generator=gen) < cfg.terminal_t_prob
            t = torch.where(terminal, num_train_timesteps - 1, t)
        t = t.to(x0.device)
        # Independent draws: image condition and text condition (paper Sec. 3.2).
        drop_image = (torch.rand(b, generator=gen) < cfg.image_drop).to(x0.device)
        drop_text = (torch.rand(b, generator=gen) < cfg.text_drop).tolist()
        cond = denoiser.condition(z_lq)
        cond = torch.where(drop_image[:, None, None, None], torch.zeros_like(cond), cond)
        prompts = ["" if d else p for p, d in zip(batch["prompt"], drop_text, strict=True)]
        ctx = trainer.embed(prompts)
        loss = denoiser.loss(x0, cond, ctx, t, noise, cfg.loss_weighting).mean()
        accelerator.backward(loss)
        if accelerator.sync_gradients and cfg.optim.grad_clip > 0:
            accelerator.clip_grad_norm_(trainer.params, cfg.optim.grad_clip)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        trainer.optimizer.zero_grad(set_to_none=True)
    return loss


def after_step(trainer: Trainer, loss: float, lr: float, bar) -> None:
    """What follows an optimizer step, each at its interval: log the loss (tensorboard and
    ``log.jsonl``), checkpoint, validate (metrics logged and written under ``val/``)."""
    cfg, accelerator, step = trainer.cfg, trainer.accelerator, trainer.step
    if step % cfg.log_every == 0:
        accelerator.log({"loss": loss, "lr": lr}, step=step)
        if accelerator.is_main_process:
            with open(trainer.out / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": step, "loss": loss, "lr": lr}) + "\n")
    if step % cfg.checkpoint_every == 0:
        save_checkpoint(accelerator, trainer.out, trainer.state())
    if trainer.val_batch is not None and step % cfg.validate_every == 0:
        metrics = validate(
            trainer.ema_model(),
            trainer.val_batch,
            steps=cfg.val_steps,
            out_dir=trainer.out / "val",
            step=step,
            device=accelerator.device,
        )
        accelerator.log(metrics, step=step)
        bar.write(f"step {step}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))


# ---- validation and export --------------------------------------------------------------------


def _ema_components(accelerator, comps, unet, prompt_encoder, ema, settings) -> ModelComponents:
    """A copy of the model carrying the EMA weights (training weights untouched)."""
    unet_copy = copy.deepcopy(accelerator.unwrap_model(unet)).float().eval()
    pe = accelerator.unwrap_model(prompt_encoder)
    pe_copy = copy.deepcopy(pe).float().eval() if isinstance(pe, TaskPromptTable) else pe
    params = list(unet_copy.parameters())
    if isinstance(pe_copy, TaskPromptTable):
        params += list(pe_copy.parameters())
    ema.copy_to(params)
    return ModelComponents(unet_copy, comps.vae, pe_copy, comps.scheduler_config, settings)


def export_model(accelerator, comps, unet, prompt_encoder, ema, settings, folder: Path) -> Path:
    """Write the EMA model as a UniRes model folder (fp16 safetensors), replacing ``folder``
    only once it is complete; returns ``folder``."""
    model = _ema_components(accelerator, comps, unet, prompt_encoder, ema, settings)
    with atomic_dir(folder) as tmp:
        save_model(model, tmp, dtype=torch.float16)
    return folder


@torch.no_grad()
def validate(
    model: ModelComponents, val_batch: dict, *, steps: int, out_dir: Path, step: int, device
) -> dict[str, float]:
    """One-hot restoration of fixed crops with ``model`` (the EMA weights): a PNG grid
    ``out_dir/step<step>.png`` and PSNRs (dB), appended to ``out_dir/metrics.jsonl``.

    ``val_batch``: "lq" / "hq" (B, 3, H, W) in [0, 1] and "task" (B codes). Grid rows:
    LQ | BR | SR | MD | DD | DN | GT. Metrics: PSNR of LQ, of BR and of the one-hot task
    that matches each crop's degradation, averaged over the crops."""
    from PIL import Image

    from ..pipeline import UniResPipeline

    pipe = UniResPipeline(model, device=device, dtype="fp32")
    lq, hq = val_batch["lq"], val_batch["hq"]
    codes = ["br", *TRAINING_TASK_PROBS]
    outs = {
        c: pipe.restore_tensor(lq, {c: 1.0}, steps=steps, seed=0, color_fix="none") for c in codes
    }
    matched = torch.stack([outs[task][i] for i, task in enumerate(val_batch["task"])])
    metrics = {
        "val_psnr_lq": float(psnr(lq, hq).mean()),
        "val_psnr_matched": float(psnr(matched, hq).mean()),
        "val_psnr_br": float(psnr(outs["br"], hq).mean()),
    }
    rows = [torch.cat([lq[i], *[outs[c][i] for c in codes], hq[i]], dim=-1) for i in range(len(lq))]
    grid = torch.cat(rows, dim=-2).clamp(0, 1)
    arr = (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype("uint8")
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / f"step{step:07d}.png") as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")
    with open(out_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": step, **metrics}) + "\n")
    return metrics


def export_from_checkpoint(cfg: TrainConfig, folder: Path | None = None) -> Path:
    """Write the EMA model of the latest checkpoint as a model folder, without training.

    Raises:
        FileNotFoundError: ``cfg.output_dir`` holds no checkpoint, or one without EMA state.
    """
    from accelerate import Accelerator

    out = Path(cfg.output_dir)
    ckpt = latest_checkpoint(out)
    if ckpt is None:
        raise FileNotFoundError(f"{out}: no checkpoint to export")
    state = json.loads((ckpt / "trainer_state.json").read_text())
    accelerator = Accelerator(cpu=True)
    comps = _initial_components(cfg)
    settings = copy.deepcopy(comps.settings)
    if settings.diffusion_target == "residual":
        settings.residual_scale = state["residual_scale"]
    if settings.normalize_condition and state.get("condition_mean"):
        settings.condition_mean = state["condition_mean"]
        settings.condition_std = state["condition_std"]
    params = list(comps.unet.parameters())
    if isinstance(comps.prompt_encoder, TaskPromptTable):
        params += list(comps.prompt_encoder.parameters())
    ema = EMA(params, cfg.ema_decay)
    ema.load_state_dict(torch.load(_ema_file(ckpt), map_location="cpu", weights_only=False))
    return export_model(
        accelerator,
        comps,
        comps.unet,
        comps.prompt_encoder,
        ema,
        settings,
        folder or out / f"export-step{state['step']}",
    )


def _ema_file(ckpt: Path) -> Path:
    """accelerate saves registered objects as custom_checkpoint_<i>.pkl."""
    files = sorted(ckpt.glob("custom_checkpoint_*.pkl"))
    if not files:
        raise FileNotFoundError(f"{ckpt}: no EMA state in checkpoint")
    return files[0]
