"""unires.utils.atomic_dir: a folder appears at its path only when complete."""

from __future__ import annotations

import pytest

from unires.utils import atomic_dir


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
