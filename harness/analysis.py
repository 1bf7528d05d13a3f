"""Stage ``stats``: from the long-format results table of a multi-seed grid to statistical outputs.

Input is ``reports/results.csv`` and the ``stats:`` spec of ``params.yaml``; output is the set of
files under ``reports/stats/`` fixed by ``docs/pipeline.md``. The statistics are the pure functions
of :mod:`harness.stats`, the verdict rules the table of :mod:`harness.verdicts`; this module selects
the data (pairing by seed, lost runs), applies the guards and assembles the tables.

Data rules
----------
* Only rows with ``status == complete`` enter statistics. Every other run (``failed``, ``corrupt``,
  ``running`` = interrupted, ``missing`` = never ran) is listed in ``runs_status`` with its reason
  (the ``reason`` column of results.csv, else the run's ``status.json``) and counted in
  ``meta['counts']``; a test that lost seeds says which.
* Differences are ``arm - reference`` in the metric's unit (accuracy and ECE as fractions).
* **Pairing is by seed**, on the seeds all arms of a test share; the seeds dropped from the
  pairing are named. Welch (unpaired) only when two arms share no seed at all; 1-2 common seeds
  give no p-value. Fewer than :data:`harness.stats.MIN_SEEDS` values: no p-value (a guard).

Hypotheses (the primary, confirmatory part)
-------------------------------------------
Each pre-declared hypothesis has one primary one-sided test in its declared direction:

* ``interaction`` -- per seed, the gap ``arm - reference`` of every pair; with 2 pairs the
  difference of differences ``gap_high - gap_low`` (one-sample t on the common seeds), with more
  the slope of the gap on ``levels`` with seed fixed effects (:func:`harness.stats.trend_test`),
  scaled to the level range. ``direction: increasing`` tests ``> 0``.
* ``directional`` -- one-sample t on the paired differences, ``> 0`` (``higher``) or ``< 0``.
* ``non_superiority`` -- H0 "the arm is better by the margin (``mde``) or more": one-sided t of the
  difference against ``+mde`` (``-mde`` for lower-is-better metrics).

The primary p-values of the m **declared** hypotheses form **one Holm family** (a hypothesis that
could not be tested counts as p = 1: the family is fixed before the data, so a failed arm cannot
ease the others' correction); the secondary tests (the opposite direction; for non-superiority, the
gain beyond the margin) form a second Holm family over the same m. The verdict follows
:data:`harness.verdicts.RULES` from ``p_holm``, the secondary ``p_holm`` and the **power** that the
design had at the declared ``mde`` at ``alpha / m`` (Holm's first step): from the observed SD of the
per-seed contrast and, for the decision, from its one-sided ``1 - alpha`` upper confidence bound
(``not supported`` claims the design could have found the mde; an SD from a few seeds is too
uncertain to claim that by itself). The interval shown with a verdict is the one-sided
``1 - alpha / m`` bound in the test's direction (simultaneous, Bonferroni), which lies beyond the
null only when the hypothesis is supported.

Secondary and exploratory tables
--------------------------------
* ``comparisons`` -- exploratory two-sided paired t (Welch without common seeds) with the t interval,
  Wilcoxon, d_z (paired) or Hedges' g (unpaired) in separate columns with noncentral-t intervals, a
  BCa bootstrap interval from 20 pairs up; Holm over the whole table of a metric.
* ``anova`` -- descriptive two-way repeated-measures ANOVA (seed as subject, ``AnovaRM``) on the
  seeds common to all its arms; never a decision.
* ``tost`` -- equivalence, paired on common seeds; ``mcnemar`` -- per seed on the saved predictions.
* ``plan`` -- seeds needed per hypothesis for the target power at its ``mde`` (:func:`plan`).
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from harness import stats as st
from harness.io import atomic_write_text
from harness.schema import RESULTS_COLUMNS, RUN_STATUSES, SCALAR_METRICS, STATS_COLUMNS, display_scale, display_unit, metric_info
from harness.stats_spec import HYPOTHESIS_KINDS, validate_stats_spec
from harness.verdicts import RULES, VERDICTS, decide, power_phrase

__all__ = [
    "REQUIRED_COLUMNS",
    "RUN_STATUSES",
    "SCALAR_METRICS",
    "HYPOTHESIS_KINDS",
    "VERDICTS",
    "COLUMNS",
    "Analysis",
    "Verdict",
    "analyze",
    "plan",
    "format_plan",
    "default_predictions_loader",
    "load_results",
    "validate_stats_spec",
]

REQUIRED_COLUMNS = RESULTS_COLUMNS
#: extra columns of results.csv that are not factors (``reason``: why a run is not complete)
_NON_FACTOR_COLUMNS = ("reason",)
GUARD_NOTE = f"fewer than {st.MIN_SEEDS} seeds: no p-value"

#: columns of each CSV under reports/stats/ (summary.csv is followed by the factor columns)
COLUMNS = STATS_COLUMNS

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
# result types
# =====================================================================================
@dataclass(frozen=True)
class Verdict:
    """The decision on one pre-declared hypothesis (one entry of ``hypotheses.json``).

    Effects (``mde``, ``estimate``, CI, ``null``, ``sd``) are in the metric's unit; ``estimate`` is
    the primary contrast (``arm - reference``, the difference of differences, or the trend's change
    over the level range). ``bound`` is the one-sided ``bound_level`` (``1 - alpha/m``) confidence bound
    of the contrast in the test's direction, simultaneous over the m declared hypotheses (Bonferroni):
    the interval that goes with the decision; ``ci_low, ci_high`` are the two-sided, unadjusted
    ``1 - alpha`` t interval (description only). ``p_holm`` / ``p_secondary_holm``: the primary /
    secondary p, Holm-adjusted over the declared hypotheses. ``power`` / ``power_conservative`` are the
    primary test's power at the mde with the observed SD / its upper confidence bound, at
    ``alpha_power``; the verdict uses ``power_conservative``. NaN where not computed.
    """

    id: str
    statement: str
    kind: str
    metric: str
    arms: tuple
    direction: str
    mde: float
    verdict: str = "not tested"
    verdict_text: str = ""
    rule: str = ""
    test: str = ""
    alternative: str = ""
    null: float = math.nan
    estimate: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    statistic: float = math.nan
    df: float = math.nan
    p: float = math.nan
    p_holm: float = math.nan
    secondary: str = ""
    p_secondary: float = math.nan
    p_secondary_holm: float = math.nan
    bound: float = math.nan
    bound_level: float = math.nan
    n_seeds: int = 0
    seeds: tuple = ()
    seeds_dropped: str = ""
    sd: float = math.nan
    sd_upper: float = math.nan
    power: float = math.nan
    power_conservative: float = math.nan
    power_target: float = math.nan
    alpha_power: float = math.nan
    evidence: str = ""


@dataclass
class Analysis:
    """Statistical outputs of one grid; :meth:`write` produces ``reports/stats/`` (docs/pipeline.md).

    DataFrames carry exactly the contract columns (``summary`` adds the factor columns).
    ``hypotheses`` is a list of :class:`Verdict`; ``meta`` holds ``alpha, n_boot, power, min_seeds,
    holm_family, rules, guards, counts`` (the content of ``stats.json``).
    """

    summary: pd.DataFrame
    comparisons: pd.DataFrame
    mcnemar: pd.DataFrame
    anova: pd.DataFrame
    tost: pd.DataFrame
    runs_status: pd.DataFrame
    hypothesis_gaps: pd.DataFrame
    plan: pd.DataFrame
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
        for name in ("summary", "comparisons", "mcnemar", "anova", "tost", "runs_status",
                     "hypothesis_gaps", "plan"):
            path = out / f"{name}.csv"
            atomic_write_text(path, getattr(self, name).to_csv(index=False))
            written.append(path)
        hyps = [asdict(v) for v in self.hypotheses]
        for name, obj in (("hypotheses.json", hyps), ("stats.json", self.meta)):
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


def _pct(level: float) -> str:
    """A confidence level as a percentage: ``0.98333`` -> ``98.3 %``."""
    return f"{100 * level:.3g} %"


def _seeds_text(seeds) -> str:
    return " ".join(str(int(s)) for s in seeds)


class _Grid:
    """Indexed views of the normalised results: per-run status and per-(arm, metric) values."""

    def __init__(self, results: pd.DataFrame, metrics: set[str]):
        self.results = results
        self.factor_cols = _factor_columns(results)
        cols = ["run_id", "arm", "seed", "status", "run_dir"] + (["reason"] if "reason" in results else [])
        runs = results.drop_duplicates(["arm", "seed"])[cols]
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

    def common(self, arms: list[str], metric: str) -> tuple[list[int], dict[str, list[int]]]:
        """Seeds with a value for ``metric`` in every arm of ``arms``, and per arm the seeds it has
        that the pairing drops."""
        have = {a: set(self.vals(a, metric).index) for a in arms}
        common = sorted(set.intersection(*have.values())) if have else []
        return common, {a: sorted(have[a] - set(common)) for a in arms}


def _dropped_text(dropped: Mapping[str, list[int]]) -> str:
    parts = [f"{a}: s{', s'.join(map(str, s))}" for a, s in dropped.items() if s]
    return "; ".join(parts)


def _status_reason(status: str, run_dir: str, recorded: str = "") -> str:
    """Reason text for a non-complete run: the ``reason`` recorded in results.csv, else the run's
    ``status.json``, else a description of the status."""
    if recorded:
        return recorded
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
            "corrupt": "result files unreadable (no reason recorded)",
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
    grid = _Grid(results, _needed_metrics(spec))
    guards: list[str] = []
    if grid.n_nonfinite:
        guards.append(f"non-finite values: {grid.n_nonfinite} value(s) of complete runs are NaN/inf and "
                      f"were left out (runs {', '.join(grid.nonfinite_examples)}"
                      f"{' ...' if grid.n_nonfinite > 5 else ''})")

    summary = _summary(grid, spec["metrics"], guards, alpha)
    comparisons = _comparisons(grid, spec, guards)
    mcnemar = _mcnemar(grid, spec["comparisons"], loader, guards)
    anova = _anova(grid, spec["anova"], guards)
    tost = _tost(grid, spec["equivalence"], alpha, guards)
    hypotheses, gaps = _hypotheses(grid, spec, guards)
    plan_df = _plan(grid, spec)

    bad = grid.runs[grid.runs["status"] != "complete"]
    recorded = bad["reason"].fillna("").astype(str) if "reason" in bad else pd.Series([""] * len(bad))
    runs_status = pd.DataFrame({
        "run_id": bad["run_id"].to_numpy(), "arm": bad["arm"].to_numpy(),
        "seed": bad["seed"].to_numpy(), "status": bad["status"].to_numpy(),
        "reason": [_status_reason(s, d, r) for s, d, r in zip(bad["status"], bad["run_dir"], recorded)],
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
        "verdicts": {v: sum(h.verdict == v for h in hypotheses) for v in VERDICTS},
    }
    meta = {"alpha": alpha, "confidence": 1 - alpha, "n_boot": n_boot, "power": power,
            "min_seeds": st.MIN_SEEDS,
            "holm_family": [h.id for h in hypotheses],  # declared: an untested one counts as p = 1
            "rules": {k: [list(r) for r in v] for k, v in RULES.items()},
            "guards": guards, "counts": counts}
    return Analysis(summary=summary, comparisons=comparisons, mcnemar=mcnemar, anova=anova,
                    tost=tost, runs_status=runs_status, hypothesis_gaps=gaps, plan=plan_df,
                    hypotheses=hypotheses, meta=meta)


def _needed_metrics(spec: Mapping) -> set[str]:
    return (set(spec["metrics"]) | {a["metric"] for a in spec["anova"]}
            | {q["metric"] for q in spec["equivalence"]} | {h["metric"] for h in spec["hypotheses"]})


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


def _summary(grid: _Grid, metrics: list[str], guards: list[str], alpha: float) -> pd.DataFrame:
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
    low, high = st.t_ci_mean(out["mean"].to_numpy(), out["std"].to_numpy(), out["n"].to_numpy(),
                              1 - alpha)
    out["ci_low"], out["ci_high"] = low, high
    out = out[COLUMNS["summary"]]
    if grid.factor_cols:
        out = out.join(grid.arm_factors, on="arm")
    n_small = int(((out["n"] > 0) & (out["n"] < 2)).sum())
    if n_small:
        guards.append(f"summary: {n_small} row(s) with a single seed have NaN std and CI (n < 2)")
    return out.reset_index(drop=True)


# ------------------------------------------------------------------------------ comparisons
def _comparisons(grid: _Grid, spec: dict, guards: list[str]) -> pd.DataFrame:
    """Exploratory two-sided comparisons, seed-paired on common seeds; Holm over each metric's table."""
    alpha = spec["alpha"]
    rows = []
    for c in spec["comparisons"]:
        fam, arm, ref = c["family"], c["arm"], c["reference"]
        for metric in spec["metrics"]:
            va, vr = grid.vals(arm, metric), grid.vals(ref, metric)
            notes = [x for x in (grid.lost(arm, metric), grid.lost(ref, metric)) if x]
            common, dropped = grid.common([arm, ref], metric)
            row: dict[str, Any] = {
                "family": fam, "arm": arm, "reference": ref, "metric": metric,
                "n_arm": len(va), "n_ref": len(vr), "n_pairs": len(common),
                "paired": bool(common) if len(va) and len(vr) else None,
                "seeds_dropped": _dropped_text(dropped), "test": "none",
                "mean_arm": va.mean() if len(va) else math.nan,
                "mean_ref": vr.mean() if len(vr) else math.nan,
            }
            row["diff"] = row["mean_arm"] - row["mean_ref"]
            try:
                r = st.compare_arms(vr.to_numpy(), va.to_numpy(), seeds_a=vr.index.tolist(),
                                    seeds_b=va.index.tolist(), alpha=alpha, n_boot=spec["n_boot"],
                                    seed=spec["bootstrap_seed"])
            except st.InsufficientSeeds as exc:
                notes.append(f"{GUARD_NOTE} ({exc.name}: n={exc.n})")
                guards.append(f"{GUARD_NOTE}: comparison {fam}: {arm} vs {ref} on {metric} "
                              f"(n_arm={len(va)}, n_ref={len(vr)}, common={len(common)})")
            else:
                t = r["test"]
                if not r["paired"]:
                    notes.append("no common seeds: unpaired Welch t")
                elif row["seeds_dropped"]:
                    notes.append(f"paired on {len(common)} common seeds; dropped {row['seeds_dropped']}")
                if t.method.endswith("zero SD)") or "degenerate" in t.method:
                    notes.append(t.method)
                boot = r["boot_ci"] or (math.nan, math.nan)
                row.update(test=t.method, mean_arm=r["mean_b"], mean_ref=r["mean_a"], diff=t.estimate,
                           ci_low=t.ci_low, ci_high=t.ci_high, statistic=t.statistic, df=t.df, p=t.p,
                           wilcoxon_p=r["wilcoxon_p"], d_z=r["d_z"], d_z_ci_low=r["d_z_ci"][0],
                           d_z_ci_high=r["d_z_ci"][1], hedges_g=r["hedges_g"], g_ci_low=r["g_ci"][0],
                           g_ci_high=r["g_ci"][1], boot_ci_low=boot[0], boot_ci_high=boot[1])
            row["note"] = "; ".join(notes)
            rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS["comparisons"])
    for col in ("ci_low", "ci_high", "statistic", "df", "p", "p_holm", "wilcoxon_p", "d_z", "d_z_ci_low",
                "d_z_ci_high", "hedges_g", "g_ci_low", "g_ci_high", "boot_ci_low", "boot_ci_high"):
        df[col] = df[col].astype(float)
    df["reject_holm"] = pd.Series([None] * len(df), dtype=object)
    df["paired"] = _tristate(df["paired"])
    df["note"] = df["note"].fillna("")
    df["seeds_dropped"] = df["seeds_dropped"].fillna("")
    for _, g in df.groupby("metric", sort=False):  # exploratory: Holm over the metric's whole table
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
def _anova(grid: _Grid, entries: list[dict], guards: list[str]) -> pd.DataFrame:
    """Descriptive two-way repeated-measures ANOVA per entry, on the seeds common to all its arms."""
    rows = []
    for e in entries:
        name, metric, arms, (fa, fb) = e["name"], e["metric"], e["arms"], e["factors"]
        common, dropped = grid.common(arms, metric)
        notes = [x for x in ("; ".join(filter(None, (grid.lost(a, metric) for a in arms))),
                             f"dropped to balance the seeds: {_dropped_text(dropped)}"
                             if _dropped_text(dropped) else "") if x]
        no_col = [f for f in (fa, fb) if f not in grid.factor_cols]
        table = None
        if no_col:
            notes.insert(0, f"not computed: factor column(s) {', '.join(no_col)} absent from the results")
        elif len(common) < st.MIN_SEEDS:
            notes.insert(0, f"{GUARD_NOTE}: {len(common)} seed(s) common to all arms")
            guards.append(f"{GUARD_NOTE}: anova {name}: {len(common)} common seed(s)")
        else:
            data = pd.DataFrame([{"seed": s, fa: str(grid.arm_factors.at[a, fa]),
                                  fb: str(grid.arm_factors.at[a, fb]), "value": grid.vals(a, metric)[s]}
                                 for a in arms for s in common])
            try:
                table = st.rm_anova(data, "value", "seed", [fa, fb])
            except ValueError as exc:
                notes.insert(0, f"not computed: {exc}")
        note = "; ".join(notes)
        if table is None:
            rows.append({"name": name, "metric": metric, "term": "", "F": math.nan, "df_num": math.nan,
                         "df_den": math.nan, "p": math.nan, "n_seeds": len(common), "note": note})
            continue
        for term, r in table.iterrows():
            rows.append({"name": name, "metric": metric, "term": str(term), "F": float(r["F Value"]),
                         "df_num": float(r["Num DF"]), "df_den": float(r["Den DF"]), "p": float(r["Pr > F"]),
                         "n_seeds": len(common), "note": note})
    return pd.DataFrame(rows, columns=COLUMNS["anova"])


