"""Batched candidates, the fast search and the auto entry point, on the tiny random model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from unires.search.auto import AUTO_METHODS, auto_weights
from unires.search.batched import restore_candidates
from unires.search.fast import fast_search, grid_evaluations
from unires.search.grid import grid_search, weights_key

SETS = [
    {"dn": -0.2, "downlq": 1.2},
    {"md": 0.6, "dn": -0.2, "downlq": 0.6},
    {"sr": 1.0},
    {"br": 0.4, "dd": 0.6},
    {"dn": 0.2, "downlq": 0.8},
    {"md": 1.0},
]


def _lq(h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g)


def make_tasks_distinct(pipe, strength=500.0):
    """The random tiny model's tasks barely differ; add a per-task constant (from the prompt
    embedding) to its output so every weight set gives a clearly different trajectory."""

    def hook(module, args, kwargs, out):
        ctx = kwargs["encoder_hidden_states"]
        out.sample.add_(strength * ctx.float().mean(dim=(1, 2)).reshape(-1, 1, 1, 1))
        return out

    pipe.unet.register_forward_hook(hook, with_kwargs=True)
    return pipe


class CloseTo:
    """Synthetic Q with a known optimum: the closer to ``target``, the better."""

    name, higher_is_better = "close", True

    def __init__(self, target):
        self.target = target

    def quality(self, images):
        t = self.target
        if images.shape[-2:] != t.shape[-2:]:  # a centre-cropped proxy: compare the centre
            h, w = images.shape[-2:]
            y, x = (t.shape[-2] - h) // 2, (t.shape[-1] - w) // 2
            t = t[..., y : y + h, x : x + w]
        return -((images - t) ** 2).mean(dim=(1, 2, 3))


def test_batched_candidates_equal_one_at_a_time(tiny_pipe, count_rows):
    lq = _lq(50, 70)  # padded inside, cropped back
    counter = count_rows(tiny_pipe.unet)
    images, evaluations = restore_candidates(tiny_pipe, lq, SETS, steps=3, seed=5)
    # First step shared (once per task), then one evaluation per non-zero weight per step.
    tasks = {k for w in SETS for k in w}
    assert evaluations == len(tasks) + 2 * sum(len(w) for w in SETS)
    assert counter.rows == evaluations
    assert images.shape == (len(SETS), 3, 50, 70)
    for weights, image in zip(SETS, images, strict=True):
        one = tiny_pipe.restore_tensor(lq, weights, steps=3, seed=5)
        assert torch.allclose(image[None], one, atol=2e-5), weights


def test_grid_search_uses_batches_and_counts(tiny_pipe, tmp_path, count_rows):
    lq = _lq()
    target = tiny_pipe.restore_tensor(lq, SETS[3], steps=2, seed=0)
    counter = count_rows(tiny_pipe.unet)
    table = tmp_path / "t.csv"
    res = grid_search(tiny_pipe, lq, SETS, CloseTo(target), steps=2, seed=0, table_path=table)
    assert weights_key(res.best_weights) == weights_key(SETS[3])
    assert res.best_score == pytest.approx(0.0, abs=1e-9)
    assert torch.allclose(res.best_image, target, atol=2e-5)
    assert res.evaluations == counter.rows == 6 + sum(len(w) for w in SETS)
    again = grid_search(tiny_pipe, lq, SETS, CloseTo(target), steps=2, seed=0, table_path=table)
    assert again.computed == 0 and weights_key(again.best_weights) == weights_key(SETS[3])


@pytest.mark.parametrize(("steps", "proxy_side"), [(1, None), (3, None), (2, 32)])
def test_fast_search_finds_known_optimum_and_counts_honestly(
    tiny_pipe, steps, proxy_side, count_rows
):
    from unires.weights import search_grid

    lq = _lq(64, 64)
    grid = search_grid(0.0, 1.0, 0.5)  # 21 candidates over the six tasks
    best = {"md": 0.5, "dn": 0.5}
    make_tasks_distinct(tiny_pipe)
    target = tiny_pipe.restore_tensor(lq, best, steps=steps, seed=1)
    counter = count_rows(tiny_pipe.unet)
    seen = []
    survivors = 8 if steps == 3 else 4  # steps == 3: halved once, 8 -> 4
    res = fast_search(
        tiny_pipe,
        lq,
        CloseTo(target),
        grid,
        steps=steps,
        seed=1,
        survivors=survivors,
        proxy_side=proxy_side,
        progress=lambda f, m: seen.append(f),
    )
    if proxy_side is None:  # a centre crop's edges differ more than the weight sets do
        assert weights_key(res.best_weights) == weights_key(best)
        assert torch.allclose(res.best_image, target, atol=2e-5)
    assert res.best_image.shape == lq.shape
    # Claimed evaluations are the UNet's real rows.
    assert res.evaluations == counter.rows
    finalists = sum(len([v for v in r.weights.values() if v]) for r in res.rows)
    if steps == 1:
        assert res.evaluations == 6
    else:
        # Six tasks along the shared trajectory at every step, then the finalists' own tasks.
        assert res.evaluations >= 6 * steps + (steps - 1) * finalists
        # Halving: fewer than every survivor's tasks at every later step.
        assert res.evaluations < 6 * steps + (steps - 1) * 2 * survivors
    assert res.evaluations < grid_evaluations(grid, steps)
    assert res.computed == len(grid) and seen[-1] == 1.0 and seen == sorted(seen)


def test_fast_equals_grid_with_one_step(tiny_pipe):
    """One step: the proxy is the exact restoration, so fast search = grid search."""
    from unires.weights import search_grid

    lq = _lq(64, 64, seed=3)
    grid = search_grid(0.0, 1.0, 0.5, ("md", "dn", "downlq"))
    metric = CloseTo(torch.full((1, 3, 64, 64), 0.5))  # a Q with no planted answer
    full = grid_search(tiny_pipe, lq, grid, metric, steps=1, seed=0)
    fast = fast_search(tiny_pipe, lq, metric, grid, steps=1, seed=0, proxy_side=None)
    assert weights_key(fast.best_weights) == weights_key(full.best_weights)
    assert fast.best_score == pytest.approx(full.best_score, rel=1e-4)
    assert fast.evaluations == 3


def _training_log(tmp_path, n=6):
    """A fake search log: blurry images -> one optimum, noisy images -> another."""
    from unires.utils import atomic_write_text

    rng = np.random.default_rng(0)
    folder = tmp_path / "log"
    folder.mkdir()
    for i in range(n):
        base = rng.random((24, 24, 3))
        img = np.kron(base, np.ones((8, 8, 1)))  # smooth
        noisy = i % 2 == 1
        if noisy:
            img = np.clip(img + rng.normal(0, 0.2, img.shape), 0, 1)
        path = folder / f"img{i}.png"
        Image.fromarray((img * 255).astype(np.uint8)).save(path)
        best = {"dn": 1.0} if noisy else {"dd": 0.6, "downlq": 0.4}
        record = {"input": str(path), "best_weights": best, "best_score": 0.0}
        atomic_write_text(folder / f"img{i}.json", json.dumps(record))
    return folder


def test_predictor_round_trip_and_valid_weights(tmp_path):
    pytest.importorskip("sklearn")
    from unires.search.predictor import WeightPredictor, image_features, train_from_search_log
    from unires.weights import validate_weights

    predictor, used = train_from_search_log(_training_log(tmp_path), n_estimators=10)
    assert used == 6
    path = predictor.save(tmp_path / "p.joblib")
    loaded = WeightPredictor.load(path)
    lq = _lq(96, 96, seed=9)
    assert np.allclose(loaded.predict_raw(lq), predictor.predict_raw(lq))
    weights = loaded.predict(lq)
    assert validate_weights(weights) == weights  # sums to 1
    assert all(-0.2 - 1e-9 <= v <= 1.2 + 1e-9 for v in weights.values())
    assert sum(v < 0 for v in weights.values()) <= 1
    assert np.isfinite(image_features(lq)).all()
    noisy = torch.from_numpy(np.array(Image.open(tmp_path / "log" / "img1.png"))).float()
    assert loaded.predict(noisy.permute(2, 0, 1)[None] / 255) == {"dn": 1.0}


def test_predictor_without_sklearn_is_one_clear_line(monkeypatch):
    import builtins

    from unires.search import predictor

    real = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        predictor.fit_predictor(np.zeros((2, 13)), [{"dn": 1.0}, {"md": 1.0}])


def test_auto_weights_methods(tiny_pipe):
    lq = _lq(64, 64)
    metric = CloseTo(tiny_pipe.restore_tensor(lq, SETS[1], steps=1, seed=0))
    res = auto_weights(tiny_pipe, lq, "frequent", metric=metric, steps=1, sets=SETS)
    assert weights_key(res.weights) == weights_key(SETS[1])
    assert res.image.shape == lq.shape and res.evaluations == 6  # six tasks, shared step
    avg = auto_weights(tiny_pipe, lq, "average", metric=metric, steps=2)
    assert avg.evaluations == 12 and avg.image is not None
    with pytest.raises(ValueError, match="predictor"):
        auto_weights(tiny_pipe, lq, "predict", metric=metric, steps=1)
    with pytest.raises(ValueError, match="unknown method"):
        auto_weights(tiny_pipe, lq, "magic", metric=metric)
    assert AUTO_METHODS == ("fast", "grid", "frequent", "predict", "average")


def test_auto_weights_searches_a_crop_of_large_images(tiny_pipe, monkeypatch):
    from unires.search import auto

    class MeanNearHalf:
        name, higher_is_better = "mean", True

        def quality(self, images):
            return -(images.mean(dim=(1, 2, 3)) - 0.5).abs()

    monkeypatch.setattr(auto, "SEARCH_MAX_SIDE", 64)
    lq = _lq(64, 128)
    metric = MeanNearHalf()
    fractions = []
    res = auto_weights(
        tiny_pipe,
        lq,
        "frequent",
        metric=metric,
        steps=1,
        sets=SETS[:2],
        progress=lambda f, m: fractions.append(f),
    )
    assert res.image.shape == lq.shape  # the whole image, restored with the chosen weights
    full = tiny_pipe.restore_tensor(lq, res.weights, steps=1, seed=0)
    assert torch.allclose(res.image, full, atol=1e-6)
    # Search on the crop: 3 tasks (md, dn, downlq) in one shared step; one full restoration.
    assert res.evaluations == 3 + len(res.weights)
    assert fractions[-1] == 1.0


def test_auto_x4_scores_the_input_at_output_size(tiny_pipe):
    # NIQE needs >= 96 x 192 pixels: a 64 x 64 input only qualifies once upscaled x4, which is
    # also the size its restorations are scored at.
    from unires.metrics.nr import NIQE

    lq = torch.rand(1, 3, 64, 64)
    res = auto_weights(tiny_pipe, lq, "average", metric=NIQE(), steps=1, scale=4)
    assert res.image.shape[-2:] == (256, 256)
    assert math.isfinite(res.q_lq)


def test_auto_weights_takes_what_the_pipeline_takes(tiny_pipe):
    """PIL image, uint8 or float H x W x 3 array, 3 x H x W or 1 x 3 x H x W tensor: as
    ``UniResPipeline.__call__``; all give the same choice and image."""
    lq = _lq(64, 64)
    arr = (lq[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    exact = torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255
    metric = CloseTo(tiny_pipe.restore_tensor(exact, SETS[1], steps=1, seed=0))
    inputs = [Image.fromarray(arr), arr, arr / 255.0, exact[0], exact]
    results = [
        auto_weights(tiny_pipe, x, "frequent", metric=metric, steps=1, sets=SETS) for x in inputs
    ]
    for res in results:
        assert weights_key(res.weights) == weights_key(SETS[1])
        assert torch.allclose(res.image, results[-1].image, atol=1e-5)
    assert results[0].to_pil().size == (64, 64)
    with pytest.raises(ValueError, match="H x W x 3"):
        auto_weights(tiny_pipe, arr[..., 0], "average", metric=metric)


def test_auto_fast_on_a_small_image_scores_niqe_on_what_there_is(tiny_pipe):
    """128 x 128 is under NIQE's two 96x96 blocks: scored with 64x64 blocks, said in one
    line; NIQE shown as NIQE (positive, lower is better); progress advances within it."""
    fractions, messages = [], []

    def progress(f, m):
        fractions.append(f)
        messages.append(m)

    res = auto_weights(tiny_pipe, _lq(128, 128), "fast", steps=2, progress=progress)
    assert res.note and "64x64 blocks" in res.note and res.note in messages
    assert res.metric == "niqe" and res.direction == "lower is better"
    assert res.score > 0 and res.q_lq > 0 and res.method == "fast"
    assert res.image.shape == (1, 3, 128, 128)
    assert len(set(fractions)) > 10 and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("scored" in m and "sets" in m for m in messages)


def test_auto_on_an_image_too_small_for_niqe_falls_back_to_the_average(tiny_pipe):
    res = auto_weights(tiny_pipe, _lq(24, 40), "fast", steps=1)
    assert res.method == "average" and "too small for NIQE" in res.note
    assert res.image.shape == (1, 3, 24, 40) and math.isnan(res.score)


def test_grid_and_frequent_report_progress_within_the_image(tiny_pipe):
    """Each chunk of candidates advances the bar (a disabled tqdm bar used to keep it at 0)."""
    from unires.weights import search_grid

    fractions, messages = [], []
    lq = _lq(64, 64)
    metric = CloseTo(tiny_pipe.restore_tensor(lq, SETS[1], steps=1, seed=0))
    sets = search_grid()[:100]
    auto_weights(
        tiny_pipe,
        lq,
        "frequent",
        metric=metric,
        steps=1,
        sets=sets,
        progress=lambda f, m: (fractions.append(f), messages.append(m)),
    )
    inside = [f for f in fractions if 0 < f < 1]
    assert len(set(inside)) >= 3 and fractions == sorted(fractions)
    assert "scored 100/100 sets" in messages
