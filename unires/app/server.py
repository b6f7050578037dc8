"""The ``unires serve`` page (Gradio): upload a photo, mix the task weights, restore, compare.

Restorations and automatic searches share one queue slot, so several users wait in turn
instead of running the machine out of memory. Everything the server writes (uploads,
results, Gradio's cache, Python temp files) goes into one temp folder removed on exit.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import io
from ..errors import first_line
from ..search.auto import auto_weights
from ..utils import plural
from ..weights import format_weights
from . import logic
from .logic import TASK_CODES, AppError

# Restorations and Auto searches use the model: one at a time, others queue.
MODEL_SLOT = "unires-model"
DEFAULT_QUEUE_SIZE = 32  # waiting requests beyond this are refused with "queue full"
MAX_UPLOAD = "64mb"  # a larger upload is refused before it is stored
MAX_STEPS = 100
MAX_SEED = 2**63
RESULT_MAX_AGE_S = 3600  # results (and Gradio's cached copies) are deleted after an hour
# Comparison images are re-encoded for the browser: PNG keeps them exact.
VIEW_FORMAT = "png"
# At 1366x768 the header, the photo box, the buttons and the comparison all fit on screen.
VIEW_HEIGHT = 400
UPLOAD_HEIGHT = 110

HEADER = """## UniRes: universal image restoration
Upload a photo, press **Restore**. Each slider weighs one restoration task; the weights
**sum to 1** (Eq. 2, arXiv 2506.05599); negative weights subtract a task.
"""

# "Before" and "After" on the two sides of the comparison slider (the first image is the
# left side), and a compact page so the main action and the result need no scrolling.
CSS = """
#compare { position: relative; }
#compare::before, #compare::after {
    position: absolute; top: 2.4em; z-index: 5; pointer-events: none;
    padding: 1px 8px; border-radius: 4px; font-size: 0.85em;
    background: rgba(0, 0, 0, 0.6); color: #fff;
}
#compare::before { content: "Before"; left: 10px; }
#compare::after { content: "After"; right: 10px; }
"""


@dataclass(frozen=True)
class Context:
    """What the model-using handlers need besides the page's values."""

    pipe: object  # UniResPipeline
    workdir: Path  # results go to workdir/results
    max_output_megapixels: float = logic.DEFAULT_MAX_OUTPUT_MEGAPIXELS
    tiles: object = None  # TileSettings, or None for the pipeline's default

    @property
    def results(self) -> Path:
        """The folder of the full-resolution results offered for download."""
        return self.workdir / "results"


def make_workdir() -> Path:
    """A fresh private temporary folder for one server's files."""
    return Path(tempfile.mkdtemp(prefix="unires-serve-"))


