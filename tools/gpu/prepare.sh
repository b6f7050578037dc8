#!/usr/bin/env bash
# Run HERE (the development machine) before a device call: puts what the GPU machine lacks
# into git-ignored folders that the call carries (the device tool sends at most 64 MiB).
#   .whl/       diffusers wheel (the GPU image has torch, accelerate, safetensors, opencv, ...)
#   .gpu-data/  training photos (research use only; never committed), largest dropped first
#               until the folder fits DATA_MIB, plus the validation photos
# Usage: tools/gpu/prepare.sh [TRAIN_DIR] [VAL_DIR] [DATA_MIB]
set -euo pipefail
cd "$(dirname "$0")/../.."
TRAIN=${1:-../shared/data/train-hq}
VAL=${2:-../shared/data/val-hq}
DATA_MIB=${3:-50}
PY=${PYTHON:-.venv/bin/python}
grep -qx '/.gpu-data/' .gitignore || echo '/.gpu-data/' >> .gitignore
VERSION=$($PY -c "import diffusers; print(diffusers.__version__)")
mkdir -p .whl
ls .whl/diffusers-"$VERSION"-*.whl >/dev/null 2>&1 || $PY -m pip download -q --no-deps \
  --only-binary=:all: --python-version 3.12 --implementation cp -d .whl "diffusers==$VERSION"
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
tree_mib=$(( $(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1) / 1048576 ))
echo "travels: tracked files ${tree_mib} MiB + .whl $(du -sm .whl | cut -f1) MiB + .gpu-data $(du -sm .gpu-data | cut -f1) MiB (limit 64)"
