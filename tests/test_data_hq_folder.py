"""The on-the-fly multi-task training set: task frequencies, prompts, determinism, loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from unires.data.hq_folder import HQFolderDataset, MultiTaskDataset, from_task_probs
from unires.data.loader import collate, make_loader
from unires.data.procedural import procedural_photo
from unires.data.task_sampling import augment_quality_prompt, sample_task, validate_task_probs
from unires.tasks import PROMPT_NEGATIVE, PROMPT_POSITIVE, TRAINING_TASK_PROBS, get_task


def _chi_square_p(counts: dict[str, int], probs: dict[str, float]) -> float:
    n = sum(counts.values())
    observed = [counts.get(k, 0) for k in probs]
    expected = [n * p for p in probs.values()]
    return float(stats.chisquare(observed, expected).pvalue)


@pytest.mark.parametrize(
    "probs", [TRAINING_TASK_PROBS, {"sr": 0.1, "md": 0.6, "dd": 0.0, "dn": 0.3}]
)
def test_task_sampler_matches_the_configured_probabilities(probs):
    gen = torch.Generator().manual_seed(1234)
    counts: dict[str, int] = {}
    for _ in range(20000):
        t = sample_task(gen, probs)
        counts[t] = counts.get(t, 0) + 1
    nonzero = {k: p for k, p in probs.items() if p > 0}
    assert set(counts) == set(nonzero)
    assert _chi_square_p(counts, nonzero) > 0.001
    # The test has power: the same counts reject a uniform choice.
    uniform = {k: 1 / len(nonzero) for k in nonzero}
    assert _chi_square_p(counts, uniform) < 1e-6


def test_task_probs_are_validated_and_parsed():
    assert TRAINING_TASK_PROBS == {"sr": 0.32, "md": 0.28, "dd": 0.18, "dn": 0.22}
    assert from_task_probs("sr=0.5, MD=0.5") == {"sr": 0.5, "md": 0.5}
    # Weights are normalised (a validation set may give every task weight 1).
    assert validate_task_probs({"sr": 1.0, "dn": 3.0}) == {"sr": 0.25, "dn": 0.75}
    for bad in ({"sr": 0.0}, {"sr": 1.2, "md": -0.2}, {}, {"sr": float("nan"), "md": 1.0}):
        with pytest.raises(ValueError):
            validate_task_probs(bad)
    with pytest.raises(ValueError):
        from_task_probs("xx=1")


def test_quality_prompt_augmentation_rates_and_swap():
    lq, hq = torch.zeros(3, 4, 4), torch.ones(3, 4, 4)
    gen = torch.Generator().manual_seed(0)
    kinds = [augment_quality_prompt(lq, hq, "Denoise", gen)[3] for _ in range(20000)]
    for kind in ("pos", "neg"):
        k = kinds.count(kind)
        assert stats.binomtest(k, len(kinds), 0.01).pvalue > 0.001, (kind, k)
    a, b, prompt, kind = augment_quality_prompt(lq, hq, "Denoise", gen, 0.0, 1.0)
    assert kind == "neg" and prompt == PROMPT_NEGATIVE
    assert torch.equal(a, hq) and torch.equal(b, lq)  # LQ and HQ swapped
    a, b, prompt, kind = augment_quality_prompt(lq, hq, "Denoise", gen, 1.0, 0.0)
    assert kind == "pos" and prompt == PROMPT_POSITIVE and torch.equal(a, lq)


@pytest.fixture()
def photo_dir(tmp_path):
    folder = tmp_path / "DF2K"
    (folder / "DIV2K_train_HR").mkdir(parents=True)
    for i, (h, w) in enumerate([(80, 96), (70, 70), (40, 100)]):  # one smaller than the crop
        arr = (procedural_photo(i, h, w).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / "DIV2K_train_HR" / f"{i:04d}.png")
    return folder


def test_items_have_matching_sizes_prompts_and_params(photo_dir):
    ds = MultiTaskDataset(roots=[str(photo_dir)], crop=64, seed=3)
    assert len(ds) == 3
    seen = set()
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            assert item["lq"].shape == item["hq"].shape == (3, 64, 64)
            assert item["lq"].dtype == torch.float32 and float(item["lq"].min()) >= 0
            assert float(item["lq"].max()) <= 1
            assert item["prompt"] == get_task(item["task"]).prompt
            assert item["params"]["task"] in TRAINING_TASK_PROBS
            seen.add(item["task"])
    assert len(seen) >= 2


def test_blind_samples_get_the_empty_prompt_and_a_complex_lq(photo_dir):
    # "br" (this project's addition): BR samples of their own, degraded by a complex mixture.
    ds = MultiTaskDataset(
        roots=[str(photo_dir)], crop=48, seed=2, task_probs={"br": 1.0}, prompt_augmentation=False
    )
    for i in range(len(ds)):
        item = ds[i]
        assert item["prompt"] == "" and item["task"] == "br"
        assert item["params"]["recipe"] == "complex" and len(item["params"]["stages"]) >= 2
        assert not torch.equal(item["lq"], item["hq"])


def test_a_task_without_a_training_recipe_is_refused_up_front(photo_dir):
    with pytest.raises(ValueError, match="'downlq' has no training recipe"):
        MultiTaskDataset(roots=[str(photo_dir)], crop=48, task_probs={"sr": 1.0, "downlq": 1.0})


def test_items_depend_only_on_seed_epoch_and_index(photo_dir):
    ds = MultiTaskDataset(roots=[str(photo_dir)], crop=48, seed=7)
    a = ds[1]
    b = MultiTaskDataset(roots=[str(photo_dir)], crop=48, seed=7)[1]
    assert torch.equal(a["lq"], b["lq"]) and a["params"] == b["params"]
    ds.set_epoch(1)
    assert not torch.equal(ds[1]["hq"], a["hq"]) or not torch.equal(ds[1]["lq"], a["lq"])
    other = MultiTaskDataset(roots=[str(photo_dir)], crop=48, seed=8)[1]
    assert not torch.equal(other["lq"], a["lq"])


def test_loader_with_workers_gives_the_same_batches(photo_dir):
    ds = MultiTaskDataset(roots=[str(photo_dir)], crop=32, seed=1, task_probs={"dn": 1.0})
    serial = next(iter(make_loader(ds, 3, workers=0, shuffle=False)))
    parallel = next(iter(make_loader(ds, 3, workers=2, shuffle=False)))
    assert serial["lq"].shape == (3, 3, 32, 32)
    assert torch.equal(serial["lq"], parallel["lq"]) and torch.equal(serial["hq"], parallel["hq"])
    assert serial["params"] == parallel["params"]
    assert isinstance(serial["params"], list) and len(serial["prompt"]) == 3


def test_collate_keeps_params_as_a_list():
    item = {"lq": torch.zeros(3, 8, 8), "hq": torch.ones(3, 8, 8), "prompt": "p", "task": "sr"}
    batch = collate([{**item, "params": {"a": 1}}, {**item, "params": {"b": [2]}}])
    assert batch["lq"].shape == (2, 3, 8, 8) and batch["params"] == [{"a": 1}, {"b": [2]}]


def test_bad_configs_fail_early(tmp_path, photo_dir):
    with pytest.raises(ValueError, match="no images"):
        MultiTaskDataset(roots=[str(tmp_path / "nothing")])
    with pytest.raises(ValueError):
        MultiTaskDataset(roots=[str(photo_dir)], task_probs={"sr": 0.5, "zz": 0.5})


def test_indices_past_the_end_visit_every_image_once_per_pass(photo_dir):
    ds = MultiTaskDataset([photo_dir], crop=32, seed=2, task_probs={"dd": 1.0})
    assert HQFolderDataset is MultiTaskDataset
    passes = [[ds.file_for(i).name for i in range(k * 3, k * 3 + 3)] for k in range(4)]
    assert all(sorted(p) == ["0000.png", "0001.png", "0002.png"] for p in passes)
    assert len({tuple(p) for p in passes}) > 1  # a new order each pass
    far = ds[1000]
    assert far["lq"].shape == (3, 32, 32) and far["task"] == "dd"


def test_forced_task_and_centre_crops_for_validation(photo_dir):
    ds = MultiTaskDataset(
        [photo_dir], crop=32, seed=0, prompt_augmentation=False, random_crop=False
    )
    for task in ("sr", "md", "dd", "dn"):
        item = ds.sample(0, task=task)
        assert item["task"] == task and item["prompt"] == get_task(task).prompt
        assert item["params"]["flip"] is False
    name = ds.file_for(0).name
    h, w = {"0000.png": (80, 96), "0001.png": (70, 70), "0002.png": (40, 100)}[name]
    assert ds.sample(0)["params"]["crop"] == [(max(h, 32) - 32) // 2, (w - 32) // 2, 32]
