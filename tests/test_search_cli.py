"""``unires restore --auto``, ``unires search --method fast / --plots / --train-predictor``
on the tiny random model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from unires.bench.plots import draw_tradeoffs, tradeoff_curves
from unires.cli import main
from unires.search.grid import ScoredCandidate
from unires.weights import search_grid, validate_weights


def _image(folder, name="a.png", size=(192, 96)):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / name)
    return folder / name


def _model(tiny_model_dir):
    return ["--model", str(tiny_model_dir), "--device", "cpu", "--dtype", "fp32"]


def test_restore_auto_frequent_and_average(tiny_model_dir, tmp_path, capsys):
    src = _image(tmp_path / "in")
    sets = tmp_path / "sets.json"
    sets.write_text(json.dumps([{"dn": -0.2, "downlq": 1.2}, {"md": 0.6, "downlq": 0.4}]))
    out = tmp_path / "out"
    common = [str(src), "-o", str(out), "--steps", "1", "-q", *_model(tiny_model_dir)]
    assert main(["restore", *common, "--auto", "frequent", "--sets", str(sets)]) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "a.weights.json").read_text())
    assert record["method"] == "frequent" and record["metric"] == "niqe"
    assert record["weights"] in ({"dn": -0.2, "downlq": 1.2}, {"md": 0.6, "downlq": 0.4})
    assert "frequent:" in printed and "downlq=" in printed
    assert Image.open(out / "a.png").size == (192, 96)

    assert main(["restore", *common, "--auto", "average"]) == 0
    record = json.loads((out / "a.weights.json").read_text())
    assert validate_weights(record["weights"]) and record["evaluations"] == 6

    # --ensemble: the search scores without it, the chosen weights are restored with it.
    ens = [str(src), "-o", str(tmp_path / "ens"), "--steps", "1", "-q", *_model(tiny_model_dir)]
    assert main(["restore", *ens, "--auto", "average", "--ensemble", "2"]) == 0
    ens_record = json.loads((tmp_path / "ens" / "a.weights.json").read_text())
    assert ens_record["ensemble"] == 2 and ens_record["weights"] == record["weights"]
    assert (
        np.asarray(Image.open(tmp_path / "ens" / "a.png")).tobytes()
        != np.asarray(Image.open(out / "a.png")).tobytes()
    )


def test_restore_auto_fast_on_a_small_image(tiny_model_dir, tmp_path, capsys):
    """``unires restore small128.png -o out --auto fast`` exits 0: NIQE scored with smaller
    blocks (one note line), NIQE shown positive, a progress bar within the image."""
    src = _image(tmp_path / "in", "small128.png", size=(128, 128))
    out = tmp_path / "out"
    argv = ["restore", str(src), "-o", str(out), "--auto", "fast", "--steps", "2"]
    assert main([*argv, *_model(tiny_model_dir)]) == 0
    captured = capsys.readouterr()
    record = json.loads((out / "small128.weights.json").read_text())
    assert record["metric"] == "niqe" and record["direction"] == "lower is better"
    assert record["score"] > 0 and record["q_lq"] > 0 and "64x64 blocks" in record["note"]
    notes = [ln for ln in captured.err.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "64x64 blocks" in notes[0]
    assert "scored" in captured.err and "%" in captured.err  # the bar within the image
    assert "NIQE" in captured.out and "1 restored, 0 skipped, 0 failed" in captured.out
    assert Image.open(out / "small128.png").size == (128, 128)


def test_restore_says_when_nothing_was_written(tiny_model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["restore", str(bad), "-o", str(tmp_path / "out"), *_model(tiny_model_dir)]) == 1
    err = capsys.readouterr().err
    assert "nothing written" in err and "outputs in" not in err


def test_restore_auto_usage_errors(tiny_model_dir, tmp_path, capsys):
    src = _image(tmp_path / "in")
    common = [str(src), "-o", str(tmp_path / "out"), *_model(tiny_model_dir)]
    assert main(["restore", *common, "--auto", "predict"]) == 2
    assert "--predictor" in capsys.readouterr().err
    assert main(["restore", *common, "--auto", "fast", "--weights", "dn=1"]) == 2
    assert main(["restore", *common, "--auto", "frequent", "--sets", "nope.json"]) == 2


def test_train_predictor_then_restore_auto_predict(tiny_model_dir, tmp_path, capsys):
    pytest.importorskip("sklearn")
    src = tmp_path / "in"
    _image(src, "a.png")
    _image(src, "b.png", size=(200, 100))
    log = tmp_path / "log"
    grid = ["--grid", "custom", "--tasks", "md,dn,downlq", "--vmin", "0", "--vmax", "1"]
    argv = [str(src), "-o", str(log), *grid, "--step", "0.5", "--steps", "1", "-q"]
    assert main(["search", *argv, "--plots", *_model(tiny_model_dir)]) == 0
    assert (log / "a_tradeoff.png").is_file()
    assert json.loads((log / "a.json").read_text())["plot"].endswith("a_tradeoff.png")

    assert main(["search", "--train-predictor", str(log), "--trees", "5"]) == 0
    assert "trained on 2 images" in capsys.readouterr().out
    predictor = log / "predictor.joblib"
    out = tmp_path / "out"
    args = [str(src / "a.png"), "-o", str(out), "--steps", "1", "-q", *_model(tiny_model_dir)]
    assert main(["restore", *args, "--auto", "predict", "--predictor", str(predictor)]) == 0
    record = json.loads((out / "a.weights.json").read_text())
    assert validate_weights(record["weights"])
    assert set(record["weights"]) <= {"md", "dn", "downlq"}  # trained on those optima only


def test_search_method_fast_writes_record(tiny_model_dir, tmp_path):
    src = _image(tmp_path / "in")
    out = tmp_path / "out"
    grid = ["--grid", "custom", "--tasks", "sr,dn,downlq", "--vmin", "-0.2", "--vmax", "1.2"]
    argv = [str(src), "-o", str(out), *grid, "--method", "fast", "--steps", "2", "-q"]
    assert main(["search", *argv, "--survivors", "3", *_model(tiny_model_dir)]) == 0
    record = json.loads((out / "a.json").read_text())
    assert record["method"] == "fast" and record["table"] is None
    # 3 tasks x 2 steps on the shared trajectory + at most 3 survivors x 3 tasks at step 2.
    assert 6 < record["evaluations"] <= 6 + 9
    assert not (out / "a.csv").exists() and (out / "a.png").is_file()


def test_tradeoff_curves_are_fig11_pairs(tmp_path):
    rows = [ScoredCandidate(w, -abs(w.get("sr", 0.0) - 0.4)) for w in search_grid()]
    curves = tradeoff_curves(rows)
    assert len(curves) == 15  # every pair of the six tasks
    sr_dn = curves[("sr", "dn")]
    assert [x for x, _ in sr_dn] == pytest.approx([-0.2, 0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2])
    assert max(sr_dn, key=lambda p: p[1])[0] == pytest.approx(0.4)
    path = draw_tradeoffs(rows, tmp_path / "fig11.png", title="t")
    with Image.open(path) as im:
        assert im.size[0] > 1000 and im.getextrema() != ((255, 255),) * 3
    assert draw_tradeoffs(rows[:1], tmp_path / "none.png") is None


def test_bench_summary_gain_fraction():
    from unires.bench.search import Row, _shown_row, format_markdown, summarize
    from unires.metrics.nr import metric_info

    niqe = metric_info("niqe")  # rows hold the search's quality, -NIQE

    grid = {"q_lq": -9.0, "q_grid": -5.0, "q_median": -7.0}
    rows = [
        Row("a", "grid", {"dn": 1.0}, q=-5.0, **grid, evaluations=100, seconds=9),
        Row("a", "fast", {"md": 1.0}, q=-6.0, **grid, evaluations=10, seconds=1),
        # The grid did not beat the input: no gain to share, left out of the mean; the lead
        # over the median candidate (-8) is still defined: (-6 + 8) / (-5 + 8).
        Row("b", "fast", {"md": 1.0}, -6.0, -4.0, -5.0, 20, 3, q_median=-8.0),
    ]
    summary = {s["selector"]: s for s in summarize(rows, naive_grid=1000, metric=niqe)}
    assert summary["fast"]["mean_score"] == pytest.approx(6.0)  # NIQE as users read it
    assert summary["grid"]["mean_gain_fraction"] == pytest.approx(1.0)
    assert summary["fast"]["mean_gain_fraction"] == pytest.approx(0.75)
    assert summary["grid"]["mean_gain_over_median"] == pytest.approx(1.0)
    assert summary["fast"]["mean_gain_over_median"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert summary["fast"]["evaluations_per_image"] == 15
    assert summary["fast"]["evaluations_vs_naive_grid"] == pytest.approx(0.015)
    payload = {
        "metric": "niqe",
        "steps": 2,
        "images": ["a", "b"],
        "naive_grid_evaluations": 1000,
        "summary": list(summary.values()),
        "rows": [_shown_row(r, niqe) for r in rows],
    }
    text = format_markdown(payload)
    assert "| fast | 6.0000 | 75.0% | 58.3% | 15 | 1.50% | 2.0 |" in text
    assert "NIQE: lower is better" in text and "| a | fast | md=1 | 6.0000 | 9.0000 |" in text
    assert "2 steps, 2 images" in text and "-NIQE" not in text
    # Where the grid beats the LQ on no image the gain is undefined: said, not "nan%".
    only_b = summarize(rows[2:], naive_grid=1000, metric=niqe)
    text = format_markdown({**payload, "summary": only_b, "steps": 1, "images": ["b"]})
    assert "| fast | 6.0000 | n/a | 66.7% | 20 | 2.00% | 3.0 |" in text and "nan" not in text
    assert "1 step, 1 image)" in text


def test_bench_search_end_to_end_on_a_tiny_model(tiny_pipe, tmp_path):
    """Grid reference, its median, and the selectors' rows, on two small images."""
    import json
    import statistics

    import numpy as np
    from PIL import Image

    from unires.bench.search import run_search_benchmark
    from unires.search.grid import read_score_table

    rng = np.random.default_rng(0)
    files = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
        files.append(path)
    out = tmp_path / "bench"
    payload = run_search_benchmark(
        tiny_pipe,
        files,
        out,
        selectors=("grid", "fast", "average"),
        metric="piqe",
        steps=1,
        fast_options={"proxy_side": None},
        log=lambda *_: None,
    )
    rows = {(r["image"], r["selector"]): r for r in payload["rows"]}
    for stem in ("a", "b"):
        table = read_score_table(out / "grid" / f"{stem}.csv")
        assert len(table) == 1512
        grid = rows[stem, "grid"]
        # PIQE as users read it (lower is better); the table reads back as quality, -PIQE.
        assert grid["score"] == pytest.approx(-max(table.values()), abs=1e-6)
        assert grid["score_median"] == pytest.approx(-statistics.median(table.values()))
        assert grid["score"] >= 0
        # One step and the proxy at full size: the fast search is the grid (Eq. 2 is linear).
        assert rows[stem, "fast"]["score"] == pytest.approx(grid["score"], abs=1e-4)
        assert rows[stem, "average"]["score"] >= grid["score"] - 1e-6
        record = json.loads((out / "grid" / f"{stem}.json").read_text())
        assert record["direction"] == "lower is better" and record["score"] >= 0
    summary = {s["selector"]: s for s in payload["summary"]}
    assert summary["grid"]["mean_gain_over_median"] == pytest.approx(1.0)
    assert summary["fast"]["mean_gain_over_median"] == pytest.approx(1.0, abs=1e-3)
    assert json.loads((out / "search.json").read_text())["steps"] == 1
    assert "| fast |" in (out / "search.md").read_text()
    # Its grid records are read back by a rerun: only with the same sampling and crop.
    with pytest.raises(ValueError, match="crop=None, not crop=32"):
        run_search_benchmark(
            tiny_pipe, files, out, selectors=("grid",), metric="piqe", steps=1, crop=32
        )


