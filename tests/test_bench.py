"""Benchmarks run end to end on tiny inputs (their figures are not asserted, their output is)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from unires.cli import main


def test_quality_benchmark_writes_tables(tiny_model_dir, tmp_path, capsys):
    hq = tmp_path / "hq"
    hq.mkdir()
    yy, xx = np.mgrid[0:80, 0:96]
    img = np.stack([np.sin(xx / 5.0), np.cos(yy / 7.0), np.sin((xx + yy) / 9.0)], -1)
    Image.fromarray(((img + 1) * 120).astype(np.uint8)).save(hq / "a.png")
    code = main(
        [
            "bench",
            "quality",
            "--model",
            str(tiny_model_dir),
            "--hq-dir",
            str(hq),
            "--out",
            str(tmp_path / "q"),
            "--recipes",
            "noise,complex",
            "--crop",
            "64",
            "--steps",
            "1",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    rows = json.loads((tmp_path / "q" / "quality.json").read_text())
    methods = {(r["recipe"], r["method"].split(" (")[0]) for r in rows}
    assert ("noise", "LQ") in methods and ("noise", "one-hot dn") in methods
    assert ("noise", "opencv-nlm") in methods and ("complex", "most-frequent") in methods
    lq = next(r for r in rows if r["recipe"] == "noise" and r["method"] == "LQ")
    assert 5 < lq["psnr"] < 60
    assert "| noise | LQ |" in (tmp_path / "q" / "quality.md").read_text()


def test_speed_benchmark_reports_both_modes(tmp_path, capsys):
    code = main(
        [
            "bench",
            "speed",
            "--model",
            "tiny",
            "--size",
            "64",
            "--tasks",
            "3",
            "--steps",
            "2",
            "--json",
            str(tmp_path / "s.json"),
        ]
    )
    assert code == 0
    r = json.loads((tmp_path / "s.json").read_text())
    assert r["tasks"] == 3 and r["batched_s"] > 0 and r["one_by_one_s"] > 0
    assert "batched" in capsys.readouterr().out
