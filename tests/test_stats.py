"""Tests for harness.stats against direct scipy/statsmodels calls and textbook values."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from harness.stats import (
    MIN_SEEDS,
    InsufficientSeeds,
    compare_arms,
    hedges_g,
    holm,
    mcnemar_test,
    seeds_for_power,
    tost_equivalence,
    two_way_anova,
)

A = np.array([71.2, 70.8, 72.1, 71.5, 70.9])
B = np.array([72.0, 71.9, 72.8, 72.6, 71.4])


# ---------------------------------------------------------------- min-n guard
def test_min_seeds_constant():
    assert MIN_SEEDS == 3
    assert issubclass(InsufficientSeeds, ValueError)


@pytest.mark.parametrize("fn", [
    lambda a, b: compare_arms(a, b),
    lambda a, b: compare_arms(a, b, seeds_a=[0, 1], seeds_b=[0, 1]),
    lambda a, b: tost_equivalence(a, b, 1.0, paired=True),
    lambda a, b: tost_equivalence(a, b, 1.0, paired=False),
    lambda a, b: hedges_g(a, b),
])
def test_two_seeds_refused(fn):
    with pytest.raises(InsufficientSeeds) as ei:
        fn([0.5, 0.6], [0.7, 0.8])
    msg = str(ei.value)
    assert "n=2" in msg and "3" in msg


def test_two_seeds_in_one_arm_only_refused():
    with pytest.raises(InsufficientSeeds, match="b: got n=2"):
        compare_arms([1.0, 2.0, 3.0], [1.0, 2.0])


def test_anova_cell_with_two_seeds_refused():
    df = pd.DataFrame({
        "value": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        "label_type": ["hard"] * 6 + ["soft"] * 5,
        "family": ["cnn", "cnn", "cnn", "vit", "vit", "vit", "cnn", "cnn", "cnn", "vit", "vit"],
    })
    with pytest.raises(InsufficientSeeds, match="n=2"):
        two_way_anova(df)


# ---------------------------------------------------------------- input validation
def test_validation_errors_name_argument():
    with pytest.raises(ValueError, match="a contains non-finite"):
        compare_arms([1.0, np.nan, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="alpha"):
        compare_arms(A, B, alpha=1.5)
    with pytest.raises(ValueError, match="seeds_a and seeds_b"):
        compare_arms(A, B, seeds_a=range(5))
    with pytest.raises(ValueError, match="seeds_b has length"):
        compare_arms(A, B, seeds_a=range(5), seeds_b=range(4))
    with pytest.raises(ValueError, match="not the same set"):
        compare_arms(A, B, paired=True, seeds_a=range(5), seeds_b=range(1, 6))
    with pytest.raises(ValueError, match="margin"):
        tost_equivalence(A, B, -1.0, paired=False)
    with pytest.raises(ValueError, match="correct_a and correct_b"):
        mcnemar_test([True, False], [True])
    with pytest.raises(ValueError, match="factor_b='nope'"):
        two_way_anova(pd.DataFrame({"value": [1.0], "label_type": ["x"]}), factor_b="nope")
    with pytest.raises(ValueError, match="pvalues"):
        holm([0.1, 1.2])
    with pytest.raises(ValueError, match="power"):
        seeds_for_power(0.5, power=1.0)


# ---------------------------------------------------------------- compare_arms
def test_paired_chosen_when_seeds_match_and_sorted_by_seed():
    seeds_a = [3, 1, 2, 5, 4]
    seeds_b = [1, 2, 3, 4, 5]
    # b is listed in seed order; reorder a accordingly for the reference call
    a_by_seed = A[np.argsort(seeds_a)]
    r = compare_arms(A, B, seeds_a=seeds_a, seeds_b=seeds_b)
    assert r["paired"] is True
    assert r["test"] == "paired_t"
    assert r["seeds"] == [1, 2, 3, 4, 5]
    ref = sps.ttest_rel(B, a_by_seed)
    assert r["statistic"] == pytest.approx(ref.statistic)
    assert r["pvalue"] == pytest.approx(ref.pvalue)
    assert r["df"] == 4
    w = sps.wilcoxon(B, a_by_seed)
    assert r["wilcoxon"]["pvalue"] == pytest.approx(w.pvalue)
    assert r["wilcoxon"]["statistic"] == pytest.approx(w.statistic)
    assert r["wilcoxon"]["method"] == "exact"
    # the naive positional pairing gives a different answer, so sorting matters
    assert sps.ttest_rel(B, A).pvalue != pytest.approx(ref.pvalue)


def test_welch_chosen_when_seeds_differ():
    r = compare_arms(A, B, seeds_a=[0, 1, 2, 3, 4], seeds_b=[0, 1, 2, 3, 99])
    assert r["paired"] is False
    assert r["test"] == "welch_t"
    assert r["wilcoxon"] is None
    ref = sps.ttest_ind(B, A, equal_var=False)
    assert r["statistic"] == pytest.approx(ref.statistic)
    assert r["pvalue"] == pytest.approx(ref.pvalue)
    assert r["df"] == pytest.approx(ref.df)
    # and Welch differs from the pooled-variance Student t on unequal variances
    a = np.array([1.0, 1.1, 0.9, 1.05])
    b = np.array([0.0, 3.0, 1.5, 2.7, 0.4, 2.2])
    r2 = compare_arms(a, b)
    assert r2["pvalue"] == pytest.approx(sps.ttest_ind(b, a, equal_var=False).pvalue)
    assert r2["pvalue"] != pytest.approx(sps.ttest_ind(b, a).pvalue)


def test_no_seeds_defaults_to_unpaired_and_paired_true_pairs_by_position():
    r = compare_arms(A, B)
    assert r["paired"] is False
    r = compare_arms(A, B, paired=True)
    assert r["paired"] is True
    assert r["pvalue"] == pytest.approx(sps.ttest_rel(B, A).pvalue)
    r = compare_arms(A, B, paired=False, seeds_a=range(5), seeds_b=range(5))
    assert r["test"] == "welch_t"


def test_means_and_diff():
    r = compare_arms(A, B)
    assert r["mean_a"] == pytest.approx(71.3)
    assert r["mean_b"] == pytest.approx(72.14)
    assert r["diff"] == pytest.approx(0.84)
    assert (r["n_a"], r["n_b"]) == (5, 5)


def test_wilcoxon_with_zero_difference_reports_method():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    b = a + np.array([0.0, 0.5, 0.7, -0.2, 0.9, 1.1])
    r = compare_arms(a, b, paired=True)
    ref = sps.wilcoxon(b, a, zero_method="wilcox")
    assert r["wilcoxon"]["pvalue"] == pytest.approx(ref.pvalue)
    assert r["wilcoxon"]["n_nonzero"] == 5
    assert r["wilcoxon"]["method"].startswith("permutation")


def test_all_zero_differences_give_nan_not_fake_pvalue():
    a = np.array([1.0, 2.0, 3.0])
    r = compare_arms(a, a.copy(), paired=True)
    assert math.isnan(r["pvalue"]) and math.isnan(r["wilcoxon"]["pvalue"])
    assert r["significant"] is False
    assert "degenerate" in r["wilcoxon"]["method"]


def test_hedges_g_unpaired_hand_computation():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([3.0, 4.0, 6.0])
    # hand: means 2.5 and 13/3, var_a = 5/3, var_b = 7/3
    sp = math.sqrt((3 * 5 / 3 + 2 * 7 / 3) / 5)
    d = (13 / 3 - 2.5) / sp
    J = 1 - 3 / (4 * 7 - 9)
    g = J * d
    se = math.sqrt(7 / 12 + g * g / 14)
    r = compare_arms(a, b)
    assert r["hedges_g"] == pytest.approx(g)
    assert r["g_ci"][0] == pytest.approx(g - 1.959963984540054 * se)
    assert r["g_ci"][1] == pytest.approx(g + 1.959963984540054 * se)


def test_hedges_g_paired_is_dz():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([1.5, 2.9, 3.4, 5.2])
    dif = b - a
    dz = dif.mean() / dif.std(ddof=1)
    J = 1 - 3 / (4 * 3 - 1)
    r = hedges_g(a, b, paired=True)
    assert r["g"] == pytest.approx(J * dz)
    assert "d_z" in r["convention"]


def test_bootstrap_reproducible_and_contains_observed_diff():
    r1 = compare_arms(A, B, n_boot=2000, seed=7)
    r2 = compare_arms(A, B, n_boot=2000, seed=7)
    r3 = compare_arms(A, B, n_boot=2000, seed=8)
    assert r1["boot_ci"] == r2["boot_ci"]
    assert r1["boot_ci"] != r3["boot_ci"]
    lo, hi = r1["boot_ci"]
    assert lo < r1["diff"] < hi
    ref = sps.bootstrap((A, B), lambda x, y, axis=-1: y.mean(axis) - x.mean(axis),
                        n_resamples=2000, method="percentile",
                        rng=np.random.default_rng(7))
    assert lo == pytest.approx(ref.confidence_interval.low)
    assert hi == pytest.approx(ref.confidence_interval.high)
    rp = compare_arms(A, B, paired=True, n_boot=2000, seed=7)
    ref_p = sps.bootstrap((B - A,), np.mean, n_resamples=2000, method="percentile",
                          rng=np.random.default_rng(7))
    assert rp["boot_ci"][0] == pytest.approx(ref_p.confidence_interval.low)
    assert rp["boot_ci"][0] < rp["diff"] < rp["boot_ci"][1]


# ---------------------------------------------------------------- holm
def test_holm_textbook_vector():
    reject, adj = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02])
    assert list(reject) == [True, False, False, True]


def test_holm_is_not_holm_sidak():
    from statsmodels.stats.multitest import multipletests
    p = [0.01, 0.04, 0.03, 0.005]
    hs_adj = multipletests(p, method="hs")[1]
    assert not np.allclose(holm(p)[1], hs_adj)


# ---------------------------------------------------------------- mcnemar
def test_mcnemar_exact_known_table():
    # a right/b wrong = 2, a wrong/b right = 8 -> exact binomial, p = 2*P(X<=2 | 10, .5)
    ca = np.array([True] * 50 + [True] * 2 + [False] * 8 + [False] * 5)
    cb = np.array([True] * 50 + [False] * 2 + [True] * 8 + [False] * 5)
    r = mcnemar_test(ca, cb)
    assert (r["b"], r["c"]) == (2, 8)
    np.testing.assert_array_equal(r["table"], [[50, 2], [8, 5]])
    assert r["method"] == "exact binomial"
    assert r["statistic"] == 2
    assert r["pvalue"] == pytest.approx(2 * sps.binom.cdf(2, 10, 0.5))  # 0.109375
    assert r["pvalue"] == pytest.approx(0.109375)


def test_mcnemar_chi2_large_discordance():
    ca = np.array([True] * 100 + [True] * 10 + [False] * 25 + [False] * 20)
    cb = np.array([True] * 100 + [False] * 10 + [True] * 25 + [False] * 20)
    r = mcnemar_test(ca, cb)
    assert r["method"] == "chi-square with continuity correction"
    chi2 = (abs(10 - 25) - 1) ** 2 / 35
    assert r["statistic"] == pytest.approx(chi2)
    assert r["pvalue"] == pytest.approx(sps.chi2.sf(chi2, 1))


# ---------------------------------------------------------------- TOST
def test_tost_identical_arms_wide_margin_equivalent():
    r = tost_equivalence(A, A.copy(), margin=5.0, paired=False)
    assert r["equivalent"] is True
    assert r["pvalue"] == max(r["p_lower"], r["p_upper"])
    rp = tost_equivalence(A, A.copy(), margin=5.0, paired=True)
    assert rp["equivalent"] is True


def test_tost_clearly_different_not_equivalent():
    r = tost_equivalence(A, A + 10.0, margin=0.5, paired=False)
    assert r["equivalent"] is False
    r = tost_equivalence(A, B, margin=0.1, paired=True)
    assert r["equivalent"] is False


def test_tost_matches_statsmodels():
    from statsmodels.stats.weightstats import ttost_ind, ttost_paired
    r = tost_equivalence(A, B, margin=1.5, paired=False)
    ref = ttost_ind(B, A, -1.5, 1.5, usevar="unequal")
    assert r["pvalue"] == pytest.approx(ref[0])
    assert r["p_lower"] == pytest.approx(ref[1][1])
    assert r["p_upper"] == pytest.approx(ref[2][1])
    r = tost_equivalence(A, B, margin=1.5, paired=True)
    ref = ttost_paired(B, A, -1.5, 1.5)
    assert r["pvalue"] == pytest.approx(ref[0])


# ---------------------------------------------------------------- power
def test_seeds_for_power_matches_statsmodels():
    from statsmodels.stats.power import TTestIndPower, TTestPower
    n = TTestPower().solve_power(effect_size=0.5, alpha=0.05, power=0.8)
    assert seeds_for_power(0.5) == math.ceil(n) == 34
    n = TTestIndPower().solve_power(effect_size=0.5, alpha=0.05, power=0.8)
    assert seeds_for_power(0.5, paired=False) == math.ceil(n) == 64
    assert seeds_for_power(-0.5, paired=False) == 64


def test_seeds_for_power_zero_effect_and_floor():
    assert seeds_for_power(0.0) == math.inf
    assert seeds_for_power(10.0) == MIN_SEEDS


# ---------------------------------------------------------------- anova
def test_two_way_anova_matches_statsmodels():
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm
    rng = np.random.default_rng(0)
    rows = []
    for lt, dl in (("hard", 0.0), ("soft", 1.0)):
        for fam, df_ in (("cnn", 0.0), ("vit", 2.0), ("mlp", -1.0)):
            for s in range(4):
                rows.append({"label_type": lt, "family": fam, "seed": s,
                             "value": 70 + dl + df_ + rng.normal(0, 0.5)})
    df = pd.DataFrame(rows)
    out = two_way_anova(df)
    ref = anova_lm(smf.ols("value ~ C(label_type) * C(family)", data=df).fit(), typ=2)
    assert list(out.index) == ["label_type", "family", "label_type:family", "Residual"]
    np.testing.assert_allclose(out["F"].values[:3], ref["F"].values[:3])
    np.testing.assert_allclose(out["PR(>F)"].values[:3], ref["PR(>F)"].values[:3])
    assert out.loc["Residual", "df"] == 24 - 6
    assert out.loc["label_type", "PR(>F)"] < 0.001


# ---------------------------------------------------------------- properties
arm = st.lists(st.floats(-100, 100, allow_nan=False, allow_infinity=False),
               min_size=3, max_size=8)


def _spread(x):
    x = np.asarray(x)
    return np.ptp(x) > 1e-3


@settings(max_examples=40, deadline=None)
@given(a=arm, b=arm)
def test_property_unpaired_pvalues_and_swap(a, b):
    assume(_spread(a) and _spread(b))
    r = compare_arms(a, b, n_boot=200)
    s = compare_arms(b, a, n_boot=200)
    assert 0.0 <= r["pvalue"] <= 1.0
    assert r["pvalue"] == pytest.approx(s["pvalue"])
    assert s["diff"] == pytest.approx(-r["diff"], abs=1e-9)
    assert s["hedges_g"] == pytest.approx(-r["hedges_g"], abs=1e-9)
    assert r["boot_ci"][0] <= r["boot_ci"][1]


@settings(max_examples=40, deadline=None)
@given(data=st.lists(st.tuples(st.floats(-100, 100), st.floats(-100, 100)),
                     min_size=3, max_size=8))
def test_property_paired_pvalues_and_swap(data):
    a = np.array([x for x, _ in data])
    b = np.array([y for _, y in data])
    assume(_spread(b - a))
    r = compare_arms(a, b, paired=True, n_boot=200)
    s = compare_arms(b, a, paired=True, n_boot=200)
    for p in (r["pvalue"], r["wilcoxon"]["pvalue"]):
        assert 0.0 <= p <= 1.0
    assert s["diff"] == pytest.approx(-r["diff"], abs=1e-9)
    assert s["hedges_g"] == pytest.approx(-r["hedges_g"], abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(p=st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_property_holm_adjusted_ge_raw_and_monotone(p):
    p = np.array(p)
    reject, adj = holm(p)
    assert np.all(adj >= p - 1e-15)
    assert np.all((adj >= 0) & (adj <= 1))
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= -1e-15)
    assert np.array_equal(reject, adj <= 0.05)


@settings(max_examples=30, deadline=None)
@given(a=arm, shift=st.floats(-50, 50))
def test_property_tost_pvalue_range(a, shift):
    assume(_spread(a))
    b = np.asarray(a)[::-1] + shift
    r = tost_equivalence(a, b, margin=1.0, paired=False)
    assert 0.0 <= r["pvalue"] <= 1.0
    assert r["pvalue"] == max(r["p_lower"], r["p_upper"])
    if r["equivalent"]:
        assert abs(r["diff"]) < 1.0
