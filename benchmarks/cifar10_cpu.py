"""Small net on a 10k-image CIFAR-10 subset, hard vs soft Random Erasing (run by hand, CPU).

Run:  python benchmarks/cifar10_cpu.py [--epochs 15] [--n-per-class 1000] [--seeds 0]

Uses the local CIFAR-10 copy (../shared/data/cifar10 is auto-discovered). Arms: flip + crop +
Random Erasing (p=1.0, scale (0.02, 0.8)) with hard labels vs soft labels (c = 1 - (1 - 1/K) a).
Prints clean accuracy, mean corruption accuracy (15 and 19, on the first --corruption-n test
images) and wall time per arm.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from harness.config import TrainConfig
from harness.workflow import train_and_evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--n-per-class", type=int, default=1000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--corruption-n", type=int, default=1000)
    ap.add_argument("--out", default=None, help="keep run directories here (default: a temp folder)")
    args = ap.parse_args()
    base = {
        "dataset": "cifar10", "n_per_class": args.n_per_class, "model": "smallnet", "epochs": args.epochs,
        "batch_size": 256, "lr": 0.1, "weight_decay": 5e-4, "corruption_n": args.corruption_n,
    }
    arms = {
        "RE hard": False,
        "RE soft": True,
    }
    out_root = Path(args.out) if args.out else Path(tempfile.mkdtemp())
    print(f"date {date.today()}  machine {platform.machine()}  threads {torch.get_num_threads()}  "
          f"epochs {args.epochs}  n/class {args.n_per_class}")
    for arm, soft in arms.items():
        for seed in args.seeds:
            cfg = TrainConfig.from_dict({**base, "seed": seed, "augment": [
                "flip", "crop",
                {"kind": "random_erasing", "soft": soft, "params": {"p": 1.0, "scale": [0.02, 0.8]}}]})
            t0 = time.perf_counter()
            run = out_root / f"{arm.replace(' ', '_')}_seed{seed}"
            train_and_evaluate(cfg, run, progress=True)
            wall = time.perf_counter() - t0
            rows = json.loads((run / "metrics.json").read_text())["rows"]
            m = {r["metric"]: r["value"] for r in rows if r["corruption"] is None}
            print(f"{arm:8s} seed {seed}: clean acc {m['accuracy']:.4f}  ECE {m['ece']:.4f}  "
                  f"corr15 {m['corruption_accuracy_mean15']:.4f}  corr19 {m['corruption_accuracy_mean19']:.4f}  "
                  f"wall {wall:.0f} s")


if __name__ == "__main__":
    main()
