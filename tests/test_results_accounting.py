"""A grid run with no row in results.csv (deleted by hand) reaches the statistics as `missing`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis import analyze, load_results
from harness.grid import load_grid
from harness.results import account_for_grid

ROOT = Path(__file__).resolve().parent.parent


def _no_predictions(run_dir):
    raise FileNotFoundError(run_dir)


def test_deleted_rows_become_missing_runs_and_the_pairing_names_the_dropped_seed(tmp_path):
    grid = load_grid(ROOT / "grids" / "quick.yaml")
    rng = np.random.default_rng(0)
    rows = []
    for arm in grid.run_arms:
        for s in grid.seeds:
            if (arm, s) == ("ta_hard", 2):
                continue  # the run's rows were deleted by hand
            for m in ("accuracy", "corruption_accuracy_mean15", "corruption_accuracy_mean19", "ece"):
                rows.append({"run_id": f"{arm}-s{s}", "grid": "quick", "dataset": "mnist5k", "arm": arm, "seed": s,
                             "metric": m, "corruption": "", "severity": "", "value": 0.9 + 0.01 * rng.random(),
                             "status": "complete", "run_dir": "", "reason": ""})
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    results = account_for_grid(load_results(tmp_path / "results.csv"), grid)
    out = analyze(results, grid.stats, predictions_loader=_no_predictions)
    status = out.runs_status.set_index("run_id")
    assert status.loc["ta_hard-s2", "status"] == "missing"
    assert "no row in the results table" in status.loc["ta_hard-s2", "reason"]
    assert out.meta["counts"]["missing"] == 1 and out.meta["counts"]["runs"] == 50
    f2 = next(h for h in out.hypotheses if h.id == "F2")  # ta_soft_chance vs ta_hard
    assert f2.n_seeds == 4 and f2.seeds_dropped == "ta_soft_chance: s2"
    # nothing to add when every run has rows
    full = account_for_grid(results, grid)
    assert len(full) == len(results)