# ------------------------------------------------------------------------------ TOST
def _tost(grid: _Grid, entries: list[dict], alpha: float, guards: list[str]) -> pd.DataFrame:
    """Secondary equivalence tests, paired on common seeds (Welch only without common seeds)."""
    rows = []
    for e in entries:
        name, arm, ref, metric, margin = e["name"], e["arm"], e["reference"], e["metric"], e["margin"]
        va, vr = grid.vals(arm, metric), grid.vals(ref, metric)
        common, dropped = grid.common([arm, ref], metric)
        notes = [x for x in (grid.lost(arm, metric), grid.lost(ref, metric)) if x]
        paired = bool(common)
        a, b = (vr[common].to_numpy(), va[common].to_numpy()) if paired else (vr.to_numpy(), va.to_numpy())
        row = {"name": name, "arm": arm, "reference": ref, "metric": metric, "margin": margin,
               "diff": float(b.mean() - a.mean()) if len(a) and len(b) else math.nan,
               "p": math.nan, "p_lower": math.nan, "p_upper": math.nan, "equivalent": None,
               "paired": paired if len(va) and len(vr) else None, "n_pairs": len(common)}
        if min(len(a), len(b)) < st.MIN_SEEDS:
            notes.append(GUARD_NOTE)
            guards.append(f"{GUARD_NOTE}: tost {name} (n_arm={len(va)}, n_ref={len(vr)}, "
                          f"common={len(common)})")
        else:
            if not paired:
                notes.append("no common seeds: unpaired Welch TOST")
            elif _dropped_text(dropped):
                notes.append(f"paired on {len(common)} common seeds; dropped {_dropped_text(dropped)}")
            try:
                r = st.tost_equivalence(a, b, margin, paired=paired, alpha=alpha)
            except ValueError as exc:
                notes.append(f"TOST not computed: {exc}")
            else:
                row.update(diff=r["diff"], p=r["pvalue"], p_lower=r["p_lower"], p_upper=r["p_upper"],
                           equivalent=r["equivalent"])
                if r["method"].startswith("degenerate"):
                    notes.append(r["method"])
        row["note"] = "; ".join(notes)
        rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS["tost"])
    df["equivalent"] = _tristate(df["equivalent"])
    df["paired"] = _tristate(df["paired"])
    return df


