"""Weight search (Eq. 3-4): true argmax, resumable score table, mining, and the CLI."""

from __future__ import annotations

import argparse
import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from unires.search import grid_search, mine_frequent_sets, read_search_log, select_among
from unires.search.grid import weights_key

CANDIDATES = [
    {"dn": 0.0, "downlq": 1.0},
    {"dn": 0.2, "downlq": 0.8},
    {"dn": 0.6, "downlq": 0.4},
    {"dn": 1.0, "downlq": 0.0},
    {"md": 0.5, "downlq": 0.5},
]


class StubPipe:
    """Returns a flat image whose value is the ``dn`` weight; counts the restorations."""

    settings = SimpleNamespace(default_steps=1)

    def __init__(self):
        self.calls: list[dict] = []

    def batches_candidates(self, lq, restore_kwargs):
        """One ``restore_tensor`` call per candidate (what these tests count)."""
        return False

    def restore_tensor(self, lq, weights, *, steps=None, seed=0, **kw):
        self.calls.append({"weights": dict(weights), "seed": seed, "steps": steps})
        return torch.full_like(lq, float(weights.get("dn", 0.0)) * 0.5)


class PeakMetric:
    """Quality peaks at a mean of 0.3, i.e. at dn = 0.6 for the stub pipe."""

    def quality(self, images):
        return -(images.mean(dim=(1, 2, 3)) - 0.3).abs()


LQ = torch.full((1, 3, 8, 8), 0.9)


def test_grid_search_finds_true_argmax_with_one_seed():
    pipe = StubPipe()
    res = grid_search(pipe, LQ, CANDIDATES, PeakMetric(), steps=3, seed=7)
    assert res.best_weights == {"dn": 0.6, "downlq": 0.4}
    assert res.best_score == pytest.approx(0.0)
    assert res.q_lq == pytest.approx(-0.6)
    assert res.gain == pytest.approx(0.6)
    assert torch.allclose(res.best_image, torch.full_like(LQ, 0.3))
    assert [r.weights for r in res.rows] == CANDIDATES
    assert len(pipe.calls) == len(CANDIDATES) and res.computed == len(CANDIDATES)
    assert {(c["seed"], c["steps"]) for c in pipe.calls} == {(7, 3)}


def test_table_has_one_row_per_candidate_and_resumes(tmp_path):
    table = tmp_path / "t.csv"
    first = grid_search(StubPipe(), LQ, CANDIDATES, PeakMetric(), steps=1, seed=0, table_path=table)
    with table.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(CANDIDATES)
    assert set(rows[0]) == {"dn", "downlq", "md", "score"}  # a metric without a name
    assert float(rows[2]["score"]) == pytest.approx(first.best_score)

    again = StubPipe()
    res = grid_search(
        again, LQ, CANDIDATES, PeakMetric(), steps=1, seed=0, table_path=table, return_image=False
    )
    assert again.calls == [] and res.reused == len(CANDIDATES) and res.computed == 0
    assert res.best_weights == first.best_weights and res.best_image is None
    # With the image asked for, only the best candidate is restored again.
    again = StubPipe()
    res = grid_search(again, LQ, CANDIDATES, PeakMetric(), steps=1, seed=0, table_path=table)
    assert [c["weights"] for c in again.calls] == [first.best_weights]
    assert torch.allclose(res.best_image, first.best_image)


def test_interrupted_table_is_completed_not_recomputed(tmp_path):
    table = tmp_path / "t.csv"
    grid_search(StubPipe(), LQ, CANDIDATES[:2], PeakMetric(), steps=1, seed=0, table_path=table)
    pipe = StubPipe()
    # Same weights written another way (key order, 1e-9 noise) still count as done.
    shuffled = [{"downlq": 1.0 + 1e-9, "dn": -1e-9}, *CANDIDATES[1:]]
    res = grid_search(pipe, LQ, shuffled, PeakMetric(), steps=1, seed=0, table_path=table)
    assert len(pipe.calls) == 3 and res.reused == 2
    with table.open() as f:
        assert len(list(csv.DictReader(f))) == len(CANDIDATES)


