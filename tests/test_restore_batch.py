"""``unires restore`` on batches that used to lose data silently (issue 17), one test per kind:

1. two inputs, one output file: outputs mirror the input tree; clashes get a new name and a note
2. frames and pages: every frame restored, written back with durations and loop count
3. 16 bits stay 16 bits (the core-install path: tests/test_io_keep.py)
4. an output folder inside the input is never read as input; a rerun restores nothing
5. what can be refused from the headers is refused before any image is restored

Most tests restore with a stub pipeline (the identity, counting its calls); one runs the tiny
model end to end on an animation.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

import unires.cli.restore as restore_cli
from unires.cli import main
from unires.io import read_frames, read_image


class StubPipe:
    """Restores by returning the input (so outputs can be compared bit for bit)."""

    def __init__(self):
        self.calls = 0

    def restore_tensor(self, lq, weights=None, *, progress=False, scale=1, **options):
        self.calls += 1
        if scale != 1:
            lq = torch.nn.functional.interpolate(lq, scale_factor=scale, mode="bicubic")
        return lq.clamp(0, 1)


@pytest.fixture
def stub(monkeypatch):
    pipe = StubPipe()
    loads = []

    def load(args):
        loads.append(args)
        return pipe

    monkeypatch.setattr(restore_cli, "load_pipeline", load)
    pipe.loads = loads
    return pipe


def _restore(*args: str) -> int:
    return main(["restore", *map(str, args), "-q", "--weights", "dn=1"])


def _image(path, seed=0, size=(24, 32), mode="RGB", **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    shape = (size[0], size[1], channels) if channels > 1 else size
    arr = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(arr, mode).save(path, **options)
    return arr


def _tree(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# ------------------------------------------------------------------ 1. two inputs, one output


def test_recursive_batch_mirrors_the_input_tree(tmp_path, stub, capsys):
    a = _image(tmp_path / "in" / "day1" / "IMG_0001.png", seed=1)
    b = _image(tmp_path / "in" / "day2" / "IMG_0001.png", seed=2)
    assert _restore(tmp_path / "in", "--recursive", "-o", tmp_path / "out") == 0
    assert "2 restored" in capsys.readouterr().out
    assert _tree(tmp_path / "out") == ["day1/IMG_0001.png", "day2/IMG_0001.png"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out/day1/IMG_0001.png")), a)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out/day2/IMG_0001.png")), b)


def test_a_glob_mirrors_the_tree_below_its_fixed_part(tmp_path, stub):
    _image(tmp_path / "in" / "day1" / "x.png", seed=1)
    _image(tmp_path / "in" / "day2" / "x.png", seed=2)
    assert _restore(tmp_path / "in" / "**" / "*.png", "-o", tmp_path / "out") == 0
    assert _tree(tmp_path / "out") == ["day1/x.png", "day2/x.png"]


@pytest.mark.parametrize(
    ("names", "extra", "expected"),
    [
        (["logo.png", "logo.gif"], [], ["logo.gif", "logo.png"]),
        (["logo.gif", "logo.png"], ["--format", "png"], ["logo.png", "logo_gif.png"]),
        (["x.jpg", "x.png"], ["--format", "png"], ["x.png", "x_jpg.png"]),
        (["x.jpg", "x.png"], ["--format", "jpg"], ["x.jpg", "x_png.jpg"]),
    ],
)
def test_same_name_in_one_folder_gets_its_own_output(
    tmp_path, stub, capsys, names, extra, expected
):
    for seed, name in enumerate(names):
        _image(tmp_path / "in" / name, seed=seed)
    assert _restore(tmp_path / "in", "-o", tmp_path / "out", *extra) == 0
    out = capsys.readouterr().out
    assert f"{len(names)} restored" in out
    assert _tree(tmp_path / "out") == expected
    if len(set(expected)) == len(expected) and extra:
        # The clash is resolved, and said, before the first image is restored.
        lines = out.splitlines()
        note = next(i for i, line in enumerate(lines) if line.startswith("note:"))
        first = next(i for i, line in enumerate(lines) if " -> " in line)
        assert note < first and "is the output of" in lines[note]


def test_two_explicit_files_with_one_name(tmp_path, stub, capsys):
    _image(tmp_path / "a" / "x.png", seed=1)
    _image(tmp_path / "b" / "x.png", seed=2)
    assert _restore(tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", "-o", tmp_path / "o") == 0
    assert _tree(tmp_path / "o") == ["x.png", "x_2.png"]
    assert "note:" in capsys.readouterr().out


def test_auto_sidecars_of_one_stem_do_not_clash(tmp_path):
    from unires.io import BatchInput, plan_batch

    _image(tmp_path / "x.jpg", seed=1)
    _image(tmp_path / "x.png", seed=2)
    items = [BatchInput(tmp_path / "x.jpg"), BatchInput(tmp_path / "x.png")]
    plan = plan_batch(items, tmp_path / "o", sidecar=".weights.json")
    assert [j.target.name for j in plan.jobs] == ["x.jpg", "x_2.png"]
    plan = plan_batch(items, tmp_path / "o")
    assert [j.target.name for j in plan.jobs] == ["x.jpg", "x.png"]


# ------------------------------------------------------------------ 2. frames and pages


def _animation(path, n=3, **options):
    frames = [
        np.random.default_rng(i).integers(0, 256, (24, 32, 3), dtype=np.uint8) for i in range(n)
    ]
    ims = [Image.fromarray(f) for f in frames]
    ims[0].save(path, save_all=True, append_images=ims[1:], **options)
    return frames


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("a.gif", {"duration": [100, 200, 300], "loop": 0}),
        ("a.png", {"duration": [100, 200, 300], "loop": 2}),
    ],
)
def test_every_frame_is_restored_and_written_back(tmp_path, stub, capsys, name, options):
    (tmp_path / "in").mkdir()
    _animation(tmp_path / "in" / name, **options)
    assert _restore(tmp_path / "in" / name, "-o", tmp_path / "out") == 0
    assert "(3 frames)" in capsys.readouterr().out
    assert stub.calls == 3
    back = read_frames(tmp_path / "out" / name)
    assert back.n_frames == 3
    assert [f.duration for f in back.frames] == options["duration"]
    assert back.loop == options["loop"]


def test_every_tiff_page_is_restored(tmp_path, stub, capsys):
    (tmp_path / "in").mkdir()
    _animation(tmp_path / "in" / "doc.tif")
    assert _restore(tmp_path / "in", "-o", tmp_path / "out") == 0
    assert "(3 pages)" in capsys.readouterr().out
    assert read_frames(tmp_path / "out" / "doc.tif").n_frames == 3


def test_frames_with_the_tiny_model(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    _animation(tmp_path / "in" / "a.webp", duration=[80, 160, 240], loop=0, lossless=True)
    args = ["restore", tmp_path / "in", "-o", tmp_path / "out", "--model", tiny_model_dir]
    assert main([*map(str, args), "--steps", "1", "-q"]) == 0
    back = read_frames(tmp_path / "out" / "a.webp")
    assert (back.n_frames, back.loop) == (3, 0)
    assert [f.duration for f in back.frames] == [80, 160, 240]
    assert back.frames[0].coding == {"lossless": True}


def test_too_many_frames_or_a_single_image_format_is_refused_up_front(tmp_path, stub, capsys):
    (tmp_path / "in").mkdir()
    _animation(tmp_path / "in" / "a.gif", duration=100)
    _animation(tmp_path / "in" / "b.gif", n=5, duration=100)
    code = _restore(tmp_path / "in", "-o", tmp_path / "out", "--max-frames", "4", "--format", "jpg")
    err = capsys.readouterr().err
    assert code == 1 and stub.calls == 0 and not stub.loads
    assert "a.gif: JPEG holds one image, not 3 frames" in err
    assert "b.gif: 5 frames: more than the limit of 4 (use --max-frames)" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------ 3. 16 bits


@pytest.mark.parametrize("name", ["c16.png", "c16.tif"])
def test_16_bit_colour_is_restored_at_16_bits(tmp_path, stub, name):
    import imagecodecs

    arr = np.random.default_rng(0).integers(0, 65536, (24, 32, 3), dtype=np.uint16)
    src = tmp_path / "in" / name
    src.parent.mkdir()
    if name.endswith(".png"):
        src.write_bytes(imagecodecs.png_encode(arr))
    else:
        tifffile.imwrite(src, arr, photometric="rgb", compression="lzw")
    assert _restore(src, "-o", tmp_path / "out") == 0
    back = read_image(tmp_path / "out" / name)
    assert back.bit_depth == 16
    assert np.abs(back.rgb - arr / 65535).max() < 1.5 / 65535  # the identity, bit for bit


# ------------------------------------------------------------------ 4. outputs are not inputs


def test_output_folder_inside_the_input_is_not_read(tmp_path, stub, capsys):
    _image(tmp_path / "in" / "a.png", seed=1)
    _image(tmp_path / "in" / "sub" / "b.png", seed=2)
    args = [tmp_path / "in", "--recursive", "-o", tmp_path / "in" / "restored"]
    assert _restore(*args) == 0
    assert _tree(tmp_path / "in") == ["a.png", "restored/a.png", "restored/sub/b.png", "sub/b.png"]
    capsys.readouterr()
    assert _restore(*args, "--skip-existing") == 0
    assert "0 restored, 2 skipped, 0 failed" in capsys.readouterr().out
    assert stub.calls == 2
    assert _tree(tmp_path / "in") == ["a.png", "restored/a.png", "restored/sub/b.png", "sub/b.png"]
    # The same through a glob, and without --skip-existing: replaced, and said so.
    assert _restore(tmp_path / "in" / "**" / "*.png", "-o", tmp_path / "in" / "restored") == 0
    assert capsys.readouterr().out.count("(replaced the file there)") == 2
    assert len(_tree(tmp_path / "in")) == 4


def test_rerun_into_the_input_folder_restores_nothing(tmp_path, stub, capsys):
    _image(tmp_path / "in" / "x.jpg", seed=1)
    _image(tmp_path / "in" / "x.png", seed=2)
    args = [tmp_path / "in", "-o", tmp_path / "in", "--format", "png"]
    assert _restore(*args) == 0
    assert _tree(tmp_path / "in") == ["x.jpg", "x.png", "x_unires.png", "x_unires_jpg.png"]
    capsys.readouterr()
    assert _restore(*args, "--skip-existing") == 0
    assert "0 restored, 2 skipped" in capsys.readouterr().out
    assert len(_tree(tmp_path / "in")) == 4


# ------------------------------------------------------------------ 5. refusals before work


def test_alpha_into_jpeg_is_refused_before_restoring(tmp_path, stub, capsys):
    _image(tmp_path / "in" / "a.png", mode="RGBA")
    _image(tmp_path / "in" / "b.png", seed=2)
    code = _restore(tmp_path / "in", "-o", tmp_path / "out", "--format", "jpg")
    captured = capsys.readouterr()
    assert code == 1
    assert stub.calls == 1  # b.png only
    lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "a.png: JPEG cannot keep the alpha channel" in lines[0]
    assert _tree(tmp_path / "out") == ["b.jpg"]


def test_unwritable_output_folder_is_refused_before_restoring(tmp_path, stub, capsys):
    _image(tmp_path / "in" / "day1" / "a.png", seed=1)
    _image(tmp_path / "in" / "day2" / "b.png", seed=2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "day1").write_text("a file where a folder should be")
    code = _restore(tmp_path / "in", "--recursive", "-o", tmp_path / "out")
    err = capsys.readouterr().err
    assert code == 1 and stub.calls == 1
    assert "a.png: cannot write to output folder" in err and "day1" in err
    assert _tree(tmp_path / "out") == ["day1", "day2/b.png"]
    # Nothing at all can be written: no model is loaded, nothing restored.
    stub.loads.clear()
    assert _restore(tmp_path / "in", "--recursive", "-o", tmp_path / "out" / "day1" / "x") == 1
    assert stub.calls == 1 and not stub.loads


def test_bad_quality_is_a_usage_error(tmp_path, capsys):
    _image(tmp_path / "x.png")
    assert _restore(tmp_path / "x.png", "-o", tmp_path / "o", "--quality", "0") == 2
    assert "--quality" in capsys.readouterr().err


def test_quality_reaches_the_jpeg_encoder(tmp_path, stub):
    _image(tmp_path / "in" / "x.png", size=(64, 64))
    assert _restore(tmp_path / "in", "-o", tmp_path / "hi", "--format", "jpg") == 0
    assert (
        _restore(tmp_path / "in", "-o", tmp_path / "lo", "--format", "jpg", "--quality", "20") == 0
    )
    assert (tmp_path / "lo" / "x.jpg").stat().st_size < (tmp_path / "hi" / "x.jpg").stat().st_size
