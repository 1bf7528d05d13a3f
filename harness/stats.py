"""Small functional statistics API for comparing training arms over seeds (pure functions on arrays).

Conventions (apply to every function in this module)
----------------------------------------------------
* An *arm* is a 1-D sequence of per-seed scores in the caller's unit (accuracy as a fraction, NLL
  in nats, ...); differences, intervals, margins and effects come back in that same unit.
* Differences are always ``b - a``: a positive estimate means arm ``b`` scored higher than ``a``.
* Pairing is by seed: :func:`pair_by_seed` aligns two arms on the seeds they share; unpaired
  (Welch) tests are for arms that share no seeds.
* Intervals are t-based (two-sided, level ``1 - alpha``); a BCa bootstrap interval
  (:func:`bca_ci`) is only computed from 20 values up, because below that bootstrap intervals of a
  mean undercover (83 % for a percentile interval at n = 5, about 90 % for BCa at n = 10, at a
  nominal 95 %). :func:`one_sided_bound` gives the one-sided bound that matches a directional test.
* Directional tests state ``alternative`` (``greater`` / ``less``) and a ``null`` boundary (a
  non-superiority margin, for example); :class:`TestResult` is the one result type.
* Power (:func:`power_one_sided`, :func:`seeds_needed`) is for a *declared* smallest effect of
  interest, never for the observed effect. Paired and trend power are noncentral t; Welch power is
  simulated (seeded, 20,000 draws per n), because the Welch statistic is not noncentral t.
* ``MIN_SEEDS = 3``: every function that produces a p-value refuses, with
  :class:`InsufficientSeeds`, fewer than 3 values (seeds, pairs, subjects).
* The heavy lifting is done by scipy / statsmodels; this module validates inputs, chooses the
  test and assembles results. Nothing here reads or writes files.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats as sps
from scipy.optimize import brentq
from statsmodels.stats.anova import AnovaRM
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import ttest_power
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

__all__ = [
    "ALTERNATIVES",
    "MIN_SEEDS",
    "MAX_PLANNED_SEEDS",
    "Design",
    "InsufficientSeeds",
    "Paired",
    "TestResult",
    "bca_ci",
    "compare_arms",
    "hedges_g",
    "holm",
    "level_sxx",
    "mcnemar_test",
    "mean_test",
    "one_sided_bound",
    "pair_by_seed",
    "power_one_sided",
    "rm_anova",
    "sd_upper_bound",
    "seeds_needed",
    "t_ci_mean",
    "tost_equivalence",
    "trend_test",
    "welch_test",
]

MIN_SEEDS = 3


class InsufficientSeeds(ValueError):
    """Raised when an arm has fewer than :data:`MIN_SEEDS` values."""

    def __init__(self, name: str, n: int, minimum: int = MIN_SEEDS):
        self.name = name
        self.n = n
        self.minimum = minimum
        super().__init__(
            f"{name}: got n={n} values but at least {minimum} seeds are required "
            f"(MIN_SEEDS={minimum}); refusing to compute a p-value"
        )


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------
def _as_arm(x: Any, name: str, *, check_min: bool = True) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1-D sequence of numbers") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values (nan/inf)")
    if check_min and arr.size < MIN_SEEDS:
        raise InsufficientSeeds(name, int(arr.size))
    return arr


def _check_alpha(alpha: float) -> float:
    if not (isinstance(alpha, (int, float)) and 0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return float(alpha)


def _as_seeds(seeds: Any, name: str, n: int) -> list:
    s = list(np.asarray(seeds).ravel().tolist())
    if len(s) != n:
        raise ValueError(f"{name} has length {len(s)} but the arm has {n} values")
    if len(set(s)) != len(s):
        raise ValueError(f"{name} contains duplicate seeds")
    return s


def _float(x: Any) -> float:
    return float(np.asarray(x).item())


# --------------------------------------------------------------------------
# effect size
# --------------------------------------------------------------------------
# scipy's noncentral t returns NaN once t passes about 2e4, and in far tails (CDF ~ 0 or 1, e.g.
# t = 0.001, ncp = 37), where the root search below probes its brackets: there (and above this t)
# the CDF comes from the Gauss-Hermite representation in _nct_cdf instead
_NCT_T_MAX = 1e3
_GH_Z, _GH_W = np.polynomial.hermite_e.hermegauss(80)
_GH_W = _GH_W / _GH_W.sum()


def _nct_cdf(t: float, df: float, ncp: float) -> float:
    """``P(T <= t)`` for ``T ~ nct(df, ncp)``, ``t >= 0``: ``scipy.stats.nct`` up to ``t = 1e3``.

    Beyond it, or where scipy returns NaN, by hand: ``T = (Z + ncp) / S`` with
    ``S = sqrt(chi2_df / df)``, so ``P(T <= t) = E_Z[P(S >= (Z + ncp) / t)]
    = E_Z[chi2.sf(df ((Z + ncp) / t)^2, df)]`` (1 where ``Z + ncp <= 0``), a smooth function of Z
    for large t, integrated by 80-point Gauss-Hermite; it agrees with scipy's nct to 1e-11 for t
    from 30 to 1e4 (df 2 to 40). ``t = 0``: ``P(Z + ncp <= 0)``.
    """
    if t == 0:
        return float(sps.norm.cdf(-ncp))
    if t <= _NCT_T_MAX:
        v = float(sps.nct.cdf(t, df, ncp))
        if math.isfinite(v):
            return v
    s = (_GH_Z + ncp) / t
    return float(np.sum(_GH_W * np.where(s > 0, sps.chi2.sf(df * s * s, df), 1.0)))


def _nct_ncp_ci(t: float, df: float, alpha: float) -> tuple[float, float]:
    """Two-sided ``1 - alpha`` CI of the noncentrality of a noncentral t from one observed ``t``
    (Steiger & Fouladi inversion): ``ncp_low`` solves ``P(T <= t) = 1 - alpha/2``, ``ncp_high``
    solves ``P(T <= t) = alpha/2``. The CDF falls as the noncentrality grows, so each is one root
    (``scipy.optimize.brentq``). Negative ``t``: the mirror image of ``-t``."""
    if t < 0:
        lo, hi = _nct_ncp_ci(-t, df, alpha)
        return -hi, -lo

    def root(p: float) -> float:
        # large-t limit (the normal term negligible): P(T <= t) ~ P(S >= ncp / t) = p, i.e.
        # ncp ~ t sqrt(chi2.isf(p, df) / df); bracket around that guess and t, widen until it holds
        guess = t * math.sqrt(sps.chi2.isf(p, df) / df)
        lo, hi = min(guess, t), max(guess, t)
        width = 10.0 + 0.1 * (hi - lo)
        for _ in range(60):
            a, b = lo - width, hi + width
            fa, fb = _nct_cdf(t, df, a) - p, _nct_cdf(t, df, b) - p
            if fa > 0 > fb:
                return float(brentq(lambda x: _nct_cdf(t, df, x) - p, a, b, xtol=1e-12 * max(1.0, t),
                                    rtol=1e-12, maxiter=200))
            width *= 2
        raise RuntimeError(f"no bracket for the noncentral-t CI (t={t!r}, df={df!r}, p={p!r})")

    return root(1 - alpha / 2), root(alpha / 2)


def hedges_g(a: Sequence[float], b: Sequence[float], *, paired: bool = False,
             alpha: float = 0.05) -> dict:
    """Bias-corrected standardized mean difference (``b - a``, in SD units) with a CI.

    Unpaired (``paired=False``): Cohen's d with the pooled SD,
    ``d = (mean_b - mean_a) / s_p``,
    ``s_p = sqrt(((n_a-1) var_a + (n_b-1) var_b) / (n_a+n_b-2))`` (ddof=1),
    ``J = 1 - 3 / (4 (n_a+n_b) - 9)``, ``g = J d``.

    Paired (``paired=True``, ``a[i]`` pairs with ``b[i]``): ``d_z`` -- the
    mean of the differences divided by their SD (ddof=1), with
    ``J = 1 - 3 / (4 (n-1) - 1)`` (df = n-1), ``g_z = J d_z``. Note that d_z is
    *not* on the same scale as the unpaired d (it standardizes by the SD of differences).

    CI (two-sided, level ``1 - alpha``): the **noncentral-t inversion** (Steiger & Fouladi) of the
    observed t statistic -- the set of standardized effects delta whose noncentral t distribution
    puts the observed t between its ``alpha/2`` and ``1 - alpha/2`` quantiles. Paired:
    ``t = d_z sqrt(n)``, df ``n - 1``, CI of delta = CI of the noncentrality / ``sqrt(n)``.
    Unpaired: the pooled-variance t, ``t = d sqrt(n_a n_b / (n_a + n_b))``, df ``n_a + n_b - 2``,
    CI = CI of the noncentrality / ``sqrt(n_a n_b / (n_a + n_b))`` (exact under normal data with
    equal SDs). The CI is for delta itself; the point estimate is the bias-corrected ``J d``, so it
    sits inside the CI but not at its centre (the CI is asymmetric, wider away from zero).
    Returns ``nan`` for g and its CI when the relevant SD is zero.
    """
    alpha = _check_alpha(alpha)
    a = _as_arm(a, "a")
    b = _as_arm(b, "b")
    if paired:
        if a.size != b.size:
            raise ValueError("paired hedges_g needs a and b of equal length")
        d = b - a
        n = d.size
        sd = d.std(ddof=1)
        J = 1 - 3 / (4 * (n - 1) - 1)
        conv = "d_z (paired): mean(b-a)/sd(b-a), J=1-3/(4(n-1)-1), noncentral-t CI"
        if sd == 0:
            return {"g": math.nan, "ci": (math.nan, math.nan), "J": J, "convention": conv}
        dz = d.mean() / sd
        scale, df = math.sqrt(n), n - 1
        g = J * dz
        t = dz * scale
    else:
        na, nb = a.size, b.size
        sp = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
        J = 1 - 3 / (4 * (na + nb) - 9)
        conv = "pooled-SD d (b-a), J=1-3/(4(n_a+n_b)-9), noncentral-t CI"
        if sp == 0:
            return {"g": math.nan, "ci": (math.nan, math.nan), "J": J, "convention": conv}
        dd = (b.mean() - a.mean()) / sp
        scale, df = math.sqrt(na * nb / (na + nb)), na + nb - 2
        g = J * dd
        t = dd * scale
    lo, hi = _nct_ncp_ci(float(t), float(df), alpha)
    return {"g": float(g), "ci": (lo / scale, hi / scale), "J": J, "convention": conv}


# --------------------------------------------------------------------------
# one contrast: test result, pairing by seed
# --------------------------------------------------------------------------
ALTERNATIVES = ("two-sided", "greater", "less")


@dataclass(frozen=True)
class TestResult:
    """One test of a contrast (a mean of per-seed differences, a Welch difference or a trend).

    ``estimate`` and the two-sided ``1 - alpha`` t interval ``(ci_low, ci_high)`` are in the unit of
    the scores. ``p`` is for H0 ``estimate == null`` (two-sided), ``<= null`` (``greater``) or
    ``>= null`` (``less``). ``n`` is the number of seeds (pairs) -- per arm for Welch; ``sd`` is the
    SD of the per-seed contrast (one-sample), the residual SD (trend) or NaN (Welch); ``df`` the
    degrees of freedom of the t reference.
    """

    method: str
    alternative: str
    null: float
    estimate: float
    ci_low: float
    ci_high: float
    statistic: float
    df: float
    p: float
    n: int
    sd: float
    se: float
    alpha: float


def _check_alternative(alternative: str) -> str:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {', '.join(ALTERNATIVES)}; got {alternative!r}")
    return alternative


def _t_p(t: float, df: float, alternative: str) -> float:
    if alternative == "greater":
        return float(sps.t.sf(t, df))
    if alternative == "less":
        return float(sps.t.cdf(t, df))
    return float(2 * sps.t.sf(abs(t), df))


def _degenerate_p(estimate: float, null: float, alternative: str) -> float:
    """p for a contrast with zero SD: 0 when it lies strictly on the alternative's side, else 1."""
    side = {"greater": estimate > null, "less": estimate < null, "two-sided": estimate != null}
    return 0.0 if side[alternative] else 1.0


