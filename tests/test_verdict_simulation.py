"""Simulation tests of the verdicts over a family of hypotheses: what a published verdict table claims.

* Under no effect anywhere, a family of m = 3 directional hypotheses (sharing their reference arm, as the
  grids do) says `supported` for at least one hypothesis at most alpha of the time, and `contradicted` for
  at least one at most alpha of the time: both families are Holm-adjusted over the declared hypotheses.
* `not supported` ("the design could have found the mde, and found nothing") is rare when the design is
  weak: the verdict uses the power from the SD's upper confidence bound, not the point estimate, whose
  scatter at 5 seeds would say "well powered" for a weak design now and then.
* `analyze` decides a 3-hypothesis family exactly as the direct computation below (Holm over the
  declared hypotheses, power at alpha / m, one-sided bounds at 1 - alpha / m).

Data: per seed a shared seed effect plus independent run noise per arm (as in test_stats_simulation);
seeded RNG, deterministic. Monte-Carlo tolerance: 3 SEs of the nominal rate.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness import stats as hs
from harness.analysis import analyze
from harness.verdicts import decide

ALPHA = 0.05
TARGET = 0.8
MDE = 0.01
SEED_SD = 0.01
N_SEEDS = 5
M = 3


def _limit(rate: float, n: int) -> float:
    return rate + 3 * math.sqrt(rate * (1 - rate) / n)


def _family(rng, n_sim, run_sd, effects):
    """``[n_sim, n_seeds]`` scores of a reference arm and one arm per effect (shared seed effect)."""
    seed = rng.normal(0, SEED_SD, (n_sim, N_SEEDS))
    ref = 0.8 + seed + rng.normal(0, run_sd, (n_sim, N_SEEDS))
    return ref, [0.8 + e + seed + rng.normal(0, run_sd, (n_sim, N_SEEDS)) for e in effects]


def _holm_rows(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values of every row of ``p`` ``[n_sim, m]`` (checked against hs.holm below)."""
    n_sim, m = p.shape
    order = np.argsort(p, axis=1)
    ranked = np.take_along_axis(p, order, axis=1) * (m - np.arange(m))
    adj_sorted = np.minimum(np.maximum.accumulate(ranked, axis=1), 1.0)
    adj = np.empty_like(p)
    np.put_along_axis(adj, order, adj_sorted, axis=1)
    return adj


def _directional_verdicts(diffs: list[np.ndarray], alternative: str = "less"):
    """Verdicts ``[n_sim, m]`` of m directional hypotheses on per-seed differences, decided as
    harness.analysis does: Holm over the m primary and the m opposite tests, power at alpha / m from the
    SD's upper bound; also returns the one-sided simultaneous bounds."""
    d = np.stack(diffs, axis=2)                       # [n_sim, n, m]
    n_sim, n, m = d.shape
    est, sd = d.mean(axis=1), d.std(axis=1, ddof=1)
    t = est / (sd / math.sqrt(n))
    p = sps.t.cdf(t, n - 1) if alternative == "less" else sps.t.sf(t, n - 1)
    p_opp = 1 - p
    p_holm, p_opp_holm = _holm_rows(p), _holm_rows(p_opp)
    for i in range(min(20, n_sim)):  # the vectorised Holm is statsmodels' Holm
        np.testing.assert_allclose(p_holm[i], hs.holm(p[i])[1], rtol=1e-12)
    sd_up = sd * math.sqrt((n - 1) / sps.chi2.ppf(ALPHA, n - 1))
    pw_c = np.vectorize(lambda s: float(hs.power_one_sided(hs.Design("paired"), n, MDE, s, ALPHA / m)))(sd_up)
    verdicts = np.empty((n_sim, m), dtype=object)
    for i in range(n_sim):
        for j in range(m):
            verdicts[i, j] = decide("directional", p_holm=float(p_holm[i, j]), alpha=ALPHA,
                                    secondary=bool(p_opp_holm[i, j] < ALPHA), power=float(pw_c[i, j]),
                                    power_target=TARGET).verdict
    half = sps.t.ppf(1 - ALPHA / m, n - 1) * sd / math.sqrt(n)
    bound = est + half if alternative == "less" else est - half
    return verdicts, p, p_holm, bound


