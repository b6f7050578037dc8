"""Image quality metrics: no-reference (``nr``) for the weight search, full-reference (``fr``)."""

from unires.metrics.fr import ms_ssim, psnr, ssim
from unires.metrics.nr import (
    METRIC_NAMES,
    NIQE,
    PIQE,
    PyIQAMetric,
    QualityMetric,
    get_metric,
)

__all__ = [
    "METRIC_NAMES",
    "NIQE",
    "PIQE",
    "PyIQAMetric",
    "QualityMetric",
    "get_metric",
    "ms_ssim",
    "psnr",
    "ssim",
]
