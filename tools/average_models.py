"""Average the weights of UniRes model folders that share one architecture: checkpoint
averaging, a uniform "model soup" (Wortsman et al. 2022, "Model soups: averaging weights of
multiple fine-tuned models improves accuracy without increasing inference time"). The shipped
embedded weights of v2 run 17 are the average of runs 16 and 17 (docs/TRAINING.md).

    python tools/average_models.py RUN_A/final RUN_B/final -o OUT   # fp32 model folder

The unet and the prompt table are averaged; the autoencoder, scheduler and "unires" settings
are the first folder's. OUT must not exist (nothing is replaced); it appears only when complete.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def average(folders: list[Path], out: Path) -> Path:
    """Write to ``out`` the model whose unet and prompt-table weights are the mean of
    ``folders``' (fp32; everything else from ``folders[0]``).

    Raises:
        FileExistsError: ``out`` exists.
        ValueError: fewer than two folders, or their networks' tensors differ in names or shapes.
        unires.model.bundle.ModelFolderError: a folder is not a UniRes model folder.
    """
    from unires.model.bundle import load_model, save_model
    from unires.utils import atomic_dir

    if len(folders) < 2:
        raise ValueError("give at least two model folders to average")
    if out.exists():
        raise FileExistsError(f"{out}: exists; choose a new output folder")
    models = [load_model(f, dtype=torch.float32) for f in folders]
    first = models[0]
    for name in ("unet", "prompt_encoder"):
        states = [getattr(m, name).state_dict() for m in models]
        for folder, state in zip(folders[1:], states[1:], strict=True):
            if {k: v.shape for k, v in state.items()} != {k: v.shape for k, v in states[0].items()}:
                raise ValueError(
                    f"{folder}: its {name} differs from {folders[0]}'s in tensors or shapes"
                )
        mean = {k: torch.stack([s[k] for s in states]).mean(0) for k in states[0]}
        getattr(first, name).load_state_dict(mean)
    with atomic_dir(out) as tmp:
        save_model(first, tmp)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="UniRes model folders (two or more)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="new output folder")
    args = parser.parse_args(argv)
    try:
        print(average(args.folders, args.out))
    except (ValueError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