def test_select_among_and_input_checks():
    res = select_among(StubPipe(), LQ, CANDIDATES[2:4], PeakMetric(), steps=1, seed=0)
    assert res.best_weights == CANDIDATES[2] and len(res.rows) == 2
    with pytest.raises(ValueError, match="one image"):
        grid_search(StubPipe(), LQ.repeat(2, 1, 1, 1), CANDIDATES, PeakMetric(), steps=1, seed=0)
    with pytest.raises(ValueError, match="sum to 1"):
        grid_search(StubPipe(), LQ, [{"dn": 0.5}], PeakMetric(), steps=1, seed=0)


def test_mine_frequent_sets_counts_and_orders():
    a, b, c = {"dn": -0.2, "downlq": 1.2}, {"md": 1.0}, {"sr": 0.4, "downlq": 0.6}
    optima = [b, a, c, a, {"downlq": 1.2000000001, "dn": -0.2, "br": 0.0}, c, b, a]
    top = mine_frequent_sets(optima, top=2)
    assert [n for _, n in top] == [4, 2]
    assert weights_key(top[0][0]) == weights_key(a)
    assert weights_key(top[1][0]) == weights_key(b)  # tie with c: first seen wins
    assert len(mine_frequent_sets(optima, top=8)) == 3
    with pytest.raises(ValueError):
        mine_frequent_sets(optima, top=0)


def _parser():
    from unires.cli import search

    parser = argparse.ArgumentParser(prog="unires")
    sub = parser.add_subparsers(dest="command")
    search.add_parser(sub)
    return parser


def _run(argv):
    from unires.cli import UsageError

    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError:
        return 2


def test_cli_search_and_mine_on_tiny_model(tiny_model_dir, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(src / "a.png")
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    out = tmp_path / "out"
    grid = ["--grid", "custom", "--tasks", "dn,downlq", "--vmin", "0", "--vmax", "1"]
    argv = [str(src), "-o", str(out), *grid, "--step", "0.5", "--steps", "1", "-q"]
    code = _run(["search", *argv, "--model", str(tiny_model_dir), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1
    assert "bad.png" in err
    record = json.loads((out / "a.json").read_text())
    assert set(record["best_weights"]) <= {"dn", "downlq"}
    assert record["candidates"] == 3 and record["computed"] == 3
    assert {"score", "q_lq", "direction", "gain", "seconds"} <= set(record)
    # NIQE as users read it: positive, lower is better; the gain says how much better.
    assert record["direction"] == "lower is better"
    assert record["score"] > 0 and record["q_lq"] > 0
    assert record["gain"] == pytest.approx(record["q_lq"] - record["score"])
    with (out / "a.csv").open() as f:
        table = list(csv.DictReader(f))
    assert all(float(r["niqe (lower is better)"]) > 0 for r in table)
    with (out / "a.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 3
    assert Image.open(out / "a.png").size == (200, 200)
    assert read_search_log(out)[0]["best_weights"] == record["best_weights"]

    assert _run(["search", "--mine", str(out), "--top", "8"]) == 0
    mined = json.loads(capsys.readouterr().out)
    assert mined["images"] == 1 and mined["sets"][0]["count"] == 1
    assert (out / "frequent_sets.json").is_file()
    assert _run(["search", "-o", str(out)]) == 2  # no inputs: usage error

    # Searching again among the mined sets reuses the table and keeps its other rows.
    sets = ["--grid", "sets", "--sets", str(out / "frequent_sets.json")]
    argv = [str(src / "a.png"), "-o", str(out), *sets, "--steps", "1", "-q"]
    assert _run(["search", *argv, "--model", str(tiny_model_dir), "--device", "cpu"]) == 0
    again = json.loads((out / "a.json").read_text())
    assert again["computed"] == 0
    assert weights_key(again["best_weights"]) == weights_key(record["best_weights"])
    with (out / "a.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 3
