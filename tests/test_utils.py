"""unires.utils: atomic_dir (a folder appears at its path only when complete) and
check_fingerprint (a resumable output folder refuses other settings)."""

from __future__ import annotations

import json

import pytest

from unires.utils import FINGERPRINT_FILE, atomic_dir, check_fingerprint


def test_atomic_dir_replaces_the_folder_only_on_success(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("half")
        raise RuntimeError("killed mid-write")
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    with atomic_dir(out) as tmp:
        assert tmp.parent == out.parent and not any(tmp.iterdir())
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary left


def test_check_fingerprint_refuses_other_settings_and_completes_older_records(tmp_path):
    out = tmp_path / "run"
    check_fingerprint(out, {"model": "a", "steps": 1})  # a new folder: recorded
    assert json.loads((out / FINGERPRINT_FILE).read_text()) == {"model": "a", "steps": 1}
    check_fingerprint(out, {"model": "a", "steps": 1})  # the same: resumes
    with pytest.raises(ValueError, match=r"run holds results made with steps=1, not steps=2"):
        check_fingerprint(out, {"model": "a", "steps": 2})
    # A key the record lacks: read from ``unrecorded`` when named there...
    with pytest.raises(ValueError, match="color_fix='adain', not color_fix='none'"):
        check_fingerprint(out, {"model": "a", "color_fix": "none"}, {"color_fix": "adain"})
    # ... else not compared, and the record is completed for the next run.
    check_fingerprint(out, {"model": "a", "steps": 1, "digest": "x"})
    assert json.loads((out / FINGERPRINT_FILE).read_text())["digest"] == "x"
    with pytest.raises(ValueError, match="digest='x', not digest='y'"):
        check_fingerprint(out, {"model": "a", "steps": 1, "digest": "y"})
