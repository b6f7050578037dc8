"""Probe: noise and blur levels of real photos beside the project's training samples (issue 21).

Prints markdown tables; noise levels are standard deviations in 0-255 units, PSNR in dB on
8-bit images, blur extents in pixels.

1. Real noisy photos without ground truth (RNI15 and a few RealSRSet / DiffBIR real47 photos):
   the MAD noise estimate of ``unires.bench.peers`` on the mean of the channels and per channel.
2. SIDD pairs: std of LQ - GT per channel and overall, LQ PSNR, the MAD estimates of the LQ
   (how far they fall below the true std on real, spatially correlated noise) and the lag-1
   correlation of LQ - GT.
3. The project's samples: DN training samples before issue 21 (the `noise` recipe's
   distribution) and now (``MultiTaskDataset``, task dn, over train-hq at the crop of
   configs/embedded.yaml), the benchmark's noise sets (val-hq centre crops, as
   ``unires bench quality`` writes them), and the mean residual energy of every training task
   against SR's.
4. Motion blur: the GoPro pair's LQ PSNR and blur extent (kernel estimated on 256-px patches by
   regularised least squares in the Fourier domain; the estimator is checked on a synthetic
   shake first) beside the camera-shake kernels, the MD samples and the defocus kernels.
   Extent = sqrt(12 * the largest eigenvalue of the kernel's covariance): the length of a
   uniform linear motion with the same second moment (a disk of radius r: sqrt(3) r).

Usage: python tools/probes/noise_levels.py [DATA_DIR] [SAMPLES]
  defaults ../shared/data and 96 samples per task; one thread, about half a minute.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from unires.bench.peers import estimate_noise_sigma, estimate_noise_sigmas
from unires.bench.quality import centre_crops
from unires.data.hq_folder import MultiTaskDataset
from unires.degrade.defocus import DefocusConfig, disk_kernel
from unires.degrade.noise import DenoiseNoiseConfig, SensorNoiseConfig
from unires.degrade.recipes import DegradationConfig
from unires.degrade.rng import generator_for
from unires.degrade.shake import random_shake_kernel
from unires.degrade.writer import write_degraded_set
from unires.io import load_rgb

DATA = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
SAMPLES = int(sys.argv[2]) if len(sys.argv) > 2 else 96
CROP = 128  # configs/embedded.yaml data.crop
REALSRSET_PHOTOS = (
    "00003.png",
    "0014.jpg",
    "0030.jpg",
    "ADE_val_00000114.jpg",
    "OST_009.png",
    "dog.png",
    "dped_crop00061.png",
    "oldphoto2.png",
    "oldphoto3.png",
    "oldphoto6.png",
    "tiger.png",
)


def u8(img: torch.Tensor) -> torch.Tensor:
    """(3, H, W) or (1, 3, H, W) in [0, 1] -> float64 0-255 values quantised to 8 bits."""
    return (img.double().clamp(0, 1) * 255).round()


def psnr_255(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(255**2 / ((u8(a) - u8(b)) ** 2).mean()))


def mad_pair(img: torch.Tensor) -> tuple[float, float]:
    """(MAD on the channels' mean, mean of the per-channel MADs) of (3, H, W) in [0, 1]."""
    x = img[None] if img.dim() == 3 else img
    return estimate_noise_sigma(x), float(np.mean(estimate_noise_sigmas(x)))


def pct(values, fmt: str = "{:.1f}") -> str:
    """p5 / median / p95."""
    p = np.percentile(np.asarray(values, dtype=np.float64), [5, 50, 95])
    return " / ".join(fmt.format(v) for v in p)


def table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()


# --- 1. real noisy photos -----------------------------------------------------------------


def real_photos() -> None:
    print("## Real photos without ground truth: MAD noise estimate (0-255)\n")
    rows = []
    for path in sorted((DATA / "real-lq/rni15").iterdir()):
        g, c = mad_pair(load_rgb(path))
        rows.append([f"rni15/{path.name}", f"{g:.1f}", f"{c:.1f}"])
    per_set = {
        "rni15 (15)": sorted((DATA / "real-lq/rni15").iterdir()),
        f"realsrset photos ({len(REALSRSET_PHOTOS)})": [
            DATA / "real-lq/realsrset" / n for n in REALSRSET_PHOTOS
        ],
        "diffbir-real47 (47)": sorted((DATA / "real-lq/diffbir-real47").iterdir()),
    }
    for name, paths in per_set.items():
        est = np.array([mad_pair(load_rgb(p)) for p in paths])
        rows.append([f"**{name}** p5 / median / p95", pct(est[:, 0]), pct(est[:, 1])])
    table(["image", "MAD, channels' mean", "MAD, per channel (mean of 3)"], rows)


# --- 2. SIDD ------------------------------------------------------------------------------


def lag1(d: torch.Tensor) -> float:
    """Horizontal lag-1 correlation of a zero-mean-ish (H, W) residual."""
    d = d - d.mean()
    return float((d[:, 1:] * d[:, :-1]).mean() / d.var())


def sidd() -> None:
    print("## SIDD pairs: LQ - GT (0-255)\n")
    rows = []
    for lq_path in sorted((DATA / "pairs/sidd/lq").iterdir()):
        lq, gt = load_rgb(lq_path), load_rgb(DATA / "pairs/sidd/gt" / lq_path.name)
        d = u8(lq) - u8(gt)
        per = [float(d[c].std()) for c in range(3)]
        g, c = mad_pair(lq)
        rows.append(
            [
                lq_path.name,
                " / ".join(f"{s:.1f}" for s in per),
                f"{d.std():.1f}",
                f"{psnr_255(lq, gt):.2f}",
                f"{g:.1f} / {c:.1f}",
                f"{float(d.std()) / c:.2f}",
                " / ".join(f"{lag1(d[ch]):.2f}" for ch in range(3)),
            ]
        )
    header = ["pair", "std R / G / B", "std", "LQ PSNR", "MAD mean / per ch.", "std / MAD per ch."]
    header.append("lag-1 corr R/G/B")
    table(header, rows)


# --- 3. the project's samples -------------------------------------------------------------


def dataset(task: str, degradation: DegradationConfig | None = None) -> MultiTaskDataset:
    return MultiTaskDataset(
        [DATA / "train-hq"],
        crop=CROP,
        task_probs={task: 1.0},
        prompt_augmentation=False,
        seed=0,
        degradation=degradation,
    )


def sample_stats(ds: MultiTaskDataset) -> dict:
    std, psnr, mad_g, mad_c, energy, params = [], [], [], [], [], []
    for i in range(SAMPLES):
        it = ds.sample(i)
        d = u8(it["lq"]) - u8(it["hq"])
        std.append(float(d.std()))
        psnr.append(psnr_255(it["lq"], it["hq"]))
        g, c = mad_pair(it["lq"])
        mad_g.append(g)
        mad_c.append(c)
        energy.append(float((d / 255).square().mean()))
        params.append(it["params"])
    return {"std": std, "psnr": psnr, "mad_g": mad_g, "mad_c": mad_c, "energy": energy, "p": params}


def dn_before() -> DegradationConfig:
    """The DN task's distribution before issue 21: the `noise` recipe's (mild sensor noise,
    JPEG q75-95 with p 0.7), drawn through today's DN recipe."""
    old = DenoiseNoiseConfig(gaussian_prob=0.0, correlated_prob=0.0, sensor=SensorNoiseConfig())
    return DegradationConfig(dn_noise=old, dn_jpeg_range=(75.0, 95.0))


def bench_sets() -> list[list[str]]:
    """The benchmark's noise sets, written as ``unires bench quality`` writes them."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        crops = centre_crops(DATA / "val-hq", Path(tmp) / "hq", 256, None)
        for recipe in ("noise", "noise-heavy", "gaussian-25"):
            out = Path(tmp) / recipe
            write_degraded_set(crops, out, recipe, seed=0)
            std, psnr, mad_g, mad_c = [], [], [], []
            for lq_path in sorted((out / "lq").glob("*.png")):
                lq, gt = load_rgb(lq_path), load_rgb(out / "gt" / lq_path.name)
                std.append(float((u8(lq) - u8(gt)).std()))
                psnr.append(psnr_255(lq, gt))
                g, c = mad_pair(lq)
                mad_g.append(g)
                mad_c.append(c)
            rows.append(
                [
                    f"bench `{recipe}` (val-hq, {len(std)}; mean PSNR {np.mean(psnr):.2f})",
                    pct(std),
                    pct(psnr),
                    pct(mad_g),
                    pct(mad_c),
                ]
            )
    return rows


def training_samples() -> dict[str, dict]:
    print(f"## The project's samples ({SAMPLES} per row, train-hq crops of {CROP})\n")
    stats = {
        "dn before issue 21": sample_stats(dataset("dn", dn_before())),
        "dn now (default)": sample_stats(dataset("dn")),
        "sr": sample_stats(dataset("sr")),
        "md": sample_stats(dataset("md")),
        "dd": sample_stats(dataset("dd")),
    }
    hq = np.array([mad_pair(dataset("dn").sample(i)["hq"]) for i in range(SAMPLES)])
    rows = [
        [name, pct(s["std"]), pct(s["psnr"]), pct(s["mad_g"]), pct(s["mad_c"])]
        for name, s in stats.items()
        if name.startswith("dn")
    ]
    rows.append(
        ["clean HQ crops (the estimator's floor)", "0", "inf", pct(hq[:, 0]), pct(hq[:, 1])]
    )
    rows += bench_sets()
    header = ["samples", "std LQ-HQ p5/med/p95", "LQ PSNR", "MAD mean", "MAD per ch."]
    table(header, rows)
    sr = np.mean(stats["sr"]["energy"])
    rows = [
        [name, f"{np.mean(s['energy']):.3e}", f"{np.mean(s['energy']) / sr:.3f}", pct(s["psnr"])]
        for name, s in stats.items()
    ]
    table(["task", "mean (LQ - HQ)^2, [0, 1] units", "vs SR", "LQ PSNR p5/med/p95"], rows)
    now = stats["dn now (default)"]["p"]
    kinds = [p["noise"] + (" grey" if p.get("grey") else "") for p in now]
    corr = sum(p["correlation_px"] > 0 for p in now)
    jpeg = [p["jpeg_quality"] for p in now if "jpeg_quality" in p]
    print(
        f"dn now: {', '.join(f'{k} {kinds.count(k)}' for k in sorted(set(kinds)))}; "
        f"correlated {corr}/{len(now)}; JPEG {len(jpeg)}/{len(now)}, q {min(jpeg)}-{max(jpeg)}\n"
    )
    return stats


# --- 4. blur ------------------------------------------------------------------------------


def estimate_kernel(sharp: np.ndarray, blurred: np.ndarray, size: int = 65) -> np.ndarray:
    """Blur kernel (size x size, sums to 1) with ``blurred ~ kernel * sharp`` for two (H, W)
    grey patches in [0, 1]: Hann-windowed, regularised least squares in the Fourier domain;
    negative lobes and values under 5% of the peak are dropped."""
    win = np.outer(np.hanning(sharp.shape[0]), np.hanning(sharp.shape[1]))
    s = np.fft.fft2((sharp - sharp.mean()) * win)
    b = np.fft.fft2((blurred - blurred.mean()) * win)
    power = np.abs(s) ** 2
    k = np.fft.fftshift(np.real(np.fft.ifft2(np.conj(s) * b / (power + 1e-2 * power.mean()))))
    cy, cx, r = k.shape[0] // 2, k.shape[1] // 2, size // 2
    k = np.clip(k[cy - r : cy + r + 1, cx - r : cx + r + 1], 0, None)
    k[k < 0.05 * k.max()] = 0
    return k / k.sum()


def extent(kernel) -> float:
    """sqrt(12 * largest eigenvalue of the kernel's covariance), pixels."""
    k = np.asarray(kernel, dtype=np.float64)
    k = k / k.sum()
    yy, xx = np.mgrid[: k.shape[0], : k.shape[1]].astype(np.float64)
    my, mx = (k * yy).sum(), (k * xx).sum()
    cyy, cxx = (k * (yy - my) ** 2).sum(), (k * (xx - mx) ** 2).sum()
    cxy = (k * (yy - my) * (xx - mx)).sum()
    return math.sqrt(12 * np.linalg.eigvalsh(np.array([[cyy, cxy], [cxy, cxx]]))[-1])


def grey(img: torch.Tensor) -> np.ndarray:
    return img.double().mean(0).numpy()


def patch_extents(sharp: np.ndarray, blurred: np.ndarray, side: int = 256) -> list[float]:
    h, w = sharp.shape
    return [
        extent(
            estimate_kernel(sharp[y : y + side, x : x + side], blurred[y : y + side, x : x + side])
        )
        for y in range(0, h - side + 1, side)
        for x in range(0, w - side + 1, side)
    ]


def blur(stats: dict[str, dict]) -> None:
    from unires.degrade.kernels import filter2d

    print("## Blur: GoPro pair vs the project's MD / DD data (extent in pixels)\n")
    rows = []
    photo = load_rgb(DATA / "train-hq/urban100_img_001.jpg")
    checks = []
    for seed in range(3):
        k, _ = random_shake_kernel(torch.Generator().manual_seed(seed))
        blurred = filter2d(photo[None], k)[0]
        est = patch_extents(grey(photo)[256:512, 256:512], grey(blurred)[256:512, 256:512])
        checks.append(f"{extent(k):.1f} -> {est[0]:.1f}")
    rows.append(["estimator check: true -> estimated (synthetic shake)", "", ", ".join(checks)])
    lq, gt = (
        load_rgb(DATA / "pairs/gopro/lq/flower.png"),
        load_rgb(DATA / "pairs/gopro/gt/flower.png"),
    )
    gopro = patch_extents(grey(gt), grey(lq))
    rows.append(
        [
            f"GoPro flower, {gt.shape[-1]}x{gt.shape[-2]}, {len(gopro)} patches of 256",
            f"{psnr_255(lq, gt):.2f}",
            f"{pct(gopro)} (max {max(gopro):.1f})",
        ]
    )
    shake = [extent(random_shake_kernel(generator_for(0, "probe", i))[0]) for i in range(200)]
    rows.append(["camera-shake kernels (ShakeConfig, 200 draws)", "", pct(shake)])
    md = stats["md"]
    kinds = [p.get("recipe", "?") for p in md["p"]]
    rows.append(
        [
            f"MD samples ({', '.join(f'{k} {kinds.count(k)}' for k in sorted(set(kinds)))})",
            pct(md["psnr"]),
            "",
        ]
    )
    lo, hi = DefocusConfig().radius_range
    disk = [extent(disk_kernel(r)) for r in (lo, (lo + hi) / 2, hi)]
    radii = [p["radius"] for p in stats["dd"]["p"] if "radius" in p]
    rows.append(
        [
            f"defocus disks, radius {lo:g} / {(lo + hi) / 2:g} / {hi:g} px",
            pct(stats["dd"]["psnr"]),
            " / ".join(f"{e:.1f}" for e in disk) + f" (samples' radius {pct(radii)})",
        ]
    )
    table(["source", "LQ PSNR (p5/med/p95)", "extent px (p5/med/p95)"], rows)
    sizes = sorted(
        {tuple(load_rgb(p).shape[-2:]) for p in list((DATA / "train-hq").iterdir())[:40]}
    )
    print(f"train-hq photo sizes (first 40 files, H x W): {sizes[0]} .. {sizes[-1]}\n")


def main() -> None:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    real_photos()
    sidd()
    stats = training_samples()
    blur(stats)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
