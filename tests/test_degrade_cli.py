"""``unires degrade``: outputs, sidecars, byte-identical reruns, resuming, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from unires.cli import main


def _cli(argv: list[str]) -> int:
    return main(argv)


@pytest.fixture()
def hq_dir(tmp_path):
    folder = tmp_path / "hq"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 255, (34, 45, 3), dtype=np.uint8)).save(folder / "sub/b.jpg")
    grey = rng.integers(0, 255, (32, 32), dtype=np.uint8)
    Image.fromarray(grey, "L").save(folder / "c.png")
    return folder


def _snapshot(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize("recipe", ["motion", "realesrgan"])
def test_writes_pairs_and_sidecars_identically_for_a_seed(hq_dir, tmp_path, recipe, capsys):
    before = _snapshot(hq_dir)
    args = ["degrade", str(hq_dir), "--recipe", recipe, "--seed", "3", "--per-image", "2"]
    assert _cli([*args, "-o", str(tmp_path / "o1")]) == 0
    files = _snapshot(tmp_path / "o1")
    assert sorted(files) == sorted(
        f"{d}/{n}_{k:02d}.{ext}"
        for n in ("a", "sub__b", "c")
        for k in (0, 1)
        for d, ext in (("lq", "png"), ("gt", "png"), ("lq", "json"))
    )
    side = json.loads(files["lq/a_01.json"])
    assert side["recipe"] == recipe and side["seed"] == 3 and side["index"] == 1
    assert side["params"]["recipe"] == recipe and side["hq_size"] == [48, 40]
    with (
        Image.open(tmp_path / "o1/lq/a_00.png") as lq,
        Image.open(tmp_path / "o1/gt/a_00.png") as gt,
    ):
        assert lq.size == gt.size == (40, 48) and lq.mode == "RGB"
    assert files["lq/a_00.png"] != files["lq/a_01.png"]
    # Same seed, different processing order (two worker processes): identical bytes.
    assert _cli([*args, "-o", str(tmp_path / "o2"), "--workers", "2"]) == 0
    assert _snapshot(tmp_path / "o2") == files
    assert _cli([*args[:-4], "--seed", "4", "--per-image", "2", "-o", str(tmp_path / "o3")]) == 0
    assert _snapshot(tmp_path / "o3")["lq/a_00.png"] != files["lq/a_00.png"]
    assert _snapshot(hq_dir) == before  # inputs untouched


def test_scale_writes_small_lq_and_cropped_gt(hq_dir, tmp_path):
    out = tmp_path / "x4"
    assert _cli(["degrade", str(hq_dir), "-o", str(out), "--recipe", "sr", "--scale", "4"]) == 0
    with Image.open(out / "gt/sub__b_00.png") as gt, Image.open(out / "lq/sub__b_00.png") as lq:
        assert gt.size == (44, 32) and lq.size == (11, 8)  # 45x34 cropped to multiples of 4


def test_rerun_skips_finished_pairs_and_redoes_missing_ones(hq_dir, tmp_path, capsys):
    out = tmp_path / "o"
    argv = ["degrade", str(hq_dir), "-o", str(out), "--recipe", "noise", "--seed", "1"]
    assert _cli(argv) == 0
    first = _snapshot(out)
    (out / "lq/c_00.png").unlink()
    capsys.readouterr()
    assert _cli(argv) == 0
    assert "1 pair written, 2 already there" in capsys.readouterr().out
    assert _snapshot(out) == first


def test_bad_inputs_are_reported_on_one_line_each_and_the_rest_is_written(hq_dir, tmp_path, capsys):
    (hq_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = (hq_dir / "a.png").read_bytes()
    (hq_dir / "trunc.png").write_bytes(good[: len(good) // 3])
    Image.fromarray(np.zeros((3, 60, 3), np.uint8)).save(hq_dir / "sliver.png")
    code = _cli(["degrade", str(hq_dir), "-o", str(tmp_path / "o"), "--recipe", "defocus"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 3
    for name in ("broken.png", "trunc.png", "sliver.png"):
        assert sum(name in line for line in err) == 1
    written = sorted(p.name for p in (tmp_path / "o/lq").glob("*.png"))
    assert written == ["a_00.png", "c_00.png", "sub__b_00.png"]


def test_usage_errors_exit_2(hq_dir, tmp_path, capsys):
    assert (
        _cli(["degrade", str(tmp_path / "missing"), "-o", str(tmp_path / "o"), "--recipe", "sr"])
        == 2
    )
    assert _cli(["degrade", str(hq_dir), "-o", str(hq_dir), "--recipe", "sr"]) == 2
    assert (
        _cli(
            [
                "degrade",
                str(hq_dir),
                "-o",
                str(tmp_path / "o"),
                "--recipe",
                "sr",
                "--per-image",
                "0",
            ]
        )
        == 2
    )
    (tmp_path / "empty").mkdir()
    assert (
        _cli(["degrade", str(tmp_path / "empty"), "-o", str(tmp_path / "o"), "--recipe", "sr"]) == 2
    )
    bad_cfg = tmp_path / "cfg.yaml"
    bad_cfg.write_text("realesrgan:\n  nosie1: {}\n")
    argv = [
        "degrade",
        str(hq_dir),
        "-o",
        str(tmp_path / "o"),
        "--recipe",
        "sr",
        "--config",
        str(bad_cfg),
    ]
    assert _cli(argv) == 2
    assert "nosie1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        _cli(["degrade", str(hq_dir), "-o", str(tmp_path / "o"), "--recipe", "blurry"])
    assert e.value.code == 2


def test_samples_degrade_scikit_images_photos(tmp_path, capsys):
    """Inputs for the README's examples without photos of one's own."""
    out = tmp_path / "sets" / "noise"
    assert _cli(["degrade", "--samples", "-o", str(out), "--recipe", "noise"]) == 0
    names = sorted(p.name for p in (out / "lq").glob("*.png"))
    assert names == ["astronaut_00.png", "chelsea_00.png", "coffee_00.png", "rocket_00.png"]
    with Image.open(out / "gt" / "coffee_00.png") as gt:
        assert gt.size == (256, 256)
    assert "4 pairs written" in capsys.readouterr().out
    assert _cli(["degrade", "--samples", str(tmp_path), "-o", str(out), "--recipe", "sr"]) == 2
    assert "not both" in capsys.readouterr().err
