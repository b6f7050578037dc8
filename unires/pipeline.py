"""``UniResPipeline``: image in, image out. The only place that knows every part.

LQ -> (x4: bicubic upscale) -> pad -> encode LQ / DownLQ -> DDIM with Eq. 2 mixing
   -> (residual models: add the LQ latent back) -> decode -> crop -> colour fix
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .model.autoencoder import (
    decode_latents,
    encode_latents,
    vae_downscale_factor,
    vae_latent_channels,
)
from .model.bundle import (
    ModelComponents,
    UniResSettings,
    load_model,
    model_digest,
    save_model,
)
from .model.denoiser import Denoiser
from .sampling.color import apply_color_fix
from .sampling.conditions import down_up_lq
from .sampling.ddim import TaskMixture, sample_unires_ddim
from .sampling.tiling import (
    TiledDenoiser,
    latent_tile_for_budget,
    tiled_apply,
    with_oom_retry,
)
from .tasks import Condition, get_task
from .weights import active_weights, validate_weights

EMBEDDED_MODEL_DIR = Path(__file__).parent / "weights" / "embedded"


class EmbeddedModelMissing(FileNotFoundError):
    pass


def embedded_model_path() -> Path:
    """The model shipped inside the package (the default everywhere).

    Raises:
        EmbeddedModelMissing: the package ships no trained model (no model_index.json).
    """
    if not (EMBEDDED_MODEL_DIR / "model_index.json").is_file():
        raise EmbeddedModelMissing(
            "the embedded UniRes model is not in this installation yet "
            f"({EMBEDDED_MODEL_DIR} has no model_index.json): no restoration is possible "
            "without trained weights (it is still in training: docs/TRAINING.md); pass "
            "--model PATH to a trained UniRes model folder"
        )
    return EMBEDDED_MODEL_DIR


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device for "auto" / None (CUDA, else MPS, else CPU) or a device name.

    Raises:
        ValueError: CUDA or MPS asked for where PyTorch sees none.
    """
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device}: PyTorch sees no CUDA device here; use cpu or auto")
    mps = getattr(torch.backends, "mps", None)
    if dev.type == "mps" and not (mps and mps.is_available()):
        raise ValueError(f"device {device}: PyTorch sees no MPS device here; use cpu or auto")
    return dev


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The compute dtype: "auto" / None is fp16 on CUDA, else fp32; "fp32", "fp16", "bf16".

    Raises:
        ValueError: an unknown dtype name.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.float16 if device.type == "cuda" else torch.float32
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r} (choose fp32, fp16 or bf16)") from None


