"""Small helpers shared across modules: atomic file and folder writes, the fingerprint of a
resumable output folder, and plurals."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    A killed process leaves either the old file or the new one, never a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new empty folder beside ``path``; on success it takes the place of ``path``
    (an old folder there is removed first), on failure it is removed.

    A killed process leaves the old folder or the complete new one at ``path``, never a
    partial one (at worst a stale hidden ``.NAME.*`` folder beside it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    """The process's umask (what a new file's permissions lose), read without changing it."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (``atomic_path``)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8, atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


FINGERPRINT_FILE = "fingerprint.json"


def restoration_fingerprint(pipe, *, steps, seed, metric, color_fix=None, **settings) -> dict:
    """What a resumable folder's restorations and scores depend on, for ``check_fingerprint``:
    the model (``pipe.model_digest``, its dtype, the colour fix used: ``color_fix`` or the
    model's ``default_color_fix``), ``steps``, ``seed``, ``metric`` and any other
    ``settings`` of the command (e.g. the model's path, a crop)."""
    return {
        **settings,
        "model_digest": pipe.model_digest,
        "dtype": str(pipe.dtype),
        "steps": steps,
        "seed": seed,
        "metric": metric,
        "color_fix": color_fix or pipe.settings.default_color_fix,
    }


def check_fingerprint(folder: str | os.PathLike, fingerprint: dict, unrecorded=None) -> None:
    """Refuse to resume a folder whose results were made with other settings.

    A command whose outputs a rerun reads back (``unires bench run``, ``bench ablations``,
    ``unires search``) records ``fingerprint`` (model, step count, seed, metric, ...) in
    ``folder/fingerprint.json`` on its first run; a later run with another value of any
    recorded key is refused, since its results would silently mix with the old ones. A key
    the recorded fingerprint lacks (written by an older version) is read from
    ``unrecorded`` when it names it, and is otherwise not compared; the file is then
    completed with this run's values.

    Raises:
        ValueError: one line naming the folder and the keys that differ.
    """
    path = Path(folder) / FINGERPRINT_FILE
    if not path.is_file():
        atomic_write_text(path, json.dumps(fingerprint, indent=1) + "\n")
        return
    recorded = json.loads(path.read_text(encoding="utf-8"))
    old = {**(unrecorded or {}), **recorded}
    differ = [k for k, v in fingerprint.items() if k in old and old[k] != v]
    if differ:
        then = ", ".join(f"{k}={old[k]!r}" for k in differ)
        now = ", ".join(f"{k}={fingerprint[k]!r}" for k in differ)
        raise ValueError(f"{folder} holds results made with {then}, not {now}: use another folder")
    if not fingerprint.keys() <= recorded.keys():
        atomic_write_text(path, json.dumps({**old, **fingerprint}, indent=1) + "\n")


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 step``, ``2 steps``, ``0 images``: a count with its noun agreeing."""
    return f"{n} {word if n == 1 else many or word + 's'}"
