"""Evaluation of several runs in one worker process: corrupted set streamed from the cache per run vs resident.

Run by hand (never in the tests), from the repository root, on a trained run directory:

    python benchmarks/eval_resident.py --run /tmp/softbench_gpu/wrn --runs 3 [--json OUT]   # GPU (gpu_check.sh)
    python benchmarks/eval_resident.py --run runs/train/baseline/s0 --params params.yaml --runs 4 --threads 1

A worker of the ``local`` / ``ray`` executor evaluates one run after another in the same process. This times
``--runs`` consecutive evaluations of the same trained model (standing in for the worker's runs: same dataset,
same evaluation subset), in one process, twice:

* **streamed** (``resident=False``): every evaluation reads each corruption x severity from the cached ``.npz``
  and copies it to the device (what every evaluation did before);
* **resident** (``resident=True``): the first evaluation moves the whole corrupted set to the device once;
  the later ones use it from there (what ``resident=None`` does on CUDA when it fits).

Each evaluation writes to its own temporary folder; the metrics of all evaluations must be identical (checked,
a difference stops the benchmark). Printed: seconds per evaluation (first, then the median of the rest) in both
modes and the ratio streamed / resident of the later evaluations. With ``--params`` the run is evaluated with
the grid's evaluation settings (as the pipeline does), else with its own config.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

import harness.evaluate as E
from harness.cell import eval_config
from harness.config import load_config
from harness.grid import load_grid
from harness.run_model import resolve_device


def _time_evaluations(run: Path, config, device, runs: int, resident: bool, out: Path) -> tuple[list[float], list]:
    E.release_resident()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    seconds, rows = [], []
    for i in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        rows.append(E.evaluate_run(run, progress=False, config=config, device=device,
                                   out_dir=out / f"{'res' if resident else 'str'}{i}", resident=resident))
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - t0)
    E.release_resident()
    return seconds, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="a trained run directory (model.pt, config.yaml)")
    ap.add_argument("--params", default=None, help="evaluate with this grid's evaluation settings (params.yaml)")
    ap.add_argument("--runs", type=int, default=3, help="evaluations per mode, >= 2 (default 3)")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: the run config's device setting)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    if args.runs < 2:
        ap.error(f"--runs must be >= 2 (one first evaluation and at least one later one), got {args.runs}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    run = Path(args.run)
    config = load_config(run / "config.yaml")
    if args.params:
        config = eval_config(load_grid(args.params), config)
    device = resolve_device(args.device or config.device)
    with tempfile.TemporaryDirectory() as tmp:
        streamed, rows_s = _time_evaluations(run, config, device, args.runs, False, Path(tmp))
        resident, rows_r = _time_evaluations(run, config, device, args.runs, True, Path(tmp))
    if any(r != rows_s[0] for r in rows_s + rows_r):
        raise SystemExit("metrics differ between evaluations: the benchmark is void")
    later_s, later_r = statistics.median(streamed[1:]), statistics.median(resident[1:])
    n_corr = sum(1 for r in rows_s[0] if r["metric"] == "accuracy" and r["corruption"] is not None)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(), "torch": torch.__version__, "run": str(run),
        "corruption_n": config.corruption_n, "corruption_settings": n_corr, "evaluations_per_mode": args.runs,
        "streamed_s": streamed, "resident_s": resident, "streamed_later_median_s": later_s,
        "resident_later_median_s": later_r, "later_ratio_streamed_over_resident": later_s / later_r,
    }
    print(f"device {result['device']}, {n_corr} corruption x severity settings on {config.corruption_n} images, "
          f"{args.runs} evaluations per mode, metrics identical")
    print(f"streamed: first {streamed[0]:.2f} s, later median {later_s:.2f} s   "
          f"resident: first {resident[0]:.2f} s, later median {later_r:.2f} s   "
          f"later streamed/resident = {later_s / later_r:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
