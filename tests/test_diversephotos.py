"""DiversePhotos build (App. B.1): the id listings against Tab. 7, and builds on fake data trees."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from unires.bench import diversephotos as dp
from unires.bench.diversephotos_ids import (
    DEGRADATIONS,
    DIVERSEPHOTOS_IDS,
    MALFORMED_KONIQ_ID,
    SOURCES,
    TABLE_7_COUNTS,
)
from unires.cli import UsageError
from unires.cli import diversephotos as cli

# A few ids per source, each in its data set's own file layout.
SPAQ_IDS = ("00019", "00043", "00125")  # TestImage/<id>.png (lossless, to check the crop)
# koniq10k_1024x768/1024x768/<id>.jpg, plus a 512x384/<id>.jpg copy that sorts first
KONIQ_IDS = ("1755366250", "2367261033")
LIVE_IDS = ("110", "5")  # Images/<id>.JPG, Images/<id>.bmp
SPAQ_TOO_SMALL = "00077"
LIVE_UNREADABLE = "1017"


def _image(height, width, seed):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _fake_trees(root):
    spaq, koniq, live = root / "SPAQ", root / "koniq10k", root / "ChallengeDB_release"
    for i, image_id in enumerate(SPAQ_IDS):
        _save(spaq / "TestImage" / f"{image_id}.png", _image(600, 520, i))
    _save(spaq / "TestImage" / f"{SPAQ_TOO_SMALL}.jpg", _image(500, 520, 9))
    for i, image_id in enumerate(KONIQ_IDS):
        _save(koniq / "koniq10k_1024x768" / "1024x768" / f"{image_id}.jpg", _image(600, 520, i))
        _save(koniq / "512x384" / f"{image_id}.jpg", _image(384, 512, 20 + i))
    _save(live / "Images" / "110.JPG", _image(500, 500, 30))
    _save(live / "Images" / "5.bmp", _image(500, 500, 31))
    (live / "Images" / f"{LIVE_UNREADABLE}.JPG").write_bytes(b"\xff\xd8\xff not really")
    return spaq, koniq, live


def _parse(argv):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    return parser.parse_args(argv)


def _build(spaq, koniq, live, out, *extra):
    argv = ["diversephotos", "build", "--spaq", str(spaq), "--koniq", str(koniq)]
    argv += ["--live", str(live), "-o", str(out), *extra]
    args = _parse(argv)
    return args.func(args)


def test_listings_match_table_7():
    for source in SOURCES:
        for degradation in DEGRADATIONS:
            ids = DIVERSEPHOTOS_IDS[source][degradation]
            assert len(ids) == TABLE_7_COUNTS[source][degradation], (source, degradation)
    for degradation in DEGRADATIONS:
        assert sum(len(DIVERSEPHOTOS_IDS[s][degradation]) for s in SOURCES) == 40
    every = [(s, i) for s in SOURCES for d in DEGRADATIONS for i in DIVERSEPHOTOS_IDS[s][d]]
    assert len(every) == len(set(every)) == 160
    assert [i for _, i in every if not i.isdigit()] == [MALFORMED_KONIQ_ID]
    assert all(len(i) == 5 for d in DEGRADATIONS for i in DIVERSEPHOTOS_IDS["spaq"][d])


def test_partial_tree_builds_what_is_there_and_names_the_rest(tmp_path, capsys):
    spaq, koniq, live = _fake_trees(tmp_path)
    out = tmp_path / "out"
    assert _build(spaq, koniq, live, out) == 1
    manifest = json.loads((out / "manifest.json").read_text())

    built = {(im["source"], im["id"]): im for im in manifest["images"]}
    expected = {("spaq", i) for i in SPAQ_IDS}
    expected |= {("koniq", i) for i in KONIQ_IDS} | {("live", i) for i in LIVE_IDS}
    assert set(built) == expected
    for im in built.values():
        for scale, side in (("x1", 512), ("x4", 128)):
            path = out / im[scale]
            assert path.parts[-3:] == (scale, im["degradation"], f"{im['source']}_{im['id']}.png")
            with Image.open(path) as written:
                assert written.size == (side, side)
            assert im[f"sha256_{scale}"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "1024x768" in built[("koniq", "1755366250")]["input"]  # the larger copy

    # SPAQ: 512 centre crop of the 520x600 input; x4: the 128 centre crop of that.
    source = _image(600, 520, 0)
    x1 = np.asarray(Image.open(out / built[("spaq", "00019")]["x1"]))
    np.testing.assert_array_equal(x1, source[44:556, 4:516])
    x4 = np.asarray(Image.open(out / built[("spaq", "00019")]["x4"]))
    np.testing.assert_array_equal(x4, x1[192:320, 192:320])
    # LIVE: bicubic 500 -> 512.
    resized = np.asarray(Image.open(live / "Images" / "5.bmp").resize((512, 512), Image.BICUBIC))
    np.testing.assert_array_equal(np.asarray(Image.open(out / built[("live", "5")]["x1"])), resized)

    problems = {(p["source"], p["id"]): p["reason"] for p in manifest["problems"]}
    assert len(problems) == 160 - len(built)
    assert problems[("spaq", "00025")].startswith("missing")
    assert "smaller than 512" in problems[("spaq", SPAQ_TOO_SMALL)]
    assert LIVE_UNREADABLE in problems[("live", LIVE_UNREADABLE)]
    assert "malformed" in problems[("koniq", MALFORMED_KONIQ_ID)]
    assert manifest["malformed_koniq_id"]["candidate_used"] is False
    assert manifest["counts"]["spaq"]["low_resolution"] == {"found": 1, "expected": 20}
    with open(out / "manifest.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == len(built)

    printed = capsys.readouterr().out
    assert "00025" in printed and MALFORMED_KONIQ_ID in printed


def test_rerun_writes_nothing_new(tmp_path, capsys):
    spaq, koniq, live = _fake_trees(tmp_path)
    out = tmp_path / "out"
    _build(spaq, koniq, live, out)
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*.png")}
    manifest = (out / "manifest.json").read_bytes()
    capsys.readouterr()
    assert _build(spaq, koniq, live, out) == 1
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*.png")} == before
    assert (out / "manifest.json").read_bytes() == manifest
    assert "0 written" in capsys.readouterr().out
    # Deleted outputs come back byte-identical.
    victim = next(iter(before))
    victim.unlink()
    _build(spaq, koniq, live, out)
    assert victim.read_bytes() == before[victim][1]


def test_complete_tree_exits_0_and_uses_the_fixed_koniq_id_only_when_asked(tmp_path, monkeypatch):
    small = {
        "spaq": {"low_resolution": list(SPAQ_IDS)},
        "koniq": {"low_resolution": [MALFORMED_KONIQ_ID, *KONIQ_IDS]},
        "live": {"noise": list(LIVE_IDS)},
    }
    table = {s: {d: len(small[s].get(d, [])) for d in DEGRADATIONS} for s in SOURCES}
    for s in SOURCES:
        for d in DEGRADATIONS:
            small[s].setdefault(d, [])
    monkeypatch.setattr(dp, "DIVERSEPHOTOS_IDS", small)
    monkeypatch.setattr(dp, "TABLE_7_COUNTS", table)
    spaq, koniq, live = _fake_trees(tmp_path)
    _save(koniq / "512x384" / "26393826.jpg", _image(600, 520, 40))

    assert _build(spaq, koniq, live, tmp_path / "guarded") == 1  # malformed id not guessed
    assert _build(spaq, koniq, live, tmp_path / "out", "--fix-koniq-id") == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["problems"] == []
    assert manifest["malformed_koniq_id"]["candidate_used"] is True
    fixed = [im for im in manifest["images"] if im["printed_id"] == MALFORMED_KONIQ_ID]
    assert [im["id"] for im in fixed] == ["26393826"]


def test_usage_errors(tmp_path):
    args = _parse(["diversephotos", "build", "-o", str(tmp_path / "out")])
    with pytest.raises(UsageError):
        args.func(args)
    args = _parse(["diversephotos", "build", "--live", str(tmp_path / "nope"), "-o", "x"])
    with pytest.raises(UsageError, match="not a folder"):
        args.func(args)
    with pytest.raises(SystemExit):
        _parse(["diversephotos"])  # the build action is required
