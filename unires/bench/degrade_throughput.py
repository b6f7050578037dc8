"""``unires bench degrade``: can on-the-fly degradation keep up with training?

Measures LQ/HQ pairs per second per recipe, through a DataLoader with worker processes as
training uses it, at 256x256 and 512x512 crops, and compares with the trainer's consumption.
The reference figure: the embedded config trains batch 8 of 256x256 crops at ~0.74 s/step on
this machine's 2 CPU cores (DESIGN.md), i.e. ~10.8 pairs/s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

TRAIN_BATCH = 8
TRAIN_STEP_SECONDS = 0.74
TRAIN_MIX = "train-mix"  # the four tasks with the paper's probabilities (HQFolderDataset)


class _ThroughputSet(Dataset):
    """Crops of procedural photos or of files, degraded by one recipe (LQ at HQ size)."""

    def __init__(self, recipe: str, crop: int, length: int, files: list[Path] | None, seed: int):
        self.recipe, self.crop, self.length, self.files, self.seed = (
            recipe,
            crop,
            length,
            files,
            seed,
        )
        self._pool: list[torch.Tensor] = []
        if not files:  # made before timing; workers inherit them
            from ..data.procedural import procedural_photo

            side = crop * 3 // 2
            self._pool = [procedural_photo(seed + i, side, side) for i in range(4)]

    def __len__(self) -> int:
        return self.length

    def _hq(self, index: int, gen: torch.Generator) -> torch.Tensor:
        from ..data.crops import random_crop
        from ..io import load_rgb

        if self.files:
            img = load_rgb(self.files[index % len(self.files)])
        else:
            img = self._pool[index % len(self._pool)]
        (hq,), _ = random_crop([img], self.crop, gen)
        return hq

    def __getitem__(self, index: int) -> dict:
        from ..data.task_sampling import sample_task
        from ..degrade.recipes import degrade_for_task, run_recipe
        from ..degrade.rng import generator_for
        from ..tasks import TRAINING_TASK_PROBS, get_task

        gen = generator_for(self.seed, self.recipe, index)
        hq = self._hq(index, gen)
        if self.recipe == TRAIN_MIX:
            task = sample_task(gen, TRAINING_TASK_PROBS)
            lq, params = degrade_for_task(task, hq[None], gen)
            prompt = get_task(task).prompt
        else:
            lq, params = run_recipe(self.recipe, hq[None], gen)
            prompt = ""
        return {"lq": lq[0], "hq": hq, "prompt": prompt, "task": self.recipe, "params": params[0]}


@dataclass
class ThroughputResult:
    recipe: str
    crop: int
    pairs: int
    seconds: float

    @property
    def pairs_per_second(self) -> float:
        """Pairs written per second (inf for no time)."""
        return self.pairs / self.seconds if self.seconds > 0 else float("inf")


def measure_throughput(
    recipe: str,
    crop: int,
    pairs: int = 128,
    workers: int = 2,
    batch_size: int = TRAIN_BATCH,
    files: list[Path] | None = None,
    seed: int = 0,
) -> ThroughputResult:
    """Pairs per second through a DataLoader, worker start-up included (conservative: timing
    from the first batch on would count batches the workers prefetched meanwhile)."""
    from ..data.loader import make_loader

    batches = max(1, -(-pairs // batch_size))
    ds = _ThroughputSet(recipe, crop, batches * batch_size, files, seed)
    loader = make_loader(ds, batch_size, workers=workers, shuffle=False, seed=seed)
    start = time.perf_counter()
    n = 0
    for batch in loader:
        n += len(batch["lq"])
    return ThroughputResult(recipe, crop, n, time.perf_counter() - start)


def format_table(results: list[ThroughputResult], train_batch: int, train_step_s: float) -> str:
    """Markdown: pairs/s per recipe and crop, against what the trainer consumes
    (``train_batch`` pairs every ``train_step_s`` seconds).
    """
    need = train_batch / train_step_s
    crops = sorted({r.crop for r in results})
    recipes = list(dict.fromkeys(r.recipe for r in results))
    by_key = {(r.recipe, r.crop): r for r in results}
    head = "| recipe | " + " | ".join(f"pairs/s @{c}" for c in crops) + " | vs trainer @256 |"
    lines = [
        f"trainer consumes {train_batch} pairs / {train_step_s:.2f} s = {need:.1f} pairs/s "
        "(256x256 crops)",
        head,
        "|" + "---|" * (len(crops) + 2),
    ]
    for name in recipes:
        cells = [
            f"{by_key[(name, c)].pairs_per_second:.1f}" if (name, c) in by_key else "-"
            for c in crops
        ]
        r256 = by_key.get((name, 256))
        ratio = f"{r256.pairs_per_second / need:.1f}x" if r256 else "-"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)
