"""Probe: can the embedded UNet overfit ONE batch at t = T (the one-step regression)?

Usage: python tools/probes/overfit.py [CONFIG [LR [CLIP [nohead]]]]   (defaults
configs/embedded.yaml, 3e-4, 1.0). The model is the config's (with its `model.head`, the
normalisation-free head of unires/model/head.py, if it sets one); "nohead" drops the head to
reproduce the plain UNet's collapse.
Prints the per-sample relative loss |pred - x0|^2 / |x0|^2 every 25 steps (1.0 = predicting 0),
pred being the Denoiser's x0 estimate at t = T.
"""

import sys
import time

import torch

from unires.config import load_yaml
from unires.model.autoencoder import encode_latents
from unires.model.denoiser import Denoiser
from unires.train.diffusion import (
    TrainConfig,
    _initial_components,
    build_train_dataset,
    estimate_latent_statistics,
)

torch.set_num_threads(1)
cfg = load_yaml(TrainConfig, sys.argv[1] if len(sys.argv) > 1 else "configs/embedded.yaml")
ds = build_train_dataset(cfg)
if len(sys.argv) > 4 and sys.argv[4] == "nohead":
    cfg.model.head = None
torch.manual_seed(0)
c = _initial_components(cfg)
stats = estimate_latent_statistics(c.vae, ds, n=16)
c.settings.residual_scale = stats["residual_scale"]
c.settings.condition_mean = stats["condition_mean"]
c.settings.condition_std = stats["condition_std"]
denoiser = Denoiser(c.unet, c.scheduler_config, c.settings)
items = [ds[i] for i in range(8)]
hq = torch.stack([it["hq"] for it in items]) * 2 - 1
lq = torch.stack([it["lq"] for it in items]) * 2 - 1
zl = encode_latents(c.vae, lq)
zh = encode_latents(c.vae, hq)
r = denoiser.to_diffused(zh, zl)
cond = denoiser.condition(zl)
params = list(c.unet.parameters()) + list(c.prompt_encoder.parameters())
lr = float(sys.argv[2]) if len(sys.argv) > 2 else 3e-4
clip = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
opt = torch.optim.AdamW(params, lr=lr)
prompts = [it["prompt"] for it in items]
g = torch.Generator().manual_seed(0)
t0 = time.time()
for step in range(151):
    x = torch.randn(r.shape, generator=g)
    t = torch.full((8,), denoiser.num_train_timesteps - 1)
    pred = denoiser.predict_x0(x, t, cond, c.prompt_encoder.encode(prompts))
    per = ((pred - r) ** 2).flatten(1).mean(1) / r.pow(2).flatten(1).mean(1)
    loss = per.mean()
    opt.zero_grad()
    loss.backward()
    gn = torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()
    if step % 25 == 0:
        print(
            step,
            round(loss.item(), 3),
            [round(v, 2) for v in per.tolist()],
            "grad",
            round(float(gn), 3),
            round(time.time() - t0),
            flush=True,
        )
