"""Tests for harness.analysis (results table -> reports/stats/): comparisons, summary, run status,
repeated-measures ANOVA, the pre-declared hypotheses (one directional seed-paired test each, one Holm
family, verdicts with power at the declared mde), plan() and the contract files.

Every expected number comes from a direct scipy / statsmodels call on the same values, or from data
constructed so that the answer is known.
"""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.anova import AnovaRM
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from harness import stats as hs
from harness.analysis import (
    COLUMNS,
    GUARD_NOTE,
    Verdict,
    analyze,
    load_results,
    plan,
    validate_stats_spec,
)
from harness.verdicts import RULES

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [0, 1, 2, 3, 4]
FACTORS = {
    "re_hard": {"label_type": "hard", "family": "random_erasing"},
    "re_soft": {"label_type": "soft", "family": "random_erasing"},
    "ta_hard": {"label_type": "hard", "family": "trivial_augment"},
    "ta_soft": {"label_type": "soft", "family": "trivial_augment"},
    "baseline": {"label_type": "hard", "family": "none"},
    "soft_crop": {"label_type": "soft", "family": "crop"},
}
ARMS_CFG = {a: {"factors": f} for a, f in FACTORS.items()}


def make_results(values, *, seeds=SEEDS, status=None, metrics=("accuracy",), corruption=None,
                 factors=FACTORS, reasons=None):
    """Long-format results table as the `results` stage writes it (docs/pipeline.md).

    ``values``: ``{arm: sequence over seeds}`` (used for every metric, plus 0.1 * metric index so
    metrics differ) or ``callable(arm, metric, seed) -> float``. ``status``: ``{(arm, seed): status}``
    for runs that are not complete (one row, empty metric, NaN value). ``reasons``: ``{(arm, seed):
    text}`` adds the ``reason`` column. ``corruption``: ``callable(arm, seed, name, severity) ->
    float`` adds per-corruption ``accuracy`` rows for corruptions ``fog``/``snow`` x severities
    1..5. Arms are the keys of ``values`` (dict form) or of ``factors`` (callable form).
    """
    status = status or {}
    arms = list(values) if isinstance(values, dict) else list(factors)
    rows = []
    for arm in arms:
        for i, seed in enumerate(seeds):
            base = {"run_id": f"{arm}-s{seed}", "grid": "test", "dataset": "mnist5k", "arm": arm,
                    **factors[arm], "seed": seed, "run_dir": f"runs/{arm}-s{seed}"}
            if reasons is not None:
                base["reason"] = reasons.get((arm, seed), "")
            stt = status.get((arm, seed), "complete")
            if stt != "complete":
                rows.append({**base, "metric": "", "corruption": "", "severity": np.nan,
                             "value": np.nan, "status": stt})
                continue
            for k, m in enumerate(metrics):
                v = values[arm][i] + 0.1 * k if isinstance(values, dict) else values(arm, m, seed)
                rows.append({**base, "metric": m, "corruption": "", "severity": np.nan,
                             "value": float(v), "status": "complete"})
            if corruption is not None:
                for name in ("fog", "snow"):
                    for sev in range(1, 6):
                        rows.append({**base, "metric": "accuracy", "corruption": name, "severity": sev,
                                     "value": float(corruption(arm, seed, name, sev)),
                                     "status": "complete"})
    df = pd.DataFrame(rows)
    fcols = sorted({k for f in factors.values() for k in f})
    extra = ["reason"] if reasons is not None else []
    return df[["run_id", "grid", "dataset", "arm", *fcols, "seed", "metric", "corruption", "severity",
               "value", "status", "run_dir", *extra]]


def spec(**kw):
    s = {"n_boot": 200, "metrics": ["accuracy"]}
    s.update(kw)
    return s


def comp(family, arm, ref):
    return {"family": family, "arm": arm, "reference": ref}


def no_predictions(run_dir):
    raise FileNotFoundError(run_dir)


def run(results, sp, **kw):
    kw.setdefault("predictions_loader", no_predictions)
    return analyze(results, sp, **kw)


BASE = np.array([0.801, 0.812, 0.795, 0.808, 0.799])
SHIFT = np.array([0.010, 0.013, 0.008, 0.012, 0.009])


# ====================================================================== comparisons
def test_paired_comparison_matches_scipy():
    res = make_results({"re_hard": BASE, "re_soft": BASE + SHIFT})
    out = run(res, spec(comparisons=[comp("random_erasing", "re_soft", "re_hard")]))
    assert list(out.comparisons.columns) == COLUMNS["comparisons"]
    row = out.comparisons.iloc[0]
    t = sps.ttest_rel(BASE + SHIFT, BASE)
    assert row["paired"] is True and row["test"] == "paired t"
    assert row["n_arm"] == row["n_ref"] == row["n_pairs"] == 5
    assert row["diff"] == pytest.approx(SHIFT.mean(), abs=1e-12)
    assert row["mean_arm"] == pytest.approx((BASE + SHIFT).mean())
    assert row["mean_ref"] == pytest.approx(BASE.mean())
    assert row["p"] == pytest.approx(t.pvalue, rel=1e-10)
    assert row["statistic"] == pytest.approx(t.statistic, rel=1e-10)
    assert row["df"] == 4
    ci = t.confidence_interval(0.95)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert row["wilcoxon_p"] == pytest.approx(sps.wilcoxon(BASE + SHIFT, BASE).pvalue)
    # paired: d_z only (Hedges' g is the unpaired effect size, a separate column)
    g = hs.hedges_g(BASE, BASE + SHIFT, paired=True)
    assert row["d_z"] == pytest.approx(g["g"]) and (row["d_z_ci_low"], row["d_z_ci_high"]) == pytest.approx(g["ci"])
    assert math.isnan(row["hedges_g"]) and math.isnan(row["g_ci_low"])
    # 5 pairs: no bootstrap interval (BCa only from 20 values)
    assert math.isnan(row["boot_ci_low"]) and math.isnan(row["boot_ci_high"])
    assert row["note"] == "" and row["seeds_dropped"] == ""
    assert row["p_holm"] == pytest.approx(row["p"]) and row["reject_holm"] is True  # table of one


@pytest.mark.parametrize("n_seeds, shown", [(19, False), (20, True)])
def test_comparisons_bca_interval_from_twenty_pairs(n_seeds, shown):
    seeds = list(range(n_seeds))
    rng = np.random.default_rng(8)
    a = 0.8 + rng.normal(0, 0.01, n_seeds)
    b = a + 0.004 + rng.normal(0, 0.003, n_seeds)
    out = run(make_results({"re_hard": a, "re_soft": b}, seeds=seeds),
              spec(n_boot=500, bootstrap_seed=3, comparisons=[comp("re", "re_soft", "re_hard")]))
    row = out.comparisons.iloc[0]
    if not shown:  # below 20 pairs BCa undercovers (about 90 % at 10): no bootstrap interval
        assert math.isnan(row["boot_ci_low"]) and math.isnan(row["boot_ci_high"])
        return
    lo, hi = hs.bca_ci(b - a, alpha=0.05, n_boot=500, seed=3)
    assert (row["boot_ci_low"], row["boot_ci_high"]) == pytest.approx((lo, hi), rel=1e-12)


def test_comparisons_holm_over_the_whole_table_of_a_metric():
    """Exploratory comparisons are Holm-adjusted over every row of a metric, across families."""
    rng = np.random.default_rng(3)
    vals = {"re_hard": BASE, "re_soft": BASE + SHIFT / 4 + rng.normal(0, 0.004, 5),
            "ta_hard": BASE + 0.001 + rng.normal(0, 0.004, 5), "ta_soft": BASE + SHIFT,
            "baseline": BASE + rng.normal(0, 0.004, 5)}
    comps = [comp("fam", "re_soft", "re_hard"), comp("fam", "ta_hard", "re_hard"),
             comp("fam", "ta_soft", "re_hard"), comp("other", "baseline", "re_hard")]
    out = run(make_results(vals, metrics=("accuracy", "ece")),
              spec(metrics=["accuracy", "ece"], comparisons=comps))
    c = out.comparisons
    assert len(c) == 8
    for metric in ("accuracy", "ece"):
        table = c[c.metric == metric]
        assert len(table) == 4
        reject, adj, _, _ = multipletests(table["p"].to_numpy(), alpha=0.05, method="holm")
        np.testing.assert_allclose(table["p_holm"].to_numpy(), adj, rtol=1e-12)
        assert table["reject_holm"].tolist() == reject.tolist()
        # not per family: the family of one is adjusted too
        other = table[table.family == "other"].iloc[0]
        assert other["p_holm"] > other["p"]


