"""Stage ``stats``: from the long-format results table of a multi-seed grid to statistical outputs.

Input is ``reports/results.csv`` and the ``stats:`` spec of ``params.yaml``; output is the set of
files under ``reports/stats/`` fixed by ``docs/pipeline.md`` (the contract). The statistics
themselves are the tested primitives of :mod:`harness.stats`; this module selects the data,
applies the guards, and assembles tables.

Data rules
----------
* Only rows with ``status == complete`` enter statistics. Every other run (``failed``,
  ``running`` = interrupted, ``missing`` = never ran) is listed in ``runs_status`` and counted in
  ``meta['counts']``. A comparison, ANOVA, TOST or hypothesis that lost seeds (a declared run that
  is not complete, or a complete run without a finite value for the metric) says which in its
  ``note`` / evidence; nothing is dropped silently.
* Scalar metrics (``stats.metrics``) are the rows with an empty ``corruption``. Per-corruption
  accuracy (``metric=corruption_accuracy`` in ``summary.csv``) is the mean over severities of
  the per-corruption ``accuracy`` rows of each run, then summarised across seeds.
* Differences are always ``arm - reference`` in the metric's unit (accuracy and ECE as fractions
  in [0, 1]). Pairing is by seed: paired tests when the arm and the reference have exactly the
  same set of seeds, Welch otherwise (the note says so).
* Minimum-seed guard (:data:`harness.stats.MIN_SEEDS` = 3): with fewer than 3 values in an arm (or
  an ANOVA cell) no p-value is computed; the row carries p = NaN and a note, and the guard is
  listed in ``meta['guards']``.

Comparisons
-----------
One row per declared comparison x metric of ``stats.metrics``: :func:`harness.stats.compare_arms`
(paired t + Wilcoxon, or Welch), seeded percentile bootstrap CI of the difference (``n_boot`` and
``bootstrap_seed`` of the spec, level ``1 - alpha``), Hedges' g (d_z when paired) with CI, and the
seeds needed for ``power`` at the observed g (``inf`` when the observed effect is 0). Holm
(``method='holm'``) within each (family, metric) over the comparisons that have a p-value.

McNemar
-------
Per comparison and seed present (complete) in both arms: per-example correctness
``clean == labels`` of the reference (``a``) and the arm (``b``) on the clean test set.
``b`` counts examples the reference gets right and the arm gets wrong, ``c`` the reverse.
Skipped, with the reason in ``method`` (``skipped: ...``), when the predictions are absent or
the two runs' test sets differ in length or labels.

Hypothesis verdicts
-------------------
Each pre-declared hypothesis gets a raw p-value; the decision p-value ``p_holm`` is Holm-adjusted
across all *tested* hypotheses (those with a p-value). Verdicts at ``alpha`` on ``p_holm``:

* ``interaction``: p of the ANOVA interaction term. ``p_holm < alpha`` -> ``supported``, else
  ``not supported``.
* ``not_better`` ("arm is not better than reference"): p of a one-sided test of arm > reference
  (paired t when the seed sets match, Welch otherwise). ``p_holm < alpha`` -> ``contradicted``;
  otherwise ``supported`` only with positive evidence -- the named TOST equivalence entry declares
  equivalence, or the arm is significantly *worse* (one-sided, unadjusted) -- and ``inconclusive``
  when neither holds (failing to show "better" is not evidence of "not better"). Evidence gives the
  mean difference with its bootstrap CI, the TOST result and the "worse" test. Differences and
  margins of metrics in [0, 1] are written in percentage points, as in the report.
* ``lower`` / ``higher``: one-sided test in that direction. ``p_holm < alpha`` -> ``supported``;
  otherwise, if the one-sided test in the *opposite* direction has p < alpha (unadjusted: it is a
  secondary check, not one of the Holm family; the evidence says so) -> ``contradicted``; else
  ``not supported``.
* An arm without any complete value for the metric (or missing from the results) -> ``not
  tested``; an arm (or ANOVA cell) with 1-2 values -> ``inconclusive``. The evidence says which.
  Neither enters the Holm family.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from harness import stats as st
from harness.io import atomic_write_text
from harness.stats_spec import (
    HYPOTHESIS_KINDS,
    SCALAR_METRICS,
    validate_stats_spec,
)

__all__ = [
    "REQUIRED_COLUMNS",
    "RUN_STATUSES",
    "SCALAR_METRICS",
    "HYPOTHESIS_KINDS",
    "VERDICTS",
    "COLUMNS",
    "Analysis",
    "analyze",
    "default_predictions_loader",
    "load_results",
    "validate_stats_spec",
]

REQUIRED_COLUMNS = ("run_id", "grid", "dataset", "arm", "seed", "metric", "corruption", "severity",
                    "value", "status", "run_dir")
RUN_STATUSES = ("complete", "failed", "running", "missing")
#: extra columns of results.csv that are not factors (``reason``: why a run is not complete)
_NON_FACTOR_COLUMNS = ("reason",)
#: metrics in [0, 1] that evidence texts show in percent / percentage points, like the report
_FRACTION_PREFIXES = ("accuracy", "corruption_accuracy", "op_accuracy", "ece", "cifar10h_accuracy")
VERDICTS = ("supported", "not supported", "contradicted", "inconclusive", "not tested")
GUARD_NOTE = f"fewer than {st.MIN_SEEDS} seeds: no p-value"

#: columns of each CSV under reports/stats/ (summary.csv is followed by the factor columns)
COLUMNS: dict[str, list[str]] = {
    "summary": ["arm", "metric", "corruption", "n", "mean", "std", "ci_low", "ci_high", "seeds"],
    "comparisons": ["family", "arm", "reference", "metric", "n_arm", "n_ref", "paired", "test",
                    "mean_arm", "mean_ref", "diff", "boot_ci_low", "boot_ci_high", "statistic", "df",
                    "p", "p_holm", "reject_holm", "wilcoxon_p", "hedges_g", "g_ci_low", "g_ci_high",
                    "seeds_for_power", "note"],
    "mcnemar": ["family", "arm", "reference", "seed", "n", "b", "c", "statistic", "p", "method"],
    "anova": ["name", "metric", "term", "sum_sq", "df", "F", "p", "note"],
    "tost": ["name", "arm", "reference", "metric", "margin", "diff", "p", "p_lower", "p_upper",
             "equivalent", "paired", "note"],
    "runs_status": ["run_id", "arm", "seed", "status", "reason"],
}
HYPOTHESIS_KEYS = ("id", "statement", "kind", "verdict", "p", "p_holm", "metric", "arms", "evidence")

PredictionsLoader = Callable[[str], Mapping[str, np.ndarray]]


# =====================================================================================
# loading and validating the results table
# =====================================================================================
def load_results(path: str | Path) -> pd.DataFrame:
    """Read ``reports/results.csv`` (see docs/pipeline.md) into a normalised DataFrame.

    Text columns (and the factor columns) keep their literal text, empty cells become ``""``
    (no "NA"/"None" guessing); ``seed`` becomes int64, ``value`` and ``severity`` float
    (NaN where empty). Raises ``FileNotFoundError`` for a missing file and ``ValueError``
    naming the column for a missing required column, an unknown status or a non-numeric
    value/seed/severity.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results table {path} does not exist (it is written by stage `results`)")
    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
    return _normalize_results(df, source=str(path))


