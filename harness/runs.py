"""The run directory: one folder per training run, every file written atomically.

Layout of ``<run_dir>/``:

===================  ==========================================================================
file                 content
===================  ==========================================================================
config.yaml          the resolved :class:`~harness.config.TrainConfig` (seed included)
provenance.json      seed, git SHA, package versions, device, precision, timings
epochs.csv           per-epoch log: epoch, loss, train_acc, mean_confidence, lr, time_s
checkpoint.pt        latest training state (model, optimiser, scheduler, RNG states)
model.pt             final weights (written when training finished)
metrics.json         final metrics in tidy form: a list of rows {metric, corruption, severity, value}
predictions.npz      per-example predictions (clean and per corruption x severity) + labels
status.json          {"status": "running" | "complete" | "failed", ...}; later stages trust only
                     ``complete``; a failed run records the epoch, step and reason
===================  ==========================================================================
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.io import atomic_write_bytes, atomic_write_text

__all__ = [
    "STATUS_FILE",
    "write_status",
    "read_status",
    "write_json",
    "save_torch",
    "save_npz",
    "is_complete",
]

STATUS_FILE = "status.json"
STATUSES = ("running", "complete", "failed")


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_status(run_dir: Path, status: str, **fields: Any) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    write_json(Path(run_dir) / STATUS_FILE, {"status": status, **fields})


def read_status(run_dir: str | Path) -> dict:
    path = Path(run_dir) / STATUS_FILE
    if not path.is_file():
        return {"status": "missing"}
    return json.loads(path.read_text())


def is_complete(run_dir: str | Path) -> bool:
    return read_status(run_dir).get("status") == "complete"


def save_torch(path: Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