# ------------------------------------------------------------------------------ hypotheses
def _show(x: float, metric: str, signed: bool = True, difference: bool = True) -> str:
    """``x`` in the report's unit: percentage points for fraction metrics, else as is."""
    if x is None or not math.isfinite(x):
        return "nan" if x is None or math.isnan(x) else ("+inf" if x > 0 else "-inf")
    v = x * display_scale(metric)
    unit = display_unit(metric, difference=difference)
    if v == 0:
        return "0" + (f" {unit}" if unit else "")
    return (f"{v:+.3g}" if signed else f"{v:.3g}") + (f" {unit}" if unit else "")


@dataclass(frozen=True)
class _HypData:
    """What one hypothesis is tested on: per-seed contrasts (paired), gaps per level (interaction)
    or two unpaired arms (Welch), with the seeds used and those dropped."""

    design: st.Design
    seeds: tuple
    dropped: str
    lost: str
    contrast: np.ndarray | None = None
    gaps: np.ndarray | None = None
    levels: tuple = ()
    arm_values: np.ndarray | None = None
    ref_values: np.ndarray | None = None


def _alternative(h: Mapping) -> str:
    """The primary test's alternative for the contrast (arm - reference, or its gap trend)."""
    if h["kind"] == "interaction":
        return "greater" if h["direction"] == "increasing" else "less"
    if h["kind"] == "directional":
        return "greater" if h["direction"] == "higher" else "less"
    # non_superiority: H1 "not better by the margin": below +margin (higher is better) / above -margin
    return "less" if metric_info(h["metric"]).higher_is_better else "greater"