def mean_test(x: Sequence[float], *, alternative: str = "two-sided", null: float = 0.0,
              alpha: float = 0.05, method: str = "one-sample t") -> TestResult:
    """t test of the mean of per-seed contrasts ``x`` (paired differences, differences of differences).

    ``scipy.stats.ttest_1samp(x, popmean=null, alternative=...)``; the interval is the two-sided
    ``1 - alpha`` t interval of the mean (:func:`t_ci_mean`), whatever the alternative. With zero SD
    the statistic is +/-inf, the interval collapses on the mean and ``p`` is 0 when the mean lies
    strictly on the alternative's side of ``null``, else 1. Refuses fewer than :data:`MIN_SEEDS`
    values (:class:`InsufficientSeeds`).
    """
    alpha = _check_alpha(alpha)
    _check_alternative(alternative)
    null = float(null)
    if not math.isfinite(null):
        raise ValueError(f"null must be finite, got {null!r}")
    x = _as_arm(x, "x")
    n = int(x.size)
    est = float(x.mean())
    sd = float(x.std(ddof=1))
    se = sd / math.sqrt(n)
    if sd == 0:
        stat = math.copysign(math.inf, est - null) if est != null else math.nan
        return TestResult(f"{method} (degenerate: zero SD)", alternative, null, est, est, est, stat,
                          float(n - 1), _degenerate_p(est, null, alternative), n, 0.0, 0.0, alpha)
    r = sps.ttest_1samp(x, popmean=null, alternative=alternative)
    low, high = t_ci_mean(est, sd, n, 1 - alpha)
    return TestResult(method, alternative, null, est, float(low), float(high), _float(r.statistic),
                      float(n - 1), _float(r.pvalue), n, sd, se, alpha)


