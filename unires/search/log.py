"""The search log: one JSON record per searched image, written beside its best restoration
(``unires search``), read back to mine the most frequent optima (``frequent``) and to train the
weight predictor (``predictor``). The library owns the format; callers build records with
``search_record`` and write them with ``write_search_record``.

A record: input, metric, method, best_weights, score and q_lq (the metric's own values),
direction, gain (internal quality, > 0: better than the input), candidates, computed, reused,
evaluations, steps, seed, seconds, image, table, and optionally note and plot. The folder's
``fingerprint.json`` (``check_search_folder``) names the model and sampling they all share.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..metrics.nr import direction, from_quality
from ..utils import (
    FINGERPRINT_FILE,
    atomic_write_text,
    check_fingerprint,
    restoration_fingerprint,
)
from .grid import SearchResult

RESULT_KEY = "best_weights"  # the field every per-image search record carries


def search_record(
    result: SearchResult,
    scorer,
    *,
    input: str | Path,
    metric: str,
    method: str,
    steps: int,
    seed: int,
    seconds: float,
    image: str | Path,
    table: str | Path | None = None,
    note: str | None = None,
) -> dict:
    """The record of one image's search: ``result`` (``grid_search`` / ``fast_search``) scored
    by ``scorer`` (the metric object; ``metric``: its name as asked for), ``seconds`` rounded to
    milliseconds, paths as strings, ``note`` only when there is one."""
    record = {
        "input": str(input),
        "metric": metric,
        "method": method,
        RESULT_KEY: result.best_weights,
        "score": from_quality(scorer, result.best_score),
        "q_lq": from_quality(scorer, result.q_lq),
        "direction": direction(scorer),
        "gain": result.gain,  # how much better than the input (> 0: better)
        "candidates": len(result.rows),
        "computed": result.computed,
        "reused": result.reused,
        "evaluations": result.evaluations,
        "steps": steps,
        "seed": seed,
        "seconds": round(seconds, 3),
        "image": str(image),
        "table": str(table) if table is not None else None,
    }
    if note:
        record["note"] = note
    return record


def write_search_record(path: str | Path, record: dict) -> Path:
    """Write ``record`` as indented JSON to ``path`` (atomically); returns the path."""
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return Path(path)


def read_search_log(folder: str | Path) -> list[dict]:
    """The per-image JSON records that ``unires search`` wrote in ``folder``, sorted by name.

    Files that are not search records (other JSON, damaged files) are skipped; never raises
    for one.
    """
    records = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(record, dict) and isinstance(record.get(RESULT_KEY), dict):
            records.append(record)
    return records


def check_search_folder(
    folder: str | Path, pipe, *, steps: int, seed: int, metric: str, **settings
) -> None:
    """Refuse to search into ``folder`` when what it holds was made otherwise.

    A rerun reads the folder back: ``grid_search`` skips the candidates its score tables
    (``<stem>.csv``) already hold, ``--mine`` and the predictor read its records. So the
    first search records the model (``pipe.model_digest``, dtype, colour fix), ``steps``,
    ``seed`` and ``metric`` in ``folder/fingerprint.json`` (``utils.check_fingerprint``) and
    a later one with other values is refused; ``settings``: any other value the results
    depend on (``unires bench search``: its crop). A folder holding score tables but no
    fingerprint (``unires search`` before 2026-12-02 recorded none) is refused as well: the
    model its scores came from is unknown.

    Raises:
        ValueError: one line naming the folder and what differs.
    """
    folder = Path(folder)
    if not (folder / FINGERPRINT_FILE).is_file() and any(folder.glob("*.csv")):
        raise ValueError(
            f"{folder} holds score tables that do not record the model they were made with "
            "(an older unires search): search into a new folder"
        )
    fingerprint = restoration_fingerprint(pipe, steps=steps, seed=seed, metric=metric, **settings)
    check_fingerprint(folder, fingerprint)
