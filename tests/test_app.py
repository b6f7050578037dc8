"""The web app's logic and handlers, without a browser (tests/test_app_browser.py drives the
page itself)."""

from __future__ import annotations

import math
import os
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from unires.app import logic
from unires.app.logic import TASK_CODES, AppError
from unires.cli import main
from unires.weights import MOST_FREQUENT_WEIGHTS, validate_weights

# Outside a request, the page's gr.Warning toasts become Python warnings.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:gradio.helpers")


def values(**weights):
    return [weights.get(c, 0.0) for c in TASK_CODES]


def write_photo(path, width=64, height=48, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


# ---- weights ------------------------------------------------------------------------------


def test_one_slider_per_paper_task():
    assert TASK_CODES == ("br", "sr", "md", "dd", "dn", "downlq")
    assert (logic.WEIGHT_MIN, logic.WEIGHT_MAX) == (-0.2, 1.2)


def test_values_and_weights_round_trip():
    w = logic.weights_from_values(values(dn=-0.2, downlq=1.2))
    assert w == {"br": 0.0, "sr": 0.0, "md": 0.0, "dd": 0.0, "dn": -0.2, "downlq": 1.2}
    assert logic.values_from_weights({"dn": -0.2, "downlq": 1.2}) == values(dn=-0.2, downlq=1.2)


def test_weights_without_a_slider_are_reported():
    with pytest.raises(AppError, match="no slider for task"):
        logic.values_from_weights({"pos": 1.0})


def test_sum_message_shows_whether_the_constraint_holds():
    assert "✓" in logic.sum_message({"sr": 0.4, "downlq": 0.6})
    bad = logic.sum_message({"sr": 0.4, "downlq": 0.4})
    assert "0.80" in bad and "Normalise" in bad


def test_normalise_scales_positive_weights_and_keeps_negative_ones():
    assert logic.normalise({"sr": 0.5}) == {"sr": 1.0}
    w = logic.normalise({"dn": -0.2, "downlq": 0.6, "br": 0.0})
    assert w == {"dn": -0.2, "downlq": 1.2, "br": 0.0}


def test_normalise_rounds_to_the_slider_step_and_sums_to_one():
    w = logic.normalise({"br": 1.0, "sr": 1.0, "md": 1.0})
    assert sorted(w.values()) == [0.33, 0.33, 0.34]
    assert math.isclose(sum(w.values()), 1.0, abs_tol=1e-9)


def test_normalise_explains_what_it_cannot_do():
    with pytest.raises(AppError, match="positive weight"):
        logic.normalise({"dn": -0.2, "br": 0.0})
    with pytest.raises(AppError, match="cannot normalise within"):
        logic.normalise({"br": -0.2, "sr": -0.2, "md": 0.1})


def test_absorb_remainder_keeps_the_sum_at_one():
    w = logic.absorb_remainder(
        logic.weights_from_values(values(sr=0.2, dn=-0.2, downlq=1.2)), "downlq"
    )
    assert w["downlq"] == 1.0 and logic.sum_is_one(w)


def test_absorb_remainder_stays_in_the_slider_range():
    w = logic.absorb_remainder({"br": 1.2, "sr": 1.2, "downlq": 0.5}, "downlq")
    assert w["downlq"] == logic.WEIGHT_MIN
    assert not logic.sum_is_one(w)


def test_weights_for_restore_needs_sum_one():
    with pytest.raises(AppError, match="sum to 0.80, not 1"):
        logic.weights_for_restore({"sr": 0.4, "downlq": 0.4})
    with pytest.raises(AppError, match="sum to 0.00"):
        logic.weights_for_restore(dict.fromkeys(TASK_CODES, 0.0))


def test_weights_for_restore_drops_zeros_and_is_exact():
    w = logic.weights_for_restore(logic.weights_from_values(values(dn=-0.2, downlq=1.2)))
    assert w == {"dn": -0.2, "downlq": 1.2}
    thirds = logic.weights_for_restore({"br": 0.33, "sr": 0.33, "md": 0.336})  # within 0.005
    assert validate_weights(thirds) == thirds


def test_presets_hold_the_paper_sets_and_one_hot_tasks():
    table = logic.presets({"dn": -0.2, "downlq": 1.2})
    names = list(table)
    assert names[0].startswith("Model default")
    # The default equals the paper's most frequent optimum: listed once.
    assert sum(w == MOST_FREQUENT_WEIGHTS for w in table.values()) == 1
    assert any(n.startswith("Paper: average") for n in names)
    for code in TASK_CODES:
        assert {code: 1.0} in table.values()
    for w in table.values():
        validate_weights(w)
        assert logic.sum_is_one(dict(zip(TASK_CODES, logic.values_from_weights(w), strict=True)))


# ---- photos -------------------------------------------------------------------------------


def test_load_photo_reads_an_image(tmp_path):
    img = logic.load_photo(write_photo(tmp_path / "p.png"))
    assert (img.width, img.height) == (64, 48)


def test_load_photo_names_the_upload_not_the_server_path(tmp_path):
    bad = tmp_path / "deep" / "corrupt.png"
    bad.parent.mkdir()
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(AppError) as err:
        logic.load_photo(bad)
    message = str(err.value)
    assert message.startswith("corrupt.png: truncated or corrupt PNG")
    assert "\n" not in message and str(tmp_path) not in message


def test_load_photo_reports_unsupported_and_missing_uploads(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(AppError, match="notes.png: not an image file"):
        logic.load_photo(text)
    with pytest.raises(AppError, match="upload a photo first"):
        logic.load_photo(None)


def test_load_photo_limits_the_output_size(tmp_path):
    photo = write_photo(tmp_path / "p.png", 60, 60)  # 3600 px
    assert logic.load_photo(photo, 1, max_output_megapixels=0.004)
    with pytest.raises(AppError) as err:
        logic.load_photo(photo, 4, max_output_megapixels=0.004)  # 16 x 3600 px out
    message = str(err.value)
    assert message == (
        "p.png: 0.0036 megapixels exceeds the 0.00025 MP limit of this server at x4 "
        "(results up to 0.004 MP)"
    )


def test_parse_scale():
    assert logic.parse_scale("x1") == 1 and logic.parse_scale("x4") == 4
    with pytest.raises(AppError, match="scale must be"):
        logic.parse_scale("x3")


def test_before_image_matches_the_result_size():
    rgb = np.random.default_rng(0).random((48, 64, 3), dtype=np.float32)
    assert logic.before_image(rgb, (64, 48)).shape == (48, 64, 3)
    up = logic.before_image(rgb, (256, 192))
    assert up.shape == (192, 256, 3) and up.dtype == np.uint8


def test_save_result_stays_in_its_folder_with_a_safe_name(tmp_path):
    img = logic.load_photo(write_photo(tmp_path / "in.png"))
    out = logic.save_result(img, img.rgb, tmp_path / "results", "../../my photo.png")
    assert out.parent.parent == tmp_path / "results"
    assert out.name == "my_photo_unires.png"
    assert Image.open(out).size == (64, 48)


def test_delete_old_results(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    past = time.time() - 7200
    os.utime(old, (past, past))
    assert logic.delete_old_results(tmp_path, 3600) == 1
    assert not old.exists() and new.exists()
    assert logic.delete_old_results(tmp_path / "missing", 3600) == 0


def test_example_photos_are_the_demo_output(tmp_path):
    assert logic.example_photos(tmp_path) == []
    write_photo(tmp_path / "lq.png")
    assert logic.example_photos(tmp_path) == [tmp_path / "lq.png"]


# ---- handlers (Gradio installed, no server) -----------------------------------------------


@pytest.fixture()
def ctx(tiny_pipe, tmp_path, monkeypatch):
    # Gradio's temp folder must be set before its import (building a page writes into it).
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    pytest.importorskip("gradio", reason="the app extra is not installed: pip install .[app]")
    import gradio.routes

    # Already imported by an earlier test: it read the variable then.
    monkeypatch.setattr(gradio.routes, "DEFAULT_TEMP_DIR", str(tmp_path / "gradio"), raising=False)
    from unires.app.server import Context

    return Context(tiny_pipe, tmp_path / "work")


def test_moving_a_slider_sets_only_the_absorbing_one(ctx):
    from unires.app.server import on_slider_moved

    updates = on_slider_moved(*values(sr=0.2, dn=-0.2, downlq=1.2), "downlq", moved="sr")
    assert [u.get("value") for u in updates] == [None] * 5 + [1.0]
    # Moving the absorbing slider itself, or absorbing off: nothing else moves.
    for absorb, moved in (("downlq", "downlq"), ("none", "sr")):
        updates = on_slider_moved(*values(sr=0.2, downlq=1.2), absorb, moved=moved)
        assert all("value" not in u for u in updates)


def test_the_preset_selector_follows_the_sliders(ctx):
    from unires.app.server import follow_sliders

    table = logic.presets({"dn": -0.2, "downlq": 1.2})
    default = next(iter(table))
    assert follow_sliders(*values(dn=-0.2, downlq=1.2), table=table) == default
    assert follow_sliders(*values(sr=1.0), table=table) == "SR only (super-resolution)"
    assert follow_sliders(*values(sr=0.2, dn=-0.2, downlq=1.0), table=table) is None
    assert logic.matching_preset({"dn": -0.2, "downlq": 1.2004}, table) == default


def test_presets_and_normalise_set_the_sliders(ctx):
    from unires.app.server import apply_preset, normalise_sliders

    table = logic.presets({"dn": -0.2, "downlq": 1.2})
    assert apply_preset("SR only (super-resolution)", table=table) == values(sr=1.0)
    *sliders, text = normalise_sliders(*values(sr=0.25, downlq=0.25))
    assert sliders == values(sr=0.5, downlq=0.5) and "✓" in text
    *sliders, text = normalise_sliders(*values())
    assert text.startswith("⚠️") and "positive weight" in text


def test_restore_handler_returns_comparison_and_download(ctx, tmp_path):
    from unires.app.server import restore

    photo = write_photo(tmp_path / "p.png")
    pair, download, text = restore(ctx, str(photo), "x4", 2, 0, *values(dn=-0.2, downlq=1.2))
    before, after = pair
    assert before.shape == after.shape == (192, 256, 3)
    saved = download["value"]
    assert saved.startswith(str(ctx.results)) and Image.open(saved).size == (256, 192)
    assert "256×192" in text


def test_restore_handler_reports_problems_in_one_line(ctx, tmp_path):
    from unires.app.server import restore

    photo = write_photo(tmp_path / "p.png")
    *_, text = restore(ctx, str(photo), "x1", 2, 0, *values(sr=0.5))
    assert text.startswith("⚠️") and "not 1" in text
    *_, text = restore(ctx, None, "x1", 2, 0, *values(sr=1.0))
    assert "upload a photo first" in text
    *_, text = restore(ctx, str(photo), "x1", 0, 0, *values(sr=1.0))
    assert "steps must be between" in text
    *_, text = restore(ctx, str(photo), "x1", 2, 2**70, *values(sr=1.0))
    assert "seed must be between" in text


def test_auto_handler_moves_the_sliders(ctx, tmp_path, monkeypatch):
    from unires.app import server
    from unires.app.server import auto

    calls = []

    def fake_auto_weights(
        pipe, lq, method="fast", *, steps=None, seed=0, scale=1, progress=None, **kw
    ):
        calls.append((method, tuple(lq.shape), steps, seed, scale))
        progress(0.5, "half way")
        image = torch.full((1, 3, lq.shape[2] * scale, lq.shape[3] * scale), 0.5)
        return SimpleNamespace(
            weights={"sr": 0.4, "downlq": 0.6},
            score=3.25,
            q_lq=6.5,
            evaluations=9,
            seconds=1.5,
            image=image,
            metric="niqe",
            direction="lower is better",
            note=None,
        )

    monkeypatch.setattr(server, "auto_weights", fake_auto_weights)
    steps = []
    out = auto(
        ctx, str(write_photo(tmp_path / "p.png")), "x1", 3, 7, lambda f, desc: steps.append(f)
    )
    sliders, (pair, download, text) = list(out[:6]), out[6:]
    assert calls == [("fast", (1, 3, 48, 64), 3, 7, 1)]
    assert sliders == values(sr=0.4, downlq=0.6)
    assert pair[1].shape == (48, 64, 3) and download["visible"]
    assert "NIQE 3.25 (input 6.50; lower is better)" in text, text
    assert "9 evaluations" in text and 0.5 in steps
    assert "higher is better" not in text and "quality score" not in text


@pytest.mark.slow
def test_auto_handler_with_the_real_search(ctx, tmp_path):
    from unires.app.server import auto

    fractions = []
    # Under NIQE's two 96x96 blocks: scored with smaller blocks, and the page says so.
    photo = str(write_photo(tmp_path / "p.png", 128, 128))
    out = auto(ctx, photo, "x1", 1, 0, lambda f, desc: fractions.append(f))
    sliders, (pair, download, text) = list(out[:6]), out[6:]
    assert logic.sum_is_one(logic.weights_from_values(sliders))
    assert text.startswith("Auto weights"), text
    assert "NIQE" in text and "lower is better" in text and "64x64 blocks" in text
    assert pair[1].shape == (128, 128, 3) and download["visible"]
    # The bar advances within the image, up to 1.
    assert len(set(fractions)) > 5 and fractions == sorted(fractions) and fractions[-1] == 1.0


def test_the_page_builds(ctx, tmp_path):
    from unires.app.server import build_app

    app = build_app(ctx, examples=[write_photo(tmp_path / "lq.png")])
    ids = {getattr(b, "elem_id", None) for b in app.blocks.values()}
    assert {"photo", "restore", "auto", "compare", "download", "normalise"} <= ids
    assert {f"weight-{c}" for c in TASK_CODES} <= ids


# ---- command line ------------------------------------------------------------------------


def test_serve_is_a_command(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "--port" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--port", "70000"], "--port must be"),
        (["--max-megapixels", "0"], "--max-megapixels must be positive"),
        (["--queue-size", "0"], "--queue-size must be"),
    ],
)
def test_serve_rejects_bad_arguments(argv, message, capsys):
    assert main(["serve", *argv]) == 2
    assert message in capsys.readouterr().err
