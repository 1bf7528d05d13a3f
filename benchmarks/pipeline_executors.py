"""The grid's train + evaluate + results + stats + report with each way of running the run matrix, in one run.

Run by hand:  python benchmarks/pipeline_executors.py [--grid quick] [--seeds 0 1 2 3 4] [--workers 2]
                                                       [--json OUT]

Set-up once (not timed): a scratch working copy with the grid as params.yaml, where the shared stages
(prepare, corruptions, proxy_accuracy, fit_mappings) run. Then, each in a fresh copy of it, timed:

  * ``per-run processes``: ``softbench stage train --arm A --seed S`` for every run, then ``softbench stage
    evaluate --arm A`` for every arm -- one process per run as the former ``train@`` / ``evaluate@`` DVC
    matrix stages had (without DVC's own per-stage bookkeeping, so a lower bound on that cost);
  * ``serial``: ``softbench stage train`` / ``evaluate`` with the serial executor (one process);
  * ``local``: the same with the local executor and ``--workers`` warm worker processes;

each followed by the results, stats and report stages. Every mode must produce the same
reports/results.csv (checked). Ratios are against the first two modes, measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SETUP_STAGES = ("prepare", "corruptions", "proxy_accuracy", "fit_mappings")
TAIL_STAGES = ("results", "stats", "report")


def _softbench(cwd: Path, *args: str, executor: str = "serial", workers: int = 1) -> None:
    env = {**os.environ, "SOFTBENCH_EXECUTOR": executor, "SOFTBENCH_WORKERS": str(workers),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([str(BIN / "softbench"), *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"softbench {' '.join(args)} failed in {cwd}:\n{proc.stderr[-3000:]}")


def _setup(scratch: Path, grid: str, seeds: list[int] | None) -> tuple[Path, dict]:
    base = scratch / "base"
    (base / "datasets").mkdir(parents=True)
    for rel in ("datasets/hvs", "datasets/reference"):
        shutil.copytree(ROOT / rel, base / rel)
    raw = yaml.safe_load((ROOT / "grids" / f"{grid}.yaml").read_text())
    if seeds is not None:
        raw["seeds"] = seeds
    (base / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    for stage in SETUP_STAGES:
        _softbench(base, "stage", stage, "--no-progress")
    return base, raw


def _mode(base: Path, scratch: Path, name: str, raw: dict, workers: int) -> tuple[float, pd.DataFrame]:
    work = scratch / name.replace(" ", "-")
    shutil.copytree(base, work)
    t0 = time.perf_counter()
    if name == "per-run processes":
        for arm in raw["run_arms"]:
            for seed in raw["seeds"]:
                _softbench(work, "stage", "train", "--arm", arm, "--seed", str(seed), "--no-progress")
        for arm in raw["run_arms"]:
            _softbench(work, "stage", "evaluate", "--arm", arm, "--no-progress")
    else:
        for stage in ("train", "evaluate"):
            _softbench(work, "stage", stage, "--no-progress", executor=name, workers=workers)
    for stage in TAIL_STAGES:
        _softbench(work, "stage", stage, "--no-progress")
    return time.perf_counter() - t0, pd.read_csv(work / "reports/results.csv")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default="quick")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="override the grid's seeds")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--modes", nargs="+", default=["per-run processes", "serial", "local"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="softbench-exec-bench-") as tmp:
        scratch = Path(tmp)
        t0 = time.perf_counter()
        base, raw = _setup(scratch, args.grid, args.seeds)
        setup_s = time.perf_counter() - t0
        n_runs = len(raw["run_arms"]) * len(raw["seeds"])
        print(f"{args.grid}: {len(raw['run_arms'])} arms x {len(raw['seeds'])} seeds = {n_runs} runs; "
              f"shared stages {setup_s:.0f} s (not timed below)", flush=True)
        times, tables = {}, {}
        for mode in args.modes:
            times[mode], tables[mode] = _mode(base, scratch, mode, raw, args.workers)
            print(f"  {mode:<18} {times[mode]:8.1f} s  ({times[mode] / n_runs:.2f} s per run)", flush=True)
        first = args.modes[0]
        for mode in args.modes[1:]:
            pd.testing.assert_frame_equal(tables[mode], tables[first])
        print("  results.csv identical across modes: yes")
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    out = {"date": str(date.today()), "machine": machine, "grid": args.grid, "runs": n_runs,
           "workers": args.workers, "seconds": times,
           "ratios": {f"{a} / {b}": times[a] / times[b] for a in times for b in times if a != b}}
    for k, v in out["ratios"].items():
        if k.endswith("/ local"):
            print(f"  speed-up of local over {k.split(' / ')[0]}: {v:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
