"""Train the project's own autoencoder (``UniResAutoencoder``) on clean photos.

No pretrained VAE can be downloaded here, so the embedded model's autoencoder is trained from
scratch: reconstruction loss (L1 + MSE) on random crops, a quarter of them degraded (noise,
blur) so LQ images also land in a well-behaved part of latent space. Resumable: a checkpoint
is written atomically every ``checkpoint_every`` steps and on SIGINT/SIGTERM.

    python -m unires.train.autoencoder --config configs/autoencoder.yaml [--resume]
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import io
from ..config import load_yaml, to_dict
from ..model.autoencoder import UniResAutoencoder
from ..utils import atomic_path, atomic_write_text, plural


@dataclass
class AutoencoderModelConfig:
    latent_channels: int = 32
    channels: tuple[int, int] = (128, 256)
    encoder_blocks: tuple[int, int] = (2, 2)
    decoder_blocks: tuple[int, int] = (3, 3)
    linear_skip: bool = True


@dataclass
class AutoencoderTrainConfig:
    train_dirs: list[str] = field(default_factory=list)  # folders of clean photos (required)
    val_dir: str | None = None
    output_dir: str = "runs/autoencoder"
    model: AutoencoderModelConfig = field(default_factory=AutoencoderModelConfig)
    steps: int = 3000
    batch_size: int = 16
    crop: int = 128
    lr: float = 2e-4
    lr_min: float = 1e-5
    warmup: int = 100
    mse_weight: float = 1.0
    l1_weight: float = 1.0
    degrade_prob: float = 0.25
    checkpoint_every: int = 100
    eval_every: int = 500
    threads: int = 0  # 0: torch default
    seed: int = 0


def load_rgb(path: Path) -> torch.Tensor:
    """uint8 3xHxW (kept as bytes: the whole training set is held in memory)."""
    return (io.load_rgb(path) * 255).round().to(torch.uint8)


class CropSampler:
    """Random crops at full and half scale from images held in memory (uint8)."""

    def __init__(self, files: list[Path], crop: int):
        self.images: list[torch.Tensor] = []
        for p in files:
            img = load_rgb(p)
            self.images.append(img)
            h, w = img.shape[1:]
            if min(h, w) // 2 >= crop:
                half = F.interpolate(img[None].float(), size=(h // 2, w // 2), mode="area").round()
                self.images.append(half[0].clamp(0, 255).to(torch.uint8))
        self.images = [im for im in self.images if min(im.shape[1:]) >= crop]
        if not self.images:
            raise ValueError(f"no training image is at least {crop}px on each side")
        self.crop = crop

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` random crops (n, 3, crop, crop) in [-1, 1], flipped and transposed at random."""
        out = torch.empty(n, 3, self.crop, self.crop)
        idx = torch.randint(len(self.images), (n,), generator=gen)
        for i, j in enumerate(idx.tolist()):
            img = self.images[j]
            h, w = img.shape[1:]
            y = int(torch.randint(h - self.crop + 1, (1,), generator=gen))
            x = int(torch.randint(w - self.crop + 1, (1,), generator=gen))
            c = img[:, y : y + self.crop, x : x + self.crop].float() / 127.5 - 1
            if torch.rand((), generator=gen) < 0.5:
                c = c.flip(-1)
            if torch.rand((), generator=gen) < 0.5:
                c = c.transpose(-1, -2)
            out[i] = c
        return out


