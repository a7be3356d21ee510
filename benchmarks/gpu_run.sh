#!/usr/bin/env bash
# The one GPU run (H100/H200, no network): install the carried wheels, show the card, run benchmarks/gpu.py.
# From the repo root, with .whl carried:   bash benchmarks/gpu_run.sh
# Writes $OUT/log.txt, $OUT/gpu.json, $OUT/nvidia-smi.txt. Whole run ~7 minutes (gpu.py stops starting variants at
# 400 s; `timeout` is the last resort). Wheels: trl, datasets, dill, multiprocess, liger-kernel (see docs/gpu.md).
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  PIP="python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site"
  $PIP .whl/*.whl || for w in .whl/*.whl; do $PIP "$w" || echo "WARNING: $w did not install; gpu.py falls back"; done
else
  echo "WARNING: no .whl folder carried; running with what the machine has"
fi
export PYTHONPATH=/tmp/site:$PWD
export EM_KIT_CACHE=/tmp/em-kit-cache HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt"
python3 -c "import pyarrow, fsspec; print('pyarrow', pyarrow.__version__, 'fsspec', fsspec.__version__)" 2>&1 | tail -1
python3 -c "import trl, datasets, liger_kernel; print('trl', trl.__version__, 'datasets', datasets.__version__, 'liger ok')" 2>&1 | tail -1
set -o pipefail
timeout 460 python3 benchmarks/gpu.py --budget-s 400 "$@" 2>&1 | tee "$OUT/log.txt"
echo "exit status $?"
