"""Speed of harness.corruptions vs the `imagecorruptions-imaug` package on CIFAR-10 test images.

Run by hand (never a test):  python benchmarks/corruption_speed.py [--n 1000] [--severity 3]

Both generators get the same N CIFAR-10 test images (shared/data/cifar10/test.npz; seeded random images
if absent) and every corruption at one severity. Ours is called once on the whole batch; the package is
called per image (its only API). Each side is warmed up on a few images first, so one-time costs (numba
JIT, texture decoding, caches) are excluded. Per corruption we report the best of ``--repeats`` runs for
ours and one run for the baseline, both wall-clock and process CPU time (CPU time is robust to other load
on a shared machine; the code is single-threaded on both sides).

NOTE: imagecorruptions uses the **ImageNet (224 px) parameters** (CORRUPTIONS.md Appendix A), not the
CIFAR ones, so its per-corruption work differs (e.g. more zoom factors, a larger frost texture crop);
the comparison is of generators, not of identical outputs.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from harness.corruptions import CORRUPTIONS, corrupt

CIFAR_TEST = Path(__file__).resolve().parents[2] / "shared/data/cifar10/test.npz"


def load_images(n: int) -> tuple[np.ndarray, str]:
    if CIFAR_TEST.is_file():
        with np.load(CIFAR_TEST) as z:
            return np.ascontiguousarray(z["images"][:n]), f"CIFAR-10 test[:{n}] ({CIFAR_TEST})"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), f"{n} seeded random 32x32 images"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def timed(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="number of images (default 1000)")
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="runs of ours per corruption (best is kept)")
    parser.add_argument("--only", nargs="*", default=None, help="subset of corruption names")
    args = parser.parse_args()

    images, source = load_images(args.n)
    names = args.only or list(CORRUPTIONS)
    try:
        import imagecorruptions as ic

        base_names = set(ic.get_corruption_names("all"))
        from importlib.metadata import version

        try:
            base_version = f"imagecorruptions-imaug {version('imagecorruptions-imaug')}"
        except Exception:  # noqa: BLE001 - the bethgelab distribution provides the same module
            base_version = f"imagecorruptions {version('imagecorruptions')}"
    except ImportError:
        ic, base_names, base_version = None, set(), "not installed (pip install imagecorruptions-imaug)"

    print(f"date (UTC)   : {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"machine      : {cpu_model()}, {os.cpu_count()} logical CPUs, {platform.platform()}")
    print(f"load average : {os.getloadavg() if hasattr(os, 'getloadavg') else 'n/a'} (at start)")
    print(f"python/numpy : {platform.python_version()} / numpy {np.__version__}")
    print(f"images       : {source}, severity {args.severity}")
    print(
        f"ours         : harness.corruptions.corrupt(batch, name, {args.severity}, params='cifar'), best of {args.repeats}"
    )
    print(
        f"baseline     : {base_version}, corrupt(image, corruption_name=name, severity={args.severity}) per image,"
    )
    print("               with its built-in ImageNet (224 px) parameters")
    print()
    hdr = f"{'corruption':18s} {'ours wall':>10s} {'ours cpu':>10s} {'base wall':>10s} {'base cpu':>10s} {'x wall':>7s} {'x cpu':>7s}"
    print(hdr)
    print("-" * len(hdr))
    tot = np.zeros(4)
    tot_common = np.zeros(4)
    for name in names:
        corrupt(images[:8], name, args.severity, params="cifar")  # warm-up
        runs = [
            timed(lambda name=name: corrupt(images, name, args.severity, params="cifar", seed=0))
            for _ in range(args.repeats)
        ]
        ow, oc = min(r[0] for r in runs), min(r[1] for r in runs)
        bw = bc = float("nan")
        if ic is not None and name in base_names:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for x in images[:2]:
                    ic.corrupt(x, corruption_name=name, severity=args.severity)  # warm-up (numba JIT etc.)

                def base(name: str = name) -> None:
                    for x in images:
                        ic.corrupt(x, corruption_name=name, severity=args.severity)

                bw, bc = timed(base)
            tot_common += (ow, oc, bw, bc)
        tot += (ow, oc, np.nan_to_num(bw), np.nan_to_num(bc))
        print(
            f"{name:18s} {ow * 1e3:8.1f}ms {oc * 1e3:8.1f}ms {bw * 1e3:8.1f}ms {bc * 1e3:8.1f}ms "
            f"{bw / ow:6.1f}x {bc / oc:6.1f}x",
            flush=True,
        )
    print("-" * len(hdr))
    ow, oc, bw, bc = tot_common
    print(
        f"{'TOTAL (common)':18s} {ow:9.2f}s {oc:9.2f}s {bw:9.2f}s {bc:9.2f}s {bw / ow if ow else float('nan'):6.1f}x "
        f"{bc / oc if oc else float('nan'):6.1f}x"
    )
    print(
        f"ours, all {len(names)} corruptions: {tot[0]:.2f} s wall, {tot[1]:.2f} s CPU for {args.n} images each"
    )
    print(f"load average : {os.getloadavg() if hasattr(os, 'getloadavg') else 'n/a'} (at end)")


if __name__ == "__main__":
    main()