def _available_memory(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


@dataclass
class TileSettings:
    """Latent tile side (None: choose from the memory budget; 0: never tile)."""

    latent_tile: int | None = None
    latent_overlap: int = 16
    pixel_tile: int = 1024  # encode/decode tiles, in pixels
    pixel_overlap: int = 64
    memory_fraction: float = 0.5
    # On large images, tiles of at most this many latent pixels a side are faster even when
    # memory would allow more (None: the network's, ``Denoiser.max_tile``).
    max_latent_tile: int | None = None


@dataclass
class PreparedImage:
    """One image ready for sampling: what all its restorations share."""

    lq: torch.Tensor  # 1 x 3 x H x W at the output size, unpadded: the colour-fix reference
    cond: dict  # Condition -> the network's condition input (``Denoiser.condition``)
    z_lq: torch.Tensor  # the LQ latent (residual models add the sampled residual to it)
    noise: torch.Tensor  # x_T of the seed
    x0_init: torch.Tensor  # the LQ as a start point (strength < 1)
    generator: torch.Generator  # the seed's generator after drawing x_T (for eta > 0)


def as_image_batch(image) -> torch.Tensor:
    """What ``UniResPipeline.__call__`` (and ``search.auto_weights``) accept, as a
    B x 3 x H x W tensor: a PIL image, an H x W x 3 array (uint8, or float in [0, 1]) or a
    3 x H x W / B x 3 x H x W tensor in [0, 1] (passed through).

    Raises:
        ValueError: a tensor or array that is not 3-channel, or of another rank.
    """
    if isinstance(image, torch.Tensor):
        batch = image if image.dim() == 4 else image[None]
        if batch.dim() != 4 or batch.shape[1] != 3:
            raise ValueError(
                f"expected a 3 x H x W or B x 3 x H x W tensor, got {tuple(image.shape)}"
            )
        return batch
    if isinstance(image, Image.Image):
        arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    else:
        arr = np.asarray(image)
        arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 image, got an array of shape {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).permute(2, 0, 1)[None]


class UniResPipeline:
    def __init__(self, components: ModelComponents, device=None, dtype=None):
        self.unet = components.unet
        # The one object that calls the network and knows what it predicts.
        self.denoiser = Denoiser(components.unet, components.scheduler_config, components.settings)
        self.vae = components.vae
        self.prompt_encoder = components.prompt_encoder
        self.scheduler_config = dict(components.scheduler_config)
        self.settings: UniResSettings = components.settings
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self._prompt_cache: dict[str, torch.Tensor] = {}
        self.model_folder: Path | None = None  # the folder ``from_pretrained`` loaded
        for m in (self.unet, self.vae, self.prompt_encoder):
            m.eval().requires_grad_(False)
        self.to(device, dtype)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls, path: str | Path | None = None, device=None, dtype=None
    ) -> UniResPipeline:
        """Load a model folder; ``None`` loads the embedded model shipped with the package."""
        folder = Path(path) if path is not None else embedded_model_path()
        pipe = cls(load_model(folder), device=device, dtype=dtype)
        pipe.model_folder = folder
        return pipe

    @property
    def model_digest(self) -> str | None:
        """``model.bundle.model_digest`` of the folder this pipeline was loaded from (None
        for one built in memory): what resumable output folders record as "the model"."""
        return model_digest(self.model_folder) if self.model_folder is not None else None

    def save_pretrained(self, path: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write the model folder (``load_model`` reads it), in ``dtype`` (None: as loaded)."""
        return save_model(self.components(), path, dtype=dtype)

    def components(self) -> ModelComponents:
        """The pipeline's model as ``ModelComponents`` (shared, not copied)."""
        return ModelComponents(
            self.unet, self.vae, self.prompt_encoder, self.scheduler_config, self.settings
        )

    def to(self, device=None, dtype=None) -> UniResPipeline:
        """Move to ``device`` in ``dtype`` (``resolve_device`` / ``resolve_dtype``); an fp16 model
        keeps its autoencoder in fp32. Returns self.

        Raises:
            ValueError: as ``resolve_device`` / ``resolve_dtype``.
        """
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        # nn.Module.to: diffusers' own .to() warns on every dtype cast.
        torch.nn.Module.to(self.unet, self.device, self.dtype)
        torch.nn.Module.to(self.prompt_encoder, self.device, self.dtype)
        # fp16 autoencoders overflow (SD's VAE famously): keep them in fp32 then.
        vae_dtype = torch.float32 if self.dtype == torch.float16 else self.dtype
        torch.nn.Module.to(self.vae, self.device, vae_dtype)
        self._prompt_cache.clear()
        return self

    # ---- pieces -------------------------------------------------------------------------
    @property
    def vae_factor(self) -> int:
        """Image pixels per latent cell a side."""
        return vae_downscale_factor(self.vae)

    @property
    def latent_channels(self) -> int:
        """Channels of the autoencoder's latent."""
        return vae_latent_channels(self.vae)

    @property
    def pad_multiple(self) -> int:
        """Pixels per latent, times the network's total downsampling."""
        return self.vae_factor * self.denoiser.downsample_factor

    def prompt_embedding(self, code: str) -> torch.Tensor:
        """(L, D) embedding of a task's prompt; computed once per pipeline."""
        if code not in self._prompt_cache:
            with torch.no_grad():
                emb = self.prompt_encoder.encode([get_task(code).prompt])[0]
            self._prompt_cache[code] = emb.to(self.device, self.dtype)
        return self._prompt_cache[code]

    def _vae_dtype(self) -> torch.dtype:
        tensor = next(self.vae.parameters(), None)
        if tensor is None:  # a weightless autoencoder (space-to-depth) has only buffers
            tensor = next(self.vae.buffers(), None)
        return tensor.dtype if tensor is not None else torch.float32

    @torch.no_grad()
    def encode(self, images: torch.Tensor, tiles: TileSettings) -> torch.Tensor:
        """Images B x 3 x H x W in [0, 1] (H, W multiples of the VAE factor) -> latents."""
        x = (images * 2 - 1).to(self.device, self._vae_dtype())
        f = self.vae_factor

        def run(tile: int) -> torch.Tensor:
            return tiled_apply(
                lambda crop, _: encode_latents(self.vae, crop),
                x,
                tile,
                tiles.pixel_overlap,
                scale=1 / f,
                align=f,
            )

        start = min(tiles.pixel_tile, max(x.shape[-2:]))
        return with_oom_retry(run, start, min_tile=4 * f, align=f).float()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, tiles: TileSettings) -> torch.Tensor:
        """Latents -> images in [0, 1] (not clamped yet: the colour fix comes first)."""
        z = latents.to(self.device, self._vae_dtype())
        f = self.vae_factor

        def run(tile: int) -> torch.Tensor:
            return tiled_apply(
                lambda crop, _: decode_latents(self.vae, crop),
                z,
                max(1, tile // f),
                max(1, tiles.pixel_overlap // f),
                scale=f,
            )

        start = min(tiles.pixel_tile, max(z.shape[-2:]) * f)
        out = with_oom_retry(run, start, min_tile=4 * f, align=f)
        return (out.float() + 1) / 2

    def _bytes_per_latent_pixel(self) -> float:
        """Rough activation memory of one network call per latent pixel and batch element."""
        per = self.denoiser.activation_channels()
        return per * torch.finfo(self.dtype).bits / 8 * 2

    def _latent_tile(self, n_tasks: int, tiles: TileSettings, shape) -> int:
        if tiles.latent_tile is not None:
            return tiles.latent_tile or max(shape[-2:])
        budget = _available_memory(self.device) * tiles.memory_fraction
        align = self.pad_multiple // self.vae_factor
        tile = latent_tile_for_budget(n_tasks, self._bytes_per_latent_pixel(), budget, align)
        return min(tile, max(align, self._max_tile(tiles) // align * align))

    def _max_tile(self, tiles: TileSettings) -> int:
        return tiles.max_latent_tile or self.denoiser.max_tile

    # ---- restoration --------------------------------------------------------------------
    @torch.no_grad()
    def prepare(
        self,
        lq: torch.Tensor,
        *,
        seed: int = 0,
        scale: int = 1,
        downlq_factor: int | None = None,
        tiles: TileSettings | None = None,
        conditions=(Condition.LQ, Condition.DOWN_LQ),
    ) -> PreparedImage:
        """What every restoration of ``lq`` shares: the x4 upscale, padding to the model's
        multiple, the condition latents (encoded once), the start noise of ``seed``.

        Raises:
            ValueError: ``scale`` is not 1 or 4.
        """
        if scale not in (1, 4):
            raise ValueError(f"scale must be 1 or 4, got {scale}")
        tiles = tiles or TileSettings()
        factor = downlq_factor or self.settings.downlq_factor
        lq = lq.float().clamp(0, 1)
        if scale != 1:  # x4: restore the bicubic-upscaled LQ at the target size
            lq = F.interpolate(lq, scale_factor=scale, mode="bicubic", align_corners=False).clamp(
                0, 1
            )
        h, w = lq.shape[-2:]
        m = self.pad_multiple
        ph, pw = math.ceil(h / m) * m - h, math.ceil(w / m) * m - w
        mode = "reflect" if ph < h and pw < w else "replicate"
        images = {Condition.LQ: F.pad(lq, (0, pw, 0, ph), mode=mode) if ph or pw else lq}
        if Condition.DOWN_LQ in conditions:
            # DownLQ is built on the unpadded image so padding does not leak into it.
            down = down_up_lq(lq, factor)
            images[Condition.DOWN_LQ] = F.pad(down, (0, pw, 0, ph), mode=mode)
        latents = {c: self.encode(img, tiles) for c, img in images.items()}
        z_lq = latents[Condition.LQ]
        gen = torch.Generator("cpu").manual_seed(int(seed))
        noise = torch.randn(z_lq.shape, generator=gen, dtype=torch.float32).to(self.device)
        return PreparedImage(
            lq=lq,
            cond={c: self.denoiser.condition(z) for c, z in latents.items()},
            z_lq=z_lq,
            noise=noise,
            # The LQ as a starting point (strength < 1): residual 0, or the LQ latent itself.
            x0_init=self.denoiser.unchanged(z_lq),
            generator=gen,
        )

    def finish(self, prepared: PreparedImage, x0: torch.Tensor, tiles, color_fix) -> torch.Tensor:
        """Sampled x0 -> image: add z_LQ back (residual models), decode, crop, colour fix
        (``color_fix`` None: the model's ``default_color_fix``)."""
        z0 = self.denoiser.from_diffused(x0, prepared.z_lq)
        h, w = prepared.lq.shape[-2:]
        out = self.decode(z0, tiles or TileSettings())[..., :h, :w]
        method = color_fix or self.settings.default_color_fix
        out = apply_color_fix(out, prepared.lq.to(out).expand_as(out), method)
        return out.clamp(0, 1).cpu()

    def batches_candidates(self, lq: torch.Tensor, restore_kwargs: Mapping) -> bool:
        """Whether a search may restore many weight sets of ``lq`` together
        (``search.batched``: the same images as ``restore_tensor`` one set at a time). Not
        with eta > 0 or a self-ensemble, nor for an image that ``restore_tensor`` would tile."""
        if restore_kwargs.get("eta", 0.0) != 0.0 or restore_kwargs.get("ensemble", 1) != 1:
            return False
        tiles = restore_kwargs.get("tiles") or TileSettings()
        if tiles.latent_tile == 0:
            return True
        side = max(lq.shape[-2:]) * restore_kwargs.get("scale", 1) / self.vae_factor
        limit = tiles.latent_tile or self._max_tile(tiles)
        return side <= limit

    def restore_tensor(
        self,
        lq: torch.Tensor,
        weights: Mapping[str, float] | None = None,
        *,
        steps: int | None = None,
        seed: int = 0,
        scale: int = 1,
        color_fix: str | None = None,
        downlq_factor: int | None = None,
        tiles: TileSettings | None = None,
        eta: float = 0.0,
        strength: float = 1.0,
        ensemble: int = 1,
        progress: bool = False,
    ) -> torch.Tensor:
        """Restore B x 3 x H x W images in [0, 1]; returns B x 3 x (scale*H) x (scale*W).

        ``strength`` 1 samples from pure noise (the paper); below 1 sampling starts from the
        LQ latent noised part-way (more fidelity, less generated detail). ``ensemble`` 2, 4
        or 8: each network call averaged over that many flips and turns of its input
        (``Denoiser.with_ensemble``; EDSR's self-ensemble), at that many times the cost.
        ``color_fix`` "adain", "wavelet" or "none" (``sampling.color``); None: the model's
        ``default_color_fix``.

        Raises:
            ValueError: ``strength`` outside (0, 1]; weights that ``validate_weights`` rejects
                (``WeightsError``); a ``scale`` other than 1 or 4; ``ensemble`` not 1, 2, 4, 8.
        """
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        denoiser = self.denoiser.with_ensemble(ensemble)
        weights = validate_weights(weights or self.settings.default_weights)
        active = active_weights(weights)
        steps = steps or self.settings.default_steps
        tiles = tiles or TileSettings()
        # Encode each distinct condition image once.
        needed = {get_task(k).condition for k in active} | {Condition.LQ}
        prep = self.prepare(
            lq, seed=seed, scale=scale, downlq_factor=downlq_factor, tiles=tiles, conditions=needed
        )
        z_lq = prep.z_lq
        per_task = {k: prep.cond[get_task(k).condition] for k in active}
        embeds = {k: self.prompt_embedding(k) for k in active}
        mixture = TaskMixture(denoiser, per_task, embeds, active)
        align = self.pad_multiple // self.vae_factor

        def sample(latent_tile: int) -> torch.Tensor:
            tiled = latent_tile < max(z_lq.shape[-2:])
            model = (
                TiledDenoiser(mixture, latent_tile, tiles.latent_overlap, align)
                if tiled
                else mixture
            )
            return sample_unires_ddim(
                model,
                prep.noise,
                self.scheduler_config,
                steps,
                eta=eta,
                generator=prep.generator,
                disable=not progress,
                strength=strength,
                x0_init=prep.x0_init,
            )

        # Never start above the latent's size: an out-of-memory retry must actually tile.
        latent_tile = min(self._latent_tile(len(active), tiles, z_lq.shape), max(z_lq.shape[-2:]))
        x0 = with_oom_retry(sample, latent_tile, min_tile=2 * align, align=align)
        return self.finish(prep, x0, tiles, color_fix)

    def __call__(self, image, weights: Mapping[str, float] | None = None, **kwargs):
        """Restore a PIL image, an H x W x 3 array in [0, 1] or uint8, or a tensor.

        Returns a PIL image for PIL/array input and a tensor for tensor input.
        """
        if isinstance(image, torch.Tensor):
            return self.restore_tensor(as_image_batch(image), weights, **kwargs)
        out = self.restore_tensor(as_image_batch(image), weights, **kwargs)[0]
        arr8 = (out.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
        return Image.fromarray(arr8)
