#!/usr/bin/env bash
# Hand-run GPU check for a lent CUDA machine (never part of CI). Run from the repo root with:
#   .gpu/cifar10/{train,test}.npz  a CIFAR-10 subset (train) and the test set (npz: images, labels, classes)
#   .whl/*.whl                     mlxtend and imagecorruptions-imaug wheels if the machine lacks them
# It runs: the CUDA parity tests, the augmentation throughput benchmark on CUDA (its per-sample
# torchvision baseline measured in the same run), a 3-epoch WRN-28-4 run (benchmarks/gpu_wrn.yaml)
# with full evaluation, and one arm of the quick grid through the pipeline's stage commands on CUDA.
set -uo pipefail
OUT=${OUT:-/tmp/softbench_gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
log() { echo "=== $* ($(date -u +%H:%M:%S))"; }
log "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision, platform; print('python', platform.python_version(), 'torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name())"
log "CUDA parity tests"
python3 -m pytest -q -p no:cacheprovider tests/test_batch_trivial.py::test_cuda_matches_cpu tests/test_ssim.py::test_ssim_cuda_matches_cpu 2>&1 | tail -3
log "augmentation throughput (CUDA vs torchvision per-sample on CPU)"
mkdir -p ../shared/data/cifar10 && cp -n .gpu/cifar10/test.npz ../shared/data/cifar10/test.npz
python3 benchmarks/augment_throughput.py --device cuda --repeats 7
log "WRN-28-4, 3 epochs on $(python3 -c "import numpy as np; print(len(np.load('.gpu/cifar10/train.npz')['labels']))") CIFAR-10 images"
python3 -m harness.cli prepare --dataset cifar10 --source .gpu/cifar10 >/dev/null
python3 -m harness.cli train --config benchmarks/gpu_wrn.yaml --seed 0 --out "$OUT/wrn" --no-progress
cat "$OUT/wrn/epochs.csv"
python3 - "$OUT/wrn" <<'PY'
import json, sys
d = json.load(open(f"{sys.argv[1]}/metrics.json")); p = json.load(open(f"{sys.argv[1]}/provenance.json"))
print({r["metric"]: round(r["value"], 4) for r in d["rows"] if r["corruption"] is None}, "eval_s", round(d["eval_time_s"], 1),
      "device", p["device"], "precision", p["precision"])
PY
log "quick grid, one arm through the stage commands on CUDA"
for st in prepare corruptions; do python3 -m harness.cli stage $st --no-progress || exit 1; done
time python3 -m harness.cli stage train --arm ta_soft_chance --seed 0 --no-progress
time python3 -m harness.cli stage evaluate --arm ta_soft_chance --no-progress 2>&1 | tail -2
python3 -c "import json; print(json.load(open('runs/train/ta_soft_chance/s0/provenance.json'))['device'])"
log "done"
