"""Collect a grid's evaluated runs into one long-format results table (``reports/results.csv``).

One row per (run, metric, corruption, severity); the columns are fixed by ``docs/pipeline.md``:
``run_id, grid, dataset, arm, <factor columns>, seed, metric, corruption, severity, value, status,
run_dir``. Every cell of the grid (``run_arms`` x ``seeds``) appears: a run that did not finish
(``failed``, ``running``) or never ran (``missing``) contributes one row with an empty metric, NaN
value and its status, so later stages can list it instead of silently dropping it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from harness.grid import Grid, eval_dir, run_id, train_dir
from harness.io import atomic_write_text
from harness.runs import read_status

__all__ = ["collect_results", "write_results", "BASE_COLUMNS", "TAIL_COLUMNS"]

BASE_COLUMNS = ("run_id", "grid", "dataset", "arm")
TAIL_COLUMNS = ("seed", "metric", "corruption", "severity", "value", "status", "run_dir")


def _status(eval_dir: Path, train_dir: Path) -> tuple[str, str]:
    """(status, reason) of a run from its evaluation and training directories."""
    ev = read_status(eval_dir)
    if ev["status"] == "complete" and (eval_dir / "metrics.json").is_file():
        return "complete", ""
    tr = read_status(train_dir)
    for st in (ev, tr):
        if st["status"] == "failed":
            return "failed", str(st.get("reason", ""))
    if tr["status"] == "missing" and ev["status"] == "missing":
        return "missing", "never ran"
    if ev["status"] == "missing":
        return "running", f"trained up to epoch {tr.get('epoch', '?')}, not evaluated"
    return "running", f"evaluation status {ev['status']!r}"


def collect_results(grid: Grid, runs_root: str | Path = "runs") -> pd.DataFrame:
    """The long results table of ``grid`` from ``<runs_root>/eval/<arm>/s<seed>/metrics.json``."""
    runs_root = Path(runs_root)
    factors = grid.factor_names()
    frames = []
    for arm in grid.run_arms:
        fac = grid.arms[arm]["factors"]
        for seed in grid.seeds:
            rid = run_id(arm, seed)
            edir = eval_dir(arm, seed, runs_root)
            status, reason = _status(edir, train_dir(arm, seed, runs_root))
            head = {"run_id": rid, "grid": grid.name, "dataset": grid.dataset, "arm": arm,
                    **{f: fac.get(f, "") for f in factors}, "seed": int(seed)}
            if status == "complete":
                rows = json.loads((edir / "metrics.json").read_text())["rows"]
                df = pd.DataFrame(rows, columns=["metric", "corruption", "severity", "value"])
                bad = df[~np.isfinite(df["value"].astype(float))]
                if len(bad):
                    status, reason = "failed", f"non-finite metric {bad.iloc[0]['metric']}"
            if status != "complete":
                df = pd.DataFrame({"metric": [""], "corruption": [""], "severity": [math.nan],
                                   "value": [math.nan]})
            for k, v in reversed(head.items()):
                df.insert(0, k, v)
            df["status"] = status
            df["run_dir"] = str(edir)
            df["reason"] = reason
            frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out["corruption"] = out["corruption"].fillna("")
    out["severity"] = pd.to_numeric(out["severity"]).astype("Int64")
    cols = [*BASE_COLUMNS, *factors, *TAIL_COLUMNS]
    return out[cols + ["reason"]]


def write_results(df: pd.DataFrame, path: str | Path = "reports/results.csv") -> Path:
    """Write the table atomically (the ``reason`` column is kept for non-complete runs)."""
    path = Path(path)
    atomic_write_text(path, df.to_csv(index=False, float_format="%.10g"))
    return path
