#!/usr/bin/env bash
# Hand-run GPU check for a lent CUDA machine (never part of CI): prints every figure, within 8 minutes.
#
# 1. On the development machine (repo root), once:  bash benchmarks/gpu_check.sh --stage-data
#    writes .gpu/cifar10/{train,test}.npz from ../shared/data/cifar10: 800 training images per class
#    (seeded, 8,000 in all, the subset of the earlier H100 figures) and the 10,000 test images (~50 MB,
#    untracked, so it travels with the working tree to the device machine). Optional: .whl/*.whl (mlxtend,
#    imagecorruptions-imaug wheels) when the machine lacks them.
# 2. On the GPU machine (repo root):  bash benchmarks/gpu_check.sh      (OUT=/tmp/softbench_gpu by default;
#    BUDGET_S=450 seconds for all sections, so that the whole fits 8 minutes with the machine's start)
#
# Sections, most important first; each runs under `timeout` within what is left of BUDGET_S and is skipped
# (saying so) when too little is left:
#   a. device and versions
#   b. benchmarks/gpu_epoch.py: WRN-28-4 at batch 128 and 512, eager vs compiled (reduce-overhead, then
#      default and max-autotune as time allows), trainer and bare images/s, fraction of dense bf16 peak
#   c. end to end: WRN-28-4 (benchmarks/gpu_wrn.yaml, compile: auto) trained 3 epochs on the 8,000 images,
#      then evaluated (10,000 clean test images, 19 corruptions x 5 severities on 2,000 of them, per-op
#      accuracy), re-evaluated from the corruption cache, and EXTRAPOLATED to one 300-epoch run on 50,000
#      images with the full 10,000 x 19 x 5 evaluation
#   c2. benchmarks/eval_resident.py: that run evaluated 3 times in one process, the corrupted set streamed from
#      the cache per evaluation vs resident on the GPU (the per-worker reuse of the local / ray executors)
#   d. the CUDA parity tests (batched TrivialAugment, SSIM)
#   e. augmentation throughput (CUDA vs torchvision per-sample on the CPU)
#   f. one quick-grid arm through the pipeline's stage commands on CUDA
#   g. benchmarks/gpu_packing.py: 1, 2, 4 WRN-28-4 runs packed on the GPU, aggregate images/s vs one run
set -uo pipefail

if [[ "${1:-}" == "--stage-data" ]]; then
    python3 - <<'PY' || exit 1
import numpy as np, pathlib
src, out = pathlib.Path("../shared/data/cifar10"), pathlib.Path(".gpu/cifar10")
out.mkdir(parents=True, exist_ok=True)
with np.load(src / "train.npz") as z:
    images, labels, classes = z["images"], z["labels"], z["classes"]
rng = np.random.default_rng(0)
idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), 800, replace=False) for c in range(10)]))
np.savez_compressed(out / "train.npz", images=images[idx], labels=labels[idx], classes=classes)
with np.load(src / "test.npz") as z:
    np.savez_compressed(out / "test.npz", images=z["images"], labels=z["labels"], classes=z["classes"])
print("staged", out, "train", len(idx), "test", 10000)
PY
    exit 0
fi

OUT=${OUT:-/tmp/softbench_gpu}
BUDGET_S=${BUDGET_S:-450}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
START=$(date +%s)
log() { echo "=== $* ($(date -u +%H:%M:%S), $(( $(date +%s) - START )) s of ${BUDGET_S} s)"; }
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }
# within SECONDS_WANTED MIN_SECONDS CMD...: run CMD under timeout min(wanted, left); skip it below MIN_SECONDS
within() {
    local want=$1 min=$2; shift 2
    local l; l=$(left)
    (( l < min )) && { echo "SKIPPED ($l s left, needs $min s): $*"; return 0; }
    (( want > l )) && want=$l
    timeout --signal=INT --kill-after=10 "$want" "$@"
    local rc=$?
    (( rc == 124 || rc == 130 )) && echo "TIMED OUT after $want s: $*"
    return $rc
}

log "a. device"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
python3 -c "import torch, torchvision, platform; print('python', platform.python_version(), 'torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name())"
[[ -f .gpu/cifar10/train.npz ]] || { echo "no .gpu/cifar10/train.npz: run 'bash benchmarks/gpu_check.sh --stage-data' first"; exit 1; }
mkdir -p ../shared/data/cifar10 && cp -n .gpu/cifar10/test.npz ../shared/data/cifar10/test.npz
python3 -m harness.cli prepare --dataset cifar10 --source .gpu/cifar10 >/dev/null || exit 1

