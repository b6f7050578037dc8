"""Probe: relative one-step (t = T) loss per task of exported models on fresh training samples
(1.0 = the model predicts a zero residual, i.e. returns its input).

Usage: python tools/probes/terminal_eval.py CONFIG MODEL_DIR [MODEL_DIR ...]
"""

import sys

import torch

from unires.config import load_yaml
from unires.model.autoencoder import encode_latents
from unires.model.bundle import load_model
from unires.model.denoiser import Denoiser
from unires.train.diffusion import TrainConfig, build_train_dataset

torch.set_num_threads(1)
cfg = load_yaml(TrainConfig, sys.argv[1])
ds = build_train_dataset(cfg)
items = [ds[100000 + i] for i in range(48)]
for path in sys.argv[2:]:
    c = load_model(path, dtype=torch.float32)
    denoiser = Denoiser(c.unet, c.scheduler_config, c.settings)
    with torch.no_grad():
        hq = torch.stack([it["hq"] for it in items]) * 2 - 1
        lq = torch.stack([it["lq"] for it in items]) * 2 - 1
        zl = encode_latents(c.vae, lq)
        zh = encode_latents(c.vae, hq)
        r = denoiser.to_diffused(zh, zl)
        ctx = c.prompt_encoder.encode([it["prompt"] for it in items])
        x = torch.randn(r.shape, generator=torch.Generator().manual_seed(0))
        t = torch.full((48,), denoiser.num_train_timesteps - 1)
        pred = denoiser.predict_x0(x, t, denoiser.condition(zl), ctx)
        rel = ((pred - r) ** 2).flatten(1).mean(1) / r.pow(2).flatten(1).mean(1)
    by = {}
    for it, v in zip(items, rel.tolist(), strict=True):
        by.setdefault(it["prompt"][:10], []).append(v)
    print(path, {k: (round(sum(v) / len(v), 3), len(v)) for k, v in by.items()}, flush=True)
