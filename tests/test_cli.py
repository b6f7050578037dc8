"""The ``unires`` command on a tiny model: batches with bad files, exit codes, safety."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from unires.cli import main


def _write_inputs(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 255, (33, 20, 3), dtype=np.uint8)).save(folder / "b.jpg")
    rgba = rng.integers(0, 255, (24, 24, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "c.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image")
    Image.fromarray(rng.integers(0, 255, (8, 40, 3), dtype=np.uint8)).save(folder / "tiny.png")
    good = (folder / "a.png").read_bytes()
    (folder / "trunc.png").write_bytes(good[: len(good) // 2])
    return rgba


def test_restore_batch_goes_on_past_bad_files(tiny_model_dir, tmp_path, capsys):
    rgba = _write_inputs(tmp_path / "in")
    before = {p.name: p.read_bytes() for p in (tmp_path / "in").iterdir()}
    code = main(
        [
            "restore",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
            "--model",
            str(tiny_model_dir),
            "--steps",
            "2",
            "-q",
            "--weights",
            "md=0.6,dn=-0.2,downlq=0.6",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    outs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outs == ["a.png", "b.jpg", "c.png"]
    with Image.open(tmp_path / "out" / "b.jpg") as im:
        assert im.size == (20, 33)
    with Image.open(tmp_path / "out" / "c.png") as im:
        assert im.mode == "RGBA"
        assert np.array_equal(np.asarray(im)[..., 3], rgba[..., 3])  # alpha untouched
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 4
    for name in ("empty.png", "notes.jpg", "tiny.png", "trunc.png"):
        assert sum(name in line for line in error_lines) == 1
    assert "Traceback" not in err
    assert before == {p.name: p.read_bytes() for p in (tmp_path / "in").iterdir()}


def test_output_into_input_folder_never_overwrites(tiny_model_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(folder / "x.png")
    original = (folder / "x.png").read_bytes()
    args = [
        "restore",
        str(folder),
        "-o",
        str(folder),
        "--model",
        str(tiny_model_dir),
        "--steps",
        "1",
        "-q",
        "--weights",
        "dn=1",
    ]
    assert main(args) == 0
    assert (folder / "x.png").read_bytes() == original
    assert (folder / "x_unires.png").is_file()
    # A rerun does not take its own earlier output as an input.
    assert main([*args, "--skip-existing"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["x.png", "x_unires.png"]


def test_skip_existing_and_scale4(tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((20, 24, 3), 120, np.uint8)).save(folder / "x.png")
    args = [
        "restore",
        str(folder / "x.png"),
        "-o",
        str(tmp_path / "o"),
        "--model",
        str(tiny_model_dir),
        "--steps",
        "1",
        "-q",
        "--scale",
        "4",
        "--weights",
        "sr=1",
    ]
    assert main(args) == 0
    with Image.open(tmp_path / "o" / "x.png") as im:
        assert im.size == (96, 80)
    stamp = (tmp_path / "o" / "x.png").stat().st_mtime_ns
    capsys.readouterr()
    assert main([*args, "--skip-existing"]) == 0
    assert "1 skipped" in capsys.readouterr().out
    assert (tmp_path / "o" / "x.png").stat().st_mtime_ns == stamp


def _restore_black(tmp_path, model, *extra) -> int:
    """``unires restore`` of a black 20x20 x.png into tmp_path/o with ``--model model``."""
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "x.png")
    argv = ["restore", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--model", str(model)]
    return main([*argv, *extra])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--weights", "md=0.7"], "sum to 1"),
        (["--weights", "qq=1"], "unknown task"),
        (["--steps", "0"], "--steps"),
    ],
)
def test_usage_errors_exit_2(tiny_model_dir, tmp_path, capsys, extra, message):
    code = _restore_black(tmp_path, tiny_model_dir, *extra)
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_model_is_one_line(tmp_path, capsys):
    code = _restore_black(tmp_path, tmp_path / "nope")
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "nope" in err and len(err.splitlines()) == 1


def test_no_inputs_found(tiny_model_dir, tmp_path, capsys):
    code = main(
        [
            "restore",
            str(tmp_path / "missing*.png"),
            "-o",
            str(tmp_path / "o"),
            "--model",
            str(tiny_model_dir),
        ]
    )
    assert code == 1
    assert "missing" in capsys.readouterr().err


def test_demo_writes_its_three_images(tiny_model_dir, tmp_path, capsys):
    code = main(
        [
            "demo",
            "--out",
            str(tmp_path / "d"),
            "--model",
            str(tiny_model_dir),
            "--steps",
            "1",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    for name in ("lq.png", "restored.png", "side_by_side.png"):
        assert str(tmp_path / "d" / name) in out
    with Image.open(tmp_path / "d" / "side_by_side.png") as im:
        assert im.size == (3 * 512, 512)


def test_demo_without_embedded_model_fails_clearly(monkeypatch, tmp_path, capsys):
    import unires.pipeline as p

    monkeypatch.setattr(p, "EMBEDDED_MODEL_DIR", tmp_path / "none")
    assert main(["demo", "--out", str(tmp_path / "d")]) == 2
    assert "embedded UniRes model is not in this installation" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_train_without_the_train_extra_is_one_line(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "accelerate" else real(name, *a),
    )
    config = tmp_path / "c.yaml"
    config.write_text("steps: 1\n")
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'pip install -e ".[train]"' in err, err


def test_train_names_a_missing_folder_of_its_config_on_one_line(tmp_path, capsys, monkeypatch):
    """configs/tiny.yaml run from a folder without its data: one line naming the field."""
    from pathlib import Path

    pytest.importorskip("accelerate")
    tiny = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", str(tiny)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "data.hq_dirs: runs/tiny-data: no such folder" in err
    (tmp_path / "runs" / "tiny-data").mkdir(parents=True)
    assert main(["train", "--config", str(tiny)]) == 2
    err = capsys.readouterr().err.strip()
    assert "autoencoder: runs/tiny-autoencoder: no such folder" in err and "\n" not in err
    assert not (tmp_path / "runs" / "tiny").exists()  # nothing started


def test_train_export_without_a_checkpoint_is_one_line(tmp_path, capsys):
    pytest.importorskip("accelerate")
    config = tmp_path / "c.yaml"
    config.write_text(f"output_dir: {tmp_path / 'run'}\n")
    assert main(["train", "--config", str(config), "--export"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no checkpoint to export: train first" in err and "\n" not in err


def test_a_command_error_is_one_line_with_its_exit_code(tmp_path, capsys):
    assert main(["search", "--mine", str(tmp_path)]) == 1  # a CommandError: exit 1
    err = capsys.readouterr().err.strip()
    assert err == f"unires search: error: {tmp_path}: no search results (*.json) found"
    assert main(["search", "--mine", str(tmp_path / "nope")]) == 2  # a UsageError: exit 2
    assert (
        capsys.readouterr().err.strip()
        == f"unires search: error: {tmp_path / 'nope'}: not a folder"
    )
