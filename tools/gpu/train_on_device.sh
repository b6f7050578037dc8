#!/usr/bin/env bash
# Run THERE, as ONE device call (issue #8), after tools/gpu/prepare.sh here:
#   device run, carry [".whl", ".gpu-data"], timeout_s 600, command:
#     bash tools/gpu/train_on_device.sh 7
# 1. trains CONFIG (default configs/embedded-v2.yaml, the NAFNet backbone) for MINUTES
#    (default 7) with bf16 and a GPU-sized batch, from INIT (a model folder of the same
#    backbone, e.g. the shipped unires/weights/embedded) if given;
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
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/device.txt" 2>&1
rm -rf /tmp/run /tmp/model-fp16
python3 - "$MINUTES" "$INIT" "$BATCH" "$PRECISION" "$WORKERS" "$CONFIG" <<'PY'
import sys
import yaml
import json
cfg = yaml.safe_load(open(sys.argv[6]))
minutes, init, batch = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
precision, workers = sys.argv[4], int(sys.argv[5])
config_batch = cfg["batch_size"]
if init:  # continue only from a model of the backbone this config trains
    network = json.load(open(f"{init}/model_index.json"))["unet"][1]
    wanted = {"nafnet": "ConditionalNAFNet"}.get(cfg["model"].get("backbone", "unet"))
    if wanted and network != wanted:
        print(f"INIT {init} is a {network}, {sys.argv[6]} trains a {wanted}: from scratch")
        init = ""
cfg.update(
    output_dir="/tmp/run", batch_size=batch, mixed_precision=precision, threads=0,
    max_minutes=minutes, checkpoint_every=500, validate_every=1000, steps=200000,
)
cfg["data"].update(hq_dirs=[".gpu-data/train-hq"], val_dir=".gpu-data/val-hq", workers=workers)
# The same noise in the gradient per sample: scale the learning rate with
# sqrt(batch / the config's batch), from scratch; a fine-tune (INIT) keeps the config's.
if not init:
    cfg["optim"]["lr"] = cfg["optim"]["lr"] * (batch / config_batch) ** 0.5
if init:
    cfg["init_from"] = init
yaml.safe_dump(cfg, open("/tmp/gpu.yaml", "w"))
print(cfg["optim"], cfg["batch_size"])
PY
cp /tmp/gpu.yaml "$OUT/train-config.yaml"
start=$(date +%s)
python3 -m unires.cli train --config /tmp/gpu.yaml > "$OUT/train.log" 2>&1
echo "train rc $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
cp /tmp/run/log.jsonl "$OUT/" 2>/dev/null; cp /tmp/run/val/metrics.jsonl "$OUT/val.jsonl" 2>/dev/null
python3 - <<'PY'
import torch
from unires.model.bundle import load_model, save_model
save_model(load_model("/tmp/run/final"), "/tmp/model-fp16", dtype=torch.float16)
PY
tar cf - -C /tmp/model-fp16 . | split -b 15M - "$OUT/model.tar.part-"
# The trained model itself, then the SD-2-sized UNet (random weights; speed only).
# SPEED=0 skips this (the CPU dry run: these timings mean nothing on a CPU).
[ "${SPEED:-1}" = 0 ] && exit 0
for m in /tmp/run/final sd2; do
  python3 -m unires.cli bench speed --model $m --size 512 --tasks 6 --steps 50 --timed-steps 10 \
    --device "$DEVICE" --dtype bf16 --json "$OUT/speed-$(basename $m).json" >> "$OUT/summary.txt" 2>&1
done
tail -n 5 "$OUT/summary.txt"
