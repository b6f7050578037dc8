#!/usr/bin/env bash
# Run HERE (the development machine) before a device call: puts what the GPU machine lacks
# into git-ignored folders that the call carries (the device tool sends at most 64 MiB).
#   .whl/       diffusers wheel (the GPU image has torch, accelerate, safetensors, opencv, ...)
#   .gpu-data/  training photos (research use only; never committed), largest dropped first
#               until the folder fits DATA_MIB, plus the validation photos
# The device tool sends at most 64 MiB in all: the tracked files (the shipped weights are most
# of them), the wheel and the photos. DATA_MIB defaults to what is left of that, less 1 MiB.
# Usage: tools/gpu/prepare.sh [TRAIN_DIR] [VAL_DIR] [DATA_MIB]
set -euo pipefail
cd "$(dirname "$0")/../.."
TRAIN=${1:-../shared/data/train-hq}
VAL=${2:-../shared/data/val-hq}
PY=${PYTHON:-.venv/bin/python}
LIMIT_MIB=64
grep -qx '/.gpu-data/' .gitignore || echo '/.gpu-data/' >> .gitignore
VERSION=$($PY -c "import diffusers; print(diffusers.__version__)")
mkdir -p .whl
ls .whl/diffusers-"$VERSION"-*.whl >/dev/null 2>&1 || $PY -m pip download -q --no-deps \
  --only-binary=:all: --python-version 3.12 --implementation cp -d .whl "diffusers==$VERSION"
# Tracked and untracked-not-ignored files travel too.
tree_bytes=$( (git ls-files -z; git ls-files -z --others --exclude-standard) \
  | du -cb --files0-from=- | tail -1 | cut -f1)
whl_bytes=$(du -sb .whl | cut -f1)
DATA_MIB=${3:-$(( (LIMIT_MIB * 1048576 - tree_bytes - whl_bytes) / 1048576 - 1 ))}
if (( DATA_MIB < 5 )); then
  echo "prepare.sh: only ${DATA_MIB} MiB left for photos under the ${LIMIT_MIB} MiB limit" >&2
  exit 1
fi
rm -rf .gpu-data && mkdir -p .gpu-data/train-hq .gpu-data/val-hq
cp "$VAL"/* .gpu-data/val-hq/
budget=$((DATA_MIB * 1024 * 1024 - $(du -sb .gpu-data/val-hq | cut -f1)))
total=0; kept=0; dropped=0
# Smallest first: the most photos for the budget; the list travels and is recorded.
while read -r size path; do
  if (( total + size <= budget )); then
    cp "$path" .gpu-data/train-hq/; total=$((total + size)); kept=$((kept + 1))
  else
    dropped=$((dropped + 1))
  fi
done < <(find "$TRAIN" -maxdepth 1 -type f -printf '%s %p\n' | sort -n)
ls .gpu-data/train-hq > .gpu-data/train-files.txt
echo "prepared: $kept training photos ($((total / 1048576)) MiB, $dropped left out), $(ls .gpu-data/val-hq | wc -l) validation photos, wheel $(ls .whl)"
data_bytes=$(du -sb .gpu-data | cut -f1)
all_mib=$(( (tree_bytes + whl_bytes + data_bytes) / 1048576 ))
echo "travels: tree $((tree_bytes / 1048576)) MiB + .whl $((whl_bytes / 1048576)) MiB + .gpu-data $((data_bytes / 1048576)) MiB = ${all_mib} MiB (limit ${LIMIT_MIB})"
if (( tree_bytes + whl_bytes + data_bytes > LIMIT_MIB * 1048576 )); then
  echo "prepare.sh: over the ${LIMIT_MIB} MiB the device tool sends: pass a smaller DATA_MIB" >&2
  exit 1
fi