def test_one_lost_seed_pairs_on_common_seeds_and_names_it():
    res = make_results({"re_hard": BASE, "re_soft": BASE + SHIFT}, status={("re_soft", 4): "failed"})
    out = run(res, spec(comparisons=[comp("re", "re_soft", "re_hard")]))
    row = out.comparisons.iloc[0]
    t = sps.ttest_rel((BASE + SHIFT)[:4], BASE[:4])
    assert row["paired"] is True and row["test"] == "paired t"
    assert row["n_arm"] == 4 and row["n_ref"] == 5 and row["n_pairs"] == 4
    assert row["p"] == pytest.approx(t.pvalue, rel=1e-10) and row["df"] == 3
    assert row["seeds_dropped"] == "re_hard: s4"
    assert "re_soft lost seeds s4 (failed)" in row["note"]
    assert "paired on 4 common seeds; dropped re_hard: s4" in row["note"]


def test_welch_only_when_arms_share_no_seeds():
    a = make_results({"re_hard": BASE}, seeds=[0, 1, 2, 3, 4])
    b = make_results({"re_soft": BASE + SHIFT}, seeds=[10, 11, 12, 13, 14])
    out = run(pd.concat([a, b], ignore_index=True), spec(comparisons=[comp("re", "re_soft", "re_hard")]))
    row = out.comparisons.iloc[0]
    t = sps.ttest_ind(BASE + SHIFT, BASE, equal_var=False)
    assert row["paired"] is False and row["test"] == "Welch t" and row["n_pairs"] == 0
    assert row["p"] == pytest.approx(t.pvalue, rel=1e-10) and row["df"] == pytest.approx(t.df)
    assert "no common seeds: unpaired Welch t" in row["note"]
    assert math.isnan(row["wilcoxon_p"]) and math.isnan(row["d_z"])
    assert row["hedges_g"] == pytest.approx(hs.hedges_g(BASE, BASE + SHIFT)["g"])


def test_comparisons_deterministic_and_constant_difference_is_degenerate():
    res = make_results({"re_hard": BASE, "re_soft": BASE + 0.01})  # identical differences
    sp = spec(comparisons=[comp("re", "re_soft", "re_hard")])
    a, b = run(res, sp), run(res, sp)
    pd.testing.assert_frame_equal(a.comparisons, b.comparisons)
    row = a.comparisons.iloc[0]
    assert "degenerate" in row["test"] and "degenerate" in row["note"]
    assert row["diff"] == pytest.approx(0.01)
    assert row["ci_low"] == pytest.approx(0.01) and row["ci_high"] == pytest.approx(0.01)


# ====================================================================== min-seeds guard
def test_two_seeds_give_no_pvalue_and_inconclusive_verdicts():
    status = {("re_soft", s): "failed" for s in (2, 3, 4)}
    vals = {a: BASE + 0.01 * i for i, a in enumerate(["re_hard", "re_soft", "ta_hard", "ta_soft"])}
    sp = spec(comparisons=[comp("re", "re_soft", "re_hard")],
              anova=[{"name": "ax", "metric": "accuracy", "arms": list(vals),
                      "factors": ["label_type", "family"]}],
              equivalence=[{"name": "eq", "arm": "re_soft", "reference": "re_hard",
                            "metric": "accuracy", "margin": 0.5}],
              hypotheses=[{"id": "F1", "statement": "s", "kind": "interaction", "metric": "accuracy",
                           "direction": "increasing", "mde": 0.01,
                           "pairs": [["ta_soft", "ta_hard"], ["re_soft", "re_hard"]]},
                          {"id": "F3", "statement": "s", "kind": "directional", "direction": "lower",
                           "arm": "re_soft", "reference": "re_hard", "metric": "accuracy", "mde": 0.01}])
    out = run(make_results(vals, status=status), sp)
    row = out.comparisons.iloc[0]
    assert row["n_arm"] == 2 and math.isnan(row["p"]) and math.isnan(row["p_holm"])
    assert GUARD_NOTE in row["note"] and "lost seeds s2 (failed), s3 (failed), s4 (failed)" in row["note"]
    assert row["mean_arm"] == pytest.approx((BASE[:2] + 0.01).mean())  # means still reported
    assert len(out.anova) == 1 and math.isnan(out.anova["p"].iloc[0])
    assert GUARD_NOTE in out.anova["note"].iloc[0]
    assert math.isnan(out.tost["p"].iloc[0]) and GUARD_NOTE in out.tost["note"].iloc[0]
    assert {h.id: h.verdict for h in out.hypotheses} == {"F1": "inconclusive", "F3": "inconclusive"}
    assert all(math.isnan(h.p) and math.isnan(h.p_holm) for h in out.hypotheses)
    assert out.meta["holm_family"] == ["F1", "F3"]  # declared hypotheses, untested ones as p = 1
    guards = " | ".join(out.meta["guards"])
    assert guards.count(GUARD_NOTE) >= 5 and "re_soft vs re_hard" in guards
    assert out.meta["min_seeds"] == 3 and out.meta["counts"]["comparisons_min_seed_guard"] == 1


# ====================================================================== run status
def test_failed_missing_running_runs_listed_and_kept_out_of_statistics(tmp_path):
    res = make_results({"re_hard": BASE, "re_soft": BASE + SHIFT},
                       status={("re_soft", 1): "failed", ("re_soft", 2): "running",
                               ("re_hard", 4): "missing"})
    # a stray value on a failed run must not enter any mean
    res.loc[(res.run_id == "re_soft-s1"), ["metric", "value"]] = ["accuracy", 1000.0]
    run_dir = tmp_path / "re_soft-s1"
    run_dir.mkdir()
    (run_dir / "status.json").write_text(json.dumps({"status": "failed", "reason": "NaN loss",
                                                     "epoch": 3, "step": 120}))
    res.loc[res.run_id == "re_soft-s1", "run_dir"] = str(run_dir)
    out = run(res, spec(comparisons=[comp("re", "re_soft", "re_hard")]))
    rs = out.runs_status.set_index("run_id")
    assert set(rs.index) == {"re_soft-s1", "re_soft-s2", "re_hard-s4"}
    assert rs.loc["re_soft-s1", "status"] == "failed"
    assert rs.loc["re_soft-s1", "reason"] == "NaN loss (at epoch 3, step 120)"
    assert rs.loc["re_soft-s2", "status"] == "running" and "interrupted" in rs.loc["re_soft-s2", "reason"]
    assert rs.loc["re_hard-s4", "status"] == "missing" and "never ran" in rs.loc["re_hard-s4", "reason"]
    s = out.summary.set_index(["arm", "metric"])
    assert s.loc[("re_soft", "accuracy"), "n"] == 3
    assert s.loc[("re_soft", "accuracy"), "mean"] == pytest.approx((BASE + SHIFT)[[0, 3, 4]].mean())
    assert s.loc[("re_soft", "accuracy"), "seeds"] == "0 3 4"
    assert s.loc[("re_hard", "accuracy"), "mean"] == pytest.approx(BASE[:4].mean())
    c = out.meta["counts"]
    assert (c["runs"], c["complete"], c["failed"], c["running"], c["missing"]) == (10, 7, 1, 1, 1)
    note = out.comparisons["note"].iloc[0]
    assert "re_soft lost seeds s1 (failed), s2 (running)" in note
    assert "re_hard lost seeds s4 (missing)" in note


def test_arm_with_no_complete_runs_still_has_summary_rows():
    res = make_results({"re_hard": BASE, "re_soft": BASE}, status={("re_soft", s): "failed" for s in SEEDS})
    s = run(res, spec()).summary.set_index("arm")
    assert s.loc["re_soft", "n"] == 0 and math.isnan(s.loc["re_soft", "mean"])
    assert s.loc["re_soft", "seeds"] == ""


# ====================================================================== summary
def test_summary_ci_and_per_corruption_rows():
    rng = np.random.default_rng(0)
    table = {(a, s, c, v): rng.random() for a in ("re_hard", "re_soft") for s in SEEDS
             for c in ("fog", "snow") for v in range(1, 6)}
    res = make_results({"re_hard": BASE, "re_soft": BASE + SHIFT},
                       corruption=lambda a, s, c, v: table[(a, s, c, v)])
    out = run(res, spec())
    s = out.summary
    assert list(s.columns) == COLUMNS["summary"] + ["family", "label_type"]
    row = s[(s.arm == "re_soft") & (s.metric == "accuracy")].iloc[0]
    lo, hi = sps.t.interval(0.95, 4, loc=(BASE + SHIFT).mean(), scale=sps.sem(BASE + SHIFT))
    assert row["corruption"] == "" and row["n"] == 5
    assert row["std"] == pytest.approx(np.std(BASE + SHIFT, ddof=1))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi), rel=1e-12)
    assert row["label_type"] == "soft" and row["family"] == "random_erasing"
    cor = s[(s.metric == "corruption_accuracy") & (s.arm == "re_hard") & (s.corruption == "fog")].iloc[0]
    per_run = [np.mean([table[("re_hard", sd, "fog", v)] for v in range(1, 6)]) for sd in SEEDS]
    assert cor["n"] == 5 and cor["mean"] == pytest.approx(np.mean(per_run))
    assert cor["std"] == pytest.approx(np.std(per_run, ddof=1))
    assert len(s) == 2 + 2 * 2  # 2 arms x 1 metric + 2 arms x 2 corruptions


