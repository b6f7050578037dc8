"""The multi-task training set: clean photos, cropped and degraded on the fly.

Each sample draws its task with the paper's probabilities (SR .32, MD .28, DD .18, DN .22),
degrades an HQ crop with that task's recipe to an LQ of the same size, and applies the
quality-prompt augmentation of App. A.7. A sample depends only on (seed, epoch, index), so
any number of DataLoader workers gives the same data. Indices may run past the number of
images (a resumable trainer can ask for sample ``step * batch + i``): each pass of
``len(files)`` indices visits every image once, in a seeded order of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..degrade.recipes import DegradationConfig, degrade_for_task, task_recipe
from ..degrade.rng import generator_for
from ..io import list_images, load_rgb
from ..tasks import TRAINING_TASK_PROBS, get_task
from .crops import centre_crop, pad_to, random_crop
from .task_sampling import (
    NEGATIVE_PROMPT_PROB,
    POSITIVE_PROMPT_PROB,
    augment_quality_prompt,
    sample_task,
    validate_task_probs,
)


def _centre_crop_item(img: torch.Tensor, size: int) -> tuple[torch.Tensor, dict]:
    """The centre ``size`` crop of (3, H, W) (padded first where smaller) and its record."""
    img = pad_to(img, size)
    h, w = img.shape[-2:]
    record = {"crop": [(h - size) // 2, (w - size) // 2, size], "flip": False}
    return centre_crop(img, size).contiguous(), record


class MultiTaskDataset(Dataset):
    """Items: dict(lq=(3, S, S), hq=(3, S, S) float32 in [0, 1], prompt, task, params).

    ``roots``: folders of clean images (DF2K, LSDIR, ...; searched recursively, LR copies
    skipped), or give ``files``. ``task_probs``: non-negative weights per task code,
    normalised (default: the paper's). ``random_crop=False`` takes centre crops without
    flips (validation).
    """

    def __init__(
        self,
        roots: Sequence[str | Path] = (),
        *,
        files: Sequence[str | Path] | None = None,
        crop: int = 256,
        task_probs: Mapping[str, float] | None = None,
        prompt_augmentation: bool = True,
        positive_prompt_prob: float = POSITIVE_PROMPT_PROB,
        negative_prompt_prob: float = NEGATIVE_PROMPT_PROB,
        seed: int = 0,
        random_crop: bool = True,
        flip: bool = True,
        degradation: DegradationConfig | None = None,
    ):
        self.task_probs = validate_task_probs(task_probs or TRAINING_TASK_PROBS)
        for code in self.task_probs:
            get_task(code)  # unknown codes and codes with no recipe fail here, not in a worker
            task_recipe(code)
        self.files = [Path(f) for f in files] if files is not None else list_images(roots)
        if not self.files:
            raise ValueError(f"no images found in {', '.join(map(str, roots)) or 'the file list'}")
        self.crop = int(crop)
        self.quality_probs = (
            (positive_prompt_prob, negative_prompt_prob) if prompt_augmentation else (0.0, 0.0)
        )
        self.seed = int(seed)
        self.random_crop = random_crop
        self.flip = flip and random_crop
        self.degradation = degradation or DegradationConfig()
        self.epoch = 0
        self._order: tuple[int, torch.Tensor] | None = None

    def set_epoch(self, epoch: int) -> None:
        """New crops and degradations each epoch, reproducibly."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.files)

    def file_for(self, index: int) -> Path:
        """The file of sample ``index``: a seeded permutation per (epoch, lap over the files)."""
        n = len(self.files)
        lap = (self.epoch, index // n)
        if self._order is None or self._order[0] != lap:
            gen = generator_for(self.seed, "order", *lap)
            self._order = (lap, torch.randperm(n, generator=gen))
        return self.files[int(self._order[1][index % n])]

    def __getitem__(self, index: int) -> dict:
        return self.sample(index)

    def sample(self, index: int, task: str | None = None) -> dict:
        """Sample ``index``; ``task`` forces the task instead of drawing it."""
        path = self.file_for(index)
        gen = generator_for(self.seed, self.epoch, index, path.name)
        img = load_rgb(path)
        if self.random_crop:
            (hq,), crop = random_crop([img], self.crop, gen, self.flip)
        else:
            hq, crop = _centre_crop_item(img, self.crop)
        drawn = sample_task(gen, self.task_probs)  # drawn even if forced: same stream
        task = get_task(task).code if task else drawn
        lq, (params,) = degrade_for_task(task, hq[None], gen, self.degradation)
        lq, hq, prompt, quality = augment_quality_prompt(
            lq[0], hq, get_task(task).prompt, gen, *self.quality_probs
        )
        params.update(crop, file=path.name)
        if quality:
            params["quality_prompt"] = quality
        return {"lq": lq, "hq": hq, "prompt": prompt, "task": quality or task, "params": params}


# The name the issue uses for it: a folder of HQ images, degraded on the fly.
HQFolderDataset = MultiTaskDataset


def from_task_probs(probs: Mapping[str, float] | str) -> dict[str, float]:
    """Task probabilities from a mapping or a string like ``"sr=0.5,md=0.5"``."""
    if isinstance(probs, str):
        out = {}
        for part in filter(None, (p.strip() for p in probs.split(","))):
            code, _, value = part.partition("=")
            out[get_task(code).code] = float(value)
        probs = out
    return validate_task_probs(probs)
