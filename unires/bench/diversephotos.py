"""Build the DiversePhotos x1 / x4 test sets (arXiv 2506.05599, App. B.1) from the source data.

x1: SPAQ and KonIQ-10k images centre-cropped to 512x512, LIVE In the Wild images (500x500)
resized bicubic to 512x512. x4: the 128x128 centre crops of the x1 images. Every id of the
paper's listings is either written, or reported by name with the reason it is not.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from unires.bench.diversephotos_ids import (
    DEGRADATIONS,
    DIVERSEPHOTOS_IDS,
    MALFORMED_KONIQ_ID,
    MALFORMED_KONIQ_ID_CANDIDATE,
    SOURCES,
    TABLE_7_COUNTS,
)
from unires.data.crops import centre_crop
from unires.io import IMAGE_SUFFIXES, read_image, write_image
from unires.utils import atomic_path

X1_SIDE = 512
X4_SIDE = 128
LIVE_SIDE = 500  # LIVE In the Wild images are 500x500; App. B.1 resizes them to 512
CROPPED_SOURCES = frozenset({"spaq", "koniq"})  # centre-cropped rather than resized

MANIFEST_NAME = "manifest.json"
CSV_NAME = "manifest.csv"


@dataclass(frozen=True)
class BuiltImage:
    """One image of the set: where it came from and what was written (paths relative to OUT)."""

    id: str
    source: str
    degradation: str
    input: str
    x1: str
    x4: str
    sha256_x1: str
    sha256_x4: str
    printed_id: str  # the id as printed in the paper (differs only for the fixed KonIQ id)


@dataclass(frozen=True)
class Problem:
    """An id of the listings that is not in the output, and why."""

    id: str
    source: str
    degradation: str
    reason: str


@dataclass
class BuildResult:
    images: list[BuiltImage] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    written: int = 0  # images encoded this run (the rest were already there)
    fix_koniq_id: bool = False

    @property
    def complete(self) -> bool:
        """True when no image had a problem."""
        return not self.problems

    def counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """Found vs expected (Tab. 7) per source and dominating degradation."""
        table: dict[str, dict[str, dict[str, int]]] = {}
        for source in SOURCES:
            table[source] = {}
            for degradation in DEGRADATIONS:
                n = sum(
                    1 for im in self.images if im.source == source and im.degradation == degradation
                )
                table[source][degradation] = {
                    "found": n,
                    "expected": TABLE_7_COUNTS[source][degradation],
                }
        return table

    def summary(self) -> str:
        """Counts per source and subset against Tab. 7, and the problems, as lines of text."""
        expected = sum(sum(row.values()) for row in TABLE_7_COUNTS.values())
        lines = [
            f"DiversePhotos: {len(self.images)}/{expected} images "
            f"({self.written} written, {len(self.images) - self.written} already there)"
        ]
        for source, row in self.counts().items():
            cells = ", ".join(f"{d} {c['found']}/{c['expected']}" for d, c in row.items())
            lines.append(f"  {source}: {cells}")
        for p in self.problems:
            lines.append(f"  not built: {p.source} {p.degradation} {p.id!r}: {p.reason}")
        return "\n".join(lines)


def index_images(root: Path) -> dict[str, list[Path]]:
    """Image files under ``root`` (recursive, suffix case-insensitive), by file stem."""
    by_stem: dict[str, list[Path]] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()  # a deterministic walk, so ties resolve the same way every run
        for name in sorted(files):
            path = Path(folder, name)
            if path.suffix.lower() in IMAGE_SUFFIXES and not name.startswith("."):
                by_stem.setdefault(path.stem, []).append(path)
    return by_stem


def _pixel_count(path: Path) -> int:
    # Header only: picks KonIQ's 1024x768 copy over its 512x384 one without decoding either.
    try:
        with Image.open(path) as im:
            return im.width * im.height
    except Exception:  # unreadable: rank last; read_image reports why if it is the only copy
        return -1


def pick_largest(paths: list[Path]) -> Path:
    """The largest-resolution copy; ties go to the first path in sorted order."""
    return sorted(paths, key=lambda p: (-_pixel_count(p), str(p)))[0]


def resize_bicubic(rgb: np.ndarray, side: int) -> np.ndarray:
    """PIL bicubic on the 8-bit samples, as App. B.1 specifies a bicubic resize."""
    pixels = np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.asarray(Image.fromarray(pixels).resize((side, side), Image.Resampling.BICUBIC))


def to_x1(source: str, rgb: np.ndarray) -> np.ndarray:
    """The 512x512 x1 image; raises ValueError for a size App. B.1 does not cover."""
    height, width = rgb.shape[:2]
    if source in CROPPED_SOURCES:
        if min(height, width) < X1_SIDE:
            # Upscaling would add a degradation the listing did not choose: skip instead.
            raise ValueError(f"{width}x{height} is smaller than {X1_SIDE} on a side")
        return centre_crop(rgb, X1_SIDE, axes=(0, 1))
    if (height, width) != (LIVE_SIDE, LIVE_SIDE):
        raise ValueError(f"{width}x{height}, expected {LIVE_SIDE}x{LIVE_SIDE}")
    return resize_bicubic(rgb, X1_SIDE)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listed_ids(fix_koniq_id: bool) -> list[tuple[str, str, str, str]]:
    """(source, degradation, id to look up, id as printed) for every id of the listings."""
    rows = []
    for source in SOURCES:
        for degradation in DEGRADATIONS:
            for printed in DIVERSEPHOTOS_IDS[source][degradation]:
                lookup = printed
                if printed == MALFORMED_KONIQ_ID and fix_koniq_id:
                    lookup = MALFORMED_KONIQ_ID_CANDIDATE
                rows.append((source, degradation, lookup, printed))
    return rows


def build_diversephotos(
    roots: Mapping[str, Path | None], out: Path, *, fix_koniq_id: bool = False
) -> BuildResult:
    """Write OUT/x1 and OUT/x4 and the manifest; images already in OUT are kept (resumable)."""
    indexes = {s: index_images(Path(r)) for s, r in roots.items() if r is not None}
    result = BuildResult(fix_koniq_id=fix_koniq_id)
    for source, degradation, image_id, printed in listed_ids(fix_koniq_id):
        if printed == MALFORMED_KONIQ_ID and not fix_koniq_id:
            reason = (
                f"malformed id in the paper (printed {printed!r}); probably "
                f"{MALFORMED_KONIQ_ID_CANDIDATE!r}: pass --fix-koniq-id to use that"
            )
        elif source not in indexes:
            reason = f"no {source} folder given"
        elif image_id not in indexes[source]:
            reason = f"missing: no image file named {image_id}.* under {roots[source]}"
        else:
            src = pick_largest(indexes[source][image_id])
            built = _build_one(src, out, source, degradation, image_id, printed, result)
            if isinstance(built, BuiltImage):
                result.images.append(built)
                continue
            reason = built
        result.problems.append(Problem(image_id, source, degradation, reason))
    write_manifest(result, out)
    return result


def _build_one(
    src: Path,
    out: Path,
    source: str,
    degradation: str,
    image_id: str,
    printed: str,
    result: BuildResult,
) -> BuiltImage | str:
    """Write one image's x1 and x4 files unless both exist; the reason it cannot, otherwise."""
    name = f"{source}_{image_id}.png"
    x1_rel, x4_rel = (f"{scale}/{degradation}/{name}" for scale in ("x1", "x4"))
    x1_path, x4_path = out / x1_rel, out / x4_rel
    if not (x1_path.is_file() and x4_path.is_file()):
        try:
            x1 = to_x1(source, read_image(src).rgb)
            write_image(x1_path, x1)
            write_image(x4_path, centre_crop(x1, X4_SIDE, axes=(0, 1)))
        except ValueError as exc:  # ImageError included: unreadable input or failed write
            return f"not usable: {src}: {getattr(exc, 'reason', exc)}"
        result.written += 1
    return BuiltImage(
        id=image_id,
        source=source,
        degradation=degradation,
        input=str(src),
        x1=x1_rel,
        x4=x4_rel,
        sha256_x1=sha256_of(x1_path),
        sha256_x4=sha256_of(x4_path),
        printed_id=printed,
    )


def write_manifest(result: BuildResult, out: Path) -> None:
    """OUT/manifest.json (images, problems by name, counts) and OUT/manifest.csv (images)."""
    manifest = {
        "dataset": "DiversePhotos (arXiv 2506.05599, App. B.1)",
        "complete": result.complete,
        "malformed_koniq_id": {
            "printed": MALFORMED_KONIQ_ID,
            "candidate": MALFORMED_KONIQ_ID_CANDIDATE,
            "candidate_used": result.fix_koniq_id,
        },
        "counts": result.counts(),
        "problems": [asdict(p) for p in result.problems],
        "images": [asdict(im) for im in result.images],
    }
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / MANIFEST_NAME) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    text = io.StringIO()
    columns = [f.name for f in BuiltImage.__dataclass_fields__.values()]
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(im) for im in result.images)
    with atomic_path(out / CSV_NAME) as tmp:
        tmp.write_text(text.getvalue(), encoding="utf-8")
