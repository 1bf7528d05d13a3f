"""Cost of per-sample SSIM confidences relative to the batched TrivialAugment they would accompany.

Run by hand (never a test):  python benchmarks/ssim_cost.py [--batch 512] [--repeats 20] [--threads N]

For a batch of 512 x 3 x 32 x 32 uint8 images (CIFAR-10 test images when
/work/shared/data/cifar10/test.npz exists, else seeded random pixels) this times, per batch:

- ``augment``: ``BatchSoftAugment(10, "polynomial_chance")(images, generator)``: sampling, all 14
  ops, severities and confidences (the training pipeline's TA stage);
- ``ssim uniform7``: ``ssim_torch(original, augmented)`` (scikit-image default: 7x7 box, sample
  covariance);
- ``ssim wang``: ``ssim_torch(..., **WANG_SSIM)`` (11-tap Gaussian, sigma 1.5), which is what
  ``SSIMConfidence`` computes;
- ``skimage wang`` (CPU only, on 64 images and scaled to the batch): scikit-image's
  ``structural_similarity`` per image, the reference the torch version replaces.

Each figure is the median of ``--repeats`` timed calls after one warm-up; CUDA timings are
synchronised. Prints ms/batch and the ratio SSIM / augmentation, on CPU and, when available, CUDA.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from harness.augment.batch_trivial import BatchSoftAugment
from harness.measure import WANG_SSIM, ssim_torch


def load_images(n: int) -> tuple[torch.Tensor, str]:
    path = Path(__file__).resolve().parents[2] / "shared/data/cifar10/test.npz"
    if path.is_file():
        with np.load(path) as z:
            arr = z["images"][:n]
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous(), "CIFAR-10 test"
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), "random pixels"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_ms(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def bench(device: torch.device, images: torch.Tensor, repeats: int) -> None:
    x = images.to(device)
    aug = BatchSoftAugment(10, "polynomial_chance")
    gen = torch.Generator().manual_seed(0)
    y, _ = aug(x, generator=gen)
    t_aug = median_ms(lambda: aug(x, generator=gen), device, repeats)
    t_uni = median_ms(lambda: ssim_torch(x, y), device, repeats)
    t_wang = median_ms(lambda: ssim_torch(x, y, **WANG_SSIM), device, repeats)
    n = x.shape[0]
    print(f"\n[{device}] batch {n}x{x.shape[1]}x{x.shape[2]}x{x.shape[3]} uint8, median of {repeats}")
    print(f"  augment (BatchSoftAugment)  {t_aug:8.2f} ms/batch")
    print(f"  ssim_torch uniform7         {t_uni:8.2f} ms/batch   ratio to augment {t_uni / t_aug:5.2f}x")
    print(f"  ssim_torch wang (SSIMConf.) {t_wang:8.2f} ms/batch   ratio to augment {t_wang / t_aug:5.2f}x")
    if device.type == "cpu":
        from skimage.metrics import structural_similarity

        m = min(64, n)
        a = x[:m].permute(0, 2, 3, 1).numpy().astype(np.float64) / 255
        b = y[:m].permute(0, 2, 3, 1).numpy().astype(np.float64) / 255

        def sk() -> None:
            for i in range(m):
                structural_similarity(a[i], b[i], data_range=1.0, channel_axis=-1, **WANG_SSIM)

        t_sk = median_ms(sk, device, max(3, repeats // 5)) * n / m
        print(f"  skimage wang, per image     {t_sk:8.2f} ms/batch   ({t_sk / t_wang:5.1f}x slower than ssim_torch)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    images, source = load_images(args.batch)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, images: {source}")
    bench(torch.device("cpu"), images, args.repeats)
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name()}")
        bench(torch.device("cuda"), images, args.repeats)


if __name__ == "__main__":
    main()