def _is_text(col: pd.Series) -> bool:
    return col.dtype == object or pd.api.types.is_string_dtype(col.dtype)


def _to_number(col: pd.Series, name: str, source: str) -> pd.Series:
    raw = col.astype(object).replace({"": np.nan}) if _is_text(col) else col
    try:
        return pd.to_numeric(raw, errors="raise").astype(float)
    except (ValueError, TypeError) as exc:
        bad = pd.to_numeric(raw, errors="coerce").isna() & raw.notna()
        example = raw[bad].iloc[0] if bad.any() else "?"
        raise ValueError(f"{source}: column {name!r} must be numeric; got {example!r}") from exc


def _normalize_results(df: pd.DataFrame, source: str = "results") -> pd.DataFrame:
    """Check the required columns and coerce types (see :func:`load_results`)."""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing required column(s) {', '.join(map(repr, missing))}; "
                         f"required: {', '.join(REQUIRED_COLUMNS)}")
    df = df.copy()
    for c in ("run_id", "grid", "dataset", "arm", "metric", "corruption", "status", "run_dir"):
        df[c] = df[c].fillna("").astype(str)
    for c in df.columns:  # factor columns: empty where an arm lacks the factor
        if c not in REQUIRED_COLUMNS and _is_text(df[c]):
            df[c] = df[c].astype(object).fillna("")
    seed = _to_number(df["seed"], "seed", source)
    if seed.isna().any() or not np.all(np.equal(np.mod(seed, 1), 0)):
        bad = df.loc[seed.isna() | (np.mod(seed.fillna(0), 1) != 0), "seed"].iloc[0]
        raise ValueError(f"{source}: column 'seed' must hold integers; got {bad!r}")
    df["seed"] = seed.astype(np.int64)
    df["value"] = _to_number(df["value"], "value", source)
    df["severity"] = _to_number(df["severity"], "severity", source)
    bad_status = ~df["status"].isin(RUN_STATUSES)
    if bad_status.any():
        row = df[bad_status].iloc[0]
        raise ValueError(f"{source}: column 'status' of run {row['run_id']!r} is {row['status']!r}; "
                         f"allowed: {', '.join(RUN_STATUSES)}")
    n_status = df.groupby(["arm", "seed"])["status"].nunique()
    if (n_status > 1).any():
        arm, seed = n_status[n_status > 1].index[0]
        raise ValueError(f"{source}: run arm={arm!r} seed={seed} has rows with several statuses "
                         f"{sorted(df.loc[(df.arm == arm) & (df.seed == seed), 'status'].unique())}; "
                         "a run has exactly one status")
    comp = df[df["status"] == "complete"]
    dup = comp.duplicated(["arm", "seed", "metric", "corruption", "severity"])
    if dup.any():
        row = comp[dup].iloc[0]
        raise ValueError(f"{source}: duplicate result row for run {row['run_id']!r}: metric="
                         f"{row['metric']!r} corruption={row['corruption']!r} severity={row['severity']}")
    return df


def _factor_columns(df: pd.DataFrame) -> list[str]:
    return sorted(c for c in df.columns if c not in REQUIRED_COLUMNS and c not in _NON_FACTOR_COLUMNS)