def test_search_refuses_a_folder_of_another_model_or_sampling(tiny_model_dir, tmp_path, capsys):
    """A rerun reads the score tables back: only for the same model, steps, seed and metric."""
    import shutil

    src = _image(tmp_path / "in", size=(96, 96))
    out = tmp_path / "out"
    grid = ["--grid", "custom", "--tasks", "dn,downlq", "--vmin", "0", "--vmax", "1"]
    argv = ["search", str(src), "-o", str(out), *grid, "--step", "0.5", "--steps", "1", "-q"]
    assert main([*argv, *_model(tiny_model_dir)]) == 0
    assert json.loads((out / "a.json").read_text())["computed"] == 3
    assert main([*argv, *_model(tiny_model_dir)]) == 0  # the same: read back
    assert json.loads((out / "a.json").read_text())["reused"] == 3
    capsys.readouterr()
    assert main([*argv[:-3], "--steps", "2", "-q", *_model(tiny_model_dir)]) == 2
    err = capsys.readouterr().err
    assert "out holds results made with steps=1, not steps=2: use another folder" in err
    assert "Traceback" not in err
    # Another model (the same folder retrained: one setting changed) is refused as well.
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    index = json.loads((other / "model_index.json").read_text())
    index["unires"]["residual_scale"] = 2.0
    (other / "model_index.json").write_text(json.dumps(index))
    assert main([*argv, *_model(other)]) == 2
    assert "model_digest=" in capsys.readouterr().err
    # A folder from before fingerprints: tables of an unknown model.
    (out / "fingerprint.json").unlink()
    assert main([*argv, *_model(tiny_model_dir)]) == 2
    assert "do not record the model" in capsys.readouterr().err
