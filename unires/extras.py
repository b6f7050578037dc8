"""Optional extras: a command whose extra is not installed fails with one line naming the
``pip install`` that fixes it, never with a traceback."""

from __future__ import annotations

import importlib.util

# extra -> (a module it provides, what it is for): see pyproject.toml.
EXTRAS = {
    "train": ("accelerate", "training"),
    "parallel": ("accelerate", "several processes"),
    "peers": ("cv2", "the OpenCV peers"),
    "learn": ("sklearn", "the weight predictor"),
    "app": ("gradio", "the web app"),
    "demo": ("skimage", "scikit-image's sample photos"),
}


class MissingExtra(ImportError):
    """An optional dependency is missing; the message is one line with the fix."""


def install_hint(extra: str) -> str:
    """The ``pip install`` command that installs ``extra``."""
    return f'pip install -e ".[{extra}]"'


def require(extra: str, what: str | None = None) -> None:
    """Raise ``MissingExtra`` unless ``extra``'s module imports; ``what`` names the feature."""
    module, default = EXTRAS[extra]
    if importlib.util.find_spec(module) is None:
        raise MissingExtra(
            f"{what or default} needs the {extra!r} extra ({module} is not installed): "
            f"{install_hint(extra)}"
        )