def welch_test(a: Sequence[float], b: Sequence[float], *, alternative: str = "two-sided",
               null: float = 0.0, alpha: float = 0.05) -> TestResult:
    """Welch t test of ``mean(b) - mean(a)`` against ``null`` (arms that share no seeds).

    ``scipy.stats.ttest_ind(b - null, a, equal_var=False, alternative=...)``; the interval is the
    two-sided ``1 - alpha`` Welch interval. ``n`` is ``min(n_a, n_b)``. Both arms constant: the
    degenerate rule of :func:`mean_test`.
    """
    alpha = _check_alpha(alpha)
    _check_alternative(alternative)
    null = float(null)
    a = _as_arm(a, "a")
    b = _as_arm(b, "b")
    est = float(b.mean() - a.mean())
    n = int(min(a.size, b.size))
    if a.std() == 0 and b.std() == 0:
        stat = math.copysign(math.inf, est - null) if est != null else math.nan
        return TestResult("Welch t (degenerate: zero variance)", alternative, null, est, est, est, stat,
                          math.nan, _degenerate_p(est, null, alternative), n, math.nan, 0.0, alpha)
    r = sps.ttest_ind(b - null, a, equal_var=False, alternative=alternative)
    ci = sps.ttest_ind(b, a, equal_var=False).confidence_interval(1 - alpha)
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    return TestResult("Welch t", alternative, null, est, float(ci.low), float(ci.high), _float(r.statistic),
                      _float(r.df), _float(r.pvalue), n, math.nan, se, alpha)


def one_sided_bound(test: TestResult, alpha: float) -> float:
    """One-sided ``1 - alpha`` confidence bound of the contrast, in the direction of
    ``test.alternative``, in the unit of the scores.

    ``greater``: the lower bound ``estimate - t_{1-alpha, df} se``; ``less``: the upper bound
    ``estimate + t_{1-alpha, df} se``, from the result's own ``estimate``, ``se`` and ``df`` (Welch
    df for :func:`welch_test`, residual df for :func:`trend_test`, ``n - 1`` for :func:`mean_test`).
    It is the dual of the one-sided test: ``bound > null`` (``greater``) / ``bound < null``
    (``less``) exactly when ``p < alpha`` (up to float ties). A degenerate result (``se == 0``)
    gives the estimate. ``alpha`` in (0, 1) need not equal ``test.alpha`` (a Holm-adjusted level,
    for example). ``alternative == "two-sided"``: ValueError.
    """
    alpha = _check_alpha(alpha)
    if test.alternative not in ("greater", "less"):
        raise ValueError(f"test.alternative must be 'greater' or 'less' for a one-sided bound, "
                         f"got {test.alternative!r}")
    if test.se == 0:
        return float(test.estimate)
    half = float(sps.t.ppf(1 - alpha, test.df)) * test.se
    return float(test.estimate - half if test.alternative == "greater" else test.estimate + half)


@dataclass(frozen=True)
class Paired:
    """Two arms aligned on their common seeds (sorted); the seeds each arm lost in the pairing."""

    a: np.ndarray
    b: np.ndarray
    seeds: tuple
    dropped_a: tuple
    dropped_b: tuple


