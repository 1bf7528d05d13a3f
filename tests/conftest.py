"""Shared test helpers: image batches, generators, devices, and the machine guard of bit-level pins."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest
import torch
import yaml

from harness.stages import run_stage

#: number of classes most augmentation tests use
K = 10
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.uint8, torch.float32]
#: the CPU features whose kernels change float rounding, read from /proc/cpuinfo
_SIMD_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_vnni", "fma", "amx_bf16")


def make_images(n: int, dtype: torch.dtype, h: int = 16, w: int | None = None, seed: int = 0,
                device: str = "cpu") -> torch.Tensor:
    """``n`` random images [n, 3, h, w] (uint8 in [0, 255] or float in [0, 1)), seeded."""
    w = h if w is None else w
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:
        x = torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)
    else:
        x = torch.rand(n, 3, h, w, generator=g, dtype=dtype)
    return x.to(device)


def gen(seed: int, device: str = "cpu") -> torch.Generator:
    """A seeded torch generator on ``device``."""
    return torch.Generator(device=device).manual_seed(seed)


def machine_fingerprint() -> str:
    """CPU vendor, the SIMD flags that change float kernels, and the torch build: what bit-level pins hold on."""
    vendor, flags = platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("vendor_id") and vendor == platform.machine():
                vendor = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    simd = " ".join(f for f in _SIMD_FLAGS if f in flags)
    return f"{vendor} | {simd} | torch {torch.__version__}"


def require_machine(pinned_on: str) -> None:
    """Skip, naming both, when this machine is not the one a bit-level pin was computed on."""
    here = machine_fingerprint()
    if here != pinned_on:
        pytest.skip(f"bit-level pins were computed on [{pinned_on}]; this machine is [{here}] (SIMD kernels and "
                    "the torch build change float rounding); regenerate the pins from a known-good commit here")


def micro_executor_grid(name: str, epochs: int) -> dict:
    """The executor tests' micro grid (2 RE arms x 2 seeds, tiny smallnet, fp32, a checkpoint every epoch)."""
    return {
        "grid": name,
        "dataset": "mnist5k",
        "data_source": None,
        "seeds": [0, 1],
        "run_arms": ["hard", "soft"],
        "base": {"n_per_class": 30, "model": "smallnet", "model_kwargs": {"widths": [8, 8, 16]}, "epochs": epochs,
                 "batch_size": 20, "lr": 0.05, "checkpoint_every": 1, "precision": "fp32"},
        "evaluation": {"corruption_n": 20, "corruption_severities": [2], "op_bins": []},
        "reference_comparable": False,
        "arms": {
            "hard": {"factors": {"label_type": "hard", "family": "random_erasing"},
                     "augment": ["flip", {"kind": "random_erasing", "soft": False, "params": {"p": 1.0}}]},
            "soft": {"factors": {"label_type": "soft", "family": "random_erasing"},
                     "augment": ["flip", {"kind": "random_erasing", "soft": True, "params": {"p": 1.0}}]},
        },
    }


def prepared_working_copy(root: Path, grid: dict, stages: tuple[str, ...]) -> Path:
    """``root`` with ``grid`` as its params.yaml and the pipeline ``stages`` run there (no runs trained)."""
    (root / "params.yaml").write_text(yaml.safe_dump(grid, sort_keys=False))
    here = os.getcwd()
    os.chdir(root)
    try:
        for stage in stages:
            run_stage(stage, progress=False)
    finally:
        os.chdir(here)
    return root
