#!/usr/bin/env bash
# Run THERE, as ONE device call (issue #8), after tools/gpu/prepare.sh here:
#   device run, carry [".whl", ".gpu-data"], timeout_s 600, command:
#     bash tools/gpu/train_on_device.sh 7 unires/weights/embedded
# 1. trains CONFIG (default configs/embedded-v2.yaml, the NAFNet backbone) for MINUTES
#    (default 7) with bf16 and a GPU-sized batch, from INIT (a model folder of the same
#    backbone, e.g. the shipped unires/weights/embedded) if given, in two phases:
#    a. the config's schedule (constant lr) for (1 - ANNEAL) of MINUTES;
#    b. from a's EMA model, a cosine from ANNEAL_LR to zero for the rest, its step count
#       sized from a's measured rate (every shipped CPU run gained most in such an anneal:
#       docs/TRAINING.md, runs 3-5); ANNEAL=0 skips it;
# 2. exports the EMA model in fp16 and packs it as $OUT/model.tar.part-* (<= 15 MiB each);
# 3. times the embedded and the SD-2-sized UNet with `unires bench speed` (512x512, 6 tasks,
#    50 steps, bf16, batched vs one task per call).
# Logs and JSON results land in $OUT too. Unpack here: cat model.tar.part-* | tar x -C DIR
set -uo pipefail
MINUTES=${1:-7}
INIT=${2:-}
BATCH=${BATCH:-64}
DEVICE=${DEVICE:-cuda}          # DEVICE=cpu PRECISION=no BATCH=2 WORKERS=1 SPEED=0: the CPU dry run
PRECISION=${PRECISION:-bf16}
WORKERS=${WORKERS:-14}
OUT=${OUT:-/tmp/unires-out}
CONFIG=${CONFIG:-configs/embedded-v2.yaml}
ANNEAL=${ANNEAL:-0.4}           # share of MINUTES spent annealing
ANNEAL_LR=${ANNEAL_LR:-4e-4}
CROP=${CROP:-}                  # training crop; default the config's (the data cost is the same at 64 and 128)
WIDTH=${WIDTH:-}                # with INIT: widen it to this width first (grow.width: Net2WiderNet, 2x per doubling)
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/device.txt" 2>&1
rm -rf /tmp/run /tmp/run-anneal /tmp/model-fp16
# write_config OUT_YAML RUN_DIR MINUTES INIT [ANNEAL_STEPS]: CONFIG sized for this device.
write_config() {
python3 - "$@" "$BATCH" "$PRECISION" "$WORKERS" "$CONFIG" "$ANNEAL_LR" "$CROP" "$WIDTH" <<'PY'
import json
import sys

import yaml

out, run_dir, minutes, init, anneal_steps = sys.argv[1:6]
batch, precision, workers, config, anneal_lr, crop, width = sys.argv[6:13]
cfg = yaml.safe_load(open(config))
batch, config_batch = int(batch), cfg["batch_size"]
if init:  # continue only from a model of the backbone this config trains
    network = json.load(open(f"{init}/model_index.json"))["unet"][1]
    wanted = {"nafnet": "ConditionalNAFNet"}.get(cfg["model"].get("backbone", "unet"))
    if wanted and network != wanted:
        print(f"INIT {init} is a {network}, {config} trains a {wanted}: from scratch")
        init = ""
cfg.update(
    output_dir=run_dir, batch_size=batch, mixed_precision=precision, threads=0,
    max_minutes=float(minutes), checkpoint_every=500, validate_every=1000, steps=200000,
)
cfg["data"].update(hq_dirs=[".gpu-data/train-hq"], val_dir=".gpu-data/val-hq", workers=int(workers))
if crop:
    cfg["data"]["crop"] = int(crop)
# The same noise in the gradient per sample: scale the learning rate with
# sqrt(batch / the config's batch), from scratch; a fine-tune (INIT) keeps the config's.
if not init:
    cfg["optim"]["lr"] = cfg["optim"]["lr"] * (batch / config_batch) ** 0.5
if init:
    cfg["init_from"] = init
    if width and not anneal_steps:  # phase a widens INIT; phase b continues the wide model
        cfg["grow"] = {"width": int(width)}
if anneal_steps:  # phase b: a half cosine to zero in a fixed number of steps
    cfg["optim"].update(lr=float(anneal_lr), schedule="cosine", warmup=min(100, int(anneal_steps) // 10))
    cfg.update(steps=int(anneal_steps), max_minutes=float(minutes) + 1)
yaml.safe_dump(cfg, open(out, "w"))
print(out, cfg["optim"], cfg["batch_size"], cfg["steps"])
PY
}
explore=$(python3 -c "print($MINUTES * (1 - $ANNEAL))")
anneal=$(python3 -c "print($MINUTES * $ANNEAL)")
write_config /tmp/gpu.yaml /tmp/run "$explore" "$INIT" "" || exit 1
cp /tmp/gpu.yaml "$OUT/train-config.yaml"
start=$(date +%s)
# A crashed trainer can hang on its data workers: `timeout` ends it.
timeout "$(python3 -c "print(int($explore * 60 + 120))")" \
  python3 -m unires.cli train --config /tmp/gpu.yaml > "$OUT/train.log" 2>&1
echo "train rc $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
cp /tmp/run/log.jsonl "$OUT/" 2>/dev/null; cp /tmp/run/val/metrics.jsonl "$OUT/val.jsonl" 2>/dev/null
final=/tmp/run/final
if python3 -c "import sys; sys.exit(not $ANNEAL > 0)"; then
  # Steps for phase b: phase a's rate (start-up included, so an underestimate), 90% of it.
  steps=$(python3 - "$start" /tmp/run/log.jsonl "$anneal" <<'PY'
import json, sys, time
start, log, minutes = float(sys.argv[1]), sys.argv[2], float(sys.argv[3])
try:  # no log row yet (a slow CPU dry run): the smallest anneal
    last = [json.loads(line) for line in open(log)][-1]["step"]
except (OSError, IndexError):
    last = 0
print(max(50, int(0.9 * last / (time.time() - start) * minutes * 60)))
PY
)
  write_config /tmp/gpu-anneal.yaml /tmp/run-anneal "$anneal" /tmp/run/final "$steps" || exit 1
  cp /tmp/gpu-anneal.yaml "$OUT/anneal-config.yaml"
  start=$(date +%s)
  timeout "$(python3 -c "print(int($anneal * 60 + 120))")" \
    python3 -m unires.cli train --config /tmp/gpu-anneal.yaml > "$OUT/anneal.log" 2>&1
  echo "anneal rc $? ($steps steps) after $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
  cp /tmp/run-anneal/log.jsonl "$OUT/anneal-log.jsonl" 2>/dev/null
  cp /tmp/run-anneal/val/metrics.jsonl "$OUT/anneal-val.jsonl" 2>/dev/null
  final=/tmp/run-anneal/final
fi
python3 - "$final" <<'PY'
import sys
import torch
from unires.model.bundle import load_model, save_model
save_model(load_model(sys.argv[1]), "/tmp/model-fp16", dtype=torch.float16)
PY
tar cf - -C /tmp/model-fp16 . | split -b 15M - "$OUT/model.tar.part-"
# The trained model itself, then the SD-2-sized UNet (random weights; speed only).
# SPEED=0 skips this (the CPU dry run: these timings mean nothing on a CPU).
[ "${SPEED:-1}" = 0 ] && exit 0
for m in "$final" sd2; do
  python3 -m unires.cli bench speed --model $m --size 512 --tasks 6 --steps 50 --timed-steps 10 \
    --device "$DEVICE" --dtype bf16 --json "$OUT/speed-$(basename $m).json" >> "$OUT/summary.txt" 2>&1
done
tail -n 5 "$OUT/summary.txt"