def pair_by_seed(a: Sequence[float], seeds_a: Sequence, b: Sequence[float], seeds_b: Sequence) -> Paired:
    """Align ``a`` and ``b`` on the seeds they share (sorted); list the seeds only one arm has."""
    a = _as_arm(a, "a", check_min=False)
    b = _as_arm(b, "b", check_min=False)
    sa = _as_seeds(seeds_a, "seeds_a", a.size)
    sb = _as_seeds(seeds_b, "seeds_b", b.size)
    common = sorted(set(sa) & set(sb))
    ia = {s: i for i, s in enumerate(sa)}
    ib = {s: i for i, s in enumerate(sb)}
    return Paired(a=np.array([a[ia[s]] for s in common], dtype=float),
                  b=np.array([b[ib[s]] for s in common], dtype=float), seeds=tuple(common),
                  dropped_a=tuple(sorted(set(sa) - set(common))),
                  dropped_b=tuple(sorted(set(sb) - set(common))))


def bca_ci(x: Sequence[float], *, alpha: float = 0.05, n_boot: int = 10000, seed: int = 0,
           min_n: int = 20) -> tuple[float, float] | None:
    """BCa bootstrap interval of the mean of ``x`` (``scipy.stats.bootstrap(method="BCa")``).

    ``None`` when ``x`` has fewer than ``min_n`` (default 20) values: small-sample bootstrap
    intervals of a mean cover less than they claim (at a nominal 95 %: a percentile interval 83 %
    at n = 5; BCa 0.91 and 0.89 at n = 10 in two runs of 1000 normal samples), so no bootstrap
    interval is shown below 20 values. Even at n = 20 BCa undercovers slightly (0.925 in 20,000
    normal samples, tests/test_stats_simulation.py); the t interval is the primary interval.
    Deterministic for a given ``seed``. A constant ``x`` gives the degenerate interval (x0, x0).
    """
    alpha = _check_alpha(alpha)
    x = _as_arm(x, "x", check_min=False)
    if x.size < min_n:
        return None
    if np.all(x == x[0]):
        return (float(x[0]), float(x[0]))
    res = sps.bootstrap((x,), np.mean, n_resamples=int(n_boot), method="BCa",
                        confidence_level=1 - alpha, rng=np.random.default_rng(seed), vectorized=True)
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def compare_arms(a: Sequence[float], b: Sequence[float], *, seeds_a: Sequence, seeds_b: Sequence,
                 alpha: float = 0.05, n_boot: int = 10000, seed: int = 0) -> dict:
    """Two-sided comparison of arm ``b`` against arm ``a`` (difference ``b - a``), seed-paired.

    Pairing: on the seeds both arms share (:func:`pair_by_seed`; the dropped seeds are returned);
    Welch (:func:`welch_test`) only when they share none. 1-2 common seeds while both arms have
    enough: :class:`InsufficientSeeds` (no p-value from a partial pairing).

    Paired: :func:`mean_test` on the differences (t interval), Wilcoxon signed-rank
    (``scipy.stats.wilcoxon``, ``zero_method='wilcox'``, NaN when all differences are zero), the
    standardised effect d_z with its CI (:func:`hedges_g` ``paired=True``) and, for >= 20 pairs, a
    BCa bootstrap interval (:func:`bca_ci`). Unpaired: Welch, Hedges' g (pooled SD) with its CI,
    BCa is not computed. ``d_z`` and ``hedges_g`` are separate keys: they are on different scales.

    Returns a dict with ``paired, seeds, dropped_a, dropped_b, mean_a, mean_b, test`` (a
    :class:`TestResult`), ``wilcoxon_p, d_z, d_z_ci, hedges_g, g_ci, boot_ci`` (None or a pair).
    """
    alpha = _check_alpha(alpha)
    pr = pair_by_seed(a, seeds_a, b, seeds_b)
    nan2 = (math.nan, math.nan)
    out: dict[str, Any] = {"seeds": pr.seeds, "dropped_a": pr.dropped_a, "dropped_b": pr.dropped_b,
                           "d_z": math.nan, "d_z_ci": nan2, "hedges_g": math.nan, "g_ci": nan2,
                           "wilcoxon_p": math.nan, "boot_ci": None}
    if pr.seeds:
        if len(pr.seeds) < MIN_SEEDS:
            raise InsufficientSeeds("common seeds", len(pr.seeds))
        d = pr.b - pr.a
        out.update(paired=True, mean_a=float(pr.a.mean()), mean_b=float(pr.b.mean()),
                   test=mean_test(d, alpha=alpha, method="paired t"))
        if np.any(d != 0):
            out["wilcoxon_p"] = _float(sps.wilcoxon(d, zero_method="wilcox", method="auto").pvalue)
        g = hedges_g(pr.a, pr.b, paired=True, alpha=alpha)
        out["d_z"], out["d_z_ci"] = g["g"], g["ci"]
        out["boot_ci"] = bca_ci(d, alpha=alpha, n_boot=n_boot, seed=seed)
    else:
        xa = _as_arm(a, "a")
        xb = _as_arm(b, "b")
        out.update(paired=False, mean_a=float(xa.mean()), mean_b=float(xb.mean()),
                   test=welch_test(xa, xb, alpha=alpha))
        g = hedges_g(xa, xb, paired=False, alpha=alpha)
        out["hedges_g"], out["g_ci"] = g["g"], g["ci"]
    return out