def _hyp_arms(h: Mapping) -> list[str]:
    return [a for pair in h["pairs"] for a in pair] if h["kind"] == "interaction" else [h["arm"], h["reference"]]


def _hyp_data(grid: _Grid, h: Mapping) -> _HypData | tuple[str, str]:
    """The data of hypothesis ``h``, or ``(verdict, why)`` when it cannot be tested."""
    metric, arms = h["metric"], _hyp_arms(h)
    lost = "; ".join(x for x in (grid.lost(a, metric) for a in arms) if x)
    absent = [a for a in arms if len(grid.vals(a, metric)) == 0]
    if absent:
        return "not tested", f"no complete {metric} values for {', '.join(absent)}"
    common, dropped = grid.common(arms, metric)
    dtext = _dropped_text(dropped)
    if h["kind"] == "interaction":
        if len(common) < st.MIN_SEEDS:
            return "inconclusive", (f"{GUARD_NOTE}: {len(common)} seed(s) common to all {len(arms)} arms "
                                    "(an interaction needs seed-paired data)")
        gaps = np.column_stack([grid.vals(a, metric)[common].to_numpy() - grid.vals(r, metric)[common].to_numpy()
                                for a, r in h["pairs"]])
        k = gaps.shape[1]
        if k == 2:
            return _HypData(st.Design("paired"), tuple(common), dtext, lost, contrast=gaps[:, 1] - gaps[:, 0],
                            gaps=gaps, levels=tuple(h["levels"]))
        return _HypData(st.Design("trend", k=k, sxx=st.level_sxx(h["levels"])), tuple(common), dtext, lost,
                        gaps=gaps, levels=tuple(h["levels"]))
    va, vr = grid.vals(h["arm"], metric), grid.vals(h["reference"], metric)
    if len(common) >= st.MIN_SEEDS:
        return _HypData(st.Design("paired"), tuple(common), dtext, lost,
                        contrast=va[common].to_numpy() - vr[common].to_numpy())
    if not common and len(va) >= st.MIN_SEEDS and len(vr) >= st.MIN_SEEDS:
        var_a, var_r = float(va.var(ddof=1)), float(vr.var(ddof=1))
        # the arm's share of the variance (arm b of welch_test; kept inside (0, 1): one constant arm leaves the other's)
        share = min(max(var_a / (var_a + var_r), 1e-9), 1 - 1e-9) if var_a + var_r > 0 else 0.5
        return _HypData(st.Design("welch", var_share=share, n_ratio=len(va) / len(vr)), (), "", lost,
                        arm_values=va.to_numpy(), ref_values=vr.to_numpy())
    few = f"{len(common)} common seed(s)" if common else f"n_arm={len(va)}, n_ref={len(vr)}"
    return "inconclusive", f"{GUARD_NOTE}: {few}"


