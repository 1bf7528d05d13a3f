"""Throughput of batched soft TrivialAugment + soft Random Erasing vs torchvision per sample.

Run by hand (never a test):  python benchmarks/augment_throughput.py [--device cpu|cuda]

Baseline: torchvision.transforms.v2 TrivialAugmentWide + RandomErasing applied per sample
in a Python loop (the usual Dataset.__getitem__ path). Candidate: harness.BatchSoftAugment +
harness.BatchSoftRandomErasing on the whole batch. Same machine, same run, 32x32 uint8
images, batch 512 by default. Prints both images/s figures and the ratio.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms import v2

from harness import BatchSoftAugment, BatchSoftRandomErasing


def load_images(n: int) -> torch.Tensor:
    path = Path(__file__).resolve().parents[2] / "shared/data/cifar10/test.npz"
    if path.is_file():
        with np.load(path) as z:
            arr = z["images"][:n]
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_it(fn, device, repeats: int) -> list[float]:
    fn()  # warm-up
    sync(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    images_cpu = load_images(args.batch)
    images = images_cpu.to(device)

    ta_ref = v2.TrivialAugmentWide()
    re_ref = v2.RandomErasing(p=1.0, scale=(0.02, 0.8))

    def baseline():
        # per-sample reference, as a Dataset would run it (on the CPU, like a DataLoader worker,
        # or on the device one image at a time)
        for k in range(images.shape[0]):
            re_ref(ta_ref(images[k]))

    ta = BatchSoftAugment(10, mapping="polynomial_chance")
    re = BatchSoftRandomErasing(10, p=1.0, scale=(0.02, 0.8))
    gen = torch.Generator(device="cpu").manual_seed(0)

    def batched():
        x, _ = ta(images, generator=gen)
        re(x, generator=gen)

    t_base = time_it(baseline, device, max(2, args.repeats // 2))
    t_new = time_it(batched, device, args.repeats)
    base_ips = args.batch / statistics.median(t_base)
    new_ips = args.batch / statistics.median(t_new)
    print(f"date {date.today()}  machine {platform.machine()} {platform.processor() or ''} "
          f"threads {torch.get_num_threads()}  device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.type == 'cuda' else ""))
    print(f"torch {torch.__version__}; batch {args.batch} x 3x32x32 uint8; median of {args.repeats} runs")
    print(f"torchvision per-sample TA+RE : {base_ips:12.0f} img/s")
    print(f"batched soft TA+RE           : {new_ips:12.0f} img/s")
    print(f"ratio                        : {new_ips / base_ips:12.1f} x")


if __name__ == "__main__":
    main()