def confine_temp_files(workdir: Path) -> None:
    """Send Gradio's cache and every Python temp file into ``workdir``; must run before
    Gradio is imported (some of its modules read the variables at import time)."""
    tmp = workdir / "tmp"
    tmp.mkdir(exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(workdir / "gradio")
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(workdir / "examples")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # a local app does not phone home
    os.environ["TMPDIR"] = str(tmp)
    tempfile.tempdir = str(tmp)


def error_text(message: str) -> str:
    """``message`` as the status line shows an error."""
    return f"⚠️ {message}"


def check_steps(steps) -> int:
    """The sampling steps as an int in 1..MAX_STEPS (None / 0 count as 0).

    Raises:
        AppError: out of range.
    """
    steps = int(steps or 0)
    if not 1 <= steps <= MAX_STEPS:
        raise AppError(f"steps must be between 1 and {MAX_STEPS}")
    return steps


def check_seed(seed) -> int:
    """The seed as an int in 0..MAX_SEED - 1.

    Raises:
        AppError: out of range.
    """
    seed = int(seed or 0)
    if not 0 <= seed < MAX_SEED:  # torch generators take 64-bit seeds
        raise AppError(f"seed must be between 0 and {MAX_SEED - 1}")
    return seed


# ---- event handlers (plain functions of component values) ---------------------------------


def show_input(path, scale_label, *, max_output_megapixels: float):
    """Photo chosen: decode it as the restorer will, or say in one line why it cannot."""
    import gradio as gr

    hidden = gr.update(value=None, visible=False)
    if path is None:
        return None, None, hidden, ""
    try:
        img = logic.load_photo(
            path, logic.parse_scale(scale_label), max_output_megapixels=max_output_megapixels
        )
    except AppError as e:
        gr.Warning(str(e))
        return None, None, hidden, error_text(str(e))
    text = f"Loaded {Path(path).name}: {img.width}×{img.height} px."
    return logic.to_uint8(img.rgb), None, hidden, text


def on_slider_moved(*args, moved: str):
    """A slider moved by hand: the chosen task absorbs the remainder so the sum stays 1."""
    import gradio as gr

    *values, absorb = args
    weights = logic.weights_from_values(values)
    if absorb in TASK_CODES and absorb != moved:
        weights = logic.absorb_remainder(weights, absorb)
    # Only the absorbing slider is set: rewriting the one being dragged would fight the hand.
    return [
        gr.update(value=weights[c]) if c == absorb and c != moved else gr.update()
        for c in TASK_CODES
    ]


def show_sum(*values):
    """The weight-sum line for the sliders' values."""
    return logic.sum_message(logic.weights_from_values(values))


def apply_preset(name, *, table: dict):
    """The sliders' values for preset ``name`` (no change for an unknown or empty name)."""
    import gradio as gr

    if name not in table:
        return [gr.update()] * len(TASK_CODES)
    return logic.values_from_weights(table[name])


def follow_sliders(*values, table: dict):
    """The preset selector shows the preset the sliders match, or nothing (custom weights)."""
    return logic.matching_preset(logic.weights_from_values(values), table)


def normalise_sliders(*values):
    """The sliders normalised to sum 1 (``logic.normalise``) and an empty status, or unchanged
    sliders and the reason as a warning and status.
    """
    import gradio as gr

    try:
        weights = logic.normalise(logic.weights_from_values(values))
    except AppError as e:
        gr.Warning(str(e))
        return *[gr.update()] * len(TASK_CODES), error_text(str(e))
    return *logic.values_from_weights(weights), f"Normalised: {logic.sum_message(weights)}"


def restore(ctx: Context, path, scale_label, steps, seed, *values, progress=None):
    """Restore the photo with the slider weights; returns comparison, download and status."""
    import gradio as gr

    keep = (gr.update(), gr.update())  # comparison and download stay as they were
    try:
        scale = logic.parse_scale(scale_label)
        weights = logic.weights_for_restore(logic.weights_from_values(values))
        img = logic.load_photo(path, scale, max_output_megapixels=ctx.max_output_megapixels)
        steps, seed = check_steps(steps), check_seed(seed)
    except AppError as e:
        gr.Warning(str(e))
        return *keep, error_text(str(e))
    if progress is not None:
        progress(0.0, desc="restoring")
    t0 = time.perf_counter()
    try:
        out = ctx.pipe.restore_tensor(
            io.to_tensor(img.rgb),
            weights,
            steps=steps,
            seed=seed,
            scale=scale,
            tiles=ctx.tiles,
            progress=True,  # tqdm, which the page's progress bar follows
        )
        rgb = io.from_tensor(out)
        pair, download = show_result(ctx, img, rgb, Path(path).name)
    except (io.ImageError, RuntimeError, ValueError) as e:  # e.g. out of memory
        message = f"restoration failed: {first_line(e)}"
        gr.Warning(message)
        return *keep, error_text(message)
    seconds = time.perf_counter() - t0
    h, w = rgb.shape[:2]
    shown = ", ".join(f"{c}={v:g}" for c, v in weights.items())
    text = (
        f"Restored {img.width}×{img.height} → **{w}×{h}** px in {seconds:.1f} s "
        f"({plural(steps, 'step')}, seed {seed}, weights {shown})."
    )
    return pair, download, text


def show_result(ctx: Context, img, rgb, original_name: str):
    """The before/after pair for the comparison slider and the download of the saved file."""
    import gradio as gr

    logic.delete_old_results(ctx.results, RESULT_MAX_AGE_S)
    saved = logic.save_result(img, rgb, ctx.results, original_name)
    h, w = rgb.shape[:2]
    pair = (logic.before_image(img.rgb, (w, h)), logic.to_uint8(rgb))
    return pair, gr.update(value=str(saved), visible=True)


def auto(ctx: Context, path, scale_label, steps, seed, progress=None):
    """Search weights for this photo (fast method), move the sliders there, show the score."""
    import gradio as gr

    unchanged = [gr.update()] * len(TASK_CODES)
    keep = (*unchanged, gr.update(), gr.update())
    try:
        scale = logic.parse_scale(scale_label)
        steps, seed = check_steps(steps), check_seed(seed)
        img = logic.load_photo(path, scale, max_output_megapixels=ctx.max_output_megapixels)
    except AppError as e:
        gr.Warning(str(e))
        return *keep, error_text(str(e))

    def report(fraction: float, message: str = "") -> None:
        if progress is not None:
            progress(float(fraction), desc=message or "searching weights")

    report(0.0, "searching weights")
    try:
        found = auto_weights(
            ctx.pipe,
            io.to_tensor(img.rgb),
            "fast",
            steps=steps,
            seed=seed,
            scale=scale,
            progress=report,
            tiles=ctx.tiles,
        )
        weights = {c: round(float(v), logic.DECIMALS) for c, v in found.weights.items()}
        values_out = logic.values_from_weights(weights)
        pair, download = gr.update(), gr.update()
        if found.image is not None:  # the search's own restoration: show it and offer it
            rgb = io.from_tensor(found.image)
            pair, download = show_result(ctx, img, rgb, Path(path).name)
    except (AppError, io.ImageError, RuntimeError, ValueError) as e:
        message = f"automatic weights failed: {first_line(e)}"
        gr.Warning(message)
        return *keep, error_text(message)
    shown = format_weights(weights, sep=", ")
    text = (
        f"Auto weights {shown}: {logic.quality_text(found)}, "
        f"{plural(found.evaluations, 'evaluation')} in {found.seconds:.1f} s."
    )
    note = getattr(found, "note", None)
    if note:
        text += f" Note: {note}."
    return *values_out, pair, download, text


# ---- the page -------------------------------------------------------------------------------


@dataclass
class Page:
    """The page's components that the events read or write (``build_app``)."""

    photo: Any
    scale: Any
    restore_button: Any
    auto_button: Any
    status: Any
    preset: Any
    sliders: list
    total: Any
    absorb: Any
    normalise_button: Any
    steps: Any
    seed: Any
    input_view: Any
    compare: Any
    download: Any


def build_app(ctx: Context, *, examples: Sequence[Path] = ()):
    """The Gradio Blocks app; call :func:`confine_temp_files` first.

    Raises:
        ImportError: Gradio (the ``app`` extra) is not installed.
    """
    import gradio as gr

    table = logic.presets(ctx.pipe.settings.default_weights)
    try:
        start = logic.values_from_weights(ctx.pipe.settings.default_weights)
    except AppError:  # a default using tasks without a slider (pos/neg)
        start = logic.values_from_weights(next(iter(table.values())))
    # Gradio deletes its cached copies (uploads, shown images) after an hour.
    cache_hours = (600, RESULT_MAX_AGE_S)
    with gr.Blocks(title="UniRes", analytics_enabled=False, delete_cache=cache_hours) as app:
        gr.Markdown(HEADER)
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                controls = _controls(ctx, table, start, examples)
            with gr.Column(scale=2):
                views = _views()
        page = Page(**controls, **views)
        _wire_weights(page, table)
        _wire_actions(ctx, page)
    return app


def _controls(ctx: Context, table: dict, start: list[float], examples) -> dict:
    """The left column: photo, scale, buttons, status, preset, weight sliders, steps, seed."""
    import gradio as gr

    photo = gr.File(
        label="Photo (PNG, JPEG, WebP, TIFF, BMP, GIF)",
        file_types=sorted(io.IMAGE_SUFFIXES),
        height=UPLOAD_HEIGHT,
        elem_id="photo",
    )
    if examples:
        gr.Examples([[str(p)] for p in examples], inputs=photo, label="Examples")
    scale = gr.Radio(list(logic.SCALES), value="x1", label="Scale", elem_id="scale")
    with gr.Row():
        restore_button = gr.Button("Restore", variant="primary", elem_id="restore")
        auto_button = gr.Button("Auto weights", elem_id="auto")
    status = gr.Markdown(elem_id="status")
    preset = gr.Dropdown(
        list(table),
        value=logic.matching_preset(logic.weights_from_values(start), table),
        label="Preset weights (follows the sliders; empty: your own mix)",
        elem_id="preset",
    )
    sliders = [
        gr.Slider(
            logic.WEIGHT_MIN,
            logic.WEIGHT_MAX,
            value=v,
            step=logic.WEIGHT_STEP,
            label=logic.task_label(c),
            elem_id=f"weight-{c}",
        )
        for c, v in zip(TASK_CODES, start, strict=True)
    ]
    total = gr.Markdown(logic.sum_message(logic.weights_from_values(start)), elem_id="weight-sum")
    with gr.Row():
        absorb = gr.Dropdown(
            ["none", *TASK_CODES],
            value="downlq" if "downlq" in TASK_CODES else "none",
            label="Keep the sum at 1 by adjusting",
            elem_id="absorb",
        )
        normalise_button = gr.Button("Normalise", elem_id="normalise")
    with gr.Row():
        steps = gr.Slider(
            1,
            MAX_STEPS,
            value=ctx.pipe.settings.default_steps,
            step=1,
            label="Steps",
            elem_id="steps",
        )
        seed = gr.Number(0, precision=0, label="Seed", elem_id="seed")
    return dict(
        photo=photo,
        scale=scale,
        restore_button=restore_button,
        auto_button=auto_button,
        status=status,
        preset=preset,
        sliders=sliders,
        total=total,
        absorb=absorb,
        normalise_button=normalise_button,
        steps=steps,
        seed=seed,
    )


def _views() -> dict:
    """The right column: the input, the before | after comparison, the download button."""
    import gradio as gr

    with gr.Row():
        input_view = gr.Image(
            label="Input",
            interactive=False,
            format=VIEW_FORMAT,
            height=VIEW_HEIGHT,
            buttons=["fullscreen"],
            elem_id="input-view",
        )
        compare = gr.ImageSlider(
            label="Result: before | after (drag the handle)",
            interactive=False,
            format=VIEW_FORMAT,
            height=VIEW_HEIGHT,
            buttons=["fullscreen"],
            elem_id="compare",
        )
    download = gr.DownloadButton(
        "Download full-resolution result", visible=False, elem_id="download"
    )
    return dict(input_view=input_view, compare=compare, download=download)


def _wire_weights(page: Page, table: dict) -> None:
    """The events that never wait for the model: sum, slider moves, preset, Normalise."""
    import gradio as gr

    light = {"concurrency_limit": None, "show_progress": "hidden"}
    sliders = page.sliders
    # The sum is shown from the sliders' change events only: one source, whatever moved them.
    gr.on([s.change for s in sliders], show_sum, sliders, page.total, **light)
    for code, slider in zip(TASK_CODES, sliders, strict=True):
        slider.input(
            functools.partial(on_slider_moved, moved=code),
            [*sliders, page.absorb],
            sliders,
            trigger_mode="always_last",
            **light,
        )
    page.preset.input(functools.partial(apply_preset, table=table), page.preset, sliders, **light)
    # The selector follows the sliders whatever moved them (hand, Normalise, Auto).
    gr.on(
        [s.change for s in sliders],
        functools.partial(follow_sliders, table=table),
        sliders,
        page.preset,
        **light,
    )
    page.normalise_button.click(normalise_sliders, sliders, [*sliders, page.status], **light)


def _wire_actions(ctx: Context, page: Page) -> None:
    """Showing a new photo, and the two actions that use the model (one at a time)."""
    import gradio as gr

    limits = {"max_output_megapixels": ctx.max_output_megapixels}
    model = {"concurrency_limit": 1, "concurrency_id": MODEL_SLOT}
    page.photo.change(
        functools.partial(show_input, **limits),
        [page.photo, page.scale],
        [page.input_view, page.compare, page.download, page.status],
        concurrency_limit=2,
    )

    # Progress is injected into a defaulted first parameter (Gradio looks at positional
    # parameters only); the component values follow it.
    def restore_event(progress=gr.Progress(track_tqdm=True), *values):
        return restore(ctx, *values, progress=progress)

    def auto_event(progress=gr.Progress(), *values):
        return auto(ctx, *values, progress=progress)

    settings = [page.photo, page.scale, page.steps, page.seed]
    # One progress indicator per action, on the comparison where the result will appear
    # (not one per output: Auto also updates the six sliders).
    page.restore_button.click(
        restore_event,
        [*settings, *page.sliders],
        [page.compare, page.download, page.status],
        show_progress_on=[page.compare],
        **model,
    )
    page.auto_button.click(
        auto_event,
        settings,
        [*page.sliders, page.compare, page.download, page.status],
        show_progress_on=[page.compare],
        **model,
    )


def theme():
    """System fonts: the page loads nothing from the internet."""
    import gradio as gr

    return gr.themes.Default(
        font=("system-ui", "sans-serif"), font_mono=("ui-monospace", "monospace")
    )


def serve(
    pipe,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    examples_dir: str | Path = "demo-output",
    max_output_megapixels: float = logic.DEFAULT_MAX_OUTPUT_MEGAPIXELS,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    tiles=None,
) -> None:
    """Run the app until interrupted, then delete everything it wrote."""
    workdir = make_workdir()
    # SIGTERM (e.g. from a service manager) ends like Ctrl-C, so the temp folder is removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        confine_temp_files(workdir)
        ctx = Context(pipe, workdir, max_output_megapixels, tiles)
        app = build_app(ctx, examples=logic.example_photos(examples_dir))
        app.queue(max_size=queue_size).launch(
            server_name=host,
            server_port=port,
            max_file_size=MAX_UPLOAD,
            share=False,
            inbrowser=False,
            ssr_mode=False,
            footer_links=[],
            # Results are written here, then served; nothing else outside Gradio's cache is.
            allowed_paths=[str(ctx.results)],
            theme=theme(),
            css=CSS,
            quiet=True,  # Gradio's banner suggests share=True, which this app never uses
            prevent_thread_lock=True,
        )
        print(f"UniRes web app on {app.local_url} (Ctrl-C stops it)", flush=True)
        app.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