def _primary(d: _HypData, alternative: str, null: float, alpha: float) -> st.TestResult:
    if d.design.kind == "trend":
        return st.trend_test(d.gaps, d.levels, alternative=alternative, alpha=alpha)
    if d.design.kind == "welch":
        return st.welch_test(d.ref_values, d.arm_values, alternative=alternative, null=null, alpha=alpha)
    return st.mean_test(d.contrast, alternative=alternative, null=null, alpha=alpha,
                        method="paired t on the difference of differences" if d.gaps is not None else "paired t")


def _power_sd(d: _HypData, test: st.TestResult) -> tuple[float, float]:
    """The SD that power is computed from (per-seed contrast, residual, or the root mean square of the two
    arms' SDs for Welch, whose shape the design's ``var_share`` keeps) and its df."""
    if d.design.kind == "welch":
        a, b = d.ref_values, d.arm_values
        return math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2), float(a.size + b.size - 2)
    return test.sd, test.df


def _power_n(d: _HypData, test: st.TestResult) -> int:
    """The ``n`` of :func:`harness.stats.power_one_sided` for this design: seeds of the reference arm for
    Welch (the arm's count is ``n_ratio`` times it), else the seeds of the contrast."""
    return int(d.ref_values.size) if d.design.kind == "welch" else test.n


