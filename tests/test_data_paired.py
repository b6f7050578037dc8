"""Readers of the standard paired data sets, on tiny fake trees with their real layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from unires.data.paired import (
    LayoutError,
    PairedDataset,
    dpdd_pairs,
    gopro_pairs,
    hq_images,
    sidd_medium_pairs,
)
from unires.tasks import get_task


def _img(path, value: int, size=(40, 48)):
    """A gradient plus a constant, so LQ = HQ + value and crops can be checked for alignment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    base = (np.arange(h)[:, None] * 2 + np.arange(w)[None, :]).astype(np.int32) % 150
    arr = np.repeat((base + value)[..., None], 3, axis=2).astype(np.uint8)
    Image.fromarray(arr).save(path)


def test_gopro_layout(tmp_path):
    root = tmp_path / "GOPRO_Large"
    for scene in ("GOPR0372_07_00", "GOPR0374_11_00"):
        for frame in ("000047.png", "000048.png"):
            _img(root / "train" / scene / "blur" / frame, 20)
            _img(root / "train" / scene / "sharp" / frame, 0)
    _img(root / "train" / "GOPR0374_11_00" / "blur" / "000049.png", 20)  # no sharp twin
    _img(root / "train" / "GOPR0374_11_00" / "blur_gamma" / "000047.png", 20)  # other variant
    _img(root / "test" / "GOPR0384_11_00" / "blur" / "000001.png", 20)
    _img(root / "test" / "GOPR0384_11_00" / "sharp" / "000001.png", 0)
    pairs = gopro_pairs(root)
    assert len(pairs) == 4
    assert all(p.task == "md" and p.lq.parent.name == "blur" for p in pairs)
    assert all(p.lq.name == p.hq.name and p.hq.parent.name == "sharp" for p in pairs)
    assert len(gopro_pairs(root, "test")) == 1
    with pytest.raises(LayoutError, match="GoPro"):
        gopro_pairs(tmp_path / "nowhere")


def test_dpdd_layout(tmp_path):
    root = tmp_path / "dd_dp_dataset_png"
    for name in ("1P0A1031.png", "1P0A1040.png"):
        _img(root / "train_c" / "source" / name, 20)
        _img(root / "train_c" / "target" / name, 0)
    _img(root / "train_l" / "source" / "1P0A1031.png", 20)  # dual-pixel views: not used
    _img(root / "test_c" / "source" / "x.png", 20)
    _img(root / "test_c" / "target" / "x.png", 0)
    pairs = dpdd_pairs(root)
    assert [p.lq.name for p in pairs] == ["1P0A1031.png", "1P0A1040.png"]
    assert all(p.task == "dd" and "train_c" in p.lq.parts for p in pairs)
    assert len(dpdd_pairs(root, "test")) == 1
    with pytest.raises(LayoutError, match="DPDD"):
        dpdd_pairs(root, "val")


def test_sidd_medium_layout(tmp_path):
    root = tmp_path / "SIDD_Medium_Srgb"
    for scene, sid in (
        ("0001_001_S6_00100_00060_3200_L", "0001"),
        ("0002_001_S6_00100_00020_3200_N", "0002"),
    ):
        for n in ("010", "011"):
            _img(root / "Data" / scene / f"{sid}_NOISY_SRGB_{n}.PNG", 20)
            _img(root / "Data" / scene / f"{sid}_GT_SRGB_{n}.PNG", 0)
    pairs = sidd_medium_pairs(root)
    assert len(pairs) == 4 and all(p.task == "dn" for p in pairs)
    assert all(p.hq.name == p.lq.name.replace("NOISY", "GT") for p in pairs)
    with pytest.raises(LayoutError, match="SIDD"):
        sidd_medium_pairs(root / "Data")


def test_df2k_and_lsdir_folders_skip_low_resolution_copies(tmp_path):
    df2k = tmp_path / "DF2K"
    _img(df2k / "DIV2K_train_HR" / "0001.png", 0)
    _img(df2k / "Flickr2K" / "Flickr2K_HR" / "000001.png", 0)
    _img(df2k / "DIV2K_train_LR_bicubic" / "X4" / "0001x4.png", 0)
    _img(df2k / "Flickr2K" / "Flickr2K_LR_bicubic" / "X4" / "000001x4.png", 0)
    assert sorted(p.name for p in hq_images(df2k)) == ["000001.png", "0001.png"]
    lsdir = tmp_path / "LSDIR"
    _img(lsdir / "HR" / "train" / "0001000" / "0000001.png", 0)
    _img(lsdir / "HR" / "train" / "0002000" / "0001001.png", 0)
    _img(lsdir / "X4" / "train" / "0001000" / "0000001x4.png", 0)
    (lsdir / "train.json").write_text("{}")
    assert sorted(p.name for p in hq_images(lsdir)) == ["0000001.png", "0001001.png"]


def test_paired_dataset_crops_stay_aligned(tmp_path):
    root = tmp_path / "GOPRO_Large"
    _img(root / "train" / "s" / "blur" / "1.png", 20, size=(60, 70))
    _img(root / "train" / "s" / "sharp" / "1.png", 0, size=(60, 70))
    ds = PairedDataset(
        gopro_pairs(root), crop_size=24, seed=0, positive_prompt_prob=0, negative_prompt_prob=0
    )
    crops = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        item = ds[0]
        assert item["lq"].shape == item["hq"].shape == (3, 24, 24)
        assert torch.allclose(item["lq"] - item["hq"], torch.full((3, 24, 24), 20 / 255), atol=1e-6)
        assert item["prompt"] == get_task("md").prompt and item["task"] == "md"
        crops.add(tuple(item["params"]["crop"]))
    assert len(crops) > 1


def test_paired_dataset_rejects_mismatched_sizes(tmp_path):
    root = tmp_path / "dpdd"
    _img(root / "train_c" / "source" / "a.png", 20, size=(30, 30))
    _img(root / "train_c" / "target" / "a.png", 0, size=(30, 32))
    with pytest.raises(ValueError, match="differs"):
        PairedDataset(dpdd_pairs(root), crop_size=16)[0]