def test_family_of_three_keeps_both_verdict_errors_within_alpha_under_no_effect():
    n_sim = 4000
    ref, arms = _family(np.random.default_rng(31), n_sim, 0.007, [0.0, 0.0, 0.0])
    verdicts, _, _, _ = _directional_verdicts([a - ref for a in arms])
    any_supported = float(np.mean((verdicts == "supported").any(axis=1)))
    any_contradicted = float(np.mean((verdicts == "contradicted").any(axis=1)))
    limit = _limit(ALPHA, n_sim)
    assert any_supported <= limit and any_contradicted <= limit, (any_supported, any_contradicted)
    # not vacuous: each does happen (an unadjusted secondary test said "contradicted" for about 13 %)
    assert any_supported > 0.01 and any_contradicted > 0.01, (any_supported, any_contradicted)


def test_simultaneous_bounds_cover_all_three_true_effects():
    """The bounds shown with the verdicts (one-sided, 1 - alpha/m each) hold for all m at once >= 1 - alpha."""
    n_sim = 4000
    effects = [-0.004, 0.0, 0.006]
    ref, arms = _family(np.random.default_rng(32), n_sim, 0.007, effects)
    _, _, _, bound = _directional_verdicts([a - ref for a in arms])
    covered = (np.asarray(effects)[None, :] <= bound).all(axis=1)  # "less": the bound is an upper bound
    assert float(np.mean(covered)) >= 1 - ALPHA - 3 * math.sqrt(ALPHA * (1 - ALPHA) / n_sim)


@pytest.mark.parametrize("run_sd, true_power_max, limit", [
    (0.012, 0.35, 0.005),    # a weak design: "not supported" almost never
    (0.0012, 1.0, None),     # a strong one: "not supported" is the usual non-rejection
])
def test_not_supported_needs_a_design_that_could_find_the_mde(run_sd, true_power_max, limit):
    n_sim = 3000
    ref, arms = _family(np.random.default_rng(33), n_sim, run_sd, [0.0])
    verdicts, _, _, _ = _directional_verdicts([arms[0] - ref])
    true_sd = math.sqrt(2) * run_sd
    true_power = float(hs.power_one_sided(hs.Design("paired"), N_SEEDS, MDE, true_sd, ALPHA / 1))
    assert true_power <= true_power_max
    rate = float(np.mean(verdicts == "not supported"))
    if limit is not None:
        # with the point-estimate power this was about 3 % at a true power of 0.3 (the audit's simulation)
        assert rate <= limit, (rate, true_power)
    else:
        assert rate > 0.8, rate


def _table(values: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame([{"run_id": f"{arm}-s{s}", "grid": "sim", "dataset": "sim", "arm": arm, "seed": s,
                          "metric": "accuracy", "corruption": "", "severity": np.nan, "value": float(x),
                          "status": "complete", "run_dir": ""} for arm, v in values.items() for s, x in enumerate(v)])


def test_analyze_decides_a_family_of_three_like_the_direct_computation():
    rng = np.random.default_rng(34)
    hyps = [{"id": f"H{j}", "statement": "s", "kind": "directional", "direction": "lower", "arm": f"b{j}",
             "reference": "a", "metric": "accuracy", "mde": MDE} for j in range(M)]
    seen = set()
    for _ in range(12):
        ref, arms = _family(rng, 1, 0.004, [-0.012, -0.004, 0.003])
        verdicts, p, p_holm, bound = _directional_verdicts([a - ref for a in arms])
        values = {"a": ref[0], **{f"b{j}": arms[j][0] for j in range(M)}}
        out = analyze(_table(values), {"n_boot": 100, "metrics": ["accuracy"], "hypotheses": hyps},
                      predictions_loader=lambda d: None)
        for j, v in enumerate(out.hypotheses):
            assert v.p == pytest.approx(p[0, j], rel=1e-9) and v.p_holm == pytest.approx(p_holm[0, j], rel=1e-9)
            assert v.alpha_power == pytest.approx(ALPHA / M) and v.bound_level == pytest.approx(1 - ALPHA / M)
            assert v.bound == pytest.approx(bound[0, j], rel=1e-9)
            assert v.verdict == verdicts[0, j], v.evidence
            seen.add(v.verdict)
    assert {"supported", "not shown"} <= seen, seen  # the grids exercised more than one rule
