"""GPU smoke of the `paper` grid (hand-run on a CUDA machine, never in CI): every arm of
grids/paper.yaml through the pipeline's stage functions in one process, shrunk to a smoke size
(1 seed, 1 epoch, 100 images per class, 200 corrupted images at severity 3), then results, stats
(with one seed: the min-seed guard gives no p-values) and the report.

Usage (repo root, CIFAR-10 available or prepared):  python benchmarks/gpu_paper_smoke.py [--out DIR]
It overwrites params.yaml (restore it with `softbench grid use quick`).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import yaml

from harness.grid import load_grid
from harness.stages import run_stage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="copy report.md and the results here")
    args = ap.parse_args()
    raw = yaml.safe_load(Path("grids/paper.yaml").read_text())
    raw["seeds"] = [0]
    raw["base"].update(epochs=1, n_per_class=100)
    raw["evaluation"].update(corruption_n=200, corruption_severities=[3], op_bins=[30])
    raw["fit"].update(proxy_epochs=4, proxy_n_per_class=300, n_boot=20, n_images=200)
    Path("params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    grid = load_grid("params.yaml")
    t0 = time.perf_counter()
    for name in ("prepare", "corruptions", "proxy_accuracy", "fit_mappings"):
        run_stage(name, progress=False)
        print(f"{name}: {time.perf_counter() - t0:.1f} s", flush=True)
    for arm in grid.run_arms:
        t = time.perf_counter()
        run_stage("train", arm=arm, seed=0, progress=False)
        run_stage("evaluate", arm=arm, progress=False)
        print(f"{arm}: {time.perf_counter() - t:.1f} s", flush=True)
    for name in ("results", "stats", "report"):
        run_stage(name, progress=False)
    print(f"total {time.perf_counter() - t0:.1f} s", flush=True)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for f in ("reports/report.md", "reports/results.csv", "reports/stats/hypotheses.json"):
            shutil.copy(f, out / Path(f).name)


if __name__ == "__main__":
    main()
