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
    args = [
        "bench",
        "quality",
        "--model",
        str(tiny_model_dir),
        "--hq-dir",
        str(hq),
        "--recipes",
        "noise,complex",
        "--crop",
        "64",
        "--steps",
        "1",
        "--device",
        "cpu",
    ]
    assert main([*args, "--out", str(tmp_path / "q")]) == 0
    rows = json.loads((tmp_path / "q" / "quality.json").read_text())
    methods = {(r["recipe"], r["method"].split(" (")[0]) for r in rows}
    assert ("noise", "LQ") in methods and ("noise", "one-hot dn") in methods
    assert ("noise", "opencv-nlm") in methods and ("complex", "most-frequent") in methods
    lq = next(r for r in rows if r["recipe"] == "noise" and r["method"] == "LQ")
    assert 5 < lq["psnr"] < 60
    assert "| noise | LQ |" in (tmp_path / "q" / "quality.md").read_text()
    # --color-fix reaches the restorations (the tiny model's default is AdaIN) and is named
    # in the model's rows; only those change.
    assert main([*args, "--out", str(tmp_path / "plain"), "--color-fix", "none"]) == 0
    plain = json.loads((tmp_path / "plain" / "quality.json").read_text())
    suffix = ", colour fix none"
    score = {(r["recipe"], r["method"].removesuffix(suffix)): r["psnr"] for r in plain}
    named = {r["method"] for r in plain if r["method"].endswith(suffix)}
    assert "one-hot dn" + suffix in named and len(named) == 4  # dn; defaults, 2 paper sets
    for r in rows:
        changed = score[(r["recipe"], r["method"])] != r["psnr"]
        assert changed == (r["method"] == "one-hot dn" or "=" in r["method"]), r["method"]


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


def test_quality_benchmark_without_hq_dir_uses_the_sample_photos(tiny_model_dir, tmp_path, capsys):
    """No folder only the developers have: without --hq-dir the sets come from
    scikit-image's sample photos."""
    argv = ["bench", "quality", "--model", str(tiny_model_dir), "--out", str(tmp_path / "q")]
    argv += ["--recipes", "noise", "--crop", "64", "--limit", "2", "--steps", "1"]
    assert main([*argv, "--device", "cpu"]) == 0
    assert "sample photos" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "q" / "hq").iterdir()) == [
        "astronaut.png",
        "chelsea.png",
    ]
    assert len(list((tmp_path / "q" / "sets" / "noise" / "lq").glob("*.png"))) == 2


def test_a_missing_peer_package_is_one_line(monkeypatch):
    import sys

    from unires.bench.peers import available_peers

    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    peers, missing = available_peers(1, ("opencv-nlm", "unsharp-mask"))
    assert set(peers) == {"unsharp-mask"}
    reason = missing["opencv-nlm"].reason
    assert 'pip install -e ".[peers]"' in reason and "\n" not in reason


def test_speed_wording_says_faster_or_slower():
    from unires.bench.speed import SpeedResult, format_result

    base = dict(model="tiny", parameters_m=1.0, device="cpu", dtype="fp32", image_size=64)
    base |= dict(latent_size=8, tasks=1, steps=1, timed_steps=1, batched_s=1.0)
    base |= dict(peak_memory_mb=1.0, torch_threads=1)
    slow = format_result(SpeedResult(**base, one_by_one_s=2.0, speedup=2.0))
    fast = format_result(SpeedResult(**base, one_by_one_s=0.4, speedup=0.4))
    assert "2.00x slower" in slow and "1 task, 1 DDIM step" in slow
    assert "2.50x faster" in fast and "slower" not in fast


def test_degrade_benchmark_times_a_recipe_and_names_unknown_ones(tmp_path, capsys):
    out = tmp_path / "t.json"
    args = ["bench", "degrade", "--sizes", "32", "--pairs", "2", "--workers", "0"]
    assert main([*args, "--recipes", "sr,train-mix", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "trainer consumes 8 pairs / 0.74 s" in printed  # the reference defaults
    assert "| sr |" in printed and "| train-mix |" in printed
    rows = json.loads(out.read_text())["results"]
    assert [r["recipe"] for r in rows] == ["sr", "train-mix"]
    assert all(r["pairs_per_second"] > 0 for r in rows)
    assert main([*args, "--recipes", "sr,blur"]) == 2
    assert "['blur']" in capsys.readouterr().err
