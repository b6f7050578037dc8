"""The multi-task trainer on the tiny config: the loss falls and resume is exact."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unires.config import load_yaml
from unires.data.task_sampling import validate_task_probs
from unires.model.autoencoder import UniResAutoencoder
from unires.tasks import TRAINING_TASK_PROBS
from unires.train.diffusion import TrainConfig, export_from_checkpoint, latest_checkpoint, train

CONFIG = Path(__file__).parents[1] / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    data = root / "hq"
    data.mkdir()
    yy, xx = np.mgrid[0:64, 0:64]
    for i in range(6):  # smooth procedural photos with some texture
        base = np.stack([np.sin(xx / (4 + i) + c) + np.cos(yy / (5 + c)) for c in range(3)], -1)
        img = (base - base.min()) / np.ptp(base) * 200 + rng.normal(0, 3, base.shape) + 20
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(data / f"{i}.png")
    torch.manual_seed(0)
    ae = UniResAutoencoder(
        latent_channels=4, channels=(16, 32), encoder_blocks=(1, 1), decoder_blocks=(1, 1)
    )
    ae.save_pretrained(root / "ae")
    cfg = load_yaml(TrainConfig, CONFIG)
    cfg.autoencoder = str(root / "ae")
    cfg.data = dataclasses.replace(cfg.data, hq_dirs=[str(data)])
    return root, cfg


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(out / "final" / "unet" / "diffusion_pytorch_model.safetensors")


def _validation_losses(cfg: TrainConfig, out: Path) -> tuple[float, float]:
    """``validation_loss`` of the trainer's initial weights and of the exported EMA model, on
    8 fixed training samples."""
    from accelerate.utils import set_seed

    from unires.model.bundle import load_model
    from unires.train.diffusion import _initial_components, build_train_dataset, validation_loss

    ds = build_train_dataset(cfg)
    batch = {k: [ds[i][k] for i in range(8)] for k in ("hq", "lq", "prompt")}
    batch["hq"], batch["lq"] = torch.stack(batch["hq"]), torch.stack(batch["lq"])
    set_seed(cfg.seed)  # the trainer's initial weights
    initial = _initial_components(cfg)
    trained = load_model(out / "final", dtype=torch.float32)
    initial.settings = trained.settings  # same residual scale
    before, after = validation_loss(initial, batch), validation_loss(trained, batch)
    assert validation_loss(trained, batch) == after  # deterministic
    return before, after


def test_loss_falls_and_model_exports(tiny_setup):
    root, cfg = tiny_setup
    cfg = dataclasses.replace(cfg, output_dir=str(root / "full"), steps=200)
    out = train(cfg)
    assert len(_losses(out)) == 200
    from unires.pipeline import UniResPipeline

    before, after = _validation_losses(cfg, out)
    assert after < 0.9 * before, (before, after)

    pipe = UniResPipeline.from_pretrained(out / "final", device="cpu", dtype="fp32")
    assert pipe.settings.diffusion_target == "residual"
    assert pipe.settings.residual_scale > 0
    # The condition statistics estimated at the start travel with the model.
    assert len(pipe.settings.condition_mean) == len(pipe.settings.condition_std) == 4
    assert min(pipe.settings.condition_std) > 0
    state = json.loads((latest_checkpoint(out) / "trainer_state.json").read_text())
    assert state["condition_mean"] == pytest.approx(pipe.settings.condition_mean)
    res = pipe.restore_tensor(torch.rand(1, 3, 32, 32), {"dn": 1.0}, steps=2)
    assert res.shape == (1, 3, 32, 32)


def test_nafnet_backbone_trains_saves_and_restores(tiny_setup, tiny_nafnet):
    """The restoration backbone on the tiny config: the loss falls within 30 steps, and the
    exported folder loads as a ``ConditionalNAFNet`` model and restores."""
    from unires.model.nafnet import ConditionalNAFNet
    from unires.pipeline import UniResPipeline

    root, cfg = tiny_setup
    model = dataclasses.replace(cfg.model, backbone="nafnet", nafnet=tiny_nafnet, head=None)
    cfg = dataclasses.replace(cfg, model=model, output_dir=str(root / "nafnet"), steps=30)
    out = train(cfg)
    assert len(_losses(out)) == 30
    index = json.loads((out / "final" / "model_index.json").read_text())
    assert index["unet"] == ["unires", "ConditionalNAFNet"]
    before, after = _validation_losses(cfg, out)
    assert after < 0.95 * before, (before, after)
    pipe = UniResPipeline.from_pretrained(out / "final", device="cpu", dtype="fp32")
    assert isinstance(pipe.unet, ConditionalNAFNet)
    res = pipe.restore_tensor(torch.rand(1, 3, 40, 24), {"dn": 1.0}, steps=2)
    assert res.shape == (1, 3, 40, 24) and torch.isfinite(res).all()


def test_resume_continues_exactly(tiny_setup):
    root, cfg = tiny_setup
    straight = dataclasses.replace(cfg, output_dir=str(root / "straight"), steps=12)
    train(straight)
    interrupted = dataclasses.replace(cfg, output_dir=str(root / "resumed"), steps=12)
    train(interrupted, max_steps=7)  # stops like a SIGTERM would: checkpoint at step 7
    ckpt = latest_checkpoint(Path(interrupted.output_dir))
    assert json.loads((ckpt / "trainer_state.json").read_text())["step"] == 7
    assert not (Path(interrupted.output_dir) / "final").exists()
    train(interrupted, resume=True)
    a, b = _weights(Path(straight.output_dir)), _weights(Path(interrupted.output_dir))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0)
    assert _losses(Path(straight.output_dir)) == pytest.approx(
        _losses(Path(interrupted.output_dir)), abs=1e-6
    )
    exported = export_from_checkpoint(interrupted, Path(root / "exported"))
    assert (exported / "model_index.json").is_file()


def test_time_budget_stops_checkpoints_and_exports(tiny_setup):
    root, cfg = tiny_setup
    timed = dataclasses.replace(cfg, output_dir=str(root / "timed"), steps=500, max_minutes=1e-4)
    out = train(timed)
    step = json.loads((latest_checkpoint(out) / "trainer_state.json").read_text())["step"]
    assert 0 < step < 500
    # The budget's end is the run's end: the EMA model is exported as at the last step.
    assert (out / "final" / "model_index.json").is_file()


@pytest.mark.parametrize("path", sorted(CONFIG.parent.glob("*.yaml")), ids=lambda p: p.stem)
def test_committed_configs_load(path):
    if path.stem == "autoencoder":
        from unires.train.autoencoder import AutoencoderTrainConfig

        assert load_yaml(AutoencoderTrainConfig, path).steps > 0
        return
    cfg = load_yaml(TrainConfig, path)
    assert cfg.steps > 0 and cfg.image_drop == pytest.approx(0.1)
    # Weights, normalised by the dataset; the paper's four tasks keep its proportions (Sec. 4)
    # among themselves, beside any blind-restoration ("br") samples on complex mixtures.
    probs = validate_task_probs(cfg.data.task_probs)
    paper = {t: probs[t] for t in TRAINING_TASK_PROBS if t in probs}
    if len(paper) == len(TRAINING_TASK_PROBS):
        total = sum(paper.values())
        for t, p in TRAINING_TASK_PROBS.items():
            assert paper[t] / total == pytest.approx(p), (path.name, t)
    assert set(probs) <= set(TRAINING_TASK_PROBS) | {"br"}
    if cfg.init_from and cfg.init_from.startswith("unires/weights"):  # the shipped weights
        assert (CONFIG.parents[1] / cfg.init_from / "model_index.json").is_file()


def test_init_from_starts_at_the_given_model_and_keeps_its_statistics(tiny_setup):
    """Fine-tuning a model folder: its weights are the starting point and its data statistics
    (residual scale, condition mean/std) are kept, not estimated again from the new data."""
    from unires.model.bundle import load_model

    root, cfg = tiny_setup
    base = train(dataclasses.replace(cfg, output_dir=str(root / "base"), steps=3)) / "final"
    frozen = dataclasses.replace(cfg.optim, lr=0.0, schedule="constant_with_warmup", warmup=0)
    tuned = train(
        dataclasses.replace(
            cfg,
            init_from=str(base),
            autoencoder=None,
            output_dir=str(root / "tuned"),
            steps=2,
            seed=1,  # another data stream: a new estimate would differ
            optim=frozen,
        )
    )
    a, b = load_model(base), load_model(tuned / "final")
    assert b.settings.residual_scale == a.settings.residual_scale
    assert b.settings.condition_mean == a.settings.condition_mean
    assert b.settings.condition_std == a.settings.condition_std
    for name in ("unet", "prompt_encoder"):
        wa, wb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert wa.keys() == wb.keys()
        for k in wa:  # lr 0: the EMA of unchanged weights is the starting model
            torch.testing.assert_close(wb[k], wa[k], rtol=1e-6, atol=1e-7)


def test_training_degradations_come_from_the_config(tiny_setup, tmp_path):
    from unires.train.diffusion import build_train_dataset

    _, cfg = tiny_setup
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("data:\n  degradation:\n    sr_bicubic_prob: 1.0\n")
    loaded = load_yaml(TrainConfig, cfg_file)
    assert loaded.data.degradation.sr_bicubic_prob == 1.0
    # Other recipe settings keep their published defaults.
    assert loaded.data.degradation.realesrgan.second_blur_prob == pytest.approx(0.8)
    cfg = dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, degradation=loaded.data.degradation)
    )
    ds = build_train_dataset(cfg)
    params = [ds.sample(i, task="sr")["params"] for i in range(4)]
    assert {p["recipe"] for p in params} == {"sr"}  # all plain bicubic


def test_config_typos_fail_loudly(tmp_path):
    from unires.config import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("stepz: 3\n")
    with pytest.raises(ConfigError, match="stepz"):
        load_yaml(TrainConfig, bad)


@pytest.mark.parametrize(
    ("yaml_text", "key", "allowed"),
    [
        ("optim:\n  schedule: cosin\n", "optim.schedule", "constant_with_warmup"),
        ("loss_weighting: energy\n", "loss_weighting", "target_energy"),
        ("mixed_precision: fp32\n", "mixed_precision", "bf16"),
        ("model:\n  backbone: resnet\n", "model.backbone", "nafnet"),
        ("model:\n  prediction_type: x0\n", "model.prediction_type", "v_prediction"),
        ("model:\n  settings:\n    diffusion_target: hq\n", "model.settings.diffusion_target",
         "residual"),
    ],
)  # fmt: skip
def test_bad_enum_value_fails_at_load_in_one_line(tmp_path, yaml_text, key, allowed):
    from unires.config import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml_text)
    with pytest.raises(ConfigError) as e:
        load_yaml(TrainConfig, bad)
    message = str(e.value)
    assert message.startswith(f"{bad}: {key}: ") and allowed in message
    assert len(message.splitlines()) == 1


def test_bad_schedule_is_a_usage_error_of_unires_train(tmp_path, capsys):
    from unires.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  schedule: cosin\n")
    assert main(["train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"unires train: error: {bad}: optim.schedule: 'cosin' is not one of linear, cosine, "
        "cosine_with_restarts, polynomial, constant, constant_with_warmup, piecewise_constant"
    )


def _start_cli_training(cfg, run_dir: Path, checkpoint_every: int, wait_for_steps: int):
    """``python -m unires.train`` on the tiny config in its own process group (1 data worker),
    returned once ``wait_for_steps`` steps are logged: (process, config data, config path,
    command, environment, log path)."""
    import os
    import subprocess
    import sys
    import time

    import yaml

    data = yaml.safe_load(CONFIG.read_text())
    data.update(autoencoder=cfg.autoencoder, output_dir=str(run_dir), steps=100000)
    data["data"].update(hq_dirs=cfg.data.hq_dirs, workers=1)
    data["checkpoint_every"] = checkpoint_every
    config = run_dir.with_name(run_dir.name + ".yaml")
    config.write_text(yaml.safe_dump(data))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "unires.train", "--config", str(config)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=env
    )
    log = run_dir / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (
        not log.exists() or len(log.read_text().splitlines()) < wait_for_steps
    ):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    return proc, data, config, cmd, env, log


def test_sigterm_to_the_process_group_checkpoints_then_exits(tiny_setup, tmp_path):
    """A job scheduler (or pkill) signals the trainer and its data workers together."""
    import os
    import signal

    root, cfg = tiny_setup
    proc, _, _, _, _, log = _start_cli_training(cfg, tmp_path / "run", 100000, 5)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    ckpt = latest_checkpoint(tmp_path / "run")
    assert json.loads((ckpt / "trainer_state.json").read_text())["step"] == steps[-1]


def test_two_process_data_parallel_run_on_cpu_and_resume(tiny_setup, tmp_path):
    """``torchrun --nproc_per_node 2 -m unires.train`` on CPU: one DDP run (gloo), not two
    processes that each think they are the main one, and ``--resume`` continues it."""
    import os
    import subprocess
    import sys

    import yaml

    root, cfg = tiny_setup
    data = yaml.safe_load(CONFIG.read_text())
    data.update(autoencoder=cfg.autoencoder, output_dir=str(tmp_path / "run"), steps=4)
    data["data"].update(hq_dirs=cfg.data.hq_dirs)
    data["checkpoint_every"] = 2
    config = tmp_path / "c.yaml"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("WORLD_SIZE", None)

    def launch(*extra: str) -> None:
        config.write_text(yaml.safe_dump(data))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
        cmd += ["--standalone", "-m", "unires.train", "--config", str(config), *extra]
        proc = subprocess.run(cmd, capture_output=True, env=env, timeout=300)
        err = proc.stderr.decode(errors="replace")
        # Each rank's traceback, not only the launcher's summary at the end.
        ranks = "\n".join(line for line in err.splitlines() if line.startswith("[rank"))
        assert proc.returncode == 0, ranks[-6000:] + "\n" + err[-1500:]

    launch()
    out = tmp_path / "run"
    state = json.loads((latest_checkpoint(out) / "trainer_state.json").read_text())
    # Each step consumed one batch per process, and only the main process logged.
    assert state["step"] == 4 and state["samples_seen"] == 4 * cfg.batch_size * 2
    # The checkpoint moved into place only after both processes wrote their RNG state.
    ckpt = latest_checkpoint(out)
    assert {p.name for p in ckpt.glob("random_states_*.pkl")} == {
        "random_states_0.pkl",
        "random_states_1.pkl",
    }
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [
        1,
        2,
        3,
        4,
    ]
    data["steps"] = 6
    launch("--resume")
    state = json.loads((latest_checkpoint(out) / "trainer_state.json").read_text())
    assert state["step"] == 6 and state["samples_seen"] == 6 * cfg.batch_size * 2
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert (out / "final" / "model_index.json").is_file()


def test_accumulation_bf16_gradient_checkpointing_validation_and_logs(tiny_setup):
    """The options a GPU run turns on, on CPU: 2 micro-batches per step, bf16 autocast,
    gradient checkpointing; validation writes its grid and metrics, TensorBoard its events."""
    root, cfg = tiny_setup
    val = root / "val"
    if not val.exists():
        import shutil

        shutil.copytree(cfg.data.hq_dirs[0], val)
    run = dataclasses.replace(
        cfg,
        output_dir=str(root / "accum"),
        steps=4,
        grad_accum=2,
        mixed_precision="bf16",
        gradient_checkpointing=True,
        validate_every=2,
        data=dataclasses.replace(cfg.data, val_dir=str(val), val_images=2, val_crop=32),
    )
    from accelerate.state import AcceleratorState

    # Earlier tests in this process made an fp32 AcceleratorState: start from a clean one.
    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        out = train(run)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    state = json.loads((latest_checkpoint(out) / "trainer_state.json").read_text())
    assert state["step"] == 4 and state["samples_seen"] == 4 * cfg.batch_size * 2
    losses = _losses(out)
    assert len(losses) == 4 and all(np.isfinite(losses))
    grids = sorted(p.name for p in (out / "val").glob("step*.png"))
    assert grids == ["step0000002.png", "step0000004.png"]
    with Image.open(out / "val" / grids[-1]) as im:  # 2 crops; LQ | BR | 4 tasks | GT
        assert im.size == (7 * 32, 2 * 32)
    rows = [json.loads(x) for x in (out / "val" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert all(np.isfinite(r["val_psnr_matched"]) for r in rows)
    pytest.importorskip("tensorboard")
    assert list(out.rglob("events.out.tfevents.*"))


def test_sigkill_loses_only_the_steps_since_the_last_checkpoint(tiny_setup, tmp_path):
    import os
    import signal
    import subprocess

    import yaml

    root, cfg = tiny_setup
    proc, data, config, cmd, env, log = _start_cli_training(cfg, tmp_path / "run", 3, 8)
    os.killpg(proc.pid, signal.SIGKILL)  # no handler runs: whatever is on disk is all there is
    proc.communicate(timeout=60)
    lines = log.read_text().splitlines()
    try:
        logged = json.loads(lines[-1])["step"]
    except json.JSONDecodeError:  # killed in the middle of writing the last line
        logged = json.loads(lines[-2])["step"] + 1
    ckpt = latest_checkpoint(tmp_path / "run")
    saved = json.loads((ckpt / "trainer_state.json").read_text())["step"]
    assert saved % 3 == 0 and logged - 3 <= saved <= logged
    data["steps"] = saved + 2
    config.write_text(yaml.safe_dump(data))
    done = subprocess.run([*cmd, "--resume"], capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    state = json.loads((latest_checkpoint(tmp_path / "run") / "trainer_state.json").read_text())
    assert state["step"] == saved + 2
    assert (tmp_path / "run" / "final" / "model_index.json").is_file()


def test_grow_deepens_the_init_model_and_keeps_what_it_computes(tiny_setup, tiny_nafnet_dir):
    """``grow:`` with ``init_from``: training starts from the deepened model, whose new blocks
    are the identity (lr 0: the export computes what the given model computed)."""
    from unires.model.bundle import load_model
    from unires.train.diffusion import GrowConfig

    root, cfg = tiny_setup
    frozen = dataclasses.replace(cfg.optim, lr=0.0, schedule="constant_with_warmup", warmup=0)
    grow = dataclasses.replace(cfg, init_from=str(tiny_nafnet_dir), autoencoder=None, steps=2)
    grow = dataclasses.replace(grow, output_dir=str(root / "grown"), optim=frozen)
    out = train(dataclasses.replace(grow, grow=GrowConfig(middle_blocks=3)))
    a, b = load_model(tiny_nafnet_dir).unet, load_model(out / "final").unet
    assert (a.config.middle_blocks, b.config.middle_blocks) == (1, 3)
    a = a.half().float()  # the export's fp16 rounding
    x = torch.randn(1, a.config.in_channels, 16, 16, generator=torch.Generator().manual_seed(0))
    ctx = torch.randn(1, 4, a.config.context_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(b(x, 10, ctx).sample, a(x, 10, ctx).sample)
    with pytest.raises(ValueError, match="init_from"):
        train(dataclasses.replace(cfg, grow=GrowConfig(middle_blocks=3)))


def test_grow_width_doubles_the_init_model_and_keeps_what_it_computes(tiny_setup, tiny_nafnet_dir):
    """``grow.width``: the init model widened (Net2WiderNet) computes what it did (lr 0; up to
    the export's fp16 rounding of the split weights); a width that doubling cannot reach is
    refused."""
    from unires.model.bundle import load_model
    from unires.train.diffusion import GrowConfig

    root, cfg = tiny_setup
    frozen = dataclasses.replace(cfg.optim, lr=0.0, schedule="constant_with_warmup", warmup=0)
    grow = dataclasses.replace(cfg, init_from=str(tiny_nafnet_dir), autoencoder=None, steps=2)
    grow = dataclasses.replace(grow, output_dir=str(root / "wide"), optim=frozen)
    a = load_model(tiny_nafnet_dir).unet
    w = a.config.width
    b = load_model(train(dataclasses.replace(grow, grow=GrowConfig(width=2 * w))) / "final").unet
    assert b.config.width == 2 * w
    x = torch.randn(1, a.config.in_channels, 16, 16, generator=torch.Generator().manual_seed(0))
    ctx = torch.randn(1, 4, a.config.context_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = a(x, 10, ctx).sample
        err = (b(x, 10, ctx).sample - want).abs().max() / want.abs().max()
    assert err < 5e-3
    with pytest.raises(ValueError, match="power of two"):
        train(dataclasses.replace(grow, grow=GrowConfig(width=3 * w)))


def test_a_crash_during_training_exits_instead_of_hanging(tiny_setup, tmp_path):
    """An error in the training loop ends the process with the error (2 data workers, which
    ignore SIGTERM): the first lent-GPU run hung here until its time limit."""
    import subprocess
    import sys

    import yaml

    root, cfg = tiny_setup
    data = yaml.safe_load(CONFIG.read_text())
    data.update(autoencoder=cfg.autoencoder, output_dir=str(tmp_path / "run"), steps=50)
    data["data"].update(hq_dirs=cfg.data.hq_dirs, workers=2)
    config = tmp_path / "crash.yaml"
    config.write_text(yaml.safe_dump(data))
    script = (
        "import sys\n"
        "from unires.config import load_yaml\n"
        "from unires.train import ema\n"
        "from unires.train.diffusion import TrainConfig, train\n"
        "def fail(self):\n"
        "    raise RuntimeError('injected failure')\n"
        "ema.EMA.update = fail\n"
        f"train(load_yaml(TrainConfig, {str(config)!r}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=120, text=True
    )
    assert proc.returncode == 1 and "injected failure" in proc.stderr, proc.stderr[-2000:]