def light_degrade(x: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    """Noise or blur on a random subset, so LQ inputs are represented too."""
    x = x.clone()
    for i in range(x.shape[0]):
        if torch.rand((), generator=gen) >= prob:
            continue
        if torch.rand((), generator=gen) < 0.5:
            sigma = float(torch.rand((), generator=gen)) * 0.2  # up to ~25/255 in [-1,1] units
            x[i] = x[i] + sigma * torch.randn(x[i].shape, generator=gen)
        else:
            s = 0.5 + 2.0 * float(torch.rand((), generator=gen))
            r = int(math.ceil(3 * s))
            t = torch.arange(-r, r + 1, dtype=torch.float32)
            k = torch.exp(-(t**2) / (2 * s * s))
            k = k / k.sum()
            xi = F.pad(x[i : i + 1], (r, r, r, r), mode="reflect")
            xi = F.conv2d(xi, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
            xi = F.conv2d(xi, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
            x[i] = xi[0]
    return x.clamp(-1, 1)


def psnr_on_folder(model: UniResAutoencoder, folder: str | Path) -> float:
    """Mean reconstruction PSNR (dB) over the images of ``folder`` (cropped to multiples of 8)."""
    files = io.list_images([folder])
    values = []
    model.eval()
    with torch.no_grad():
        for p in files:
            x = load_rgb(p).float()[None] / 127.5 - 1
            h, w = x.shape[-2:]
            x = x[..., : h - h % 8, : w - w % 8]
            y = model(x).clamp(-1, 1)
            mse = ((y - x) / 2).pow(2).mean().item()
            values.append(10 * math.log10(1 / max(mse, 1e-12)))
    model.train()
    return float(np.mean(values))


def lr_at(step: int, cfg: AutoencoderTrainConfig) -> float:
    """The learning rate at ``step``: linear warm-up, then cosine down to ``lr_min``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * min(t, 1.0)))


def save_checkpoint(path: Path, model, opt, step: int, gen: torch.Generator) -> None:
    """Write model, optimizer, step and RNG states to ``path`` atomically."""
    state = {
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "step": step,
        "gen": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


@torch.no_grad()
def fit_latent_scale(model: UniResAutoencoder, sampler: CropSampler, n: int = 64) -> tuple:
    """(scaling_factor, shift_factor) that make the latents of ``n`` crops zero-mean, unit-std."""
    gen = torch.Generator().manual_seed(1234)
    z = torch.cat([model.encode_raw(sampler.sample(16, gen)) for _ in range(max(1, n // 16))])
    shift = float(z.mean())
    scale = float(1.0 / (z - shift).std())
    return scale, shift


def export(model: UniResAutoencoder, sampler: CropSampler, out_dir: Path) -> None:
    """Write the diffusers-style folder with the latent scale fitted on training crops."""
    scale, shift = fit_latent_scale(model, sampler)
    model.register_to_config(scaling_factor=scale, shift_factor=shift)
    model.save_pretrained(out_dir, safe_serialization=True)


def train(cfg: AutoencoderTrainConfig, resume: bool = False) -> Path:
    """Train the autoencoder of ``cfg``; ``resume`` continues from ``OUTPUT_DIR/checkpoint.pt``.
    Returns the output folder, holding the model (``save_pretrained``) and its PSNR log.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(to_dict(cfg), indent=2))
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = UniResAutoencoder(**to_dict(cfg.model))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    step = 0
    ckpt = out / "checkpoint.pt"
    if resume and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
        gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed from step {step}")
    sampler = CropSampler(io.list_images(cfg.train_dirs), cfg.crop)
    print(f"{len(sampler.images)} training images (with half-scale copies)")
    if step == 0 and cfg.model.linear_skip:
        pca_gen = torch.Generator().manual_seed(cfg.seed + 99)
        crops = torch.cat([sampler.sample(16, pca_gen) for _ in range(8)])
        patches = F.pixel_unshuffle(crops, 8).permute(0, 2, 3, 1).reshape(-1, 3 * 64)
        model.init_linear_skip(patches)
        if cfg.val_dir:
            print(f"PCA initialisation: val PSNR {psnr_on_folder(model, cfg.val_dir):.2f} dB")

    stop = {"now": False}

    def on_signal(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    bar = tqdm(total=cfg.steps, initial=step, desc="autoencoder", dynamic_ncols=True)
    t0 = time.time()
    while step < cfg.steps and not stop["now"]:
        x = sampler.sample(cfg.batch_size, gen)
        x = light_degrade(x, cfg.degrade_prob, gen)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        y = model(x)
        loss = cfg.l1_weight * (y - x).abs().mean() + cfg.mse_weight * (y - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        rec = {"step": step, "loss": loss.item(), "lr": lr_at(step - 1, cfg), "t": time.time() - t0}
        if step % cfg.checkpoint_every == 0:
            save_checkpoint(ckpt, model, opt, step, gen)
        if cfg.val_dir and (step % cfg.eval_every == 0 or step == cfg.steps):
            rec["val_psnr"] = psnr_on_folder(model, cfg.val_dir)
            bar.write(f"step {step}: val PSNR {rec['val_psnr']:.2f} dB")
        with open(out / "log.jsonl", "a", encoding="utf-8") as log:
            log.write(json.dumps(rec) + "\n")
    save_checkpoint(ckpt, model, opt, step, gen)
    export(model, sampler, out / "final")
    bar.close()
    if stop["now"]:
        print(f"stopped at step {step} of {cfg.steps}; autoencoder written to {out / 'final'}")
    else:
        print(f"finished {plural(step, 'step')}; autoencoder written to {out / 'final'}")
    return out / "final"


def main(argv: list[str] | None = None) -> None:
    """``python -m unires.train.autoencoder --config C [--resume]``."""
    ap = argparse.ArgumentParser(prog="python -m unires.train.autoencoder")
    ap.add_argument("--config", required=True)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    train(load_yaml(AutoencoderTrainConfig, args.config), resume=args.resume)


if __name__ == "__main__":
    main()