log "b. gpu_epoch.py: WRN-28-4, batch 128 and 512, eager vs compiled (no new configuration after 150 s)"
within 240 60 python3 benchmarks/gpu_epoch.py --device cuda --model wrn28_4 --n-per-class 800 --epochs 3 \
    --steps 30 --batch-sizes 128 512 --modes eager reduce-overhead default max-autotune --time-budget 150 \
    --json "$OUT/gpu_epoch.json"

log "c. end to end: WRN-28-4, 3 epochs on $(python3 -c "import numpy as np; print(len(np.load('.gpu/cifar10/train.npz')['labels']))") images + evaluation (19 corruptions x 5 severities on 2,000 test images)"
t0=$(date +%s.%N)
within 170 60 python3 -m harness.cli train --config benchmarks/gpu_wrn.yaml --seed 0 --out "$OUT/wrn" --no-progress
t1=$(date +%s.%N)
within 60 20 python3 -m harness.cli evaluate "$OUT/wrn" --no-progress
t2=$(date +%s.%N)
[[ -f "$OUT/wrn/metrics.json" ]] && cat "$OUT/wrn/epochs.csv" && python3 - "$OUT/wrn" "$t0" "$t1" "$t2" <<'PY'
import json, sys
import pandas as pd
run, t0, t1, t2 = sys.argv[1], *map(float, sys.argv[2:])
m = json.load(open(f"{run}/metrics.json")); p = json.load(open(f"{run}/provenance.json"))
log = pd.read_csv(f"{run}/epochs.csv")
print({r["metric"]: round(r["value"], 4) for r in m["rows"] if r["corruption"] is None})
print("device", p["device"], "precision", p["precision"], "compile", p["compile"], "drop_last", p["drop_last"],
      "fused_sgd", p["fused_sgd"], "steps/epoch", p["steps_per_epoch"])
steady, first, n = log["time_s"].iloc[1:].median(), log["time_s"].iloc[0], p["num_train"]
train_wall, reeval_wall, reeval = t1 - t0, t2 - t1, m["eval_time_s"]  # metrics.json: the re-evaluation's
print(f"measured: train+evaluate wall {train_wall:.1f} s (process start, {len(log)} epochs, first evaluation incl. "
      f"generating the corruptions once per dataset); steady epoch {steady:.3f} s on {n} images "
      f"({n / steady:,.0f} img/s); first epoch {first:.1f} s (compilation); re-evaluation from the cache "
      f"{reeval:.1f} s ({reeval_wall:.1f} s with process start)")
per_epoch_full = steady * 50000 / n
train_est = (first - steady) + 300 * per_epoch_full
est = train_est + 5 * reeval
print(f"EXTRAPOLATED (not measured): one 300-epoch WRN-28-4 run on 50,000 CIFAR images = first-epoch overhead "
      f"{first - steady:.0f} s + 300 x {per_epoch_full:.2f} s = training {train_est / 60:.1f} min (goal <= 6 min; "
      f"was 24 min), + evaluation on 10,000 x 19 x 5 (5 x the cached re-evaluation, an upper estimate) "
      f"{5 * reeval:.0f} s = {est:.0f} s = {est / 60:.1f} min in all")
PY

log "c2. three evaluations of that run in one process: corrupted set streamed per run vs resident on the GPU"
[[ -f "$OUT/wrn/model.pt" ]] && within 75 30 python3 benchmarks/eval_resident.py --run "$OUT/wrn" --runs 3 \
    --json "$OUT/eval_resident.json"

log "d. CUDA parity tests"
within 60 20 python3 -m pytest -q -p no:cacheprovider tests/test_batch_trivial.py::test_cuda_matches_cpu tests/test_ssim.py::test_ssim_cuda_matches_cpu 2>&1 | tail -3

log "e. augmentation throughput (CUDA vs torchvision per-sample on CPU)"
within 45 20 python3 benchmarks/augment_throughput.py --device cuda --repeats 3

log "f. quick grid, one arm through the stage commands on CUDA"
for st in prepare corruptions; do within 40 10 python3 -m harness.cli stage $st --no-progress || break; done
time within 40 15 python3 -m harness.cli stage train --arm ta_soft_chance --seed 0 --no-progress
time within 30 10 python3 -m harness.cli stage evaluate --arm ta_soft_chance --seed 0 --no-progress 2>&1 | tail -2
python3 -c "import json; print(json.load(open('runs/train/ta_soft_chance/s0/provenance.json'))['device'])" 2>/dev/null
log "g. several WRN-28-4 runs packed on one GPU (eager, 3 epochs each): runs_per_gpu 1, 2, 4"
within 120 45 python3 benchmarks/gpu_packing.py --config benchmarks/gpu_wrn.yaml --data-source "" \
    --packings 1 2 4 --epochs 3 --compile false --json "$OUT/gpu_packing.json"
log "done"