def _hypotheses(grid: _Grid, spec: dict, guards: list[str]) -> tuple[list[Verdict], pd.DataFrame]:
    alpha, target = spec["alpha"], spec["power"]
    pending: list[tuple[Verdict, _HypData | None, st.TestResult | None]] = []
    gap_rows: list[dict] = []
    for h in spec["hypotheses"]:
        metric = h["metric"]
        base = Verdict(id=h["id"], statement=h["statement"], kind=h["kind"], metric=metric,
                       arms=tuple(_hyp_arms(h)), direction=h.get("direction", "not better"), mde=h["mde"],
                       power_target=target)
        data = _hyp_data(grid, h)
        if isinstance(data, tuple):
            verdict, why = data
            if verdict == "inconclusive":
                guards.append(f"{GUARD_NOTE}: hypothesis {h['id']}: {why}")
            lost = "; ".join(x for x in (grid.lost(a, metric) for a in base.arms) if x)
            pending.append((replace(base, verdict=verdict, verdict_text=verdict,
                                    evidence=why + (f"; lost runs: {lost}" if lost else "")), None, None))
            continue
        alt = _alternative(h)
        null = 0.0
        if h["kind"] == "non_superiority":
            null = h["mde"] if alt == "less" else -h["mde"]
        test = _primary(data, alt, null, alpha)
        # the secondary test: the opposite direction (non-superiority: the gain exceeds the margin)
        second = _primary(data, "less" if alt == "greater" else "greater", null, alpha)
        pending.append((replace(base, test=test.method, alternative=alt, null=null, estimate=test.estimate,
                                ci_low=test.ci_low, ci_high=test.ci_high, statistic=test.statistic,
                                df=test.df, p=test.p, p_secondary=second.p, n_seeds=test.n, seeds=data.seeds,
                                seeds_dropped=data.dropped), data, (test, second)))
        gap_rows += _gap_rows(h, data)

    # Both families are the declared hypotheses, fixed before any data: one that could not be tested counts
    # as p = 1 (never rejected), so a failed arm cannot shrink the family and ease the others' correction.
    m = len(pending)
    if not m:
        return [], pd.DataFrame(gap_rows, columns=COLUMNS["hypothesis_gaps"])
    p_holm = st.holm([v.p if d is not None else 1.0 for v, d, _ in pending], alpha=alpha)[1]
    p_opp_holm = st.holm([v.p_secondary if d is not None else 1.0 for v, d, _ in pending], alpha=alpha)[1]
    out = []
    for (v, data, tests), ph, po in zip(pending, p_holm, p_opp_holm):
        if data is None:
            out.append(v)
            continue
        out.append(_decide(v, data, *tests, float(ph), float(po), m, alpha, target))
    return out, pd.DataFrame(gap_rows, columns=COLUMNS["hypothesis_gaps"])