# =====================================================================================
def default_predictions_loader(run_dir: str) -> dict[str, np.ndarray]:
    """Load ``labels`` and ``clean`` from ``<run_dir>/predictions.npz`` (only those two arrays)."""
    with np.load(Path(run_dir) / "predictions.npz") as z:
        return {k: z[k] for k in ("labels", "clean") if k in z.files}


# =====================================================================================
# the analysis
# =====================================================================================
@dataclass
class Analysis:
    """Statistical outputs of one grid; :meth:`write` produces ``reports/stats/`` (docs/pipeline.md).

    DataFrames carry exactly the contract columns (``summary`` adds the factor columns).
    ``hypotheses`` is a list of dicts with the keys of :data:`HYPOTHESIS_KEYS`; ``meta`` holds
    ``alpha, n_boot, power, min_seeds, guards, counts`` (the content of ``stats.json``).
    """

    summary: pd.DataFrame
    comparisons: pd.DataFrame
    mcnemar: pd.DataFrame
    anova: pd.DataFrame
    tost: pd.DataFrame
    runs_status: pd.DataFrame
    hypotheses: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write every contract file under ``out_dir`` atomically; return their paths.

        CSVs without index; NaN is written as an empty cell, ``inf`` as ``inf``. JSON is strict
        (NaN/inf become ``null``).
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name in ("summary", "comparisons", "mcnemar", "anova", "tost", "runs_status"):
            path = out / f"{name}.csv"
            atomic_write_text(path, getattr(self, name).to_csv(index=False))
            written.append(path)
        for name, obj in (("hypotheses.json", self.hypotheses), ("stats.json", self.meta)):
            path = out / name
            atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n")
            written.append(path)
        return written


