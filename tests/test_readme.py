"""The README's code blocks, run as written, in order, in one empty folder: the ``unires``
commands in-process, the Python snippets with ``exec``. Install lines aside; commands that
take hours, a GPU, downloads or a server are listed in SKIP with the test that covers them.
The embedded model is swapped for a tiny random one (1 step, like the embedded model) and
scikit-image's photos for small generated ones, so this runs in about a minute; a command
or snippet that no longer matches the code fails here, naming its README line.

A new command in the README runs here by default when it starts with ``unires``; any other
program must be added to RUN_INSTEAD or SKIP below (with a reason), so none is forgotten.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# argv prefix -> why it does not run here (and what covers it).
SKIP: dict[tuple[str, ...], str] = {
    ("pip", "install"): "install line",
    ("make", "test"): "this test suite itself",
    ("unires", "serve"): "a server until Ctrl-C: tests/test_app_browser.py drives it",
    ("unires", "train"): "hours of training: tests/test_train.py trains configs/tiny.yaml",
    ("accelerate", "launch"): "several GPUs or machines: tests/test_train.py (training), "
    "tests/test_parallel.py (restore, search, bench run)",
    ("torchrun",): "several processes: tests/test_train.py (training), tests/test_parallel.py "
    "(restore, search, bench run on 2 CPU processes)",
    ("python", "tools/probes/backbone.py"): "a 5-minute training probe",
    ("tools/gpu/prepare.sh",): "packs this project's own training photos for a lent GPU",
    ("bash", "tools/gpu/train_on_device.sh"): "training on a lent GPU (its CPU dry run: "
    "tests/test_train.py covers the trainer)",
    ("unires", "convert"): "needs a local Stable Diffusion checkpoint: tests/test_convert.py",
    ("unires", "diversephotos", "build"): "needs the SPAQ, KonIQ-10k and LIVE downloads: "
    "tests/test_diversephotos.py",
    ("unires", "bench", "speed"): "minutes of timing, or a GPU: tests/test_bench.py",
    ("unires", "bench", "degrade"): "a throughput timing: tests/test_bench.py",
}
# What a make target runs (checked against the Makefile).
RUN_INSTEAD: dict[tuple[str, ...], list[str]] = {
    ("make", "demo"): ["unires", "demo", "--out", "demo-output"],
}
SAMPLE_NAMES = ("astronaut", "coffee")  # the generated stand-ins for the sample photos
SAMPLE_SIDE = 64


@dataclass
class Block:
    lang: str
    line: int  # of the opening fence
    text: str


def code_blocks(text: str) -> list[Block]:
    blocks, lang, start, body = [], None, 0, []
    for number, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence and lang is None:
            lang, start, body = fence.group(1), number, []
        elif line.startswith("```") and lang is not None:
            blocks.append(Block(lang, start, "\n".join(body) + "\n"))
            lang = None
        elif lang is not None:
            body.append(line)
    return blocks


def command_chains(block: Block) -> list[tuple[int, list[list[str]]]]:
    """(README line, commands joined by &&) per logical line of a shell block."""
    chains, pending, first = [], "", 0
    for offset, line in enumerate(block.text.splitlines(), block.line + 1):
        if not pending:
            first = offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        words = shlex.split(pending + line, comments=True)
        pending = ""
        if words:
            chain, current = [], []
            for word in words:
                if word == "&&":
                    chain.append(current)
                    current = []
                else:
                    current.append(word)
            chains.append((first, [*chain, current]))
    return chains


def how_to_run(argv: list[str]) -> list[str] | str:
    """The argv to run, or why it is skipped; fails for a program nobody classified."""
    while argv and re.match(r"^[A-Z_][A-Z0-9_]*=", argv[0]):  # VAR=value before a command
        argv = argv[1:]
    for prefix, reason in SKIP.items():
        if tuple(argv[: len(prefix)]) == prefix:
            return reason
    for prefix, instead in RUN_INSTEAD.items():
        if tuple(argv) == prefix:
            return instead
    if argv[0] == "unires":
        return argv
    pytest.fail(f"README command {argv} is neither run nor skipped: add it to tests/test_readme.py")


def test_blocks_are_found_and_every_command_is_classified():
    blocks = code_blocks(README.read_text(encoding="utf-8"))
    assert {b.lang for b in blocks} <= {"bash", "python"}, "a code block without bash/python"
    assert sum(b.lang == "python" for b in blocks) >= 3
    runs = [
        how_to_run(argv)
        for b in blocks
        if b.lang == "bash"
        for _, chain in command_chains(b)
        for argv in chain
    ]
    assert sum(isinstance(r, list) for r in runs) >= 15
    # make demo runs what RUN_INSTEAD says it does.
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^demo:.*\n\t(.+)$", makefile, re.M).group(1)
    assert recipe.split()[-3:] == RUN_INSTEAD["make", "demo"][1:]


@pytest.fixture()
def readme_world(tmp_path_factory, monkeypatch):
    """An empty working folder; the embedded model is a tiny one with the embedded model's
    1 step; the sample and demo photos are small generated ones."""
    from unires.data import samples
    from unires.data.procedural import procedural_photo
    from unires.model.bundle import save_model
    from unires.model.factory import build_model, tiny_model_config

    cfg = tiny_model_config()
    cfg = replace(cfg, settings=replace(cfg.settings, default_steps=1))
    torch.manual_seed(0)
    model = tmp_path_factory.mktemp("models") / "tiny-1-step"
    save_model(build_model(cfg), model)
    monkeypatch.setattr("unires.pipeline.embedded_model_path", lambda: model)

    def photo(seed: int, side: int) -> np.ndarray:
        rgb = procedural_photo(seed, side, side).permute(1, 2, 0).numpy()
        return (rgb * 255 + 0.5).astype(np.uint8)

    def sample_photos(side: int = samples.SAMPLE_SIDE) -> dict[str, np.ndarray]:
        return {n: photo(i, min(side, SAMPLE_SIDE)) for i, n in enumerate(SAMPLE_NAMES)}

    monkeypatch.setattr(samples, "sample_photos", sample_photos)
    monkeypatch.setattr("unires.cli.demo.demo_photo", lambda: photo(9, 96))
    work = tmp_path_factory.mktemp("readme")
    monkeypatch.chdir(work)
    return work


@pytest.mark.slow
def test_readme_runs_as_written(readme_world, capsys):
    from unires.cli import main

    ran, skipped = [], []
    for block in code_blocks(README.read_text(encoding="utf-8")):
        if block.lang == "python":
            code = compile(block.text, f"README.md:{block.line}", "exec")
            exec(code, {"__name__": "__readme__"})
            ran.append(f"README.md:{block.line} (python)")
            continue
        for line, chain in command_chains(block):
            plans = [how_to_run(argv) for argv in chain]
            if any(isinstance(p, str) for p in plans):
                skipped.append((line, chain, next(p for p in plans if isinstance(p, str))))
                continue
            for argv in plans:
                try:
                    code = main(argv[1:])
                except SystemExit as e:  # e.g. argparse on --help
                    code = e.code
                out = capsys.readouterr()
                where = f"README.md:{line}: {shlex.join(argv)}"
                assert code == 0, f"{where} exited {code}:\n{out.out[-2000:]}{out.err[-2000:]}"
                assert "Traceback" not in out.err, f"{where}:\n{out.err[-3000:]}"
                ran.append(where)
    print("\n".join(["ran:", *ran, "skipped:", *(f"{n}: {c} ({r})" for n, c, r in skipped)]))
    # What the examples promise exists.
    assert (readme_world / "out" / "coffee_00.weights.json").is_file()
    assert (readme_world / "search" / "predictor.joblib").is_file()
    assert (readme_world / "runs" / "bench-run" / "report" / "index.html").is_file()