def _decide(v: Verdict, data: _HypData, test: st.TestResult, second: st.TestResult, p_holm: float,
            p_secondary_holm: float, m: int, alpha: float, target: float) -> Verdict:
    """Secondary check, power at the mde, the verdict of :func:`harness.verdicts.decide`, evidence.

    ``p_holm`` / ``p_secondary_holm``: the primary / secondary (opposite direction) p, Holm-adjusted over
    the ``m`` declared hypotheses. The verdict uses the *conservative* power (the SD's upper confidence
    bound): "not supported" claims that the design could have found the mde, which an SD estimated from
    a few seeds cannot show by itself."""
    metric = v.metric
    opposite = second.alternative
    beyond = p_secondary_holm < alpha
    what_second = ("that the gain exceeds the margin" if v.kind == "non_superiority"
                   else f"in the opposite direction ({opposite})")
    sec_text = (f"secondary: one-sided test {what_second}, p = {_fmt(second.p)}, Holm over the {m} declared "
                f"hypotheses' secondary tests: p_holm = {_fmt(p_secondary_holm)} {'<' if beyond else '>='} {alpha:g}")
    sd, df = _power_sd(data, test)
    sd_up = st.sd_upper_bound(sd, df, alpha=alpha) if sd > 0 else math.nan
    alpha_power = alpha / m
    n_power = _power_n(data, test)
    pw = float(st.power_one_sided(data.design, n_power, v.mde, sd, alpha_power)) if sd > 0 else math.nan
    pw_c = float(st.power_one_sided(data.design, n_power, v.mde, sd_up, alpha_power)) if sd > 0 else math.nan
    dec = decide(v.kind, p_holm=p_holm, alpha=alpha, secondary=bool(beyond), power=pw_c, power_target=target)
    mde_text = _show(v.mde, metric, signed=False)
    text = dec.verdict
    if dec.verdict in ("not shown", "not supported"):
        text = f"{dec.verdict} ({power_phrase(pw, mde_text)}" + (
            f"; {100 * pw_c:.0f} % with the SD's upper bound)" if math.isfinite(pw_c) else ")")
    # the interval that matches the decision: one-sided, in the test's direction, simultaneous over the
    # family (Bonferroni, alpha/m). Beyond the null it implies "supported" (p < alpha/m, so Holm rejects);
    # Holm can also reject with the bound at the null (its later steps test at up to alpha).
    bound = st.one_sided_bound(test, alpha / m)
    bound_level = 1 - alpha / m
    lvl = f"{100 * (1 - alpha):g} %"
    what = {"interaction": ("change of the gap over the levels" if data.design.kind == "trend"
                            else "difference of differences (gap at the high level - gap at the low level)"),
            "directional": f"difference {v.arms[0]} - {v.arms[1]}",
            "non_superiority": f"difference {v.arms[0]} - {v.arms[1]}"}[v.kind]
    design = (f"{test.n} seeds common to all arms" if data.design.kind != "welch"
              else f"unpaired (no common seeds), {data.arm_values.size} vs {data.ref_values.size} seeds")
    sym = ">" if v.alternative == "greater" else "<"
    bsym = ">=" if v.alternative == "greater" else "<="
    parts = [f"{what} on {metric} = {_show(test.estimate, metric)}, one-sided {_pct(bound_level)} bound "
             f"{bsym} {_show(bound, metric)} (simultaneous over the {m} hypotheses) [two-sided unadjusted {lvl} CI "
             f"{_show(test.ci_low, metric)}, {_show(test.ci_high, metric)}], {design}"
             + (f" (dropped: {data.dropped})" if data.dropped else ""),
             f"primary: {test.method}, H1: contrast {sym} {_show(v.null, metric)}, "
             f"p = {_fmt(test.p)}; Holm over {m} hypothesis(es): p_holm = {_fmt(p_holm)} "
             f"{'<' if p_holm < alpha else '>='} {alpha:g}",
             sec_text,
             f"{power_phrase(pw, mde_text)} at alpha/{m} = {alpha_power:.3g} from the observed SD "
             f"{_show(sd, metric, signed=False)}; {100 * pw_c:.0f} % with its upper {lvl} bound "
             f"{_show(sd_up, metric, signed=False)} (the verdict's power)" if math.isfinite(pw_c) else
             f"{power_phrase(pw, mde_text)} (zero SD of the contrast)"]
    if dec.verdict == "supported" and (bound <= v.null if v.alternative == "greater" else bound >= v.null):
        parts.append(f"Holm rejects at its step for this p although the simultaneous bound reaches the null "
                     f"{_show(v.null, metric)}")
    if v.kind == "non_superiority" and dec.verdict == "supported":
        two = _primary(data, "two-sided", 0.0, alpha)
        better = test.estimate > 0 if v.alternative == "less" else test.estimate < 0
        if two.p < alpha and better:
            parts.append(f"the arm is significantly better by {_show(test.estimate, metric)} (two-sided p = "
                         f"{_fmt(two.p)}), a gain smaller than the margin {mde_text}")
    lost = "; ".join(x for x in (data.lost,) if x)
    if lost:
        parts.append(f"lost runs: {lost}")
    return replace(v, verdict=dec.verdict, verdict_text=text, rule=dec.rule, p_holm=p_holm,
                   secondary=sec_text, p_secondary=second.p, p_secondary_holm=p_secondary_holm, bound=bound,
                   bound_level=bound_level, sd=sd, sd_upper=sd_up, power=pw, power_conservative=pw_c,
                   alpha_power=alpha_power, evidence="; ".join(parts))


def _gap_rows(h: Mapping, d: _HypData) -> list[dict]:
    """Per-seed points of the gap figure: the paired differences, or the gaps per level and the
    per-seed contrast (difference of differences; least-squares change over the levels for > 2)."""
    rows = []
    if d.gaps is None:
        if d.contrast is not None:
            rows += [{"id": h["id"], "panel": "difference", "level": math.nan,
                      "label": f"{h['arm']} - {h['reference']}", "seed": s, "value": float(x)}
                     for s, x in zip(d.seeds, d.contrast)]
        return rows
    for j, (arm, ref) in enumerate(h["pairs"]):
        rows += [{"id": h["id"], "panel": "gap", "level": float(d.levels[j]), "label": f"{arm} - {ref}",
                  "seed": s, "value": float(x)} for s, x in zip(d.seeds, d.gaps[:, j])]
    x = np.asarray(d.levels, dtype=float)
    xc = x - x.mean()
    change = (d.gaps - d.gaps.mean(axis=1, keepdims=True)) @ xc / np.sum(xc ** 2) * (x.max() - x.min())
    rows += [{"id": h["id"], "panel": "contrast", "level": math.nan,
              "label": "difference of differences" if len(x) == 2 else "change of the gap over the levels",
              "seed": s, "value": float(c)} for s, c in zip(d.seeds, change)]
    return rows