@settings(deadline=None, max_examples=15)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=8))
def test_property_summary_mean_and_ci(values):
    seeds = list(range(len(values)))
    res = make_results({"re_hard": values}, seeds=seeds)
    row = run(res, spec()).summary.iloc[0]
    assert row["n"] == len(values)
    assert row["mean"] == pytest.approx(np.mean(values), abs=1e-12)
    if len(values) < 2:
        assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
    else:
        assert row["ci_low"] <= row["mean"] + 1e-12 and row["mean"] <= row["ci_high"] + 1e-12
        assert row["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)


@settings(deadline=None, max_examples=15)
@given(st.lists(st.floats(0, 1), min_size=5, max_size=5), st.lists(st.floats(0, 1), min_size=5, max_size=5),
       st.floats(-0.5, 0.5))
def test_property_shifting_both_arms_leaves_diff_and_p_unchanged(a, b, c):
    a, b = np.array(a), np.array(b)
    assume(np.std(b - a) > 1e-3)
    sp = spec(comparisons=[comp("x", "re_soft", "re_hard"), comp("x", "ta_soft", "ta_hard")])
    out = run(make_results({"re_hard": a, "re_soft": b, "ta_hard": a + c, "ta_soft": b + c}), sp)
    r0, r1 = out.comparisons.iloc[0], out.comparisons.iloc[1]  # original, shifted by c
    assert r1["diff"] == pytest.approx(r0["diff"], abs=1e-9)
    assert r1["p"] == pytest.approx(r0["p"], rel=1e-6, abs=1e-12)

def test_recorded_reason_of_a_failed_run_is_shown():
    res = make_results({"re_hard": BASE, "re_soft": BASE + SHIFT},
                       status={("re_soft", 2): "failed", ("re_hard", 1): "failed"},
                       reasons={("re_soft", 2): "CUDA out of memory at epoch 4"})
    out = run(res, spec())
    rs = out.runs_status.set_index("run_id")
    assert rs.loc["re_soft-s2", "reason"] == "CUDA out of memory at epoch 4"
    assert rs.loc["re_hard-s1", "reason"] == "failed (no reason recorded)"   # empty cell, no status.json
    assert "reason" not in out.summary.columns                                # not a factor column


# ====================================================================== repeated-measures ANOVA
def test_anova_is_repeated_measures_on_common_seeds_and_equals_anovarm():
    rng = np.random.default_rng(7)
    subj = rng.normal(0, 0.01, 5)
    cell = {"re_hard": 0.80, "re_soft": 0.804, "ta_hard": 0.82, "ta_soft": 0.816}
    vals = {a: m + subj + rng.normal(0, 0.003, 5) for a, m in cell.items()}
    arms = list(vals)
    out = run(make_results(vals, status={("ta_soft", 4): "failed"}),
              spec(anova=[{"name": "ax", "metric": "accuracy", "arms": arms,
                           "factors": ["label_type", "family"]}]))
    data = pd.DataFrame([{"seed": s, "label_type": FACTORS[a]["label_type"], "family": FACTORS[a]["family"],
                          "value": vals[a][s]} for a in arms for s in range(4)])
    ref = AnovaRM(data, depvar="value", subject="seed", within=["label_type", "family"]).fit().anova_table
    got = out.anova.set_index("term")
    assert list(out.anova.columns) == COLUMNS["anova"]
    assert list(got.index) == ["label_type", "family", "label_type:family"]
    for term in got.index:
        assert got.loc[term, "F"] == pytest.approx(ref.loc[term, "F Value"], rel=1e-10)
        assert got.loc[term, "p"] == pytest.approx(ref.loc[term, "Pr > F"], rel=1e-10)
        assert (got.loc[term, "df_num"], got.loc[term, "df_den"]) == (1, 3)
    assert (got["n_seeds"] == 4).all()
    note = got["note"].iloc[0]
    assert "dropped to balance the seeds" in note and "s4" in note and "ta_soft lost seeds s4 (failed)" in note


# ====================================================================== hypotheses
HFACTORS = {
    **FACTORS,
    **{f"re_{lt}_{i}": {"label_type": lt, "family": "random_erasing"}
       for lt in ("hard", "soft") for i in ("low", "high", "l0", "l1", "l2", "l3")},
}
N_SMALL = np.array([0.0004, -0.0003, 0.0001, -0.0004, 0.0002])   # mean 0, SD 0.034 pp
N_BIG = np.array([0.012, -0.015, 0.004, -0.009, 0.008])          # mean 0, SD 1.1 pp
JIT = np.array([0.003, -0.002, 0.001, 0.0, -0.001])
assert abs(N_SMALL.mean()) < 1e-15 and abs(N_BIG.mean()) < 1e-15

H_INT = {"id": "F1", "statement": "Soft labels gain more over hard labels as RE gets stronger",
         "kind": "interaction", "metric": "accuracy", "direction": "increasing", "mde": 0.01,
         "levels": [0.1, 0.8], "pairs": [["re_soft_low", "re_hard_low"], ["re_soft_high", "re_hard_high"]]}
H_NS = {"id": "F2", "statement": "Soft TA is not better than hard TA by 1 pp or more",
        "kind": "non_superiority", "arm": "ta_soft", "reference": "ta_hard", "metric": "accuracy", "mde": 0.01}
H_DIR = {"id": "F3", "statement": "Soft crop lowers accuracy", "kind": "directional", "direction": "lower",
         "arm": "soft_crop", "reference": "baseline", "metric": "accuracy", "mde": 0.01}
TREND_LEVELS = [0.1, 0.3, 0.5, 0.8]
H_TREND = {"id": "F1t", "statement": "The soft - hard gap grows with RE intensity", "kind": "interaction",
           "metric": "accuracy", "direction": "increasing", "mde": 0.01, "levels": TREND_LEVELS,
           "pairs": [[f"re_soft_l{j}", f"re_hard_l{j}"] for j in range(4)]}
RULE_HYP = {"interaction": H_INT, "directional": H_DIR, "non_superiority": H_NS, "trend": H_TREND}


def int_values(gap_low, gap_high):
    """Four RE arms whose per-seed soft - hard gaps are ``gap_low`` / ``gap_high``."""
    hard_high = BASE - 0.02 + JIT
    return {"re_hard_low": BASE, "re_soft_low": BASE + gap_low,
            "re_hard_high": hard_high, "re_soft_high": hard_high + gap_high}


def trend_values(gaps):
    """Eight RE arms (4 levels) whose per-seed soft - hard gaps are the columns of ``gaps``."""
    out = {}
    for j in range(gaps.shape[1]):
        hard = BASE - 0.01 * j + np.roll(JIT, j)
        out[f"re_hard_l{j}"], out[f"re_soft_l{j}"] = hard, hard + gaps[:, j]
    return out


def contrast_values(rule, c):
    """Arms of ``rule`` whose per-seed primary contrast is ``c`` (5 seeds)."""
    c = np.asarray(c, dtype=float)
    if rule == "interaction":
        gap_low = 0.005 + JIT
        return int_values(gap_low, gap_low + c)
    if rule == "directional":
        return {"baseline": BASE, "soft_crop": BASE + c}
    if rule == "non_superiority":
        return {"ta_hard": BASE + 0.005, "ta_soft": BASE + 0.005 + c}
    levels = np.array(TREND_LEVELS)
    block = np.outer(0.004 + JIT, np.ones(4))          # a per-seed gap, constant over the levels
    return trend_values(block + np.outer(c, (levels - levels.min()) / np.ptp(levels)))


def hyp_run(values, hyps, status=None, seeds=SEEDS, **kw):
    return run(make_results(values, status=status, seeds=seeds, factors=HFACTORS),
               spec(hypotheses=list(hyps), **kw))


def verdict_of(out, hid=None):
    return next(h for h in out.hypotheses if hid is None or h.id == hid)


def paired_p(rule, values, alternative, seeds=slice(None), null=0.0):
    """scipy's paired t of the rule's primary contrast on the given seeds."""
    if rule == "interaction":
        gh = values["re_soft_high"][seeds] - values["re_hard_high"][seeds]
        gl = values["re_soft_low"][seeds] - values["re_hard_low"][seeds]
        return sps.ttest_rel(gh, gl, alternative=alternative).pvalue
    arm, ref = {"directional": ("soft_crop", "baseline"), "non_superiority": ("ta_soft", "ta_hard")}[rule]
    return sps.ttest_1samp(values[arm][seeds] - values[ref][seeds], popmean=null, alternative=alternative).pvalue


# The primary contrast of each rule, per seed, for the cases every rule is tested on. The declared
# direction: interaction increasing (> 0), directional lower (< 0), non_superiority "< +1 pp".
CASES = {
    # rule: {case: (contrast, expected verdict)}
    "interaction": {"true": (0.03 + 3 * N_SMALL, "supported"),
                    "null_precise": (N_SMALL, "not supported"),
                    "null_noisy": (N_BIG, "not shown"),
                    "reversed_strong": (-0.03 + 3 * N_SMALL, "contradicted"),
                    "reversed_weak": (-0.004 + N_BIG, "not shown")},
    "directional": {"true": (-0.03 + 3 * N_SMALL, "supported"),
                    "null_precise": (N_SMALL, "not supported"),
                    "null_noisy": (N_BIG, "not shown"),
                    "reversed_strong": (0.03 + 3 * N_SMALL, "contradicted"),
                    "reversed_weak": (0.004 + N_BIG, "not shown")},
    "non_superiority": {"true": (N_SMALL, "supported"),
                        "null_precise": (0.01 + N_SMALL, "not supported"),   # at the margin
                        "null_noisy": (0.01 + N_BIG, "not shown"),
                        "reversed_strong": (0.03 + 3 * N_SMALL, "contradicted"),
                        "reversed_weak": (0.014 + N_BIG, "not shown")},
    "trend": {"true": (0.03 + 3 * N_SMALL, "supported"),
              "null_precise": (N_SMALL, "not supported"),
              "null_noisy": (3 * N_BIG, "not shown"),      # 20 values: more power than 5 pairs
              "reversed_strong": (-0.03 + 3 * N_SMALL, "contradicted"),
              "reversed_weak": (-0.004 + 3 * N_BIG, "not shown")},
}


@pytest.mark.parametrize("rule", list(CASES))
@pytest.mark.parametrize("case", ["true", "null_precise", "null_noisy", "reversed_strong", "reversed_weak"])
def test_verdict_rules_through_analyze(rule, case):
    contrast, expected = CASES[rule][case]
    h = RULE_HYP[rule]
    v = verdict_of(hyp_run(contrast_values(rule, contrast), [h]))
    assert v.verdict == expected, v.evidence
    assert v.n_seeds == 5 and v.seeds == (0, 1, 2, 3, 4) and v.seeds_dropped == ""
    assert v.p_holm == pytest.approx(v.p)                        # a family of one
    assert v.rule == dict(RULES[h["kind"]])[expected]
    if case.startswith("reversed"):
        assert v.verdict != "supported"
    if expected in ("not shown", "not supported"):
        # every non-rejection states the power the design had for the declared 1 pp; the conservative one decides
        assert v.verdict_text == (f"{expected} (power {100 * v.power:.0f} % for 1 pp; "
                                  f"{100 * v.power_conservative:.0f} % with the SD's upper bound)")
        assert (v.power_conservative < 0.8) == (expected == "not shown")
        assert f"power {100 * v.power:.0f} % for 1 pp" in v.evidence
    else:
        assert v.verdict_text == expected
    # the bound shown with the verdict: one-sided, in the tested direction, at 1 - alpha/m (m = 1 here); it
    # lies beyond the null exactly when the hypothesis is supported
    assert v.bound_level == pytest.approx(0.95)
    beyond = v.bound > v.null if v.alternative == "greater" else v.bound < v.null
    assert beyond == (expected == "supported")
    if rule == "trend":
        assert v.test.startswith("trend: OLS gap ~ level + seed fixed effects")
        return
    alt = {"interaction": "greater", "directional": "less", "non_superiority": "less"}[rule]
    null = 0.01 if rule == "non_superiority" else 0.0
    vals = contrast_values(rule, contrast)
    assert v.alternative == alt and v.null == null
    assert v.p == pytest.approx(paired_p(rule, vals, alt, null=null), rel=1e-9)
    assert v.estimate == pytest.approx(np.mean(contrast), abs=1e-12)
    ci = sps.ttest_1samp(contrast, 0.0).confidence_interval(0.95)
    assert (v.ci_low, v.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9, abs=1e-12)
    one_sided = sps.ttest_1samp(contrast, 0.0, alternative=alt).confidence_interval(0.95)  # scipy's one-sided
    assert v.bound == pytest.approx(one_sided.high if alt == "less" else one_sided.low, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("rule", ["interaction", "directional", "non_superiority"])
def test_power_statement_equals_ttestpower_at_the_mde(rule):
    contrast = CASES[rule]["null_noisy"][0]
    v = verdict_of(hyp_run(contrast_values(rule, contrast), [RULE_HYP[rule]]))
    sd = np.std(contrast, ddof=1)
    pw = TTestPower().power(effect_size=0.01 / sd, nobs=5, alpha=0.05, alternative="larger")
    assert v.sd == pytest.approx(sd, rel=1e-9) and v.power == pytest.approx(pw, rel=1e-6)
    sd_up = sd * math.sqrt(4 / sps.chi2.ppf(0.05, 4))
    assert v.sd_upper == pytest.approx(sd_up, rel=1e-9)
    assert v.power_conservative == pytest.approx(
        TTestPower().power(effect_size=0.01 / sd_up, nobs=5, alpha=0.05, alternative="larger"), rel=1e-6)
    assert v.power_target == 0.8 and v.alpha_power == 0.05
    assert pw < 0.8 and v.verdict == "not shown"
    assert v.verdict_text == (f"not shown (power {100 * pw:.0f} % for 1 pp; {100 * v.power_conservative:.0f} % "
                              "with the SD's upper bound)")


def test_trend_primary_test_equals_trend_test_on_the_gaps():
    contrast = CASES["trend"]["true"][0]
    vals = contrast_values("trend", contrast)
    v = verdict_of(hyp_run(vals, [H_TREND]))
    gaps = np.column_stack([vals[f"re_soft_l{j}"] - vals[f"re_hard_l{j}"] for j in range(4)])
    ref = hs.trend_test(gaps, TREND_LEVELS, alternative="greater")
    assert (v.p, v.estimate, v.ci_low, v.ci_high, v.df) == pytest.approx(
        (ref.p, ref.estimate, ref.ci_low, ref.ci_high, ref.df), rel=1e-9)
    assert v.estimate == pytest.approx(np.mean(contrast), rel=1e-9)  # change of the gap over the range
    d = hs.Design("trend", k=4, sxx=hs.level_sxx(TREND_LEVELS))
    assert v.power == pytest.approx(float(hs.power_one_sided(d, 5, 0.01, ref.sd, 0.05)), rel=1e-9)


def test_f1_reversed_gap_is_never_supported():
    """Issue 9, F1: a gap that reverses (+2.4 -> -2.4 pp) was called supported by the ANOVA."""
    up, down = 0.024 + N_SMALL, -0.024 + N_SMALL[::-1]
    v = verdict_of(hyp_run(int_values(up, down), [H_INT]))
    assert v.verdict == "contradicted" and v.estimate == pytest.approx(-0.048, abs=1e-9)
    assert v.p > 0.99 and v.p_secondary < 0.05
    assert "opposite direction (less)" in v.secondary
    # declared the other way round, the same data support it
    dec = dict(H_INT, direction="decreasing")
    assert verdict_of(hyp_run(int_values(up, down), [dec])).verdict == "supported"
    # and the mirror pattern (-2.4 -> +2.4) contradicts a declared decrease
    assert verdict_of(hyp_run(int_values(down, up), [dec])).verdict == "contradicted"


def test_f2_small_significant_gain_inside_the_margin_is_supported_and_stated():
    """Issue 9, F2: a +0.16 pp gain inside the 1 pp margin gave `contradicted`."""
    contrast = 0.0016 + 0.5 * N_SMALL
    v = verdict_of(hyp_run(contrast_values("non_superiority", contrast), [H_NS]))
    assert sps.ttest_1samp(contrast, 0.0).pvalue < 0.05     # a real, significant gain ...
    assert v.verdict == "supported"                        # ... but smaller than the margin
    assert "significantly better by +0.16 pp" in v.evidence and "smaller than the margin 1 pp" in v.evidence
    assert v.p == pytest.approx(sps.ttest_1samp(contrast, 0.01, alternative="less").pvalue, rel=1e-9)


def test_f2_soft_better_by_more_than_the_margin_is_contradicted():
    contrast = 0.03 + 3 * N_SMALL
    v = verdict_of(hyp_run(contrast_values("non_superiority", contrast), [H_NS]))
    assert v.verdict == "contradicted" and v.ci_low > 0.01
    assert "one-sided test that the gain exceeds the margin" in v.secondary
    assert v.p_secondary == pytest.approx(sps.ttest_1samp(contrast, 0.01, alternative="greater").pvalue, rel=1e-9)
    assert v.p_secondary_holm == pytest.approx(v.p_secondary) and v.p_secondary_holm < 0.05  # a family of one


def test_non_superiority_on_a_lower_is_better_metric():
    """ECE: lower is better, so "not better by the margin" is "diff > -margin"."""
    h = dict(H_NS, metric="ece")
    hard = BASE / 20
    sup = verdict_of(run(make_results({"ta_hard": hard, "ta_soft": hard + N_SMALL}, metrics=("ece",)),
                         spec(metrics=["ece"], hypotheses=[h])))
    assert sup.alternative == "greater" and sup.null == -0.01 and sup.verdict == "supported"
    assert sup.p == pytest.approx(sps.ttest_1samp(N_SMALL, -0.01, alternative="greater").pvalue, rel=1e-9)
    con = verdict_of(run(make_results({"ta_hard": hard, "ta_soft": hard - 0.03 + N_SMALL}, metrics=("ece",)),
                         spec(metrics=["ece"], hypotheses=[h])))
    assert con.verdict == "contradicted" and con.ci_high < -0.01


@pytest.mark.parametrize("rule", ["interaction", "directional", "non_superiority", "trend"])
def test_one_missing_seed_pairs_on_the_common_seeds(rule):
    contrast = CASES[rule]["true"][0]
    vals = contrast_values(rule, contrast)
    arm = RULE_HYP[rule]["pairs"][-1][0] if "pairs" in RULE_HYP[rule] else RULE_HYP[rule]["arm"]
    v = verdict_of(hyp_run(vals, [RULE_HYP[rule]], status={(arm, 2): "failed"}))
    keep = [0, 1, 3, 4]
    assert v.verdict == "supported" and v.n_seeds == 4 and v.seeds == tuple(keep)
    assert "s2" in v.seeds_dropped and arm not in v.seeds_dropped     # the other arms lost seed 2
    assert "(dropped: " in v.evidence and f"{arm} lost seeds s2 (failed)" in v.evidence
    assert "4 seeds common to all arms" in v.evidence
    if rule == "trend":
        gaps = np.column_stack([vals[f"re_soft_l{j}"] - vals[f"re_hard_l{j}"] for j in range(4)])[keep]
        assert v.p == pytest.approx(hs.trend_test(gaps, TREND_LEVELS, alternative="greater").p, rel=1e-9)
        return
    alt = {"interaction": "greater", "directional": "less", "non_superiority": "less"}[rule]
    null = 0.01 if rule == "non_superiority" else 0.0
    # scipy's paired t on the 4 common seeds (never Welch on all seeds)
    assert v.p == pytest.approx(paired_p(rule, vals, alt, seeds=keep, null=null), rel=1e-9)
    assert v.df == 3 and v.test.startswith("paired t")


@pytest.mark.parametrize("rule", ["interaction", "directional", "non_superiority", "trend"])
def test_fewer_than_three_common_seeds_is_inconclusive_without_p(rule):
    vals = contrast_values(rule, CASES[rule]["true"][0])
    arm = RULE_HYP[rule]["pairs"][0][1] if "pairs" in RULE_HYP[rule] else RULE_HYP[rule]["reference"]
    out = hyp_run(vals, [RULE_HYP[rule]], status={(arm, s): "failed" for s in (0, 3, 4)})
    v = verdict_of(out)
    assert v.verdict == "inconclusive" and v.verdict_text == "inconclusive"
    assert math.isnan(v.p) and math.isnan(v.p_holm) and math.isnan(v.power)
    assert GUARD_NOTE in v.evidence and f"{arm} lost seeds s0 (failed), s3 (failed), s4 (failed)" in v.evidence
    assert any(GUARD_NOTE in g and v.id in g for g in out.meta["guards"])
    assert out.meta["holm_family"] == [v.id]  # declared: it stays in the family, as p = 1


@pytest.mark.parametrize("rule", ["directional", "non_superiority"])
def test_welch_only_when_the_arms_share_no_seeds(rule):
    h = RULE_HYP[rule]
    vals = contrast_values(rule, CASES[rule]["true"][0])
    rng = np.random.default_rng(4)
    arm_vals = vals[h["arm"]] + rng.normal(0, 0.002, 5)
    a = make_results({h["reference"]: vals[h["reference"]]}, seeds=[0, 1, 2, 3, 4], factors=HFACTORS)
    b = make_results({h["arm"]: arm_vals}, seeds=[10, 11, 12, 13, 14], factors=HFACTORS)
    v = verdict_of(run(pd.concat([a, b], ignore_index=True), spec(hypotheses=[h])))
    null = 0.01 if rule == "non_superiority" else 0.0
    ref = sps.ttest_ind(arm_vals - null, vals[h["reference"]], equal_var=False, alternative="less")
    assert v.test == "Welch t" and v.p == pytest.approx(ref.pvalue, rel=1e-9)
    assert v.df == pytest.approx(ref.df) and v.seeds == () and v.n_seeds == 5
    assert "unpaired (no common seeds), 5 vs 5 seeds" in v.evidence
    assert v.verdict == "supported"
    # sharing a single seed is not "no common seeds": no Welch fallback, no p-value
    b1 = make_results({h["arm"]: arm_vals}, seeds=[4, 11, 12, 13, 14], factors=HFACTORS)
    v1 = verdict_of(run(pd.concat([a, b1], ignore_index=True), spec(hypotheses=[h])))
    assert v1.verdict == "inconclusive" and math.isnan(v1.p) and "1 common seed(s)" in v1.evidence


def test_interaction_without_common_seeds_is_inconclusive():
    vals = int_values(0.005 + JIT, 0.035 + JIT)
    parts = [make_results({a: vals[a]}, seeds=[s + 10 * i for s in SEEDS], factors=HFACTORS)
             for i, a in enumerate(vals)]
    v = verdict_of(run(pd.concat(parts, ignore_index=True), spec(hypotheses=[H_INT])))
    assert v.verdict == "inconclusive" and "interaction needs seed-paired data" in v.evidence


def test_hypothesis_with_an_absent_arm_is_not_tested():
    v = verdict_of(hyp_run({"baseline": BASE}, [H_DIR]))
    assert v.verdict == "not tested" and "soft_crop" in v.evidence and math.isnan(v.p)


def test_zero_sd_contrast_is_decided_without_a_power_claim():
    v = verdict_of(hyp_run({"baseline": BASE, "soft_crop": BASE.copy()}, [H_DIR]))   # identical arms
    assert v.verdict == "not shown" and v.verdict_text == "not shown (power unknown for 1 pp)"
    assert v.p == 1.0 and math.isnan(v.power) and "zero SD of the contrast" in v.evidence
    v = verdict_of(hyp_run({"baseline": BASE, "soft_crop": BASE - 0.25}, [H_DIR]))   # a constant drop
    assert v.verdict == "supported" and v.p == 0.0 and "degenerate" in v.test
    out = hyp_run({"baseline": BASE, "soft_crop": BASE.copy()}, [H_DIR])
    assert "zero SD of the pilot contrast" in out.plan["note"].iloc[0]


@settings(deadline=None, max_examples=8)  # each example is one analyze() call
@given(st.lists(st.floats(-0.03, 0.03, allow_nan=False), min_size=5, max_size=5), st.floats(-0.1, 0.1))
def test_property_hypotheses_swap_and_shift(contrast, c):
    """Swapping arm and reference with the opposite direction is the same test (estimate negated);
    shifting both arms by the same amount changes nothing."""
    contrast = np.array(contrast)
    assume(np.std(contrast) > 1e-4)
    swapped = dict(H_DIR, id="swapped", arm="baseline", reference="soft_crop", direction="higher")
    shifted = dict(H_DIR, id="shifted", arm="ta_soft", reference="ta_hard")
    vals = {"baseline": BASE, "soft_crop": BASE + contrast, "ta_hard": BASE + c, "ta_soft": BASE + contrast + c}
    v, w, sh = hyp_run(vals, [H_DIR, swapped, shifted]).hypotheses
    assert 0 <= v.p <= v.p_holm <= 1 and v.ci_low <= v.estimate <= v.ci_high
    assert w.estimate == pytest.approx(-v.estimate, abs=1e-12)
    assert w.p == pytest.approx(v.p, rel=1e-9) and w.verdict == v.verdict
    assert w.power == pytest.approx(v.power, rel=1e-9)
    assert sh.estimate == pytest.approx(v.estimate, abs=1e-9)
    assert sh.p == pytest.approx(v.p, rel=1e-6, abs=1e-12) and sh.verdict == v.verdict


# ---------------------------------------------------------------------- Holm family
def _family_values(f3_contrast):
    vals = contrast_values("interaction", 0.03 + 3 * N_SMALL)
    vals.update(contrast_values("non_superiority", 0.01 + N_BIG * 0.3))   # at the margin: p = 0.5
    vals.update(contrast_values("directional", f3_contrast))
    vals["re_soft"] = BASE[:2]                    # 2 seeds only: F5 inconclusive
    vals["re_hard"] = BASE
    return vals


HOLM_HYPS = [H_INT, H_NS, H_DIR,
             dict(H_DIR, id="F4", arm="ghost_arm"),                           # never ran: not tested
             dict(H_DIR, id="F5", arm="re_soft", reference="re_hard")]        # 2 seeds: inconclusive


def test_holm_family_is_the_primary_tests_of_the_declared_hypotheses():
    """The family is fixed before the data: a hypothesis that could not be tested (an arm that never ran,
    too few seeds) stays in it as p = 1, so failed runs never ease the other hypotheses' correction."""
    vals = _family_values(-0.004 + 0.3 * N_BIG)
    factors = {**HFACTORS, "ghost_arm": {"label_type": "soft", "family": "none"}}
    res = make_results({k: v for k, v in vals.items() if k != "re_soft"}, factors=factors)
    res = pd.concat([res, make_results({"re_soft": vals["re_soft"]}, seeds=[0, 1], factors=factors)],
                    ignore_index=True)
    out = run(res, spec(hypotheses=HOLM_HYPS))
    h = {v.id: v for v in out.hypotheses}
    assert [v.id for v in out.hypotheses] == ["F1", "F2", "F3", "F4", "F5"]
    assert (h["F4"].verdict, h["F5"].verdict) == ("not tested", "inconclusive")
    tested = ["F1", "F2", "F3"]
    assert out.meta["holm_family"] == ["F1", "F2", "F3", "F4", "F5"]
    raw = [h[k].p for k in tested]
    # each raw p is the primary one-sided test (scipy), not a secondary check
    assert raw[0] == pytest.approx(paired_p("interaction", vals, "greater"), rel=1e-9)
    assert raw[1] == pytest.approx(paired_p("non_superiority", vals, "less", null=0.01), rel=1e-9)
    assert raw[2] == pytest.approx(paired_p("directional", vals, "less"), rel=1e-9)
    _, adj, _, _ = multipletests(raw + [1.0, 1.0], alpha=0.05, method="holm")
    assert [h[k].p_holm for k in tested] == pytest.approx(list(adj[:3]), rel=1e-12)
    assert math.isnan(h["F4"].p_holm) and math.isnan(h["F5"].p_holm)
    # the secondary (opposite-direction) tests form their own Holm family over the same 5 declared hypotheses
    assert h["F3"].p_secondary == pytest.approx(paired_p("directional", vals, "greater"), rel=1e-9)
    _, adj2, _, _ = multipletests([h[k].p_secondary for k in tested] + [1.0, 1.0], alpha=0.05, method="holm")
    assert [h[k].p_secondary_holm for k in tested] == pytest.approx(list(adj2[:3]), rel=1e-12)
    assert all("Holm over 5 hypothesis(es)" in h[k].evidence for k in tested)
    assert all(h[k].alpha_power == pytest.approx(0.05 / 5) for k in tested)
    assert all(h[k].bound_level == pytest.approx(1 - 0.05 / 5) for k in tested)
    assert list(out.plan["alpha_test"]) == pytest.approx([0.05 / 5] * 5)  # the plan uses the same m
    # F3's raw p (about 0.03) is below alpha, its Holm-adjusted p is not: the family decides
    assert h["F3"].p < 0.05 <= h["F3"].p_holm and h["F3"].verdict != "supported"
    assert out.meta["counts"]["verdicts"]["not tested"] == 1
    assert out.meta["counts"]["verdicts"]["inconclusive"] == 1


def test_hypothesis_gap_rows():
    contrast = 0.03 + 3 * N_SMALL
    vals = contrast_values("interaction", contrast)
    vals.update(contrast_values("directional", -contrast))
    out = hyp_run(vals, [H_INT, H_DIR])
    g = out.hypothesis_gaps
    assert list(g.columns) == COLUMNS["hypothesis_gaps"]
    f1 = g[g.id == "F1"]
    assert sorted(f1["panel"].unique()) == ["contrast", "gap"]
    low = f1[(f1.panel == "gap") & (f1.level == 0.1)].sort_values("seed")["value"].to_numpy()
    np.testing.assert_allclose(low, vals["re_soft_low"] - vals["re_hard_low"], atol=1e-12)
    np.testing.assert_allclose(f1[f1.panel == "contrast"].sort_values("seed")["value"], contrast, atol=1e-12)
    f3 = g[g.id == "F3"]
    assert (f3["panel"] == "difference").all() and (f3["label"] == "soft_crop - baseline").all()
    np.testing.assert_allclose(f3.sort_values("seed")["value"], -contrast, atol=1e-12)


# ====================================================================== McNemar
def test_mcnemar_counts_from_predictions_loader():
    labels = np.arange(60) % 10
    ref_correct = np.zeros(60, bool)
    ref_correct[:40] = True
    arm_correct = ref_correct.copy()
    arm_correct[:7] = False        # b: reference right, arm wrong -> 7
    arm_correct[40:43] = True      # c: reference wrong, arm right -> 3

    def preds(correct):
        return {"labels": labels, "clean": np.where(correct, labels, (labels + 1) % 10).astype(np.int16)}

    store = {}
    for s in SEEDS:
        store[f"runs/re_hard-s{s}"] = preds(ref_correct)
        store[f"runs/re_soft-s{s}"] = preds(arm_correct)
    store["runs/re_soft-s3"] = {"labels": labels[:50], "clean": labels[:50]}  # other test-set length
    del store["runs/re_soft-s4"]                                           # predictions absent

    def loader(run_dir):
        if run_dir not in store:
            raise FileNotFoundError(run_dir)
        return store[run_dir]

    res = make_results({"re_hard": BASE, "re_soft": BASE + SHIFT})
    out = analyze(res, spec(comparisons=[comp("re", "re_soft", "re_hard")]), predictions_loader=loader)
    m = out.mcnemar.set_index("seed")
    assert list(out.mcnemar.columns) == COLUMNS["mcnemar"]
    ref = hs.mcnemar_test(ref_correct, arm_correct)
    for s in (0, 1, 2):
        assert (m.loc[s, "n"], m.loc[s, "b"], m.loc[s, "c"]) == (60, 7, 3)
        assert m.loc[s, "p"] == pytest.approx(ref["pvalue"]) and m.loc[s, "method"] == "exact binomial"
    assert m.loc[3, "method"].startswith("skipped") and "differ" in m.loc[3, "method"]
    assert m.loc[4, "method"].startswith("skipped") and "unavailable" in m.loc[4, "method"]
    assert pd.isna(m.loc[4, "b"]) and math.isnan(m.loc[4, "p"])
    assert out.meta["counts"]["mcnemar_tests"] == 3 and out.meta["counts"]["mcnemar_skipped"] == 2
    assert any("mcnemar skipped" in g for g in out.meta["guards"])



# ====================================================================== spec validation
_OK_C = comp("re", "re_soft", "re_hard")


def _h(base, **kw):
    return {"hypotheses": [{**base, **kw}]}


def _without(base, key):
    return {"hypotheses": [{k: v for k, v in base.items() if k != key}]}


@pytest.mark.parametrize("sp, arms, match", [
    ({"alpha": 1.5}, None, r"stats\.alpha: got 1\.5; expected a number in \(0, 1\)"),
    ({"power": 1.0}, None, r"stats\.power: got 1\.0; expected a number in \(0, 1\)"),
    ({"n_boot": 50}, None, r"stats\.n_boot: got 50; expected an integer >= 100"),
    ({"n_boot": True}, None, r"stats\.n_boot: got True"),
    ({"bogus": 1}, None, r"stats\.bogus: unknown key 'bogus'; allowed keys: alpha"),
    ({"metrics": ["accuracy", "acc"]}, None, r"stats\.metrics\[1\]: got 'acc'; allowed metrics: accuracy"),
    ({"comparisons": [_OK_C, _OK_C | {"family": "x"}, comp("re", "re_soft", "nope")]}, ARMS_CFG,
     r"stats\.comparisons\[2\]\.reference: got 'nope'; not an arm of params\.yaml `arms`"),
    ({"comparisons": [_OK_C | {"extra": 1}]}, None, r"stats\.comparisons\[0\]\.extra: unknown key"),
    ({"comparisons": [{"family": "re", "arm": "a"}]}, None, r"stats\.comparisons\[0\]\.reference: missing"),
    ({"comparisons": [comp("re", "a", "a")]}, None, r"stats\.comparisons\[0\]\.reference: got 'a'"),
    ({"equivalence": [{"name": "e", "arm": "a", "reference": "b", "metric": "accuracy", "margin": 0}]},
     None, r"stats\.equivalence\[0\]\.margin: got 0; expected a finite number > 0"),
    ({"equivalence": [{"name": "e", "arm": "a", "reference": "b", "metric": "accuracy", "margin": 1.0}]},
     None, r"stats\.equivalence\[0\]\.margin: got 1\.0; accuracy is a fraction .*0\.01"),
    ({"anova": [{"name": "x", "metric": "accuracy", "arms": ["re_hard", "re_soft", "ta_hard"],
                 "factors": ["label_type", "family"]}]}, ARMS_CFG,
     r"stats\.anova\[0\]\.arms: got .*must cross label_type x family"),
    ({"anova": [{"name": "x", "metric": "accuracy", "arms": ["re_hard", "re_soft"],
                 "factors": ["label_type", "intensity"]}]}, ARMS_CFG,
     r"stats\.anova\[0\]\.arms\[0\]: got 're_hard'; arm declares no factor 'intensity'"),
    ({"anova": [{"name": "x", "metric": "accuracy", "arms": ["a", "b"], "factors": ["f"]}]}, None,
     r"stats\.anova\[0\]\.factors: got \['f'\]; expected exactly 2"),
    # hypotheses: kind
    ({"hypotheses": [{"id": "F1", "statement": "s", "kind": "maybe"}]}, None,
     r"stats\.hypotheses\[0\]\.kind: got 'maybe'; allowed kinds: interaction, directional, non_superiority"),
    (_h(H_NS, kind="not_better"), None,
     r"stats\.hypotheses\[0\]\.kind: got 'not_better'; allowed kinds: interaction, directional, non_superiority"),
    (_without(H_DIR, "kind"), None, r"stats\.hypotheses\[0\]\.kind: got None; allowed kinds"),
    ({"hypotheses": ["F1"]}, None, r"stats\.hypotheses\[0\]: got 'F1'; expected a mapping"),
    # mde: in the metric's unit, fractions for accuracy
    (_h(H_DIR, mde=1.0), None,
     r"stats\.hypotheses\[0\]\.mde: got 1\.0; accuracy is a fraction in \[0, 1\]: expected at most 0\.5 "
     r"\(write 1 percentage point as 0\.01\)"),
    (_h(H_INT, mde=2), None, r"stats\.hypotheses\[0\]\.mde: got 2; accuracy is a fraction"),
    (_h(H_NS, mde=0), None, r"stats\.hypotheses\[0\]\.mde: got 0; expected a finite number > 0 in the "
                            r"metric's unit \(fractions for accuracies and ECE: 0\.01 = 1 percentage point\)"),
    (_h(H_NS, mde=-0.01), None, r"stats\.hypotheses\[0\]\.mde: got -0\.01; expected a finite number > 0"),
    (_h(H_NS, mde=float("nan")), None, r"stats\.hypotheses\[0\]\.mde: got nan; expected a finite number > 0"),
    (_h(H_NS, mde="1pp"), None, r"stats\.hypotheses\[0\]\.mde: got '1pp'; expected a finite number > 0"),
    (_h(H_NS, mde=True), None, r"stats\.hypotheses\[0\]\.mde: got True; expected a finite number > 0"),
    (_without(H_DIR, "mde"), None, r"stats\.hypotheses\[0\]\.mde: missing; required keys: id, statement"),
    (_h(H_DIR, metric="top1"), None, r"stats\.hypotheses\[0\]\.metric: got 'top1'; allowed metrics: accuracy"),
    # direction per kind
    (_h(H_INT, direction="higher"), None,
     r"stats\.hypotheses\[0\]\.direction: got 'higher'; allowed for kind interaction: increasing, decreasing"),
    (_h(H_DIR, direction="increasing"), None,
     r"stats\.hypotheses\[0\]\.direction: got 'increasing'; allowed for kind directional: higher, lower"),
    (_without(H_DIR, "direction"), None, r"stats\.hypotheses\[0\]\.direction: missing"),
    (_h(H_NS, direction="lower"), None,
     r"stats\.hypotheses\[0\]\.direction: unknown key 'direction'; allowed keys: id, statement, kind, arm, "
     r"reference, metric, mde"),
    # old keys are gone
    (_h(H_INT, anova="ax"), None, r"stats\.hypotheses\[0\]\.anova: unknown key 'anova'"),
    (_h(H_NS, equivalence="e"), None, r"stats\.hypotheses\[0\]\.equivalence: unknown key"),
    # pairs shape
    (_h(H_INT, pairs=[["re_soft_low", "re_hard_low"]], levels=[0.1]), None,
     r"stats\.hypotheses\[0\]\.pairs: got \[\['re_soft_low', 're_hard_low'\]\]; expected a list of >= 2 "
     r"\[arm, reference\] pairs, ordered from the lowest to the highest level"),
    (_h(H_INT, pairs="re_soft_low"), None, r"stats\.hypotheses\[0\]\.pairs: got 're_soft_low'; expected a list"),
    (_h(H_INT, pairs=[["re_soft_low", "re_hard_low"], ["re_soft_high", "re_hard_high", "x"]]), None,
     r"stats\.hypotheses\[0\]\.pairs\[1\]: got \['re_soft_high', 're_hard_high', 'x'\]; expected \[arm, reference\]"),
    (_h(H_INT, pairs=[["re_soft_low", "re_hard_low"], ["re_soft_high", "re_soft_high"]]), None,
     r"stats\.hypotheses\[0\]\.pairs\[1\]\[1\]: got 're_soft_high'; the reference must differ"),
    (_h(H_INT, pairs=[["re_soft_low", "re_hard_low"], ["re_soft_high", "re_hard_low"]]), None,
     r"stats\.hypotheses\[0\]\.pairs\[1\]\[1\]: got 're_hard_low'; each arm may appear in one pair only"),
    (_h(H_INT, pairs=[["re_soft", "re_hard"], ["ta_soft", "ghost"]], levels=None), ARMS_CFG,
     r"stats\.hypotheses\[0\]\.pairs\[1\]\[1\]: got 'ghost'; not an arm of params\.yaml `arms`"),
    # levels
    (_h(H_INT, levels=[0.8, 0.1]), None,
     r"stats\.hypotheses\[0\]\.levels: got \[0\.8, 0\.1\]; expected 2 finite, strictly increasing numbers"),
    (_h(H_INT, levels=[0.1, 0.1]), None, r"stats\.hypotheses\[0\]\.levels: got \[0\.1, 0\.1\]; expected 2 finite"),
    (_h(H_INT, levels=[0.1, 0.5, 0.8]), None, r"stats\.hypotheses\[0\]\.levels: got \[0\.1, 0\.5, 0\.8\]; expected 2"),
    (_h(H_INT, levels=["low", "high"]), None, r"stats\.hypotheses\[0\]\.levels: got \['low', 'high'\]"),
    # arms
    (_h(H_DIR, reference="ghost"), ARMS_CFG, r"stats\.hypotheses\[0\]\.reference: got 'ghost'; not an arm"),
    (_h(H_DIR, reference="soft_crop"), None, r"stats\.hypotheses\[0\]\.reference: got 'soft_crop'; the "
                                             r"reference must differ from the arm"),
    ({"hypotheses": [H_DIR, H_DIR]}, None, r"stats\.hypotheses\[1\]\.id: got 'F3'; hypothesis ids must be unique"),
    ([1, 2], None, r"stats: got \[1, 2\]; expected a mapping"),
])
def test_validate_stats_spec_errors_name_field_value_and_what_is_allowed(sp, arms, match):
    with pytest.raises(ValueError, match=match):
        validate_stats_spec(sp, arms)


def test_validate_stats_spec_defaults_levels_and_no_mutation():
    out = validate_stats_spec(None)
    assert out == {"alpha": 0.05, "n_boot": 2000, "bootstrap_seed": 0, "power": 0.8,
                   "metrics": ["accuracy", "corruption_accuracy_mean15", "corruption_accuracy_mean19", "ece"],
                   "comparisons": [], "anova": [], "equivalence": [], "hypotheses": []}
    sp = {"hypotheses": [{k: v for k, v in H_INT.items() if k != "levels"}, H_NS, H_DIR, H_TREND,
                         dict(H_DIR, id="nll", metric="nll", mde=2.0)]}   # not a fraction: 2 nats is fine
    before = json.dumps(sp, sort_keys=True)
    full = validate_stats_spec(sp, {a: {"factors": f} for a, f in HFACTORS.items()})
    assert json.dumps(sp, sort_keys=True) == before
    h = full["hypotheses"]
    assert h[0]["levels"] == [0.0, 1.0] and h[3]["levels"] == TREND_LEVELS
    assert "direction" not in h[1] and h[2]["direction"] == "lower" and h[4]["mde"] == 2.0
    with pytest.raises(ValueError, match=r"stats\.alpha"):
        analyze(make_results({"re_hard": BASE}), {"alpha": 0})  # analyze validates at the edge


@pytest.mark.parametrize("grid", ["quick", "cifar10-cpu", "paper"])
def test_the_grids_stats_specs_validate(grid):
    raw = yaml.safe_load((ROOT / "grids" / f"{grid}.yaml").read_text())
    out = validate_stats_spec(raw["stats"], raw["arms"])
    kinds = {h["kind"] for h in out["hypotheses"]}
    assert out["hypotheses"] and kinds <= {"interaction", "directional", "non_superiority"}
    assert all(0 < h["mde"] <= 0.5 for h in out["hypotheses"])   # all on fraction metrics here


# ====================================================================== plan
def _pilot(n=20, seed=0):
    rng = np.random.default_rng(seed)
    subj = rng.normal(0, 0.01, n)
    vals = {a: 0.8 + subj + rng.normal(0, 0.004, n)
            for a in ("re_hard_low", "re_soft_low", "re_hard_high", "re_soft_high", "ta_hard", "ta_soft",
                      "baseline", "soft_crop", *(f"re_{lt}_l{j}" for lt in ("hard", "soft") for j in range(4)))}
    return vals, make_results(vals, seeds=list(range(n)), factors=HFACTORS)


PLAN_HYPS = [H_INT, H_NS, H_DIR, H_TREND]


def _solve(sd, mde, alpha, power=0.8):
    return math.ceil(TTestPower().solve_power(effect_size=mde / sd, alpha=alpha, power=power,
                                              alternative="larger") - 1e-6)


def test_plan_on_a_20_seed_pilot_matches_ttestpower_at_alpha_over_m():
    vals, res = _pilot()
    p = plan(res, spec(hypotheses=PLAN_HYPS))
    assert list(p.columns) == COLUMNS["plan"] and p["id"].tolist() == ["F1", "F2", "F3", "F1t"]
    m = len(PLAN_HYPS)
    assert np.allclose(p["alpha_test"], 0.05 / m) and (p["power_target"] == 0.8).all()
    contrasts = {"F1": (vals["re_soft_high"] - vals["re_hard_high"]) - (vals["re_soft_low"] - vals["re_hard_low"]),
                 "F2": vals["ta_soft"] - vals["ta_hard"], "F3": vals["soft_crop"] - vals["baseline"]}
    for hid, c in contrasts.items():
        row = p.set_index("id").loc[hid]
        sd = np.std(c, ddof=1)
        assert row["n_pilot"] == 20 and row["sd"] == pytest.approx(sd, rel=1e-9)
        assert row["sd_upper"] == pytest.approx(hs.sd_upper_bound(sd, 19), rel=1e-12)
        assert row["mde"] == 0.01 and row["design"] == "paired t on per-seed contrasts"
        assert row["seeds_needed"] == _solve(sd, 0.01, 0.05 / m)
        assert row["seeds_needed_conservative"] == _solve(row["sd_upper"], 0.01, 0.05 / m)
        assert row["seeds_needed_conservative"] >= row["seeds_needed"]
        assert row["power_pilot"] == pytest.approx(
            TTestPower().power(0.01 / sd, nobs=20, alpha=0.05 / m, alternative="larger"), rel=1e-6)
        assert row["power_pilot_conservative"] <= row["power_pilot"]
    t = p.set_index("id").loc["F1t"]
    gaps = np.column_stack([vals[f"re_soft_l{j}"] - vals[f"re_hard_l{j}"] for j in range(4)])
    ref = hs.trend_test(gaps, TREND_LEVELS)
    d = hs.Design("trend", k=4, sxx=hs.level_sxx(TREND_LEVELS))
    assert t["design"] == "trend over 4 levels, seed fixed effects" and t["sd"] == pytest.approx(ref.sd)
    assert t["seeds_needed"] == hs.seeds_needed(d, 0.01, ref.sd, alpha=0.05 / m, power=0.8)
    assert float(hs.power_one_sided(d, t["seeds_needed"], 0.01, ref.sd, 0.05 / m)) >= 0.8
    assert float(hs.power_one_sided(d, t["seeds_needed"] - 1, 0.01, ref.sd, 0.05 / m)) < 0.8


def test_plan_mde_override_and_its_validation():
    vals, res = _pilot()
    sp = spec(hypotheses=PLAN_HYPS)
    base = plan(res, sp)
    wide = plan(res, sp, mde=0.02)
    assert (wide["mde"] == 0.02).all()
    assert (wide["seeds_needed"] <= base["seeds_needed"]).all()
    assert (wide["sd"] == base["sd"]).all()
    sd = wide.set_index("id").loc["F3", "sd"]
    assert wide.set_index("id").loc["F3", "seeds_needed"] == _solve(sd, 0.02, 0.05 / 4)
    for bad, match in [(1.0, r"mde: got 1\.0; .*0\.01 = 1 percentage point"), (0, r"mde: got 0"),
                       (-0.01, r"mde: got -0\.01"), (math.nan, r"mde: got nan"), (math.inf, r"mde: got inf")]:
        with pytest.raises(ValueError, match=match):
            plan(res, sp, mde=bad)


def test_plan_without_a_pilot_estimate_says_why():
    vals, res = _pilot(n=5)
    p = plan(res[res.arm != "soft_crop"], spec(hypotheses=PLAN_HYPS)).set_index("id")
    assert "no pilot estimate" in p.loc["F3", "note"] and "soft_crop" in p.loc["F3", "note"]
    assert math.isnan(p.loc["F3", "seeds_needed"]) and p.loc["F1", "n_pilot"] == 5
    # analyze writes the same plan for the declared mde
    out = run(res, spec(hypotheses=PLAN_HYPS))
    pd.testing.assert_frame_equal(out.plan, plan(res, spec(hypotheses=PLAN_HYPS)))


# ====================================================================== files and loading
def test_write_produces_every_contract_file_with_contract_columns(tmp_path):
    vals = contrast_values("interaction", 0.03 + 3 * N_SMALL)
    vals.update(contrast_values("non_superiority", N_SMALL))
    vals["baseline"] = BASE                             # soft_crop absent: F3 not tested
    res = make_results(vals, status={("ta_soft", 4): "failed"}, factors=HFACTORS)
    sp = spec(hypotheses=[H_INT, H_NS, H_DIR], comparisons=[comp("ta", "ta_soft", "ta_hard")],
              anova=[{"name": "ax", "metric": "accuracy", "arms": ["re_hard_low", "re_soft_low", "ta_hard",
                                                                    "ta_soft"], "factors": ["label_type", "family"]}],
              equivalence=[{"name": "eq", "arm": "ta_soft", "reference": "ta_hard", "metric": "accuracy",
                            "margin": 0.01}])
    out = run(res, sp)
    paths = out.write(tmp_path / "stats")
    assert sorted(p.name for p in paths) == sorted([f"{k}.csv" for k in COLUMNS] + ["hypotheses.json",
                                                                                   "stats.json"])
    for name in COLUMNS:
        if name == "summary":
            continue
        df = pd.read_csv(tmp_path / "stats" / f"{name}.csv")
        assert list(df.columns) == COLUMNS[name], name
    summ = pd.read_csv(tmp_path / "stats" / "summary.csv")
    assert list(summ.columns) == COLUMNS["summary"] + ["family", "label_type"]
    hyps = json.loads((tmp_path / "stats" / "hypotheses.json").read_text())
    names = [f.name for f in fields(Verdict)]
    assert [list(h) for h in hyps] == [names] * 3
    assert [h["id"] for h in hyps] == ["F1", "F2", "F3"]
    assert [h["verdict"] for h in hyps] == ["supported", "supported", "not tested"]
    assert hyps[2]["p"] is None and hyps[2]["power"] is None       # NaN -> null (strict JSON)
    assert isinstance(hyps[0]["p"], float) and isinstance(hyps[0]["power"], float)
    assert hyps[1]["seeds"] == [0, 1, 2, 3] and "s4" in hyps[1]["seeds_dropped"]
    assert hyps[0]["arms"] == ["re_soft_low", "re_hard_low", "re_soft_high", "re_hard_high"]
    meta = json.loads((tmp_path / "stats" / "stats.json").read_text())
    assert set(meta) == {"alpha", "confidence", "n_boot", "power", "min_seeds", "holm_family", "rules",
                         "guards", "counts"}
    assert meta["holm_family"] == ["F1", "F2", "F3"] and meta["counts"]["failed"] == 1  # declared, F3 untested
    assert meta["rules"]["non_superiority"][0][0] == "supported"
    rs = pd.read_csv(tmp_path / "stats" / "runs_status.csv")
    assert rs["run_id"].tolist() == ["ta_soft-s4"]
    plan_csv = pd.read_csv(tmp_path / "stats" / "plan.csv")
    assert plan_csv["id"].tolist() == ["F1", "F2", "F3"]
    assert not list((tmp_path / "stats").glob(".*.tmp"))  # atomic writes left no temp files


def test_load_results_roundtrip_and_missing_column(tmp_path):
    factors = {"re_hard": {"family": "none", "label_type": "hard"},
               "re_soft": {"family": "none", "label_type": "soft"}}
    res = make_results({"re_hard": BASE, "re_soft": BASE + SHIFT}, factors=factors,
                       status={("re_soft", 4): "missing"})
    path = tmp_path / "results.csv"
    res.to_csv(path, index=False)
    loaded = load_results(path)
    assert loaded["family"].eq("none").all()        # 'none' is a factor level, not NA
    assert loaded["corruption"].eq("").all() and loaded["seed"].dtype == np.int64
    sp = spec(comparisons=[comp("re", "re_soft", "re_hard")])
    pd.testing.assert_frame_equal(run(loaded, sp).comparisons, run(res, sp).comparisons)
    res.drop(columns="status").to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"missing required column\(s\) 'status'"):
        load_results(path)
    bad = res.copy()
    bad.loc[0, "status"] = "done"
    with pytest.raises(ValueError, match=r"column 'status' of run 're_hard-s0' is 'done'; allowed: complete"):
        analyze(bad, spec())
