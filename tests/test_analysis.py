"""Tests for harness.analysis (results table -> reports/stats/) and the stats helpers it adds.

Every expected number comes from a direct scipy / statsmodels call on the same values, or from
data constructed so that the answer is known.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from harness import stats as hs
from harness.analysis import (
    COLUMNS,
    GUARD_NOTE,

    analyze,
    load_results,
    validate_stats_spec,
)

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
                 factors=FACTORS):
    """Long-format results table as the `results` stage writes it (docs/pipeline.md).

    ``values``: ``{arm: sequence over seeds}`` (used for every metric, plus 0.1 * metric index so
    metrics differ) or ``callable(arm, metric, seed) -> float``. ``status``: ``{(arm, seed): status}``
    for runs that are not complete (one row, empty metric, NaN value). ``corruption``:
    ``callable(arm, seed, name, severity) -> float`` adds per-corruption ``accuracy`` rows for
    corruptions ``fog``/``snow`` x severities 1..5. Arms are the keys of ``values`` (dict form)
    or of ``factors`` (callable form).
    """
    status = status or {}
    arms = list(values) if isinstance(values, dict) else list(factors)
    rows = []
    for arm in arms:
        for i, seed in enumerate(seeds):
            base = {"run_id": f"{arm}-s{seed}", "grid": "test", "dataset": "mnist5k", "arm": arm,
                    **factors[arm], "seed": seed, "run_dir": f"runs/{arm}-s{seed}"}
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
    return df[["run_id", "grid", "dataset", "arm", *fcols, "seed", "metric", "corruption", "severity",
               "value", "status", "run_dir"]]


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
    row = out.comparisons.iloc[0]
    t = sps.ttest_rel(BASE + SHIFT, BASE)
    assert row["paired"] is True and row["test"] == "paired_t"
    assert row["n_arm"] == row["n_ref"] == 5
    assert row["diff"] == pytest.approx(SHIFT.mean(), abs=1e-12)
    assert row["mean_arm"] == pytest.approx((BASE + SHIFT).mean())
    assert row["mean_ref"] == pytest.approx(BASE.mean())
    assert row["p"] == pytest.approx(t.pvalue, rel=1e-10)
    assert row["statistic"] == pytest.approx(t.statistic, rel=1e-10)
    assert row["df"] == 4
    assert row["wilcoxon_p"] == pytest.approx(sps.wilcoxon(BASE + SHIFT, BASE).pvalue)
    assert row["boot_ci_low"] <= row["diff"] <= row["boot_ci_high"]
    assert row["hedges_g"] > 0 and row["g_ci_low"] < row["hedges_g"] < row["g_ci_high"]
    assert row["seeds_for_power"] == hs.seeds_for_power(row["hedges_g"], paired=True)
    assert row["note"] == ""
    assert row["p_holm"] == pytest.approx(row["p"]) and row["reject_holm"] is True  # family of one


def test_holm_within_family_and_metric_matches_statsmodels():
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
        fam = c[(c.family == "fam") & (c.metric == metric)]
        reject, adj, _, _ = multipletests(fam["p"].to_numpy(), alpha=0.05, method="holm")
        np.testing.assert_allclose(fam["p_holm"].to_numpy(), adj, rtol=1e-12)
        assert fam["reject_holm"].tolist() == reject.tolist()
        other = c[(c.family == "other") & (c.metric == metric)].iloc[0]
        assert other["p_holm"] == pytest.approx(other["p"])  # its own family of one


def test_welch_when_seed_sets_differ_and_lost_seed_noted():
    res = make_results({"re_hard": BASE, "re_soft": BASE + SHIFT}, status={("re_soft", 4): "failed"})
    out = run(res, spec(comparisons=[comp("re", "re_soft", "re_hard")]))
    row = out.comparisons.iloc[0]
    t = sps.ttest_ind((BASE + SHIFT)[:4], BASE, equal_var=False)
    assert row["paired"] is False and row["test"] == "welch_t"
    assert row["n_arm"] == 4 and row["n_ref"] == 5
    assert row["p"] == pytest.approx(t.pvalue, rel=1e-10)
    assert row["df"] == pytest.approx(t.df)
    assert math.isnan(row["wilcoxon_p"])
    assert "re_soft lost seeds s4 (failed)" in row["note"]
    assert "seed sets differ" in row["note"]


def test_comparisons_are_deterministic_and_shift_free_with_constant_difference():
    res = make_results({"re_hard": BASE, "re_soft": BASE + 0.01})  # identical differences
    sp = spec(comparisons=[comp("re", "re_soft", "re_hard")])
    a, b = run(res, sp), run(res, sp)
    pd.testing.assert_frame_equal(a.comparisons, b.comparisons)
    row = a.comparisons.iloc[0]
    assert math.isnan(row["p"]) and "zero variance" in row["note"]
    assert row["boot_ci_low"] == pytest.approx(0.01) and row["boot_ci_high"] == pytest.approx(0.01)
    assert row["reject_holm"] is None  # not tested: no Holm decision


def test_zero_effect_needs_infinite_seeds():
    vals = {"re_hard": BASE, "re_soft": BASE[[1, 0, 3, 2, 4]]}  # same values, permuted
    row = run(make_results(vals), spec(comparisons=[comp("re", "re_soft", "re_hard")])).comparisons.iloc[0]
    assert row["diff"] == pytest.approx(0, abs=1e-15)
    assert row["seeds_for_power"] == math.inf


# ====================================================================== min-seeds guard
def test_two_seeds_give_no_pvalue_and_inconclusive_verdict():
    status = {("re_soft", s): "failed" for s in (2, 3, 4)}
    vals = {a: BASE + 0.01 * i for i, a in enumerate(["re_hard", "re_soft", "ta_hard", "ta_soft"])}
    sp = spec(comparisons=[comp("re", "re_soft", "re_hard")],
              anova=[{"name": "ax", "metric": "accuracy", "arms": list(vals),
                      "factors": ["label_type", "family"]}],
              equivalence=[{"name": "eq", "arm": "re_soft", "reference": "re_hard",
                            "metric": "accuracy", "margin": 0.5}],
              hypotheses=[{"id": "F1", "statement": "s", "kind": "interaction", "anova": "ax"},
                          {"id": "F3", "statement": "s", "kind": "lower", "arm": "re_soft",
                           "reference": "re_hard", "metric": "accuracy"}])
    out = run(make_results(vals, status=status), sp)
    row = out.comparisons.iloc[0]
    assert row["n_arm"] == 2 and math.isnan(row["p"]) and math.isnan(row["p_holm"])
    assert GUARD_NOTE in row["note"] and "lost seeds s2 (failed), s3 (failed), s4 (failed)" in row["note"]
    assert row["mean_arm"] == pytest.approx((BASE[:2] + 0.01).mean())  # means still reported
    assert len(out.anova) == 1 and math.isnan(out.anova["p"].iloc[0])
    assert GUARD_NOTE in out.anova["note"].iloc[0] and "n=2" in out.anova["note"].iloc[0]
    assert math.isnan(out.tost["p"].iloc[0]) and GUARD_NOTE in out.tost["note"].iloc[0]
    verdicts = {h["id"]: h["verdict"] for h in out.hypotheses}
    assert verdicts == {"F1": "inconclusive", "F3": "inconclusive"}
    assert all(h["p"] != h["p"] for h in out.hypotheses)  # NaN: never a p from 2 seeds
    guards = " | ".join(out.meta["guards"])
    assert guards.count(GUARD_NOTE) >= 4 and "re_soft vs re_hard" in guards
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


@settings(deadline=None, max_examples=30)
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


@settings(deadline=None, max_examples=30)
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


# ====================================================================== ANOVA
def _interaction_values(strength):
    rng = np.random.default_rng(7)
    cell = {"re_hard": 0.80, "re_soft": 0.80 + strength, "ta_hard": 0.82, "ta_soft": 0.82 - strength}
    return {a: m + rng.normal(0, 0.003, 5) for a, m in cell.items()}


def test_anova_equals_statsmodels_direct():
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    vals = _interaction_values(0.004)
    arms = list(vals)
    out = run(make_results(vals), spec(anova=[{"name": "ax", "metric": "accuracy", "arms": arms,
                                               "factors": ["label_type", "family"]}]))
    data = pd.DataFrame({"value": np.concatenate([vals[a] for a in arms]),
                         "label_type": np.repeat([FACTORS[a]["label_type"] for a in arms], 5),
                         "family": np.repeat([FACTORS[a]["family"] for a in arms], 5)})
    ref = anova_lm(smf.ols("value ~ C(label_type) * C(family)", data=data).fit(), typ=2)
    got = out.anova.set_index("term")
    assert list(got.index) == ["label_type", "family", "label_type:family", "Residual"]
    for term, sm in zip(got.index, ["C(label_type)", "C(family)", "C(label_type):C(family)", "Residual"]):
        assert got.loc[term, "sum_sq"] == pytest.approx(ref.loc[sm, "sum_sq"], rel=1e-10)
        assert got.loc[term, "df"] == ref.loc[sm, "df"]
        if term != "Residual":
            assert got.loc[term, "F"] == pytest.approx(ref.loc[sm, "F"], rel=1e-10)
            assert got.loc[term, "p"] == pytest.approx(ref.loc[sm, "PR(>F)"], rel=1e-8)
    assert (out.anova["name"] == "ax").all() and (out.anova["note"] == "").all()


# ====================================================================== hypotheses
def _hyp_spec(**extra):
    return spec(
        anova=[{"name": "ax", "metric": "accuracy", "arms": ["re_hard", "re_soft", "ta_hard", "ta_soft"],
                "factors": ["label_type", "family"]}],
        equivalence=[{"name": "ta_eq", "arm": "ta_soft", "reference": "ta_hard", "metric": "accuracy",
                      "margin": 0.5}],
        hypotheses=[
            {"id": "F1", "statement": "interaction", "kind": "interaction", "anova": "ax"},
            {"id": "F2", "statement": "soft TA is not better than hard TA", "kind": "not_better",
             "arm": "ta_soft", "reference": "ta_hard", "metric": "accuracy", "equivalence": "ta_eq"},
            {"id": "F3", "statement": "soft crop is lower", "kind": "lower", "arm": "soft_crop",
             "reference": "baseline", "metric": "accuracy"},
        ], **extra)


def _verdicts(out):
    return {h["id"]: h["verdict"] for h in out.hypotheses}


def test_hypothesis_verdicts_on_constructed_data():
    rng = np.random.default_rng(11)
    vals = _interaction_values(0.05)
    vals["re_soft"] = vals["re_hard"] - 0.05 + rng.normal(0, 0.002, 5)  # soft hurts RE ...
    vals["ta_soft"] = vals["ta_hard"] + 0.05 + rng.normal(0, 0.002, 5)  # ... and clearly helps TA
    vals["baseline"] = BASE
    vals["soft_crop"] = BASE - 0.05 + rng.normal(0, 0.002, 5)          # soft crop clearly lower
    out = run(make_results(vals), _hyp_spec())
    assert _verdicts(out) == {"F1": "supported", "F2": "contradicted", "F3": "supported"}
    h = {x["id"]: x for x in out.hypotheses}
    # raw p-values are the declared one-sided tests / the ANOVA interaction p
    assert h["F2"]["p"] == pytest.approx(
        sps.ttest_rel(vals["ta_soft"], vals["ta_hard"], alternative="greater").pvalue, rel=1e-10)
    assert h["F3"]["p"] == pytest.approx(
        sps.ttest_rel(vals["soft_crop"], vals["baseline"], alternative="less").pvalue, rel=1e-10)
    anova_p = out.anova.set_index("term").loc["label_type:family", "p"]
    assert h["F1"]["p"] == pytest.approx(anova_p)
    # Holm across all tested hypotheses
    _, adj, _, _ = multipletests([h[k]["p"] for k in ("F1", "F2", "F3")], method="holm")
    assert [h[k]["p_holm"] for k in ("F1", "F2", "F3")] == pytest.approx(list(adj))
    assert h["F2"]["arms"] == ["ta_soft", "ta_hard"] and h["F2"]["metric"] == "accuracy"
    assert "bootstrap CI" in h["F2"]["evidence"] and "TOST ta_eq" in h["F2"]["evidence"]
    assert "opposite direction" in h["F3"]["evidence"]


def test_not_better_supported_when_equal_with_tost_equivalence():
    rng = np.random.default_rng(5)
    vals = _interaction_values(0.0)                       # no interaction
    vals["ta_soft"] = vals["ta_hard"] + rng.normal(0, 0.001, 5)
    vals["baseline"] = BASE
    vals["soft_crop"] = BASE + 0.05 + rng.normal(0, 0.002, 5)  # soft crop clearly HIGHER
    out = run(make_results(vals), _hyp_spec())
    v = _verdicts(out)
    assert v["F2"] == "supported"
    assert v["F3"] == "contradicted"                       # significant in the opposite direction
    assert v["F1"] == "not supported"
    assert out.tost["equivalent"].iloc[0] is True and out.tost["paired"].iloc[0] is True
    ev = next(h for h in out.hypotheses if h["id"] == "F2")["evidence"]
    assert "equivalent within +/-50 pp" in ev and "not significantly worse" in ev


def test_not_better_without_positive_evidence_is_inconclusive():
    """A non-significant "better" test is absence of evidence: without TOST equivalence or a
    significant deficit, F2 is inconclusive, not supported."""
    rng = np.random.default_rng(7)
    vals = _interaction_values(0.0)
    vals["ta_soft"] = vals["ta_hard"] + 0.002 + rng.normal(0, 0.01, 5)   # noisy, no clear difference
    vals["baseline"] = BASE
    vals["soft_crop"] = BASE - 0.05 + rng.normal(0, 0.002, 5)
    sp = _hyp_spec()
    sp["equivalence"][0]["margin"] = 0.0001                               # far too narrow to show
    out = run(make_results(vals), sp)
    h = next(x for x in out.hypotheses if x["id"] == "F2")
    assert h["p_holm"] >= 0.05 and not out.tost["equivalent"].iloc[0]
    assert h["verdict"] == "inconclusive"
    assert "equivalence not shown" in h["evidence"] and "not significantly worse" in h["evidence"]
    assert " pp" in h["evidence"]  # differences in percentage points, like the report's tables


def test_missing_arm_is_not_tested_and_left_out_of_holm():
    rng = np.random.default_rng(2)
    vals = _interaction_values(0.05)
    vals["ta_soft"] = vals["ta_hard"] + rng.normal(0, 0.002, 5)
    vals["baseline"] = BASE                               # soft_crop never appears in the results
    out = run(make_results(vals), _hyp_spec())
    h = {x["id"]: x for x in out.hypotheses}
    assert h["F3"]["verdict"] == "not tested" and "soft_crop" in h["F3"]["evidence"]
    assert math.isnan(h["F3"]["p"]) and math.isnan(h["F3"]["p_holm"])
    _, adj, _, _ = multipletests([h["F1"]["p"], h["F2"]["p"]], method="holm")
    assert [h["F1"]["p_holm"], h["F2"]["p_holm"]] == pytest.approx(list(adj))
    assert out.meta["counts"]["verdicts"]["not tested"] == 1


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


@pytest.mark.parametrize("sp, arms, match", [
    ({"alpha": 1.5}, None, r"stats\.alpha: got 1\.5; expected a number in \(0, 1\)"),
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
    ({"anova": [{"name": "x", "metric": "accuracy", "arms": ["re_hard", "re_soft", "ta_hard"],
                 "factors": ["label_type", "family"]}]}, ARMS_CFG,
     r"stats\.anova\[0\]\.arms: got .*must cross label_type x family"),
    ({"anova": [{"name": "x", "metric": "accuracy", "arms": ["re_hard", "re_soft"],
                 "factors": ["label_type", "intensity"]}]}, ARMS_CFG,
     r"stats\.anova\[0\]\.arms\[0\]: got 're_hard'; arm declares no factor 'intensity'"),
    ({"anova": [{"name": "x", "metric": "accuracy", "arms": ["a", "b"], "factors": ["f"]}]}, None,
     r"stats\.anova\[0\]\.factors: got \['f'\]; expected exactly 2"),
    ({"hypotheses": [{"id": "F1", "statement": "s", "kind": "maybe"}]}, None,
     r"stats\.hypotheses\[0\]\.kind: got 'maybe'; allowed kinds: interaction, not_better, lower, higher"),
    ({"hypotheses": [{"id": "F1", "statement": "s", "kind": "interaction", "anova": "nope"}]}, None,
     r"stats\.hypotheses\[0\]\.anova: got 'nope'; not a name of stats\.anova"),
    ({"hypotheses": [{"id": "F2", "statement": "s", "kind": "not_better", "arm": "a", "reference": "b",
                      "metric": "accuracy", "equivalence": "nope"}]}, None,
     r"stats\.hypotheses\[0\]\.equivalence: got 'nope'"),
    ({"equivalence": [{"name": "e", "arm": "c", "reference": "b", "metric": "accuracy", "margin": 0.1}],
      "hypotheses": [{"id": "F2", "statement": "s", "kind": "not_better", "arm": "a", "reference": "b",
                      "metric": "accuracy", "equivalence": "e"}]}, None,
     r"stats\.hypotheses\[0\]\.equivalence: got 'e'; it compares c vs b"),
    ({"hypotheses": [{"id": "F3", "statement": "s", "kind": "lower", "arm": "a", "reference": "b",
                      "metric": "accuracy", "anova": "x"}]}, None,
     r"stats\.hypotheses\[0\]\.anova: unknown key"),
    ({"hypotheses": [{"id": "F3", "statement": "s", "kind": "lower", "arm": "soft_crop",
                      "reference": "ghost", "metric": "accuracy"}]}, ARMS_CFG,
     r"stats\.hypotheses\[0\]\.reference: got 'ghost'"),
    ([1, 2], None, r"stats: got \[1, 2\]; expected a mapping"),
])
def test_validate_stats_spec_errors_name_the_field(sp, arms, match):
    with pytest.raises(ValueError, match=match):
        validate_stats_spec(sp, arms)


def test_validate_stats_spec_defaults_and_no_mutation():
    out = validate_stats_spec(None)
    assert out == {"alpha": 0.05, "n_boot": 2000, "bootstrap_seed": 0, "power": 0.8,
                   "metrics": ["accuracy", "corruption_accuracy_mean15", "corruption_accuracy_mean19", "ece"],
                   "comparisons": [], "anova": [], "equivalence": [], "hypotheses": []}
    sp = _hyp_spec()
    before = json.dumps(sp, sort_keys=True)
    full = validate_stats_spec(sp, ARMS_CFG)
    assert json.dumps(sp, sort_keys=True) == before
    assert full["hypotheses"][1]["equivalence"] == "ta_eq" and full["n_boot"] == 200
    with pytest.raises(ValueError, match=r"stats\.alpha"):
        analyze(make_results({"re_hard": BASE}), {"alpha": 0})  # analyze validates at the edge


# ====================================================================== files and loading
def test_write_produces_every_contract_file_with_contract_columns(tmp_path):
    vals = _interaction_values(0.05)
    vals["baseline"] = BASE                              # soft_crop absent: F3 not tested
    res = make_results(vals, status={("ta_soft", 4): "failed"})
    out = run(res, _hyp_spec(comparisons=[comp("ta", "ta_soft", "ta_hard")]))
    paths = out.write(tmp_path / "stats")
    names = sorted(p.name for p in paths)
    assert names == sorted(["summary.csv", "comparisons.csv", "mcnemar.csv", "anova.csv", "tost.csv",
                            "hypotheses.json", "runs_status.csv", "stats.json"])
    for name in ("comparisons", "mcnemar", "anova", "tost", "runs_status"):
        df = pd.read_csv(tmp_path / "stats" / f"{name}.csv")
        assert list(df.columns) == COLUMNS[name], name
    summ = pd.read_csv(tmp_path / "stats" / "summary.csv")
    assert list(summ.columns) == COLUMNS["summary"] + ["family", "label_type"]
    hyps = json.loads((tmp_path / "stats" / "hypotheses.json").read_text())
    assert [tuple(h) for h in hyps] == [HYPOTHESIS_KEYS] * 3
    assert all(h["verdict"] in ("supported", "not supported", "contradicted", "inconclusive", "not tested")
               for h in hyps)
    assert hyps[2]["verdict"] == "not tested" and hyps[2]["p"] is None  # NaN -> null (strict JSON)
    assert isinstance(hyps[0]["p"], float)
    meta = json.loads((tmp_path / "stats" / "stats.json").read_text())
    assert set(meta) == {"alpha", "n_boot", "power", "min_seeds", "guards", "counts"}
    assert meta["counts"]["failed"] == 1
    rs = pd.read_csv(tmp_path / "stats" / "runs_status.csv")
    assert rs["run_id"].tolist() == ["ta_soft-s4"]
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


# ====================================================================== stats.py additions
@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_one_sided_t_matches_scipy(paired, alternative):
    a, b = BASE, BASE + SHIFT * np.array([1, -0.5, 2, 0.3, 1])
    r = hs.one_sided_t(a, b, alternative=alternative, paired=paired)
    ref = (sps.ttest_rel(b, a, alternative=alternative) if paired
           else sps.ttest_ind(b, a, equal_var=False, alternative=alternative))
    assert r["pvalue"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert r["statistic"] == pytest.approx(ref.statistic, rel=1e-12)
    assert r["diff"] == pytest.approx(b.mean() - a.mean())


def test_one_sided_t_degenerate_and_guard():
    r = hs.one_sided_t(BASE, BASE + 0.01, alternative="greater", paired=True)
    assert r["pvalue"] == 0.0 and "degenerate" in r["test"]
    assert hs.one_sided_t(BASE, BASE + 0.01, alternative="less", paired=True)["pvalue"] == 1.0
    assert hs.one_sided_t(BASE, BASE, alternative="greater", paired=True)["pvalue"] == 1.0
    with pytest.raises(hs.InsufficientSeeds):
        hs.one_sided_t([1.0, 2.0], [1.0, 2.0, 3.0], alternative="greater", paired=False)
    with pytest.raises(ValueError, match="alternative must be 'greater' or 'less'"):
        hs.one_sided_t(BASE, BASE, alternative="two-sided", paired=True)


def test_t_ci_mean_matches_scipy_interval():
    x = BASE + SHIFT
    lo, hi = hs.t_ci_mean(x.mean(), x.std(ddof=1), x.size, 0.9)
    assert (float(lo), float(hi)) == pytest.approx(
        sps.t.interval(0.9, x.size - 1, loc=x.mean(), scale=sps.sem(x)), rel=1e-12)
    lo, hi = hs.t_ci_mean([1.0, 2.0], [np.nan, 0.5], [1, 4])
    assert math.isnan(lo[0]) and math.isnan(hi[0]) and lo[1] < 2.0 < hi[1]


@pytest.mark.parametrize("paired", [True, False])
def test_seeds_for_power_large_effect_falls_back_to_robust_search(paired):
    from statsmodels.stats.power import TTestIndPower, TTestPower

    # statsmodels' power is nan at this noncentrality, so its solver cannot answer
    assert hs.seeds_for_power(18.14, paired=paired) == hs.MIN_SEEDS
    assert hs.seeds_for_power(18.14, alpha=0.001, paired=True) == 4  # t crit 31.6 at df=2: n=3 too few
    ref = (TTestPower().power(0.5, nobs=34, alpha=0.05) if paired
           else TTestIndPower().power(0.5, nobs1=34, alpha=0.05, ratio=1.0))
    assert hs._t_test_power(0.5, 34, alpha=0.05, paired=paired) == pytest.approx(ref, rel=1e-8)
    assert hs._min_n_for_power(0.5, alpha=0.05, power=0.8, paired=paired) == hs.seeds_for_power(
        0.5, paired=paired)
