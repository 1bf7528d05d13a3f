"""Collect a grid's evaluated runs into one long-format results table (``reports/results.csv``).

One row per (run, metric, corruption, severity); the columns are fixed by ``docs/pipeline.md``:
``run_id, grid, dataset, arm, <factor columns>, seed, metric, corruption, severity, value, status,
run_dir, reason``. Every cell of the grid (``run_arms`` x ``seeds``) is accounted for: a run that is
not usable contributes one row with an empty metric, NaN value, its status and the reason (naming
the file), so later stages list it instead of silently dropping it:

===========  ===================================================================================
status       meaning
===========  ===================================================================================
complete     evaluated; every metric row read and finite
failed       training or evaluation stopped (non-finite loss or metric); reason as recorded
running      interrupted: trained part of the way, or trained but not evaluated
missing      never ran, or a result file it needs is absent (e.g. ``metrics.json`` of a run marked
             complete)
corrupt      a result file exists but cannot be used: empty, not valid JSON, no ``rows`` or an empty
             ``rows`` list, a malformed row, an unknown status
===========  ===================================================================================

A run listed ``missing``/``corrupt``/``running`` recovers with ``dvc repro`` (the pipeline reruns the
stage whose output changed) or, outside the pipeline, ``softbench train ... --resume`` /
``softbench evaluate RUN_DIR``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from harness.grid import Grid, eval_dir, run_id, train_dir
from harness.io import FileFormatError, atomic_write_text
from harness.runs import read_metrics, read_status
from harness.schema import METRIC_ROW_COLUMNS, RESULTS_BASE_COLUMNS, RESULTS_TAIL_COLUMNS, RUN_STATUSES

__all__ = ["collect_results", "write_results", "account_for_grid", "BASE_COLUMNS", "TAIL_COLUMNS", "RUN_STATUSES"]

BASE_COLUMNS = RESULTS_BASE_COLUMNS
TAIL_COLUMNS = RESULTS_TAIL_COLUMNS


def _reevaluate(arm: str) -> str:
    return f"re-evaluate it: dvc repro (or softbench stage evaluate --arm {arm})"


def _run_state(arm: str, edir: Path, tdir: Path) -> tuple[str, str, list[dict] | None]:
    """``(status, reason, metric rows)`` of one run from its evaluation and training directories."""
    try:
        ev = read_status(edir)
    except FileFormatError as exc:
        return "corrupt", str(exc), None
    if ev["status"] == "complete":
        mpath = edir / "metrics.json"
        if not mpath.exists():
            return "missing", (f"{mpath}: the metrics file is missing although {edir / 'status.json'} says "
                               f"complete; {_reevaluate(arm)}"), None
        try:
            rows = read_metrics(mpath, hint=_reevaluate(arm))
        except FileFormatError as exc:
            return "corrupt", str(exc), None
        bad = next((r for r in rows if not math.isfinite(float(r["value"]))), None)
        if bad is not None:
            where = f" ({bad['corruption']}" + (f", severity {bad['severity']}" if bad["severity"] is not None
                                                else "") + ")" if bad["corruption"] else ""
            return "failed", f"{mpath}: non-finite value {bad['value']} for metric {bad['metric']}{where}", None
        return "complete", "", rows
    try:
        tr = read_status(tdir)
    except FileFormatError as exc:
        tr = {"status": "corrupt", "reason": str(exc)}
    for st, folder in ((ev, edir), (tr, tdir)):
        if st["status"] == "failed":
            return "failed", str(st.get("reason") or f"{folder / 'status.json'}: status failed, no reason recorded"), None
    if tr["status"] == "corrupt" and ev["status"] != "running":
        return "corrupt", tr["reason"], None
    if tr["status"] == "missing" and ev["status"] == "missing":
        return "missing", f"never ran: no {edir / 'status.json'} and no {tdir / 'status.json'}", None
    if ev["status"] == "missing":
        return "running", f"{tdir}: trained up to epoch {tr.get('epoch', '?')}, not evaluated", None
    return "running", f"{edir / 'status.json'}: evaluation status {ev['status']!r}", None


def collect_results(grid: Grid, runs_root: str | Path = "runs") -> pd.DataFrame:
    """The long results table of ``grid`` from ``<runs_root>/eval/<arm>/s<seed>/metrics.json`` (one
    NaN row with status and reason for every run that is not complete; never raises for a bad file)."""
    runs_root = Path(runs_root)
    factors = grid.factor_names()
    frames = []
    for arm in grid.run_arms:
        fac = grid.arms[arm]["factors"]
        for seed in grid.seeds:
            edir = eval_dir(arm, seed, runs_root)
            status, reason, rows = _run_state(arm, edir, train_dir(arm, seed, runs_root))
            head = {"run_id": run_id(arm, seed), "grid": grid.name, "dataset": grid.dataset, "arm": arm,
                    **{f: fac.get(f, "") for f in factors}, "seed": int(seed)}
            if rows is not None:
                df = pd.DataFrame(rows, columns=list(METRIC_ROW_COLUMNS))
                df["value"] = df["value"].astype(float)
            else:
                df = pd.DataFrame({"metric": [""], "corruption": [""], "severity": [math.nan], "value": [math.nan]})
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


def account_for_grid(df: pd.DataFrame, grid: Grid, runs_root: str | Path = "runs") -> pd.DataFrame:
    """``df`` (a results table as read back) plus one ``missing`` row for every arm x seed of ``grid`` that
    has no row at all (e.g. deleted from ``results.csv`` by hand): a run is never dropped silently."""
    have = set(df["run_id"].astype(str)) if "run_id" in df else set()
    factors = grid.factor_names()
    extra = []
    for arm in grid.run_arms:
        fac = grid.arms[arm]["factors"]
        for seed in grid.seeds:
            rid = run_id(arm, seed)
            if rid in have:
                continue
            extra.append({"run_id": rid, "grid": grid.name, "dataset": grid.dataset, "arm": arm,
                          **{f: fac.get(f, "") for f in factors}, "seed": int(seed), "metric": "", "corruption": "",
                          "severity": pd.NA, "value": math.nan, "status": "missing",
                          "run_dir": str(eval_dir(arm, seed, runs_root)),
                          "reason": f"run {rid} of the grid has no row in the results table"})
    if not extra:
        return df
    columns = list(df.columns) + ([] if "reason" in df.columns else ["reason"])
    return pd.concat([df, pd.DataFrame(extra, columns=columns)], ignore_index=True)


def write_results(df: pd.DataFrame, path: str | Path = "reports/results.csv") -> Path:
    """Write the table atomically (the ``reason`` column is kept for non-complete runs)."""
    path = Path(path)
    atomic_write_text(path, df.to_csv(index=False, float_format="%.10g"))
    return path
