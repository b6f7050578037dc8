"""End to end: `unires serve` with the tiny model, driven by headless Chromium (Playwright with
the system browser: Playwright's own browser download needs the internet).

Screenshots go to artifacts/ (git-ignored); their paths are printed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Only looked up, not imported: the server imports Gradio itself, after choosing its temp folder.
if importlib.util.find_spec("gradio") is None:
    pytest.skip("the app extra is not installed: pip install .[app]", allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"server exited early:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"server not up after {START_TIMEOUT_S} s")


@pytest.fixture()
def browser_path() -> str:
    found = os.environ.get("UNIRES_CHROMIUM") or next(
        filter(None, map(shutil.which, BROWSERS)), None
    )
    if found is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set UNIRES_CHROMIUM)")
    return found


@pytest.fixture()
def server(tiny_model_dir, tmp_path):
    """`unires serve` in a clean folder, with its own system temp folder to check for leaks."""
    cwd, system_tmp = tmp_path / "cwd", tmp_path / "system-tmp"
    cwd.mkdir()
    system_tmp.mkdir()
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(system_tmp)}
    cmd = [sys.executable, "-m", "unires.cli", "serve", "--model", str(tiny_model_dir)]
    cmd += ["--port", str(port), "--examples", str(tmp_path / "no-examples")]
    log = tmp_path / "server.log"  # a file, not a pipe: a full pipe would block the server
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/", proc, log)
        yield SimpleServer(proc, f"http://127.0.0.1:{port}/", cwd, system_tmp)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class SimpleServer:
    def __init__(self, proc, url, cwd, system_tmp):
        self.proc, self.url, self.cwd, self.system_tmp = proc, url, cwd, system_tmp

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)


# A common laptop screen: the main action and the result must fit without scrolling.
VIEWPORT = {"width": 1366, "height": 768}


def screenshot(page, name: str) -> Path:
    """What the user sees at VIEWPORT, without scrolling (not the full page)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=path, full_page=False)
    print(f"screenshot: {path}")
    return path


def assert_on_screen(page, selector: str) -> None:
    """``selector`` lies wholly inside the viewport with the page scrolled to the top."""
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not displayed"
    right, bottom = box["x"] + box["width"], box["y"] + box["height"]
    assert box["x"] >= 0 and box["y"] >= 0, (selector, box)
    assert right <= VIEWPORT["width"] and bottom <= VIEWPORT["height"], (selector, box)


def slider_values(page) -> list[str]:
    return page.eval_on_selector_all(
        "[id^=weight-] input[type=number]", "els => els.map(e => e.value)"
    )


def test_restore_in_the_browser(browser_path, server, tmp_path):
    photo = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(photo)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(30_000)
        page.goto(server.url)
        # The preset selector names the model's default the sliders start at.
        assert "Model default" in page.input_value("#preset input")
        assert_on_screen(page, "#restore")

        page.set_input_files("#photo input[type=file]", photo)
        page.wait_for_selector("#input-view img")
        assert "64×48" in page.inner_text("#status")

        # Moving SR to 0.2: DownLQ absorbs the remainder, the sum stays 1, and the preset
        # selector no longer names a preset the sliders do not match.
        page.fill("#weight-sr input[type=range]", "0.2")
        page.wait_for_function(
            "document.querySelector('#weight-downlq input[type=number]').value === '1'"
            " && document.querySelector('#weight-sum').innerText.includes('Sum = 1.00')"
        )
        page.wait_for_function("document.querySelector('#preset input').value === ''")

        page.get_by_label("x4").check()
        page.fill("#steps input[type=number]", "2")
        page.press("#steps input[type=number]", "Enter")
        page.click("#restore")
        page.wait_for_function(
            "[...document.querySelectorAll('#compare img')]"
            ".filter(i => i.complete && i.naturalWidth === 256).length === 2"
        )
        assert "256×192" in page.inner_text("#status")
        assert "2 steps" in page.inner_text("#status")
        # Without scrolling: the action, the result and both sides' labels.
        page.evaluate("window.scrollTo(0, 0)")
        for selector in ("#restore", "#auto", "#compare", "#status"):
            assert_on_screen(page, selector)
        labels = page.evaluate(
            "['::before', '::after'].map(p => "
            "getComputedStyle(document.querySelector('#compare'), p).content)"
        )
        assert labels == ['"Before"', '"After"']
        screenshot(page, "app-restore.png")
        with page.expect_download() as download:
            page.click("#download")
        saved = tmp_path / "download.png"
        download.value.save_as(saved)
        assert Image.open(saved).size == (256, 192)

        # A preset moves the sliders and stays named; Auto weights shows one progress
        # indicator, then moves the sliders and the selector follows.
        page.get_by_label("x1").check()
        page.fill("#steps input[type=number]", "1")
        page.press("#steps input[type=number]", "Enter")
        page.click("#auto")
        # While it runs, one progress indicator (Gradio's status tracker, on the comparison),
        # not one per output (six sliders, comparison, download, status).
        page.wait_for_selector("#compare .progress-level", timeout=60_000)
        assert page.locator(".wrap.default:not(.hide)").count() == 1
        page.wait_for_function(
            "document.querySelector('#status').innerText.includes('Auto weights')", timeout=120_000
        )
        status = page.inner_text("#status")
        assert "NIQE" in status and "lower is better" in status, status
        assert "higher is better" not in status
        # The sliders moved to the weights found; the selector names a preset only if they
        # match one.
        found = [float(v) for v in slider_values(page)]
        assert abs(sum(found) - 1) < 0.01
        screenshot(page, "app-auto.png")

        page.click("#photo button[aria-label=Clear]")
        page.set_input_files("#photo input[type=file]", corrupt)
        page.wait_for_function(
            "document.querySelector('#status').innerText.includes('corrupt.png: truncated')"
        )
        screenshot(page, "app-corrupt-upload.png")
        browser.close()

    # Everything the server wrote is inside its own temp folder, removed on exit.
    assert list(server.cwd.iterdir()) == []
    assert [p.name.startswith("unires-serve-") for p in server.system_tmp.iterdir()] == [True]
    assert server.stop() == 0
    assert list(server.system_tmp.iterdir()) == []
