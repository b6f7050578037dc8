"""No-reference metrics: NIQE against the reference figures, PIQE, the pyiqa wrapper, the factory.

Reference NIQE figures (pyiqa's ``niqe`` with the shipped pristine model, scikit-image's
astronaut, /work/shared/metrics/README.md): about 3.1 clean, 10.1 with Gaussian noise sigma 25
(0-255 scale), 8.4 blurred. A Gaussian blur of sigma 2.8 reproduces the last one.
"""

import math
import sys

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage import data

from unires.metrics import NIQE, PIQE, PyIQAMetric, QualityMetric, get_metric
from unires.metrics.nr import _gaussian_window, _matlab_bicubic_halve, _niqe_pristine_model

BLUR_SIGMA = 2.8  # pixels; gives NIQE ~8.4 on astronaut like the reference "blurred" figure


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """0-255 H x W x 3 -> 1 x 3 x H x W in [0, 1], quantised to 8 bits like a saved image."""
    image = np.clip(np.round(image), 0, 255) / 255.0
    return torch.from_numpy(image).permute(2, 0, 1)[None].float()


@pytest.fixture(scope="module")
def astronaut() -> dict[str, torch.Tensor]:
    image = data.astronaut().astype(np.float64)
    rng = np.random.default_rng(0)
    return {
        "clean": _to_tensor(image),
        "noise10": _to_tensor(image + rng.normal(0, 10, image.shape)),
        "noise25": _to_tensor(image + rng.normal(0, 25, image.shape)),
        "blur": _to_tensor(gaussian_filter(image, (BLUR_SIGMA, BLUR_SIGMA, 0))),
    }


@pytest.fixture(scope="module")
def niqe_scores(astronaut) -> dict[str, float]:
    batch = torch.cat(list(astronaut.values()))
    return dict(zip(astronaut, NIQE().score(batch).tolist(), strict=True))


def test_niqe_clean_astronaut_matches_reference(niqe_scores):
    assert niqe_scores["clean"] == pytest.approx(3.1, abs=0.3)


def test_niqe_noisy_astronaut_matches_reference(niqe_scores):
    assert niqe_scores["noise25"] == pytest.approx(10.1, abs=0.8)


def test_niqe_blurred_astronaut_matches_reference_and_is_worse(niqe_scores):
    assert niqe_scores["blur"] > niqe_scores["clean"] + 3
    assert niqe_scores["blur"] == pytest.approx(8.4, abs=0.8)


def test_niqe_basicsr_luma_option_agrees_and_unknown_color_space_is_rejected(astronaut):
    # basicsr scores BT.601 Y (16-235) rather than YIQ's Y: same reference figure, not the same value.
    ycbcr = NIQE(color_space="ycbcr").score(astronaut["clean"]).item()
    assert ycbcr == pytest.approx(3.1, abs=0.3)
    assert ycbcr != NIQE().score(astronaut["clean"]).item()
    with pytest.raises(ValueError, match="unknown color space"):
        NIQE(color_space="lab")


def test_niqe_is_deterministic_and_batch_equals_one_by_one(astronaut, niqe_scores):
    metric = NIQE()
    one_by_one = [metric.score(image).item() for image in astronaut.values()]
    assert one_by_one == pytest.approx(list(niqe_scores.values()), abs=1e-5)
    assert metric.score(astronaut["clean"]).item() == one_by_one[0]


def test_niqe_quality_is_higher_for_less_noise(astronaut):
    metric = get_metric("niqe")
    batch = torch.cat([astronaut["clean"], astronaut["noise10"], astronaut["noise25"]])
    quality = metric.quality(batch)
    assert quality[0] > quality[1] > quality[2]
    assert torch.equal(quality, -metric.score(batch))