# --------------------------------------------------------------------------
# confidence interval of a mean
# --------------------------------------------------------------------------
def t_ci_mean(mean: Any, sd: Any, n: Any, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """t-based confidence interval of a mean: ``mean +/- t_{(1+c)/2, n-1} * sd / sqrt(n)``.

    Vectorised: ``mean``, ``sd`` (sample SD, ddof=1) and ``n`` broadcast together.
    Returns ``(low, high)`` as float arrays (0-d for scalar input), in the unit of
    ``mean``; NaN where ``n < 2`` (no SD, no interval). Equals
    ``scipy.stats.t.interval(confidence, n-1, loc=mean, scale=sd/sqrt(n))``.
    """
    if not (isinstance(confidence, (int, float)) and 0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    mean, sd, n = np.broadcast_arrays(np.asarray(mean, dtype=float), np.asarray(sd, dtype=float),
                                      np.asarray(n, dtype=float))
    low = np.full(mean.shape, np.nan)
    high = np.full(mean.shape, np.nan)
    ok = n >= 2
    if np.any(ok):
        half = sps.t.ppf((1 + float(confidence)) / 2, n[ok] - 1) * sd[ok] / np.sqrt(n[ok])
        low[ok] = mean[ok] - half
        high[ok] = mean[ok] + half
    return low, high


# --------------------------------------------------------------------------
# multiple comparisons
# --------------------------------------------------------------------------
def holm(pvalues: Sequence[float], alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm step-down correction (family-wise error rate).

    Uses ``statsmodels.stats.multitest.multipletests(method="holm")`` --
    explicitly *not* statsmodels' default ``"hs"`` (Holm-Sidak).
    Returns ``(reject, adjusted)`` in the input order.
    """
    alpha = _check_alpha(alpha)
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1 or p.size == 0:
        raise ValueError("pvalues must be a non-empty 1-D sequence")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("pvalues must all lie in [0, 1] (no nan)")
    reject, adjusted, _, _ = multipletests(p, alpha=alpha, method="holm")
    return reject, adjusted


# --------------------------------------------------------------------------
# McNemar
# --------------------------------------------------------------------------
def mcnemar_test(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict:
    """McNemar test on per-example correctness of two models on the same examples.

    Table (rows: a correct / a wrong; columns: b correct / b wrong)::

        [[n11, b],
         [c,   n22]]

    ``b`` = examples a gets right and b gets wrong, ``c`` = a wrong, b right.
    Uses ``statsmodels.stats.contingency_tables.mcnemar``: the exact binomial
    test (statistic = min(b, c)) when ``b + c < 25``, otherwise the chi-square
    statistic with continuity correction (1 df).
    """
    ca = np.asarray(correct_a)
    cb = np.asarray(correct_b)
    for name, arr in (("correct_a", ca), ("correct_b", cb)):
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"{name} must be a non-empty 1-D boolean array")
        if arr.dtype != bool and not np.all(np.isin(arr, (0, 1))):
            raise ValueError(f"{name} must be boolean (or 0/1)")
    if ca.size != cb.size:
        raise ValueError(f"correct_a and correct_b must have the same length "
                         f"({ca.size} != {cb.size})")
    ca = ca.astype(bool)
    cb = cb.astype(bool)
    n11 = int(np.sum(ca & cb))
    b = int(np.sum(ca & ~cb))
    c = int(np.sum(~ca & cb))
    n22 = int(np.sum(~ca & ~cb))
    table = np.array([[n11, b], [c, n22]])
    exact = (b + c) < 25
    res = mcnemar(table, exact=exact, correction=True)
    return {
        "table": table,
        "b": b,
        "c": c,
        "statistic": float(res.statistic),
        "pvalue": float(res.pvalue),
        "method": "exact binomial" if exact else "chi-square with continuity correction",
    }


# --------------------------------------------------------------------------
# equivalence
# --------------------------------------------------------------------------
def tost_equivalence(a: Sequence[float], b: Sequence[float], margin: float, *,
                     paired: bool, alpha: float = 0.05) -> dict:
    """Two one-sided tests for equivalence of ``b - a`` within ``(-margin, margin)``.

    ``margin`` is in the same unit as the scores and must be > 0. H0: the true
    mean difference is <= -margin or >= +margin; equivalence is declared when
    ``p = max(p_lower, p_upper) < alpha``.
    Paired: ``statsmodels.stats.weightstats.ttost_paired`` (``a[i]`` pairs with
    ``b[i]``). Unpaired: ``ttost_ind(usevar="unequal")`` (Welch).
    Degenerate paired case (all differences identical, zero SD): the t
    statistics are infinite, so p is 0 if the constant difference lies strictly
    inside the margin and 1 otherwise (``method`` says so).
    """
    alpha = _check_alpha(alpha)
    if not isinstance(margin, (int, float, np.floating, np.integer)) or not (
            math.isfinite(float(margin)) and float(margin) > 0):
        raise ValueError(f"margin must be a finite number > 0, got {margin!r}")
    if paired not in (True, False):
        raise ValueError(f"paired must be True or False, got {paired!r}")
    margin = float(margin)
    a = _as_arm(a, "a")
    b = _as_arm(b, "b")
    if paired:
        if a.size != b.size:
            raise ValueError(f"paired=True needs equal lengths, got n_a={a.size}, n_b={b.size}")
        d = b - a
        if np.all(d == d[0]):
            inside = -margin < d[0] < margin
            p1 = p2 = 0.0 if inside else 1.0
            method = "degenerate: zero SD of differences"
        else:
            p, (t1, p1, df1), (t2, p2, df2) = ttost_paired(b, a, -margin, margin)
            method = "ttost_paired"
    else:
        if a.std() == 0 and b.std() == 0:
            raise ValueError("a and b both have zero variance; TOST is undefined")
        p, (t1, p1, df1), (t2, p2, df2) = ttost_ind(b, a, -margin, margin, usevar="unequal")
        method = "ttost_ind (Welch, usevar='unequal')"
    p1, p2 = float(p1), float(p2)
    p = max(p1, p2)
    return {
        "pvalue": p,
        "p_lower": p1,
        "p_upper": p2,
        "equivalent": bool(p < alpha),
        "margin": margin,
        "diff": float(b.mean() - a.mean()),
        "paired": bool(paired),
        "alpha": alpha,
        "method": method,
    }


# --------------------------------------------------------------------------
# trend of a paired gap over ordered levels
# --------------------------------------------------------------------------
def trend_test(gaps: Any, levels: Sequence[float], *, alternative: str = "two-sided",
               alpha: float = 0.05) -> TestResult:
    """Paired trend of a per-seed gap over ordered levels, seed as a block.

    ``gaps`` is ``[n_seeds, k]`` (row = seed, column = level; complete). Fits
    ``gap ~ level + C(seed)`` by OLS (``statsmodels``; seed fixed effects) and tests the slope.
    The ``estimate`` is the slope times the level range, ``max(levels) - min(levels)``: the change
    of the gap from the lowest to the highest level, in the unit of the gaps (so that one ``mde``
    in that unit applies to 2 or more levels). With k = 2 this is exactly the paired t test of the
    difference of differences. ``sd`` is the residual SD, ``df`` the residual df
    (``n k - n - 1``). Refuses fewer than :data:`MIN_SEEDS` seeds.
    """
    alpha = _check_alpha(alpha)
    _check_alternative(alternative)
    g = np.asarray(gaps, dtype=float)
    if g.ndim != 2 or g.shape[1] < 2:
        raise ValueError(f"gaps must be a 2-D array [n_seeds, k >= 2 levels], got shape {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("gaps contains non-finite values (nan/inf)")
    n, k = g.shape
    if n < MIN_SEEDS:
        raise InsufficientSeeds("trend seeds", n)
    x = np.asarray(levels, dtype=float)
    if x.shape != (k,) or not np.all(np.isfinite(x)) or np.unique(x).size != k:
        raise ValueError(f"levels must be {k} distinct finite numbers, got {list(levels)!r}")
    span = float(x.max() - x.min())
    design = np.column_stack([np.tile(x, n), np.repeat(np.eye(n), k, axis=0)])
    fit = sm.OLS(g.ravel(), design).fit()
    df = float(fit.df_resid)
    slope, se_slope = float(fit.params[0]), float(fit.bse[0])
    est = slope * span
    sd = float(math.sqrt(fit.scale))
    method = "trend: OLS gap ~ level + seed fixed effects"
    if not (se_slope > 1e-12 * max(1.0, abs(slope))):
        if abs(est) <= 1e-10 * float(np.abs(g).max()):
            est = 0.0  # gaps constant over the levels: a rounding-level slope is no trend (p = 1)
        return TestResult(f"{method} (degenerate: zero residual)", alternative, 0.0, est, est, est,
                          math.copysign(math.inf, est) if est else math.nan, df,
                          _degenerate_p(est, 0.0, alternative), n, 0.0, 0.0, alpha)
    t = slope / se_slope
    half = float(sps.t.ppf(1 - alpha / 2, df)) * se_slope * span
    return TestResult(method, alternative, 0.0, est, est - half, est + half, t, df,
                      _t_p(t, df, alternative), n, sd, se_slope * span, alpha)


def level_sxx(levels: Sequence[float]) -> float:
    """``sum((x - mean(x))^2) / range(x)^2`` of the levels: the trend design's spread factor."""
    x = np.asarray(levels, dtype=float)
    return float(np.sum((x - x.mean()) ** 2) / (x.max() - x.min()) ** 2)


# --------------------------------------------------------------------------
# power of a one-sided t test at a declared smallest effect, and seeds needed
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Design:
    """The t test of a hypothesis, for power: ``kind`` is ``paired`` (one-sample t on n per-seed
    contrasts), ``welch`` (two arms without common seeds) or ``trend`` (k levels with
    :func:`level_sxx` ``sxx``).

    Welch only: ``var_share`` in (0, 1) is arm b's share of the two arms' variances,
    ``s_b^2 / (s_a^2 + s_b^2)`` (0.5: equal SDs), and ``n_ratio`` > 0 is ``n_b / n_a``; the ``n`` of
    :func:`power_one_sided` / :func:`seeds_needed` is then arm a's seeds and their ``sd`` the root
    mean square of the two arms' SDs, ``sqrt((s_a^2 + s_b^2) / 2)``.
    """

    kind: str
    k: int = 2
    sxx: float = 0.5
    var_share: float = 0.5
    n_ratio: float = 1.0

    def __post_init__(self):
        if not (isinstance(self.var_share, (int, float)) and 0.0 < float(self.var_share) < 1.0):
            raise ValueError(f"Design.var_share must be in (0, 1), got {self.var_share!r}")
        if not (isinstance(self.n_ratio, (int, float)) and math.isfinite(self.n_ratio) and self.n_ratio > 0):
            raise ValueError(f"Design.n_ratio must be a finite number > 0, got {self.n_ratio!r}")

    def ncp_df(self, n: Any, effect: float, sd: float) -> tuple[np.ndarray, np.ndarray]:
        """Noncentrality and df of the t statistic for ``n`` seeds when the true contrast is ``effect``
        and the SD (per-seed contrast; residual for trend) is ``sd``. Paired and trend only: the
        Welch statistic is not noncentral t (its Satterthwaite df is random), so ``welch`` raises;
        :func:`power_one_sided` simulates it."""
        n = np.asarray(n, dtype=float)
        if self.kind == "paired":
            return effect / sd * np.sqrt(n), n - 1
        if self.kind == "welch":
            raise ValueError("Design.ncp_df: the Welch t statistic has no noncentral-t distribution "
                             "(random Satterthwaite df); power_one_sided simulates its power")
        if self.kind == "trend":
            return effect * np.sqrt(n * self.sxx) / sd, n * (self.k - 1) - 1
        raise ValueError(f"Design.kind must be paired, welch or trend; got {self.kind!r}")


#: Monte-Carlo draws per n for Welch power: SE <= sqrt(0.25 / 20000) = 0.0035.
WELCH_POWER_DRAWS = 20_000
_WELCH_POWER_SEED = 20_240_917          # with (n_a, n_b): the draws for one n never depend on the others
_WELCH_CHUNK = 32                       # n values per vectorised chunk (32 x 20,000 draws per array)
_TCRIT_GRID = 8193                      # grid of 1/df in [0, 1] for t_{1-alpha, df}


@functools.lru_cache(maxsize=64)
def _t_crit_table(alpha: float) -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(0.0, 1.0, _TCRIT_GRID)
    df = np.divide(1.0, x, out=np.full_like(x, np.inf), where=x > 0)
    return x, sps.t.ppf(1 - alpha, df)


def _t_crit(alpha: float, df: np.ndarray) -> np.ndarray:
    """``t_{1-alpha, df}`` for df >= 1, linearly interpolated in ``1/df`` on an 8193-point grid:
    ``scipy.stats.t.ppf`` on 20,000 random df per n costs 10 ms, the interpolation 0.2 ms; its
    error is < 2e-6 for alpha >= 0.005 (< 2e-5 for alpha >= 0.001), which moves a rejection only for
    a draw within that distance of the critical value."""
    x, crit = _t_crit_table(float(alpha))
    return np.interp(1.0 / df, x, crit)


def _welch_power_mc(n_a: np.ndarray, effect: float, sd: float, alpha: float, design: Design) -> np.ndarray:
    """Simulated power of the one-sided Welch test (see :func:`power_one_sided`) for integer arm-a
    sizes ``n_a`` (1-D, >= 2)."""
    w = float(design.var_share)
    n_b = np.maximum(2, np.rint(n_a * float(design.n_ratio))).astype(np.int64)
    out = np.empty(n_a.shape)
    for lo in range(0, n_a.size, _WELCH_CHUNK):
        na = n_a[lo:lo + _WELCH_CHUNK]
        nb = n_b[lo:lo + _WELCH_CHUNK]
        draws = [np.random.default_rng([_WELCH_POWER_SEED, int(i), int(j)]) for i, j in zip(na, nb)]
        z = np.stack([g.standard_normal(WELCH_POWER_DRAWS) for g in draws])
        # s_hat^2 / s^2 ~ chi2_{n-1} / (n-1) = Gamma((n-1)/2) / ((n-1)/2) (numpy's gamma sampler is
        # faster than its chisquare), independent of the mean difference (normal data)
        xa = np.stack([g.standard_gamma((i - 1) / 2, WELCH_POWER_DRAWS) / ((i - 1) / 2)
                       for g, i in zip(draws, na)])
        xb = np.stack([g.standard_gamma((j - 1) / 2, WELCH_POWER_DRAWS) / ((j - 1) / 2)
                       for g, j in zip(draws, nb)])
        # variances of the two means in units of sd^2: s_a^2 = 2 (1 - w) sd^2, s_b^2 = 2 w sd^2
        va = (2 * (1 - w) / na)[:, None]
        vb = (2 * w / nb)[:, None]
        va_hat, vb_hat = va * xa, vb * xb
        se_hat = np.sqrt(va_hat + vb_hat)
        # (both variance draws underflowing to 0 -- n = 2 arms only, never seen -- gives NaN: no rejection)
        with np.errstate(divide="ignore", invalid="ignore"):
            df = (va_hat + vb_hat) ** 2 / (va_hat ** 2 / (na - 1)[:, None] + vb_hat ** 2 / (nb - 1)[:, None])
            # t = (mean difference) / se_hat, mean difference = effect + sd sqrt(va + vb) z; written so
            # that t rises with effect and falls with sd draw by draw (same draws for the same n), so
            # the simulated power is exactly monotone in effect and sd
            t = effect / (sd * se_hat) + z * (np.sqrt(va + vb) / se_hat)
            out[lo:lo + _WELCH_CHUNK] = np.mean(t > _t_crit(alpha, df), axis=1)
    return out


def power_one_sided(design: Design, n: Any, effect: float, sd: float, alpha: float) -> np.ndarray:
    """Power of the one-sided level-``alpha`` t test when the true contrast is ``effect`` (> 0 in
    the test's direction; the distance to the null boundary for a non-superiority test), in [0, 1].

    Paired and trend: ``statsmodels.stats.power.ttest_power`` with the design's noncentrality and
    df (``P(T' > t_{1-alpha, df})``, T' noncentral t); 1 where statsmodels returns NaN for a huge
    noncentrality (> 30). ``n``: seeds (pairs; per level of every arm for trend); ``sd``: the SD of
    the per-seed contrast / the residual SD.

    Welch (``scipy.stats.ttest_ind(equal_var=False)``): no closed form exists (the Satterthwaite
    df is random), so the power is simulated -- the Welch statistic itself: per n,
    :data:`WELCH_POWER_DRAWS` draws of the mean difference ``~ N(effect, s_a^2/n_a + s_b^2/n_b)`` and
    of the two sample variances (``s^2 chi2_{n-1} / (n-1)``), the Welch t and its Satterthwaite df,
    rejection when ``t > t_{1-alpha, df}``. Monte-Carlo SE <= 0.0035. ``n`` = seeds of arm a
    (integers >= 2), ``n_b = max(2, round(n * design.n_ratio))``; ``sd`` = the root mean square of
    the two arms' SDs, ``s_a^2 = 2 (1 - var_share) sd^2``, ``s_b^2 = 2 var_share sd^2``. The draws
    for an n come from a generator seeded by a fixed constant and ``(n_a, n_b)``: the result is
    reproducible, the same whatever other n are asked for, and monotone in ``effect`` and ``sd``
    (not exactly in ``n``: neighbouring n use independent draws). Welch's real size is not exactly
    alpha (below it at equal SDs and small n), so neither is its power at ``effect = 0``.

    NaN where ``sd`` is not finite or > 0 is not met (and, Welch, where ``n < 2``). Vectorised over
    ``n``.
    """
    alpha = _check_alpha(alpha)
    n = np.asarray(n, dtype=float)
    if design.kind not in ("paired", "welch", "trend"):
        raise ValueError(f"Design.kind must be paired, welch or trend; got {design.kind!r}")
    if not (math.isfinite(sd) and sd > 0 and math.isfinite(effect)):
        return np.full(n.shape, math.nan)
    if design.kind == "welch":
        if np.any(n != np.round(n)):
            raise ValueError(f"welch power needs whole numbers of seeds, got n={n.tolist()!r}")
        out = np.full(n.shape, math.nan)
        ok = n >= 2
        if np.any(ok):
            # each distinct n once (a repeated n would give the same value anyway)
            uniq, inv = np.unique(n[ok].astype(np.int64), return_inverse=True)
            out[ok] = _welch_power_mc(uniq, float(effect), float(sd), alpha, design)[inv]
        return out
    ncp, df = design.ncp_df(n, float(effect), float(sd))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = np.asarray(ttest_power(ncp, nobs=1, alpha=alpha, df=df, alternative="larger"), dtype=float)
    p = np.where(np.isnan(p) & (ncp > 30), 1.0, p)
    return np.clip(p, 0.0, 1.0)


MAX_PLANNED_SEEDS = 10_000


def seeds_needed(design: Design, effect: float, sd: float, *, alpha: float, power: float) -> float:
    """Smallest number of seeds (>= :data:`MIN_SEEDS`) whose one-sided t test reaches ``power`` at
    ``effect`` (:func:`power_one_sided`); ``inf`` beyond :data:`MAX_PLANNED_SEEDS`, NaN when the SD
    is unknown. Per level of every arm for ``trend``; for ``welch`` the seeds of arm a (arm b gets
    ``round(n * n_ratio)``, and both arms at least :data:`MIN_SEEDS`), the first n whose *simulated*
    power reaches the target (every smaller n is evaluated, so this is exactly the smallest such n
    even where the simulated power is not monotone in n; a full scan to 10,000, the ``inf`` answer,
    takes about 15-20 s)."""
    if not (0 < float(power) < 1):
        raise ValueError(f"power must be in (0, 1), got {power!r}")
    if not (math.isfinite(sd) and sd > 0):
        return math.nan
    if effect <= 0:
        return math.inf
    # power grows with n: scan blocks of doubling size (3..66, 67..130, 131..258, ...) and stop at the
    # first block that reaches the target, instead of evaluating all 10,000 candidates
    lo, width = MIN_SEEDS, 64
    if design.kind == "welch":                # arm b needs MIN_SEEDS too (welch_test refuses fewer)
        while lo <= MAX_PLANNED_SEEDS and max(2, round(lo * design.n_ratio)) < MIN_SEEDS:
            lo += 1
    while lo <= MAX_PLANNED_SEEDS:
        n = np.arange(lo, min(lo + width, MAX_PLANNED_SEEDS + 1))
        ok = np.nonzero(power_one_sided(design, n, effect, sd, alpha) >= power)[0]
        if ok.size:
            return float(n[ok[0]])
        lo, width = lo + width, 2 * width
    return math.inf


def sd_upper_bound(sd: float, df: float, *, alpha: float = 0.05) -> float:
    """One-sided ``1 - alpha`` upper confidence bound of a normal SD estimated with ``df`` degrees of
    freedom: ``sd * sqrt(df / chi2_{alpha, df})``. NaN when ``df < 1`` or ``sd`` is not finite."""
    alpha = _check_alpha(alpha)
    if not (math.isfinite(sd) and math.isfinite(df) and df >= 1):
        return math.nan
    return float(sd * math.sqrt(df / sps.chi2.ppf(alpha, df)))


# --------------------------------------------------------------------------
# repeated-measures two-way ANOVA (descriptive, secondary)
# --------------------------------------------------------------------------
def rm_anova(df: pd.DataFrame, value: str, subject: str, within: Sequence[str]) -> pd.DataFrame:
    """Two-way repeated-measures ANOVA, seed as subject: ``statsmodels.stats.anova.AnovaRM``.

    Every subject must have exactly one value in every cell of ``within`` (balanced; drop seeds
    that miss a cell first). Returns AnovaRM's table (rows: each factor and their interaction;
    columns ``F Value, Num DF, Den DF, Pr > F``). Refuses fewer than :data:`MIN_SEEDS` subjects.
    """
    within = list(within)
    for col in [value, subject, *within]:
        if col not in df.columns:
            raise ValueError(f"column {col!r} is not in the data (columns: {', '.join(map(str, df.columns))})")
    y = pd.to_numeric(df[value], errors="coerce")
    if y.isna().any() or not np.all(np.isfinite(y)):
        raise ValueError(f"value column {value!r} must be numeric and finite")
    n_sub = df[subject].nunique()
    if n_sub < MIN_SEEDS:
        raise InsufficientSeeds("subjects", int(n_sub))
    cells = df.groupby([subject, *within]).size()
    n_cells = int(np.prod([df[w].nunique() for w in within]))
    if cells.max() != 1 or len(cells) != n_sub * n_cells:
        raise ValueError("the design must be balanced: one value per subject and cell")
    data = df[[subject, *within]].astype(str).assign(**{value: y.astype(float)})
    return AnovaRM(data, depvar=value, subject=subject, within=within).fit().anova_table
