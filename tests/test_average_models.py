"""tools/average_models.py: the weight average of model folders (how v2 run 17's weights were made)."""

from __future__ import annotations

import pytest
import torch

from unires.model.bundle import load_model, save_model


def test_average_is_the_mean_of_the_weights(tiny_nafnet_dir, tmp_path, load_tool):
    shifted = load_model(tiny_nafnet_dir)
    with torch.no_grad():
        for p in list(shifted.unet.parameters()) + list(shifted.prompt_encoder.parameters()):
            p.add_(1.0)
    save_model(shifted, tmp_path / "shifted")
    out = load_tool("average_models").average(
        [tiny_nafnet_dir, tmp_path / "shifted"], tmp_path / "soup"
    )
    a, soup = load_model(tiny_nafnet_dir), load_model(out)
    for name in ("unet", "prompt_encoder"):
        sa, ss = getattr(a, name).state_dict(), getattr(soup, name).state_dict()
        for k in sa:
            if sa[k].is_floating_point():
                torch.testing.assert_close(ss[k], sa[k] + 0.5, msg=f"{name}.{k}")
    assert soup.settings == a.settings


def test_average_refuses_an_existing_output_and_a_single_folder(
    tiny_nafnet_dir, tmp_path, load_tool
):
    tool = load_tool("average_models")
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="taken"):
        tool.average([tiny_nafnet_dir, tiny_nafnet_dir], tmp_path / "taken")
    with pytest.raises(ValueError, match="at least two"):
        tool.average([tiny_nafnet_dir], tmp_path / "new")
    assert tool.main([str(tiny_nafnet_dir), "-o", str(tmp_path / "taken")]) == 1
