"""A learned shortcut for Eq. 3-4: predict the weights from offline image features.

The paper's random forest on image features (Sec. 4.2) reached MUSIQ 61.91 against 68.22 for
the full search; here it is one cheap option among the selectors. Features are classical
(no network): NIQE and natural-scene statistics of the MSCN coefficients, blur (variance of
the Laplacian), noise (MAD of the finest diagonal Haar band), and frequency-band energies.
Trained from the JSON records ``unires search`` writes; predictions are snapped to the
nearest point of the search grid, so they are always valid weights (sum 1, in range).

scikit-learn is optional (``pip install scikit-learn``) and imported only when used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..utils import atomic_path
from ..weights import GridSpec, Weights, active_weights

FORMAT_VERSION = 1
FEATURE_NAMES = (
    "niqe",
    "mscn_var",
    "mscn_kurtosis",
    "pair_h_corr",
    "log_laplacian_var",
    "noise_sigma",
    "band_low",
    "band_mid",
    "band_high",
    "band_top",
    "contrast",
    "brightness",
    "saturation",
)
SKLEARN_MISSING = "the weight predictor needs scikit-learn: pip install scikit-learn"


def _sklearn_forest():
    try:
        from sklearn.ensemble import RandomForestRegressor
    except ImportError:
        raise ImportError(SKLEARN_MISSING) from None
    return RandomForestRegressor


def _joblib():
    try:
        import joblib
    except ImportError:
        raise ImportError(SKLEARN_MISSING) from None
    return joblib


# ---- features ------------------------------------------------------------------------------
def _gray(image: torch.Tensor) -> torch.Tensor:
    """1 x 3 x H x W in [0, 1] -> H x W luma in float64."""
    rgb = image[0].double().clamp(0, 1)
    w = torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype).reshape(3, 1, 1)
    return (rgb * w).sum(0) if rgb.shape[0] == 3 else rgb[0]


def _blur(x: torch.Tensor, sigma: float = 7 / 6) -> torch.Tensor:
    r = 3
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=x.dtype) ** 2) / (2 * sigma**2))
    k = k / k.sum()
    x = F.pad(x[None, None], (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.reshape(1, 1, 1, -1))
    return F.conv2d(x, k.reshape(1, 1, -1, 1))[0, 0]


def _mscn_features(gray: torch.Tensor) -> list[float]:
    """Natural-scene statistics (BRISQUE-style): variance and kurtosis of the MSCN
    coefficients, and the correlation of horizontal neighbours."""
    mu = _blur(gray)
    sigma = (_blur(gray * gray) - mu * mu).clamp_min(0).sqrt()
    mscn = (gray - mu) / (sigma + 1 / 255)
    var = float(mscn.var())
    kurt = float(((mscn - mscn.mean()) ** 4).mean() / max(var**2, 1e-12))
    a, b = mscn[:, :-1].reshape(-1), mscn[:, 1:].reshape(-1)
    corr = float(torch.corrcoef(torch.stack([a, b]))[0, 1]) if a.numel() > 1 else 0.0
    return [var, kurt, corr if math.isfinite(corr) else 0.0]


def _laplacian_variance(gray: torch.Tensor) -> float:
    """Blur estimate: sharp images have a wide spread of Laplacian responses."""
    k = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=gray.dtype)
    lap = F.conv2d(F.pad(gray[None, None], (1, 1, 1, 1), mode="replicate"), k[None, None])
    return math.log10(float(lap.var()) * 255**2 + 1e-6)


def _noise_sigma(gray: torch.Tensor) -> float:
    """Donoho's estimate: median absolute finest diagonal Haar coefficient / 0.6745."""
    h, w = gray.shape[0] // 2 * 2, gray.shape[1] // 2 * 2
    g = gray[:h, :w]
    hh = (g[0::2, 0::2] - g[0::2, 1::2] - g[1::2, 0::2] + g[1::2, 1::2]) / 2
    return float(hh.abs().median()) / 0.6745 * 255


def _band_energies(gray: torch.Tensor) -> list[float]:
    """Share of the (mean-removed) spectrum's energy in four radial frequency bands."""
    spec = torch.fft.fftshift(torch.fft.fft2(gray - gray.mean())).abs() ** 2
    h, w = gray.shape
    fy = torch.linspace(-1, 1, h, dtype=gray.dtype)[:, None]
    fx = torch.linspace(-1, 1, w, dtype=gray.dtype)[None, :]
    radius = (fy**2 + fx**2).sqrt()
    total = float(spec.sum()) or 1.0
    edges = (0.0, 0.125, 0.25, 0.5, 2.0)
    return [
        float(spec[(radius >= lo) & (radius < hi)].sum()) / total
        for lo, hi in zip(edges, edges[1:], strict=False)
    ]


