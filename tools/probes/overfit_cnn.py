"""Probe, the contrast to overfit.py: a plain 6-layer CNN on the same batch (space-to-depth
latents, pure regression, no diffusion).

Usage: python tools/probes/overfit_cnn.py [CONFIG [groupnorm]]   (default configs/embedded.yaml)
"groupnorm" puts GroupNorm(32) before every activation, as the UNet's blocks and norm_out do.
"""

import sys
import time

import torch

from unires.config import load_yaml
from unires.model.autoencoder import SpaceToDepthAutoencoder, encode_latents
from unires.train.diffusion import TrainConfig, build_train_dataset

torch.set_num_threads(1)
cfg = load_yaml(TrainConfig, sys.argv[1] if len(sys.argv) > 1 else "configs/embedded.yaml")
ds = build_train_dataset(cfg)
vae = SpaceToDepthAutoencoder(factor=4)
items = [ds[i] for i in range(8)]
hq = torch.stack([it["hq"] for it in items]) * 2 - 1
lq = torch.stack([it["lq"] for it in items]) * 2 - 1
zl = encode_latents(vae, lq)
zh = encode_latents(vae, hq)
r = (zh - zl) * 8.5
cond = (zl - zl.mean(dim=(0, 2, 3), keepdim=True)) / zl.std(dim=(0, 2, 3), keepdim=True)
torch.manual_seed(0)
norm = len(sys.argv) > 2 and sys.argv[2] == "groupnorm"


def act() -> list:
    return [torch.nn.GroupNorm(32, 96), torch.nn.SiLU()] if norm else [torch.nn.SiLU()]


net = torch.nn.Sequential(
    torch.nn.Conv2d(96, 96, 3, padding=1),
    *act(),
    *[m for _ in range(4) for m in (torch.nn.Conv2d(96, 96, 3, padding=1), *act())],
    torch.nn.Conv2d(96, 48, 3, padding=1),
)
opt = torch.optim.AdamW(net.parameters(), lr=3e-4)
g = torch.Generator().manual_seed(0)
t0 = time.time()
for step in range(151):
    x = torch.randn(r.shape, generator=g)
    pred = net(torch.cat([x, cond], 1))
    per = ((pred - r) ** 2).flatten(1).mean(1) / r.pow(2).flatten(1).mean(1)
    loss = per.mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 25 == 0:
        print(
            step,
            round(loss.item(), 3),
            [round(v, 2) for v in per.tolist()],
            round(time.time() - t0),
            flush=True,
        )