def _jsonable(o: Any) -> Any:
    if isinstance(o, Mapping):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (bool, np.bool_)):
        return bool(o)
    if isinstance(o, (int, np.integer)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(float(o)) else None
    return o


def _tristate(col: pd.Series) -> pd.Series:
    """True / False / None (not computed) as Python objects: written as True, False or empty."""
    return pd.Series([None if v is None or (isinstance(v, float) and math.isnan(v)) else bool(v)
                      for v in col], index=col.index, dtype=object)


def _fmt(x: float, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x:+.4g}" if signed else f"{x:.4g}"


def _seeds_text(seeds) -> str:
    return " ".join(str(int(s)) for s in seeds)


class _Grid:
    """Indexed views of the normalised results: per-run status and per-(arm, metric) values."""

    def __init__(self, results: pd.DataFrame, metrics: set[str]):
        self.results = results
        self.factor_cols = _factor_columns(results)
        runs = results.drop_duplicates(["arm", "seed"])[["run_id", "arm", "seed", "status", "run_dir"]]
        self.runs = runs.sort_values(["arm", "seed"]).reset_index(drop=True)
        self.status = {(a, int(s)): stt for a, s, stt in
                       zip(self.runs["arm"], self.runs["seed"], self.runs["status"])}
        self.declared = {a: sorted(int(s) for s in g) for a, g in self.runs.groupby("arm")["seed"]}
        comp_runs = self.runs[self.runs["status"] == "complete"]
        self.run_dir = {(a, int(s)): d for a, s, d in
                        zip(comp_runs["arm"], comp_runs["seed"], comp_runs["run_dir"])}
        complete = results[results["status"] == "complete"]
        self.complete = complete
        scal = complete[(complete["corruption"] == "") & complete["metric"].isin(metrics)]
        finite = np.isfinite(scal["value"].to_numpy())
        self.n_nonfinite = int((~finite).sum())
        self.nonfinite_examples = scal.loc[~finite, "run_id"].head(5).tolist()
        self.scalar = scal[finite]
        self.values: dict[tuple[str, str], pd.Series] = {
            (a, m): g.set_index("seed")["value"].sort_index()
            for (a, m), g in self.scalar.groupby(["arm", "metric"], sort=False)}
        self.arm_factors = (results.groupby("arm")[self.factor_cols].first()
                            if self.factor_cols else pd.DataFrame(index=sorted(self.declared)))

    def vals(self, arm: str, metric: str) -> pd.Series:
        return self.values.get((arm, metric), pd.Series(dtype=float, index=pd.Index([], dtype=np.int64)))

    def lost(self, arm: str, metric: str) -> str:
        """'' or a phrase listing the declared seeds of ``arm`` without a value for ``metric``."""
        if arm not in self.declared:
            return f"{arm} has no runs in the results"
        have = set(self.vals(arm, metric).index)
        parts = []
        for s in self.declared[arm]:
            if s not in have:
                stt = self.status[(arm, s)]
                parts.append(f"s{s} ({stt if stt != 'complete' else 'no finite ' + metric + ' value'})")
        return f"{arm} lost seeds {', '.join(parts)}" if parts else ""


def _status_reason(status: str, run_dir: str) -> str:
    """Reason text for a non-complete run: from ``<run_dir>/status.json`` when readable."""
    info: dict = {}
    if run_dir:
        try:
            info = json.loads((Path(run_dir) / "status.json").read_text())
        except (OSError, ValueError):
            info = {}
    if isinstance(info, dict) and info.get("reason"):
        where = ", ".join(f"{k} {info[k]}" for k in ("epoch", "step") if info.get(k) is not None)
        return f"{info['reason']}" + (f" (at {where})" if where else "")
    return {"failed": "failed (no reason recorded)",
            "running": "interrupted: status still 'running'",
            "missing": "never ran (no status.json)"}.get(status, status)


def analyze(results: pd.DataFrame, spec: Mapping | None, *,
            predictions_loader: PredictionsLoader | None = None) -> Analysis:
    """Turn the long-format results table into the statistical outputs of the contract.

    ``results``: the table of :func:`load_results` (a DataFrame with the contract columns;
    it is normalised again here, so a hand-built frame works). ``spec``: the ``stats:`` spec
    (validated with :func:`validate_stats_spec`). ``predictions_loader(run_dir)`` returns a
    mapping with ``labels`` and ``clean`` arrays for McNemar (default:
    :func:`default_predictions_loader`). See the module docstring for the rules.
    """
    spec = validate_stats_spec(spec)
    results = _normalize_results(results)
    loader = predictions_loader or default_predictions_loader
    alpha, n_boot, power = spec["alpha"], spec["n_boot"], spec["power"]
    needed = set(spec["metrics"]) | {a["metric"] for a in spec["anova"]} \
        | {q["metric"] for q in spec["equivalence"]} \
        | {h["metric"] for h in spec["hypotheses"] if "metric" in h}
    grid = _Grid(results, needed)
    guards: list[str] = []
    if grid.n_nonfinite:
        guards.append(f"non-finite values: {grid.n_nonfinite} value(s) of complete runs are NaN/inf and "
                      f"were left out (runs {', '.join(grid.nonfinite_examples)}"
                      f"{' ...' if grid.n_nonfinite > 5 else ''})")

    summary = _summary(grid, spec["metrics"], guards)
    comparisons = _comparisons(grid, spec, guards)
    mcnemar = _mcnemar(grid, spec["comparisons"], loader, guards)
    anova, anova_state = _anova(grid, spec["anova"], guards)
    tost, tost_state = _tost(grid, spec["equivalence"], alpha, guards)
    hypotheses = _hypotheses(grid, spec, anova_state, tost_state, guards)

    bad = grid.runs[grid.runs["status"] != "complete"]
    runs_status = pd.DataFrame({
        "run_id": bad["run_id"].to_numpy(), "arm": bad["arm"].to_numpy(),
        "seed": bad["seed"].to_numpy(), "status": bad["status"].to_numpy(),
        "reason": [_status_reason(s, d) for s, d in zip(bad["status"], bad["run_dir"])],
    }, columns=COLUMNS["runs_status"])

    status_counts = grid.runs["status"].value_counts()
    n_mc_skip = int(mcnemar["method"].str.startswith("skipped").sum()) if len(mcnemar) else 0
    counts = {
        "runs": int(len(grid.runs)),
        **{s: int(status_counts.get(s, 0)) for s in RUN_STATUSES},
        "arms": int(len(grid.declared)),
        "seeds": sorted({int(s) for s in grid.runs["seed"]}),
        "result_rows": int(len(results)),
        "nonfinite_values_dropped": grid.n_nonfinite,
        "comparisons": int(len(comparisons)),
        "comparisons_tested": int(comparisons["p"].notna().sum()) if len(comparisons) else 0,
        "comparisons_min_seed_guard": int(comparisons["note"].str.contains(GUARD_NOTE, regex=False).sum())
        if len(comparisons) else 0,
        "mcnemar_tests": int(len(mcnemar) - n_mc_skip),
        "mcnemar_skipped": n_mc_skip,
        "anova": len(spec["anova"]),
        "tost": len(spec["equivalence"]),
        "hypotheses": len(hypotheses),
        "verdicts": {v: sum(h["verdict"] == v for h in hypotheses) for v in VERDICTS},
    }
    meta = {"alpha": alpha, "n_boot": n_boot, "power": power, "min_seeds": st.MIN_SEEDS,
            "guards": guards, "counts": counts}
    return Analysis(summary=summary, comparisons=comparisons, mcnemar=mcnemar, anova=anova,
                    tost=tost, runs_status=runs_status, hypotheses=hypotheses, meta=meta)


# ------------------------------------------------------------------------------ summary
def _describe(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """n, mean, std (ddof=1) and the seeds of ``value`` per ``keys`` group (one row per seed)."""
    if df.empty:
        return pd.DataFrame({"n": pd.Series(dtype=np.int64), "mean": pd.Series(dtype=float),
                             "std": pd.Series(dtype=float), "seeds": pd.Series(dtype=object)},
                            index=pd.MultiIndex.from_arrays([[] for _ in keys], names=keys))
    g = df.groupby(keys, sort=False)
    agg = g["value"].agg(["size", "mean", "std"]).rename(columns={"size": "n"})
    agg["seeds"] = g["seed"].agg(lambda s: _seeds_text(sorted(s))).astype(object)
    return agg


def _summary(grid: _Grid, metrics: list[str], guards: list[str]) -> pd.DataFrame:
    arms = sorted(grid.declared)
    scal = grid.scalar[grid.scalar["metric"].isin(metrics)]
    agg = _describe(scal, ["arm", "metric"])
    idx = pd.MultiIndex.from_product([arms, metrics], names=["arm", "metric"])
    agg = agg.reindex(idx)
    agg["n"] = agg["n"].fillna(0).astype(np.int64)
    agg["seeds"] = agg["seeds"].astype(object).fillna("")
    agg = agg.reset_index()
    agg["corruption"] = ""

    cor = grid.complete[(grid.complete["metric"] == "accuracy") & (grid.complete["corruption"] != "")]
    cor = cor[np.isfinite(cor["value"].to_numpy())]
    per_run = cor.groupby(["arm", "seed", "corruption"], sort=False)["value"].mean().reset_index()
    cagg = _describe(per_run, ["arm", "corruption"]).reset_index()
    cagg["metric"] = "corruption_accuracy"
    cagg = cagg.sort_values(["arm", "corruption"])

    out = pd.concat([agg, cagg], ignore_index=True) if len(cagg) else agg
    out["n"] = out["n"].astype(np.int64)
    low, high = st.t_ci_mean(out["mean"].to_numpy(), out["std"].to_numpy(), out["n"].to_numpy(), 0.95)
    out["ci_low"], out["ci_high"] = low, high
    out = out[COLUMNS["summary"]]
    if grid.factor_cols:
        out = out.join(grid.arm_factors, on="arm")
    n_small = int(((out["n"] > 0) & (out["n"] < 2)).sum())
    if n_small:
        guards.append(f"summary: {n_small} row(s) with a single seed have NaN std and CI (n < 2)")
    return out.reset_index(drop=True)


# ------------------------------------------------------------------------------ comparisons
def _pair_note(va: pd.Series, vr: pd.Series) -> str:
    return (f"seed sets differ (arm: {_seeds_text(va.index)}; reference: {_seeds_text(vr.index)}): "
            "unpaired Welch t")


def _comparisons(grid: _Grid, spec: dict, guards: list[str]) -> pd.DataFrame:
    alpha = spec["alpha"]
    rows = []
    for c in spec["comparisons"]:
        fam, arm, ref = c["family"], c["arm"], c["reference"]
        for metric in spec["metrics"]:
            va, vr = grid.vals(arm, metric), grid.vals(ref, metric)
            notes = [x for x in (grid.lost(arm, metric), grid.lost(ref, metric)) if x]
            row: dict[str, Any] = {
                "family": fam, "arm": arm, "reference": ref, "metric": metric,
                "n_arm": len(va), "n_ref": len(vr),
                "paired": (set(va.index) == set(vr.index)) if len(va) and len(vr) else None,
                "test": "", "mean_arm": va.mean() if len(va) else math.nan,
                "mean_ref": vr.mean() if len(vr) else math.nan,
            }
            row["diff"] = row["mean_arm"] - row["mean_ref"]
            if len(va) < st.MIN_SEEDS or len(vr) < st.MIN_SEEDS:
                notes.append(GUARD_NOTE)
                guards.append(f"{GUARD_NOTE}: comparison {fam}: {arm} vs {ref} on {metric} "
                              f"(n_arm={len(va)}, n_ref={len(vr)})")
                row["test"] = "none"
            else:
                if not row["paired"]:
                    notes.append(_pair_note(va, vr))
                r = st.compare_arms(vr.to_numpy(), va.to_numpy(), seeds_a=vr.index.tolist(),
                                    seeds_b=va.index.tolist(), n_boot=spec["n_boot"],
                                    seed=spec["bootstrap_seed"], alpha=alpha)
                g = r["hedges_g"]
                if math.isnan(g):
                    sfp = math.inf if r["diff"] == 0 else math.nan
                    if r["diff"] != 0:
                        notes.append("zero variance: effect size and seeds_for_power undefined")
                else:
                    try:
                        sfp = st.seeds_for_power(g, alpha=alpha, power=spec["power"], paired=r["paired"])
                    except ValueError as exc:
                        sfp = math.nan
                        notes.append(f"seeds_for_power not computed: {exc}")
                if math.isnan(r["pvalue"]):
                    notes.append("zero variance of the differences: no p-value")
                row.update(test=r["test"], boot_ci_low=r["boot_ci"][0], boot_ci_high=r["boot_ci"][1],
                           statistic=r["statistic"], df=r["df"], p=r["pvalue"],
                           wilcoxon_p=r["wilcoxon"]["pvalue"] if r["wilcoxon"] else math.nan,
                           hedges_g=g, g_ci_low=r["g_ci"][0], g_ci_high=r["g_ci"][1],
                           seeds_for_power=sfp)
            row["note"] = "; ".join(notes)
            rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS["comparisons"])
    for col in ("boot_ci_low", "boot_ci_high", "statistic", "df", "p", "p_holm", "wilcoxon_p",
                "hedges_g", "g_ci_low", "g_ci_high", "seeds_for_power"):
        df[col] = df[col].astype(float)
    df["reject_holm"] = pd.Series([None] * len(df), dtype=object)
    df["paired"] = _tristate(df["paired"])
    df["note"] = df["note"].fillna("")
    for _, g in df.groupby(["family", "metric"], sort=False):
        ok = g.index[g["p"].notna()]
        if len(ok):
            reject, adj = st.holm(df.loc[ok, "p"].to_numpy(), alpha=alpha)
            df.loc[ok, "p_holm"] = adj
            df.loc[ok, "reject_holm"] = pd.Series([bool(r) for r in reject], index=ok, dtype=object)
    return df


# ------------------------------------------------------------------------------ McNemar
def _mcnemar(grid: _Grid, comparisons: list[dict], loader: PredictionsLoader,
             guards: list[str]) -> pd.DataFrame:
    cache: dict[str, tuple[np.ndarray, np.ndarray] | str] = {}

    def correct(run_dir: str) -> tuple[np.ndarray, np.ndarray] | str:
        if run_dir not in cache:
            try:
                pred = loader(run_dir)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                cache[run_dir] = f"predictions of {run_dir or '?'} unavailable ({type(exc).__name__})"
                return cache[run_dir]
            if pred is None or "labels" not in pred or "clean" not in pred:
                cache[run_dir] = f"predictions of {run_dir or '?'} lack 'labels'/'clean'"
            else:
                labels = np.asarray(pred["labels"]).ravel()
                clean = np.asarray(pred["clean"]).ravel()
                if labels.size != clean.size or labels.size == 0:
                    cache[run_dir] = (f"predictions of {run_dir}: clean has {clean.size} entries, "
                                      f"labels {labels.size}")
                else:
                    cache[run_dir] = (labels, clean == labels)
        return cache[run_dir]

    rows = []
    for c in comparisons:
        fam, arm, ref = c["family"], c["arm"], c["reference"]
        seeds = sorted(s for (a, s) in grid.run_dir if a == arm and (ref, s) in grid.run_dir)
        skipped: list[tuple[int, str]] = []
        for s in seeds:
            base = {"family": fam, "arm": arm, "reference": ref, "seed": s}
            ca, cr = correct(grid.run_dir[(arm, s)]), correct(grid.run_dir[(ref, s)])
            reason = ca if isinstance(ca, str) else cr if isinstance(cr, str) else None
            if reason is None and ca[0].size != cr[0].size:
                reason = f"test-set lengths differ (arm {ca[0].size}, reference {cr[0].size})"
            elif reason is None and not np.array_equal(ca[0], cr[0]):
                reason = "labels differ: not the same test set"
            if reason is not None:
                rows.append({**base, "method": f"skipped: {reason}"})
                skipped.append((s, reason))
                continue
            r = st.mcnemar_test(cr[1], ca[1])  # a = reference, b = arm
            rows.append({**base, "n": int(ca[1].size), "b": r["b"], "c": r["c"],
                         "statistic": r["statistic"], "p": r["pvalue"], "method": r["method"]})
        if skipped:
            guards.append(f"mcnemar skipped: {fam}: {arm} vs {ref}, seed(s) "
                          f"{_seeds_text(s for s, _ in skipped)}: {skipped[0][1]}"
                          + (" (and other reasons; see mcnemar.csv)"
                             if len({r for _, r in skipped}) > 1 else ""))
    df = pd.DataFrame(rows, columns=COLUMNS["mcnemar"])
    for col in ("n", "b", "c"):
        df[col] = df[col].astype("Int64")
    return df


# ------------------------------------------------------------------------------ ANOVA
def _anova(grid: _Grid, entries: list[dict], guards: list[str]) -> tuple[pd.DataFrame, dict]:
    rows, state = [], {}
    for e in entries:
        name, metric, arms, (fa, fb) = e["name"], e["metric"], e["arms"], e["factors"]
        lost = "; ".join(x for x in (grid.lost(a, metric) for a in arms) if x)
        single = None
        absent = [a for a in arms if len(grid.vals(a, metric)) == 0]
        no_col = [f for f in (fa, fb) if f not in grid.factor_cols]
        if absent:
            single = ("not tested", f"arms without complete {metric} values: {', '.join(absent)}")
        elif no_col:
            single = ("not tested", f"factor column(s) {', '.join(no_col)} absent from the results")
        else:
            parts = []
            for a in arms:
                v = grid.vals(a, metric)
                parts.append(pd.DataFrame({"value": v.to_numpy(), fa: str(grid.arm_factors.at[a, fa]),
                                           fb: str(grid.arm_factors.at[a, fb])}))
            data = pd.concat(parts, ignore_index=True)
            empty = [a for a in arms
                     if any(pd.isna(x) or str(x) == "" for x in (grid.arm_factors.at[a, fa],
                                                                   grid.arm_factors.at[a, fb]))]
            cells = data.groupby([fa, fb]).size()
            if empty:
                single = ("not tested", f"arms without a value for {fa} or {fb}: {', '.join(empty)}")
            elif len(cells) and cells.min() < st.MIN_SEEDS:
                small = ", ".join(f"({fa}={i[0]}, {fb}={i[1]}): n={n}"
                                  for i, n in cells[cells < st.MIN_SEEDS].items())
                single = ("inconclusive", f"{GUARD_NOTE}: cell(s) {small}")
                guards.append(f"{GUARD_NOTE}: anova {name}: {small}")
            else:
                try:
                    table = st.two_way_anova(data, "value", fa, fb)
                except ValueError as exc:
                    single = ("not tested", f"ANOVA not computed: {exc}")
                else:
                    for term, r in table.iterrows():
                        rows.append({"name": name, "metric": metric, "term": term, "sum_sq": r["sum_sq"],
                                     "df": r["df"], "F": r["F"], "p": r["PR(>F)"], "note": lost})
                    p = float(table.loc[f"{fa}:{fb}", "PR(>F)"])
                    state[name] = {"state": "tested", "p": p, "entry": e, "lost": lost,
                                   "F": float(table.loc[f"{fa}:{fb}", "F"]),
                                   "df": (float(table.loc[f"{fa}:{fb}", "df"]),
                                          float(table.loc["Residual", "df"]))}
        if single is not None:
            note = "; ".join(x for x in (single[1], lost) if x)
            rows.append({"name": name, "metric": metric, "term": "", "sum_sq": math.nan, "df": math.nan,
                         "F": math.nan, "p": math.nan, "note": note})
            state[name] = {"state": single[0], "p": math.nan, "entry": e, "lost": lost, "why": single[1]}
    return pd.DataFrame(rows, columns=COLUMNS["anova"]), state


# ------------------------------------------------------------------------------ TOST
def _tost(grid: _Grid, entries: list[dict], alpha: float,
          guards: list[str]) -> tuple[pd.DataFrame, dict]:
    rows, state = [], {}
    for e in entries:
        name, arm, ref, metric, margin = e["name"], e["arm"], e["reference"], e["metric"], e["margin"]
        va, vr = grid.vals(arm, metric), grid.vals(ref, metric)
        notes = [x for x in (grid.lost(arm, metric), grid.lost(ref, metric)) if x]
        paired = set(va.index) == set(vr.index) if len(va) and len(vr) else None
        row = {"name": name, "arm": arm, "reference": ref, "metric": metric, "margin": margin,
               "diff": (va.mean() - vr.mean()) if len(va) and len(vr) else math.nan,
               "p": math.nan, "p_lower": math.nan, "p_upper": math.nan, "equivalent": None,
               "paired": paired}
        if len(va) < st.MIN_SEEDS or len(vr) < st.MIN_SEEDS:
            notes.append(GUARD_NOTE)
            guards.append(f"{GUARD_NOTE}: tost {name} (n_arm={len(va)}, n_ref={len(vr)})")
        else:
            if not paired:
                notes.append(_pair_note(va, vr))
            try:
                r = st.tost_equivalence(vr.to_numpy(), va.to_numpy(), margin, paired=bool(paired),
                                        alpha=alpha)
            except ValueError as exc:
                notes.append(f"TOST not computed: {exc}")
            else:
                row.update(diff=r["diff"], p=r["pvalue"], p_lower=r["p_lower"], p_upper=r["p_upper"],
                           equivalent=r["equivalent"])
                if r["method"].startswith("degenerate"):
                    notes.append(r["method"])
        row["note"] = "; ".join(notes)
        rows.append(row)
        state[name] = row
    df = pd.DataFrame(rows, columns=COLUMNS["tost"])
    df["equivalent"] = _tristate(df["equivalent"])
    df["paired"] = _tristate(df["paired"])
    return df, state


# ------------------------------------------------------------------------------ hypotheses
def _hypotheses(grid: _Grid, spec: dict, anova_state: dict, tost_state: dict,
                guards: list[str]) -> list[dict]:
    alpha = spec["alpha"]
    recs = []
    for h in spec["hypotheses"]:
        rec: dict[str, Any] = {"id": h["id"], "statement": h["statement"], "kind": h["kind"],
                               "verdict": None, "p": math.nan, "p_holm": math.nan}
        if h["kind"] == "interaction":
            a = anova_state[h["anova"]]
            e = a["entry"]
            rec.update(metric=e["metric"], arms=list(e["arms"]))
            fa, fb = e["factors"]
            if a["state"] != "tested":
                rec["verdict"] = a["state"]
                rec["evidence"] = f"ANOVA {h['anova']}: {a['why']}"
            elif math.isnan(a["p"]):
                rec["verdict"] = "inconclusive"
                rec["evidence"] = f"ANOVA {h['anova']}: the interaction F test is undefined (zero residual)"
            else:
                rec["p"] = a["p"]
                rec["_evidence"] = (f"two-way ANOVA {h['anova']} (Type II) on {e['metric']}: "
                                    f"{fa} x {fb} interaction F({a['df'][0]:g}, {a['df'][1]:g}) = "
                                    f"{_fmt(a['F'])}, p = {_fmt(a['p'])}")
            if a["lost"]:
                rec["_lost"] = a["lost"]
        else:
            arm, ref, metric = h["arm"], h["reference"], h["metric"]
            rec.update(metric=metric, arms=[arm, ref])
            va, vr = grid.vals(arm, metric), grid.vals(ref, metric)
            lost = "; ".join(x for x in (grid.lost(arm, metric), grid.lost(ref, metric)) if x)
            if lost:
                rec["_lost"] = lost
            absent = [x for x, v in ((arm, va), (ref, vr)) if len(v) == 0]
            few = [f"{x} (n={len(v)})" for x, v in ((arm, va), (ref, vr)) if 0 < len(v) < st.MIN_SEEDS]
            if absent:
                rec["verdict"] = "not tested"
                rec["evidence"] = f"no complete {metric} values for {', '.join(absent)}"
            elif few:
                rec["verdict"] = "inconclusive"
                rec["evidence"] = f"{GUARD_NOTE}: {', '.join(few)}"
                guards.append(f"{GUARD_NOTE}: hypothesis {h['id']}: {', '.join(few)}")
            else:
                _directional(rec, h, va, vr, spec, tost_state)
        recs.append(rec)

    tested = [r for r in recs if r["verdict"] is None]
    if tested:
        _, adj = st.holm([r["p"] for r in tested], alpha=alpha)
        for r, pa in zip(tested, adj):
            r["p_holm"] = float(pa)
    m = len(tested)
    for r in recs:
        if r["verdict"] is None:
            sig = r["p_holm"] < alpha
            if r["kind"] == "interaction":
                r["verdict"] = "supported" if sig else "not supported"
            elif r["kind"] == "not_better":
                # "not better" needs positive evidence: equivalence (TOST) or a significant deficit;
                # a non-significant superiority test alone is absence of evidence -> inconclusive
                r["verdict"] = ("contradicted" if sig else
                                "supported" if (r["_equivalent"] or r["_worse"]) else "inconclusive")
            else:
                r["verdict"] = ("supported" if sig else
                                "contradicted" if r["_p_opposite"] < alpha else "not supported")
            r["evidence"] = (f"{r['_evidence']}; Holm-adjusted over {m} tested hypothesis(es): "
                             f"p_holm = {_fmt(r['p_holm'])} {'<' if sig else '>='} alpha = {alpha:g}"
                             + (f"; {r['_tail']}" if r.get("_tail") else ""))
        if r.get("_lost"):
            r["evidence"] += f"; lost runs: {r['_lost']}"
    return [{k: r[k] for k in HYPOTHESIS_KEYS} for r in recs]


def _pp(x: float, metric: str, signed: bool = False) -> str:
    """``x`` in the report's unit: percentage points for fraction metrics, else as is."""
    if metric.startswith(_FRACTION_PREFIXES):
        return f"{_fmt(100 * x, signed)} pp"
    return _fmt(x, signed)


def _directional(rec: dict, h: dict, va: pd.Series, vr: pd.Series, spec: dict,
                 tost_state: dict) -> None:
    """Fill p and the evidence of a not_better / lower / higher hypothesis (n >= MIN_SEEDS)."""
    alpha = spec["alpha"]
    arm, ref, metric = h["arm"], h["reference"], h["metric"]
    paired = set(va.index) == set(vr.index)
    a, b = vr.to_numpy(), va.to_numpy()  # already sorted by seed; diff = b - a = arm - reference
    cmp = st.compare_arms(a, b, seeds_a=vr.index.tolist(), seeds_b=va.index.tolist(),
                          n_boot=spec["n_boot"], seed=spec["bootstrap_seed"], alpha=alpha)
    design = (f"{len(va)} paired seeds" if paired else
              f"unpaired, {len(va)} vs {len(vr)} seeds (seed sets differ)")
    lvl = f"{100 * (1 - alpha):g}%"
    diff_txt = (f"mean difference {arm} - {ref} on {metric} = {_pp(cmp['diff'], metric, True)} "
                f"[{lvl} bootstrap CI {_pp(cmp['boot_ci'][0], metric, True)}, "
                f"{_pp(cmp['boot_ci'][1], metric, True)}], {design}")
    test = "paired t" if paired else "Welch t"
    direction = {"not_better": "greater", "higher": "greater", "lower": "less"}[h["kind"]]
    opposite = "less" if direction == "greater" else "greater"
    main = st.one_sided_t(a, b, alternative=direction, paired=paired)
    other = st.one_sided_t(a, b, alternative=opposite, paired=paired)
    sym = ">" if direction == "greater" else "<"
    rec["p"] = main["pvalue"]
    rec["_p_opposite"] = other["pvalue"]
    rec["_evidence"] = (f"{diff_txt}; one-sided {test} ({arm} {sym} {ref}): p = {_fmt(main['pvalue'])}")
    tail = []
    if h["kind"] == "not_better":
        q = tost_state.get(h.get("equivalence")) if h.get("equivalence") else None
        rec["_equivalent"] = bool(q is not None and q["equivalent"])
        if q is not None:
            margin = _pp(q["margin"], metric)
            if q["equivalent"] is None:
                tail.append(f"TOST {h['equivalence']} (margin +/-{margin}) not computed"
                            f" ({q['note'] or 'no result'})")
            else:
                verdict = "equivalent" if q["equivalent"] else "equivalence not shown"
                tail.append(f"TOST {h['equivalence']}: {verdict} within +/-{margin} "
                            f"(p = {_fmt(q['p'])})")
        worse = other["pvalue"] < alpha
        rec["_worse"] = bool(worse)
        tail.append(f"{arm} is {'significantly' if worse else 'not significantly'} worse than {ref} "
                    f"(one-sided {test}, p = {_fmt(other['pvalue'])}, unadjusted)")
    else:
        osym = "<" if sym == ">" else ">"
        tail.append(f"opposite direction ({arm} {osym} {ref}): one-sided p = {_fmt(other['pvalue'])} "
                    "(unadjusted: a secondary check, not in the Holm family)")
    rec["_tail"] = "; ".join(tail)