def _niqe(image: torch.Tensor) -> float:
    from ..metrics.nr import NIQE

    try:
        value = float(NIQE().score(image)[0])
    except ValueError:  # smaller than two NIQE blocks
        return -1.0
    return value if math.isfinite(value) else -1.0


def image_features(image: torch.Tensor) -> np.ndarray:
    """The ``FEATURE_NAMES`` of one image, 1 x 3 x H x W in [0, 1]."""
    image = image.float().clamp(0, 1)
    gray = _gray(image)
    rgb = image[0].double()
    saturation = float((rgb.max(0).values - rgb.min(0).values).mean())
    values = [
        _niqe(image),
        *_mscn_features(gray),
        _laplacian_variance(gray),
        _noise_sigma(gray),
        *_band_energies(gray),
        float(gray.std()),
        float(gray.mean()),
        saturation,
    ]
    return np.asarray(values, dtype=np.float64)


# ---- the model -----------------------------------------------------------------------------
@dataclass
class WeightPredictor:
    """A fitted forest (image features -> one weight per grid task) and its grid."""

    forest: object
    grid: GridSpec = field(default_factory=GridSpec)
    feature_names: tuple[str, ...] = FEATURE_NAMES

    def predict_raw(self, image: torch.Tensor) -> np.ndarray:
        """The forest's raw output for one image (1, 3, H, W) in [0, 1]: one weight per grid task."""
        return np.asarray(self.forest.predict(image_features(image)[None]))[0]

    def predict(self, image: torch.Tensor) -> Weights:
        """The grid point nearest to the forest's output: valid weights by construction."""
        return project_to_grid(self.predict_raw(image), self.grid)

    def save(self, path: str | Path) -> Path:
        """joblib file, written atomically (a killed save leaves the old file)."""
        payload = {
            "format": FORMAT_VERSION,
            "forest": self.forest,
            "grid": vars(self.grid),
            "feature_names": list(self.feature_names),
        }
        with atomic_path(path, suffix=".joblib") as tmp:
            _joblib().dump(payload, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> WeightPredictor:
        """A predictor saved by ``save``.

        Raises:
            ValueError: not a predictor file of this format, or one trained on other features.
            ImportError: joblib (the ``learn`` extra) is not installed.
        """
        payload = _joblib().load(path)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: not a UniRes weight predictor (format {FORMAT_VERSION})")
        if tuple(payload["feature_names"]) != FEATURE_NAMES:
            raise ValueError(f"{path}: trained on other image features; train it again")
        grid = payload["grid"]
        grid = GridSpec(**{**grid, "tasks": tuple(grid["tasks"])})
        return cls(payload["forest"], grid, tuple(payload["feature_names"]))


def project_to_grid(vector: Sequence[float], grid: GridSpec) -> Weights:
    """Nearest grid point (Euclidean) to a raw weight vector over ``grid.tasks``."""
    points = grid.points()
    matrix = np.array([[p[t] for t in grid.tasks] for p in points])
    best = int(np.argmin(((matrix - np.asarray(vector)[None]) ** 2).sum(axis=1)))
    return active_weights(points[best])


def fit_predictor(
    features: np.ndarray,
    targets: Sequence[Mapping[str, float]],
    *,
    grid: GridSpec | None = None,
    n_estimators: int = 200,
    seed: int = 0,
) -> WeightPredictor:
    """Fit the forest on (n, len(FEATURE_NAMES)) features and the n searched optima.

    Raises:
        ValueError: fewer than two pairs, or features and targets differ in number.
    """
    grid = grid or GridSpec()
    if len(features) != len(targets) or len(targets) < 2:
        raise ValueError(f"need >= 2 (image, weights) pairs, got {len(targets)}")
    y = np.array([[float(w.get(t, 0.0)) for t in grid.tasks] for w in targets])
    forest = _sklearn_forest()(n_estimators=n_estimators, random_state=seed, min_samples_leaf=1)
    forest.fit(np.asarray(features, dtype=np.float64), y)
    return WeightPredictor(forest, grid)


def train_from_search_log(
    folder: str | Path, *, n_estimators: int = 200, seed: int = 0
) -> tuple[WeightPredictor, int]:
    """Fit on the records of ``unires search`` in ``folder`` (their ``input`` images are
    read again for the features). Returns the predictor and the number of images used.

    Raises:
        ValueError: fewer than two records with readable inputs.
    """
    from .. import io
    from .log import read_search_log

    features, targets = [], []
    for record in read_search_log(folder):
        path = Path(record.get("input", ""))
        if not path.is_file():
            continue  # the input moved: the record cannot teach the features
        image = io.to_tensor(io.read_image(path).rgb)
        features.append(image_features(image))
        targets.append(record["best_weights"])
    if len(targets) < 2:
        raise ValueError(f"{folder}: need at least 2 search records with readable inputs")
    return fit_predictor(np.stack(features), targets, n_estimators=n_estimators, seed=seed), len(
        targets
    )
