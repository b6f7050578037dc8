"""Readers for the standard paired data sets, in the folder layouts they are downloaded in.

- GoPro (motion blur):   ``GOPRO_Large/{train,test}/<scene>/{blur,sharp}/<frame>.png``
- DPDD (defocus blur):   ``dd_dp_dataset_png/{train,val,test}_c/{source,target}/<name>.png``
- SIDD-Medium (noise):   ``SIDD_Medium_Srgb/Data/<scene>/<id>_{NOISY,GT}_SRGB_<n>.PNG``
- DF2K / LSDIR (clean):  folders of HQ images (``DIV2K_train_HR``, ``Flickr2K_HR``, LSDIR's
  ``HR/train/<shard>``); low-resolution copies shipped beside them are skipped.

Each reader returns ``Pair``s; ``PairedDataset`` crops them aligned and labels them with
their task's prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from ..degrade.rng import generator_for
from ..io import is_dataset_image, list_images, load_rgb
from ..tasks import get_task
from .crops import random_crop
from .task_sampling import NEGATIVE_PROMPT_PROB, POSITIVE_PROMPT_PROB, augment_quality_prompt


@dataclass(frozen=True)
class Pair:
    lq: Path
    hq: Path
    task: str  # task code of unires.tasks
    source: str  # data set name


class LayoutError(ValueError):
    """The folder does not have the data set's layout (the message says what was expected)."""


def _images(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if is_dataset_image(p)}


def _match_by_name(lq_dir: Path, hq_dir: Path, task: str, source: str) -> list[Pair]:
    lq, hq = _images(lq_dir), _images(hq_dir)
    return [Pair(lq[name], hq[name], task, source) for name in sorted(lq) if name in hq]


def gopro_pairs(root: str | Path, split: str = "train") -> list[Pair]:
    """GoPro: ``root/<split>/<scene>/blur/*`` with the same names in ``.../sharp``.

    Raises:
        LayoutError: ``root/<split>`` is not a folder.
    """
    base = Path(root) / split
    if not base.is_dir():
        raise LayoutError(f"{root}: GoPro layout needs {split}/<scene>/blur and sharp folders")
    pairs: list[Pair] = []
    for scene in sorted(p for p in base.iterdir() if p.is_dir()):
        if (scene / "blur").is_dir() and (scene / "sharp").is_dir():
            pairs += _match_by_name(scene / "blur", scene / "sharp", "md", "gopro")
    return pairs


def dpdd_pairs(root: str | Path, split: str = "train") -> list[Pair]:
    """DPDD (dual-pixel defocus): ``root/<split>_c/source`` -> ``root/<split>_c/target``.

    Raises:
        LayoutError: ``source`` or ``target`` is missing.
    """
    base = Path(root) / f"{split}_c"
    if not (base / "source").is_dir() or not (base / "target").is_dir():
        raise LayoutError(f"{root}: DPDD layout needs {split}_c/source and {split}_c/target")
    return _match_by_name(base / "source", base / "target", "dd", "dpdd")


def sidd_medium_pairs(root: str | Path) -> list[Pair]:
    """SIDD-Medium: in each ``root/Data/<scene>``, ``*NOISY_*`` pairs with ``*GT_*``.

    Raises:
        LayoutError: ``root/Data`` is not a folder.
    """
    data = Path(root) / "Data"
    if not data.is_dir():
        raise LayoutError(f"{root}: SIDD-Medium layout needs Data/<scene>/*_NOISY_* and *_GT_*")
    pairs: list[Pair] = []
    for scene in sorted(p for p in data.iterdir() if p.is_dir()):
        images = _images(scene)
        for name, path in images.items():
            if "NOISY_" in name:
                gt = images.get(name.replace("NOISY_", "GT_", 1))
                if gt is not None:
                    pairs.append(Pair(path, gt, "dn", "sidd"))
    return pairs


def hq_images(root: str | Path) -> list[Path]:
    """DF2K, LSDIR or any folder of clean images (recursive, LR copies skipped).

    Raises:
        LayoutError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: not a folder of HQ images")
    return list_images([root])


PAIRED_READERS = {"gopro": gopro_pairs, "dpdd": dpdd_pairs, "sidd": sidd_medium_pairs}


class PairedDataset(Dataset):
    """Aligned random crops of real pairs: dict(lq, hq, prompt, task, params)."""

    def __init__(
        self,
        pairs: Sequence[Pair],
        crop_size: int = 256,
        seed: int = 0,
        flip: bool = True,
        positive_prompt_prob: float = POSITIVE_PROMPT_PROB,
        negative_prompt_prob: float = NEGATIVE_PROMPT_PROB,
    ):
        if not pairs:
            raise ValueError("no pairs given")
        self.pairs = list(pairs)
        self.crop_size = crop_size
        self.seed = seed
        self.flip = flip
        self.quality_probs = (positive_prompt_prob, negative_prompt_prob)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s crops and flips from now on."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        lq, hq = load_rgb(pair.lq), load_rgb(pair.hq)
        if lq.shape != hq.shape:
            raise ValueError(f"{pair.lq}: size {tuple(lq.shape)} differs from {pair.hq}")
        gen = generator_for(self.seed, self.epoch, index, pair.lq.name)
        (lq, hq), crop = random_crop([lq, hq], self.crop_size, gen, self.flip)
        lq, hq, prompt, quality = augment_quality_prompt(
            lq, hq, get_task(pair.task).prompt, gen, *self.quality_probs
        )
        params = {"source": pair.source, "lq_file": str(pair.lq), "hq_file": str(pair.hq), **crop}
        if quality:
            params["quality_prompt"] = quality
        return {
            "lq": lq,
            "hq": hq,
            "prompt": prompt,
            "task": quality or pair.task,
            "params": params,
        }
