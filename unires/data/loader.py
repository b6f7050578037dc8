"""Batching and DataLoader settings shared by the data sets."""

from __future__ import annotations

import signal

import torch
from torch.utils.data import DataLoader, Dataset


def collate(items: list[dict]) -> dict:
    """Stack images; keep prompts, tasks and params as lists (params differ per sample)."""
    return {
        "lq": torch.stack([it["lq"] for it in items]),
        "hq": torch.stack([it["hq"] for it in items]),
        "prompt": [it["prompt"] for it in items],
        "task": [it["task"] for it in items],
        "params": [it["params"] for it in items],
    }


def worker_init(_worker_id: int) -> None:
    """DataLoader worker start: one torch thread, and SIGINT / SIGTERM left to the main process."""
    # Each worker degrades one sample at a time: one thread each avoids oversubscription.
    torch.set_num_threads(1)
    # Ctrl-C (and a SIGTERM sent to the whole process group) must reach only the main
    # process, which checkpoints and then shuts the workers down; a worker dying of the
    # signal first would crash the run instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    workers: int = 2,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = True,
) -> DataLoader:
    """A DataLoader over ``dataset`` with ``collate``, seeded shuffling and quiet workers."""
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        collate_fn=collate,
        worker_init_fn=worker_init,
        generator=gen,
        drop_last=drop_last,
        # Not persistent: workers hold copies of the data set, and ``set_epoch`` must reach them.
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
        pin_memory=torch.cuda.is_available(),
    )