# ------------------------------------------------------------------------------ plan
def _plan(grid: _Grid, spec: Mapping, mde: float | None = None) -> pd.DataFrame:
    alpha, target = spec["alpha"], spec["power"]
    m = max(1, len(spec["hypotheses"]))
    alpha_test = alpha / m
    rows = []
    for h in spec["hypotheses"]:
        effect = float(mde) if mde is not None else h["mde"]
        row = {"id": h["id"], "metric": h["metric"], "design": "", "n_pilot": 0, "sd": math.nan,
               "sd_upper": math.nan, "mde": effect, "alpha_test": alpha_test, "power_target": target,
               "power_pilot": math.nan, "power_pilot_conservative": math.nan, "seeds_needed": math.nan,
               "seeds_needed_conservative": math.nan, "note": ""}
        data = _hyp_data(grid, h)
        if isinstance(data, tuple):
            row["note"] = f"no pilot estimate: {data[1]}"
            rows.append(row)
            continue
        test = _primary(data, _alternative(h), 0.0, alpha)
        sd, df = _power_sd(data, test)
        sd_up = st.sd_upper_bound(sd, df, alpha=alpha) if sd > 0 else math.nan
        design = data.design
        row.update(design={"paired": "paired t on per-seed contrasts", "welch": "Welch t (seeds per arm)",
                           "trend": f"trend over {design.k} levels, seed fixed effects"}[design.kind],
                   n_pilot=test.n, sd=sd, sd_upper=sd_up)
        if sd > 0:
            n_power = _power_n(data, test)
            planned = replace(design, n_ratio=1.0)  # a planned design has the same seeds in every arm
            row.update(power_pilot=float(st.power_one_sided(design, n_power, effect, sd, alpha_test)),
                       power_pilot_conservative=float(st.power_one_sided(design, n_power, effect, sd_up,
                                                                         alpha_test)),
                       seeds_needed=st.seeds_needed(planned, effect, sd, alpha=alpha_test, power=target),
                       seeds_needed_conservative=st.seeds_needed(planned, effect, sd_up, alpha=alpha_test,
                                                                 power=target))
            if data.dropped:
                row["note"] = f"pilot paired on {test.n} common seeds (dropped: {data.dropped})"
        else:
            row["note"] = "zero SD of the pilot contrast: no power estimate"
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS["plan"])


def plan(results: pd.DataFrame, spec: Mapping | None, *, mde: float | None = None) -> pd.DataFrame:
    """Seeds needed per pre-declared hypothesis for the spec's target ``power`` at its ``mde``.

    The SD comes from the pilot ``results`` (the per-seed contrast of the hypothesis' primary test
    on the common seeds; the residual SD for a trend; the per-arm SD when unpaired); the
    conservative columns use its one-sided ``1 - alpha`` upper confidence bound. Tests are at
    ``alpha / m`` (m = declared hypotheses: Holm's first step). ``mde`` overrides every
    hypothesis' declared mde (in each metric's unit). Columns: :data:`COLUMNS` ``['plan']``;
    ``seeds_needed`` is per arm (per level of every arm for a trend), ``inf`` beyond
    :data:`harness.stats.MAX_PLANNED_SEEDS`.
    """
    spec = validate_stats_spec(spec)
    if mde is not None:
        for h in spec["hypotheses"]:
            if isinstance(mde, (bool, np.bool_)) or not isinstance(mde, (int, float, np.integer, np.floating)) \
                    or not (math.isfinite(mde) and mde > 0) or \
                    (display_scale(h["metric"]) == 100 and mde > 0.5):
                raise ValueError(f"mde: got {mde!r}; expected a finite number > 0 in the metric's unit "
                                 f"({h['metric']} of hypothesis {h['id']} is a fraction: at most 0.5, "
                                 "0.01 = 1 percentage point)" if display_scale(h["metric"]) == 100 else
                                 f"mde: got {mde!r}; expected a finite number > 0")
    results = _normalize_results(results)
    return _plan(_Grid(results, _needed_metrics(spec)), spec, mde)


def format_plan(table: pd.DataFrame) -> str:
    """The plan as a fixed-width text table, effects in the report's units (pp for fractions)."""
    if table.empty:
        return "no hypotheses declared: nothing to plan"

    def eff(v: float, metric: str) -> str:
        return _show(v, metric, signed=False) if math.isfinite(v) else "-"

    def num(v: float) -> str:
        return "-" if not math.isfinite(v) and not math.isinf(v) else ("inf" if math.isinf(v) else f"{v:.0f}")

    view = pd.DataFrame({
        "id": table["id"],
        "metric": table["metric"],
        "pilot seeds": table["n_pilot"],
        "mde": [eff(v, m) for v, m in zip(table["mde"], table["metric"])],
        "SD": [eff(v, m) for v, m in zip(table["sd"], table["metric"])],
        "SD upper": [eff(v, m) for v, m in zip(table["sd_upper"], table["metric"])],
        "alpha": [f"{a:.3g}" for a in table["alpha_test"]],
        "power now": [f"{100 * p:.0f} %" if math.isfinite(p) else "-" for p in table["power_pilot"]],
        "seeds needed": [num(v) for v in table["seeds_needed"]],
        "seeds needed (SD upper)": [num(v) for v in table["seeds_needed_conservative"]],
        "note": table["note"],
    })
    target = table["power_target"].iloc[0]
    return (f"seeds per arm for {100 * target:.0f} % power at each hypothesis' mde (one-sided, alpha/m):\n"
            + view.to_string(index=False))
