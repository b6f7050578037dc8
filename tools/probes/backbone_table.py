"""Markdown table of backbone-probe curves (``tools/probes/backbone.py`` OUT/curve.jsonl).

One row per probe: network, parameters, task, loss weighting, learning-rate schedule after
the warm-up, training data of the probed task (DN: `dn-mix` or AWGN only; SR: the share of
bicubic x4), LQ PSNR, then the PSNR gain over the LQ in dB
at each evaluation (CPU minutes), and the steps done.

Usage: python tools/probes/backbone_table.py runs/probes/naf-dn runs/probes/unet-dn ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _data(header: dict) -> str:
    """The probed task's training data (headers before these keys: the config's defaults)."""
    if header["task"] == "dn":
        return header.get("dn_data", "dn-mix")
    if header["task"] == "sr":
        return f"bicubic {header.get('sr_bicubic_prob', 0.3):g}"
    return "config"


def main(folders: list[str]) -> None:
    runs = []
    for folder in folders:
        lines = (Path(folder) / "curve.jsonl").read_text().splitlines()
        header, rows = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
        runs.append((Path(folder).name, header, rows))
    marks = sorted({round(r["cpu_min"] / 2.5) * 2.5 for _, _, rows in runs for r in rows})
    marks = [m for m in marks if m > 0]
    print(
        "| probe | network | params | task | weighting | schedule | data | LQ dB | "
        + " | ".join(f"{m:g} min" for m in marks)
        + " | steps |"
    )
    print("|" + "---|" * (9 + len(marks)))
    for name, h, rows in runs:
        gains = {round(r["cpu_min"] / 2.5) * 2.5: r["gain_db"] for r in rows}
        cells = [f"{gains[m]:+.2f}" if m in gains else "" for m in marks]
        print(
            f"| {name} | {h['network']} f={h['factor']} | {h['params'] / 1e6:.2f}M | {h['task']} "
            f"| {h.get('loss_weighting', 'target_energy')} | {h.get('schedule', 'constant')} "
            f"| {_data(h)} | {h['val_lq_psnr']:.2f} | "
            + " | ".join(cells)
            + f" | {rows[-1]['step']} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
