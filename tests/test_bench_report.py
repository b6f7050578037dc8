"""The HTML reports: valid markup, every referenced file exists inside the report folder."""

from __future__ import annotations

import math
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from unires.bench.ablations import AblationResult, AblationRow, _row_spec, check_claims
from unires.bench.plots import bar_chart
from unires.bench.report import write_ablation_report, write_bench_report
from unires.bench.run import RunConfig, run_bench
from unires.degrade.writer import write_degraded_set

VOID = {"meta", "img", "br", "hr", "link", "input"}


class Checker(HTMLParser):
    """Collects referenced files and checks that every opened tag is closed in order."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.refs: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.refs.append(value)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def check_page(index: Path) -> Checker:
    checker = Checker()
    checker.feed(index.read_text(encoding="utf-8"))
    checker.close()
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    for ref in checker.refs:
        assert not ref.startswith(("/", "http:", "https:", "file:")), ref  # self-contained
        target = (index.parent / ref).resolve()
        assert target.is_file(), ref
        assert index.parent.resolve() in target.parents
    return checker


class IdentityPipe:
    """Stands in for a model: returns the (upscaled) input."""

    settings = SimpleNamespace(default_color_fix="none")
    model_digest = None  # built in memory, as UniResPipeline's without a folder
    dtype = torch.float32

    def restore_tensor(
        self,
        lq,
        weights,
        *,
        steps=None,
        seed=0,
        scale=1,
        downlq_factor=None,
        ensemble=1,
        color_fix=None,
    ):
        if scale != 1:
            lq = torch.nn.functional.interpolate(lq, scale_factor=scale, mode="nearest")
        return lq.clamp(0, 1)


def _sets(root: Path) -> list[Path]:
    hq = root / "hq"
    hq.mkdir(parents=True)
    yy, xx = np.mgrid[0:64, 0:96]
    img = np.stack([np.sin(xx / 5.0), np.cos(yy / 7.0), np.sin((xx + yy) / 9.0)], -1)
    Image.fromarray(((img + 1) * 120).astype(np.uint8)).save(hq / "a.png")
    write_degraded_set(hq, root / "noise", "noise", seed=0)
    write_degraded_set(hq, root / "sr4", "sr", seed=0, scale=4)
    return [root / "noise", root / "sr4"]


def test_bench_report_is_valid_html_with_existing_files(tmp_path):
    cfg = RunConfig(
        sets=_sets(tmp_path),
        out_dir=tmp_path / "out",
        one_hot=["dn"],
        peers=["opencv-nlm", "unsharp-mask", "bicubic"],
    )
    result = run_bench(IdentityPipe(), cfg, log=lambda *a: None)
    index = write_bench_report(result, cfg.out_dir, tmp_path / "report")
    checker = check_page(index)
    assert checker.tags.count("table") >= 3  # results + one gallery per set
    images = [r for r in checker.refs if r.startswith("gallery/")]
    # noise: LQ, one-hot dn, opencv-nlm, unsharp-mask, GT; sr4: LQ, one-hot dn, bicubic, GT.
    assert len(images) == 5 + 4
    assert {"plots/psnr_per_set.png", "plots/psnr_vs_seconds.png"} <= set(checker.refs)
    text = index.read_text()
    assert "opencv-nlm" in text and "noise (1 image, 96x64, x1)" in text
    # Rendering again replaces the report, leaving no stale files behind.
    stale = tmp_path / "report" / "gallery" / "old.png"
    stale.write_bytes(b"x")
    write_bench_report(result, cfg.out_dir, tmp_path / "report")
    assert not stale.exists()


def test_ablation_report_is_valid_html_and_names_claims(tmp_path):
    rows = []
    for i, (group, setting, _) in enumerate(_row_spec()):
        row = AblationRow(group, setting)
        if "--auto" in setting or "Forest" in setting:
            row.note = "unavailable (no predictor)"
        else:
            row.images = 2
            row.evaluations = 10.0
            row.metrics = {"score": -5.0 - i / 10, "psnr": 25 - i / 10, "niqe": 5 + i / 10}
        rows.append(row)
    config = {"metric": "niqe"}
    result = AblationResult(config=config, sets=[], rows=rows, claims=check_claims(rows))
    index = write_ablation_report(result, tmp_path, tmp_path / "report")
    checker = check_page(index)
    assert "plots/ablation_score.png" in checker.refs
    text = index.read_text()
    assert "unavailable (no predictor)" in text
    assert "search beats every single task: holds on the search metric" in text
    # Default is best on both metrics in this fabricated table: each claim holds.
    assert all(c["score"] and c["psnr"] for c in result.claims)


def test_bar_chart_draws_without_values(tmp_path):
    path = bar_chart(tmp_path / "b.png", "empty", ["a"], ["m"], {("m", "a"): math.nan})
    assert Image.open(path).size[0] > 100
