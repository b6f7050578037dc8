"""Probe: how fast can a plain CNN learn the restoration residual from fresh samples?

A normalisation-free 6-layer CNN (or one linear 3x3 conv) regresses the space-to-depth
residual (z_HQ - z_LQ) from the standardised LQ latent on a stream of new training samples;
every 100 steps it prints the held-out error relative to the residual's energy ("agg", 1.0 =
predicting zero) and the per-sample mean per task. "gauss" replaces the project's
degradations by white Gaussian noise (sigma 25/255): the control that shows the setup learns.

Usage: python tools/probes/learnability.py CONFIG LR TASKS STEPS [BATCH] [weighted] [linear] [gauss]
  e.g. python tools/probes/learnability.py configs/embedded.yaml 1e-3 dn 300 8 gauss
"""

import sys
import time

import torch

from unires.config import load_yaml
from unires.model.autoencoder import SpaceToDepthAutoencoder, encode_latents
from unires.train.diffusion import TrainConfig, build_train_dataset

config, lr, tasks, steps = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(","), int(sys.argv[4])
batch_size = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5].isdigit() else 8
flags = set(sys.argv[5:])
torch.set_num_threads(2)
cfg = load_yaml(TrainConfig, config)
cfg.data.task_probs = {t: 1.0 for t in tasks}
cfg.data.prompt_augmentation = False
ds = build_train_dataset(cfg)
vae = SpaceToDepthAutoencoder(factor=4)


def batch(i0: int, n: int):
    items = [ds[i0 + i] for i in range(n)]
    hq = torch.stack([it["hq"] for it in items]) * 2 - 1
    lq = torch.stack([it["lq"] for it in items]) * 2 - 1
    if "gauss" in flags:
        lq = hq + 0.2 * torch.randn(hq.shape, generator=torch.Generator().manual_seed(i0))
    z_lq, z_hq = encode_latents(vae, lq), encode_latents(vae, hq)
    return z_lq, (z_hq - z_lq) * 8.5, [it["prompt"][:8] for it in items]


z_val, r_val, p_val = batch(500_000, 32)  # held out: far from the training stream
mean, std = z_val.mean(dim=(0, 2, 3), keepdim=True), z_val.std(dim=(0, 2, 3), keepdim=True)
torch.manual_seed(0)
c = z_val.shape[1]
if "linear" in flags:
    net = torch.nn.Conv2d(c, c, 3, padding=1)
else:
    body = [m for _ in range(4) for m in (torch.nn.Conv2d(96, 96, 3, padding=1), torch.nn.SiLU())]
    net = torch.nn.Sequential(
        torch.nn.Conv2d(c, 96, 3, padding=1),
        torch.nn.SiLU(),
        *body,
        torch.nn.Conv2d(96, c, 3, padding=1),
    )
opt = torch.optim.AdamW(net.parameters(), lr=lr)
t0 = time.time()
for step in range(steps + 1):
    if step % 100 == 0:
        with torch.no_grad():
            err = (net((z_val - mean) / std) - r_val) ** 2
        per = err.flatten(1).mean(1) / r_val.pow(2).flatten(1).mean(1)
        by_task: dict[str, list[float]] = {}
        for p, v in zip(p_val, per.tolist(), strict=True):
            by_task.setdefault(p, []).append(v)
        agg = float(err.sum() / r_val.pow(2).sum())
        means = {k: round(sum(v) / len(v), 3) for k, v in by_task.items()}
        print(step, "agg", round(agg, 3), means, f"{time.time() - t0:.0f}s", flush=True)
    z, r, _ = batch(step * batch_size, batch_size)
    loss = ((net((z - mean) / std) - r) ** 2).flatten(1).mean(1)
    if "weighted" in flags:  # the trainer's target_energy weighting
        loss = loss / r.pow(2).flatten(1).mean(1).clamp_min(1e-4)
    opt.zero_grad()
    loss.mean().backward()
    opt.step()
