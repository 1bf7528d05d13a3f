"""Training-loop overhead: epoch time / bare model forward+backward time on the same batches.

Run by hand:  python benchmarks/train_throughput.py [--dataset mnist5k] [--epochs 3]

The trainer's epoch (batch gather on the device, batched soft TA + soft RE, soft targets, loss,
SGD step, logging) is timed from its own epochs.csv (median over epochs after the first). The
baseline is the bare model: the same number of batches of the same shape, already float on the
device, forward + backward + SGD step with plain cross-entropy. Target on CPU with smallnet: <= 1.10.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd
import torch

from harness.config import TrainConfig
from harness.datasets import load_dataset
from harness.models import build_model
from harness.trainer import _autocast, resolve_device, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--data-source", default=None)
    ap.add_argument("--n-per-class", type=int, default=None)
    ap.add_argument("--model", default="smallnet")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = ap.parse_args()

    cfg = TrainConfig.from_dict({
        "dataset": args.dataset, "data_source": args.data_source, "n_per_class": args.n_per_class,
        "model": args.model, "epochs": args.epochs, "batch_size": args.batch_size, "precision": args.precision,
        "corruptions": False,
        "augment": ["flip", "crop", {"kind": "trivial_augment", "soft": True},
                    {"kind": "random_erasing", "soft": True, "params": {"p": 0.5, "scale": [0.02, 0.4]}}],
    })
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, Path(tmp) / "run", progress=False)
        log = pd.read_csv(Path(tmp) / "run" / "epochs.csv")
    epoch_s = statistics.median(log["time_s"].iloc[1:]) if len(log) > 1 else float(log["time_s"].iloc[0])

    device = resolve_device(cfg.device)
    train_set, _ = load_dataset(cfg.dataset, source=cfg.data_source)
    if cfg.n_per_class:
        train_set = train_set.subset(cfg.n_per_class, seed=0)
    n = len(train_set)
    c, h, w = train_set.images.shape[3], train_set.images.shape[1], train_set.images.shape[2]
    torch.manual_seed(0)
    model = build_model(cfg.model, train_set.num_classes, in_channels=c, image_size=h).to(device)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x_all = torch.rand(n, c, h, w, device=device).contiguous(memory_format=torch.channels_last)
    y_all = torch.randint(0, train_set.num_classes, (n,), device=device)

    def bare_epoch() -> float:
        t0 = time.perf_counter()
        for s in range(0, n, cfg.batch_size):
            x, y = x_all[s:s + cfg.batch_size], y_all[s:s + cfg.batch_size]
            if x.shape[0] < 2:
                continue
            with _autocast(device, cfg.precision):
                logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    bare_epoch()
    bare_s = statistics.median(bare_epoch() for _ in range(max(2, args.epochs - 1)))
    print(f"date {date.today()}  machine {platform.machine()}  device {device}  threads {torch.get_num_threads()}")
    print(f"{cfg.dataset} n={n} model={cfg.model} batch={cfg.batch_size} precision={cfg.precision}")
    print(f"trainer epoch (soft TA + soft RE) : {epoch_s:8.2f} s")
    print(f"bare forward+backward epoch       : {bare_s:8.2f} s")
    print(f"ratio                             : {epoch_s / bare_s:8.3f}")


if __name__ == "__main__":
    main()