def test_matlab_bicubic_halve_matches_imresize_contributions():
    # MATLAB imresize.m for scale 0.5: kernel width 4 / scale, weights scale * cubic(scale * d),
    # out-of-range indices mirrored with the edge repeated.
    def cubic(d):
        d = np.abs(d)
        near = 1.5 * d**3 - 2.5 * d**2 + 1
        far = -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2
        return np.where(d <= 1, near, np.where(d <= 2, far, 0.0))

    def resize_matrix(n_in: int) -> np.ndarray:
        scale, width = 0.5, 8.0
        centre = np.arange(1, n_in // 2 + 1) / scale + 0.5 * (1 - 1 / scale)
        index = np.floor(centre - width / 2)[:, None] + np.arange(width + 2)[None]
        weights = scale * cubic(scale * (centre[:, None] - index))
        weights /= weights.sum(1, keepdims=True)
        mirror = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])
        index = mirror[np.mod(index - 1, 2 * n_in).astype(int)]
        matrix = np.zeros((n_in // 2, n_in))
        np.add.at(matrix, (np.arange(n_in // 2)[:, None], index), weights)
        return matrix

    image = np.random.default_rng(1).uniform(0, 255, (20, 14))
    expected = resize_matrix(20) @ image @ resize_matrix(14).T
    halved = _matlab_bicubic_halve(torch.from_numpy(image)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(halved, expected, atol=1e-10)


def test_niqe_pristine_model_is_shipped_with_its_window():
    mu, cov, window = _niqe_pristine_model()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    np.testing.assert_allclose(cov, cov.T)
    # The shipped window is MATLAB fspecial('gaussian', 7, 7/6), as computefeature.m uses.
    np.testing.assert_allclose(window, _gaussian_window(7, 7 / 6).numpy(), atol=1e-8)


def test_niqe_flat_image_scores_infinite_and_small_image_is_rejected():
    flat = torch.full((1, 3, 192, 192), 0.5)
    assert NIQE().score(flat).item() == math.inf
    with pytest.raises(ValueError, match="at least two 96x96 blocks"):
        NIQE().score(torch.rand(1, 3, 96, 120))


def test_piqe_ranks_clean_better_than_noisy(astronaut):
    scores = PIQE().score(torch.cat([astronaut["clean"], astronaut["noise25"]]))
    assert 0 <= scores[0] < scores[1] <= 100
    assert scores[1] - scores[0] > 10


def test_piqe_handles_odd_sizes_batches_and_flat_images(astronaut):
    crop = astronaut["clean"][..., 5:250, 3:203]  # neither side a multiple of 16
    flat = torch.full_like(crop, 0.3)
    batch = PIQE().score(torch.cat([crop, flat]))
    assert batch[0] == pytest.approx(PIQE().score(crop).item(), abs=1e-4)
    assert batch[1].item() == 100.0  # a uniform image has no active block: worst score


@pytest.mark.parametrize(
    ("name", "display"), [("musiq", "MUSIQ"), ("clipiqa", "CLIP-IQA"), ("maniqa", "MANIQA")]
)
def test_pyiqa_metric_without_pyiqa_gives_one_line_install_hint(monkeypatch, name, display):
    monkeypatch.setitem(
        sys.modules, "pyiqa", None
    )  # import pyiqa -> ImportError, even if installed
    with pytest.raises(ImportError) as caught:
        get_metric(name)
    message = str(caught.value)
    assert message.startswith(f"{display} needs the optional pyiqa package and its weights")
    assert "pip install 'unires[iqa]'" in message
    assert "\n" not in message
    with pytest.raises(ImportError):
        PyIQAMetric(name)


def test_get_metric_defaults_to_niqe_and_rejects_unknown_names():
    default = get_metric()
    assert isinstance(default, NIQE) and isinstance(default, QualityMetric)
    assert default.name == "niqe" and default.higher_is_better is False
    assert isinstance(get_metric("PIQE"), PIQE)
    with pytest.raises(ValueError, match="unknown quality metric"):
        get_metric("brisque")


def test_niqe_fits_small_images_with_smaller_blocks_and_says_so():
    from unires.metrics.nr import fit_to_size

    niqe = NIQE()
    assert fit_to_size(niqe, 96, 192) == (niqe, None)
    small, note = fit_to_size(niqe, 128, 128)
    assert small.block_size == 64 and "128x128 px is under NIQE's two 96x96 blocks" in note
    assert math.isfinite(small.score(torch.rand(1, 3, 128, 128)).item())
    assert fit_to_size(niqe, 48, 64)[0].block_size == 32
    with pytest.raises(ValueError, match="too small for NIQE"):
        fit_to_size(niqe, 24, 40)
    piqe = PIQE()
    assert fit_to_size(piqe, 24, 40) == (piqe, None)


def test_scores_are_shown_in_the_metrics_own_convention():
    from unires.metrics.nr import direction, from_quality, metric_info, metric_label

    assert from_quality(NIQE(), -6.5) == 6.5 and direction(NIQE()) == "lower is better"
    assert from_quality(metric_info("musiq"), 61.0) == 61.0
    assert direction(metric_info("musiq")) == "higher is better"
    assert metric_label(metric_info("clipiqa")) == "CLIP-IQA" and metric_label(NIQE()) == "NIQE"
