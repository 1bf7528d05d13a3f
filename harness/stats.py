"""Small functional statistics API for comparing training arms over seeds.

Conventions (apply to every function in this module)
----------------------------------------------------
* An *arm* is a 1-D sequence of per-seed scores (e.g. test accuracy in
  percent or as a fraction -- the unit is whatever the caller passes; all
  differences, means and margins are returned in that same unit).
* Differences are always ``b - a``: a positive ``diff`` / ``hedges_g`` means
  arm ``b`` scored higher than arm ``a``.
* All tests are two-sided, except :func:`one_sided_t` (directional
  hypotheses) whose ``alternative`` is explicit.
* ``MIN_SEEDS = 3``: every function that produces a p-value refuses, with
  :class:`InsufficientSeeds`, when an arm (or a cell, for the ANOVA) has
  fewer than 3 values. No p-values from 2 seeds.
* The heavy lifting is done by scipy / statsmodels; this module only
  validates inputs, chooses the test and assembles a plain ``dict``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = [
    "MIN_SEEDS",
    "InsufficientSeeds",
    "compare_arms",
    "hedges_g",
    "holm",
    "mcnemar_test",
    "one_sided_t",
    "t_ci_mean",
    "tost_equivalence",
    "seeds_for_power",
    "two_way_anova",
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
def hedges_g(a: Sequence[float], b: Sequence[float], *, paired: bool = False,
             alpha: float = 0.05) -> dict:
    """Bias-corrected standardized mean difference (``b - a``) with a CI.

    Unpaired (``paired=False``): Cohen's d with the pooled SD,
    ``d = (mean_b - mean_a) / s_p``,
    ``s_p = sqrt(((n_a-1) var_a + (n_b-1) var_b) / (n_a+n_b-2))`` (ddof=1),
    ``J = 1 - 3 / (4 (n_a+n_b) - 9)``, ``g = J d``.
    SE (Hedges & Olkin normal approximation):
    ``sqrt((n_a+n_b)/(n_a n_b) + g^2 / (2 (n_a+n_b)))``.

    Paired (``paired=True``, ``a[i]`` pairs with ``b[i]``): ``d_z`` -- the
    mean of the differences divided by their SD (ddof=1), with
    ``J = 1 - 3 / (4 (n-1) - 1)`` (df = n-1), ``g_z = J d_z``,
    SE ``sqrt(1/n + g_z^2 / (2 n))``. Note that d_z is *not* on the same
    scale as the unpaired d (it standardizes by the SD of differences).

    The CI is the **normal approximation** ``g +/- z_{1-alpha/2} SE`` (not the
    noncentral-t inversion); it is approximate for very small n.
    Returns ``nan`` for g and its CI when the relevant SD is zero.
    """
    alpha = _check_alpha(alpha)
    a = _as_arm(a, "a")
    b = _as_arm(b, "b")
    z = sps.norm.ppf(1 - alpha / 2)
    if paired:
        if a.size != b.size:
            raise ValueError("paired hedges_g needs a and b of equal length")
        d = b - a
        n = d.size
        sd = d.std(ddof=1)
        J = 1 - 3 / (4 * (n - 1) - 1)
        if sd == 0:
            return {"g": math.nan, "ci": (math.nan, math.nan), "J": J,
                    "convention": "d_z (paired), normal-approx CI"}
        g = J * d.mean() / sd
        se = math.sqrt(1 / n + g * g / (2 * n))
        conv = "d_z (paired): mean(b-a)/sd(b-a), J=1-3/(4(n-1)-1), normal-approx CI"
    else:
        na, nb = a.size, b.size
        sp = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
        J = 1 - 3 / (4 * (na + nb) - 9)
        if sp == 0:
            return {"g": math.nan, "ci": (math.nan, math.nan), "J": J,
                    "convention": "pooled-SD d, normal-approx CI"}
        g = J * (b.mean() - a.mean()) / sp
        se = math.sqrt((na + nb) / (na * nb) + g * g / (2 * (na + nb)))
        conv = "pooled-SD d (b-a), J=1-3/(4(n_a+n_b)-9), normal-approx CI"
    return {"g": float(g), "ci": (float(g - z * se), float(g + z * se)), "J": J,
            "convention": conv}


# --------------------------------------------------------------------------
# compare two arms
# --------------------------------------------------------------------------
def _wilcoxon_method_label(d: np.ndarray) -> str:
    """Mirror scipy's ``method='auto'`` choice (scipy >= 1.15) for reporting."""
    nz = d[d != 0]
    has_zero = nz.size < d.size
    has_ties = np.unique(np.abs(nz)).size < nz.size
    if d.size > 50:
        return "asymptotic (normal approximation)"
    if not (has_ties or has_zero):
        return "exact"
    if d.size <= 13:
        return "permutation (exhaustive; ties/zeros present)"
    return "asymptotic (normal approximation; ties/zeros present)"


def compare_arms(a: Sequence[float], b: Sequence[float], *, paired: bool | None = None,
                 seeds_a: Sequence | None = None, seeds_b: Sequence | None = None,
                 n_boot: int = 10000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Compare arm ``b`` against arm ``a`` (difference ``b - a``).

    Pairing
    -------
    * ``paired=None`` (default): paired iff both ``seeds_a`` and ``seeds_b`` are
      given and contain exactly the same set of seeds; otherwise unpaired.
    * ``paired=True``: if seeds are given they must match exactly (else
      ``ValueError``); without seeds, ``a[i]`` is paired with ``b[i]`` by position
      (lengths must match).
    * ``paired=False``: always unpaired (Welch).
    When paired with seeds, both arms are sorted by seed before pairing.

    Tests
    -----
    * paired: ``scipy.stats.ttest_rel`` (primary) and ``scipy.stats.wilcoxon``
      (``zero_method='wilcox'``: zero differences are dropped; ``method='auto'``:
      exact null distribution when there are no ties/zeros, exhaustive
      permutation when ties/zeros and n <= 13, normal approximation otherwise;
      the choice is reported in ``wilcoxon['method']``). With n < 6 pairs the
      smallest attainable two-sided Wilcoxon p is > 0.05, so it can never
      reject at alpha = 0.05. If all differences are zero both p-values are nan.
    * unpaired: Welch's t, ``scipy.stats.ttest_ind(equal_var=False)``;
      ``wilcoxon`` is ``None``.

    Effect size: see :func:`hedges_g` (d_z when paired, pooled-SD d otherwise;
    normal-approximation CI).

    Bootstrap: ``scipy.stats.bootstrap`` with ``method='percentile'`` and
    ``rng=np.random.default_rng(seed)``, ``n_boot`` resamples, confidence
    ``1 - alpha``. Paired: resamples the per-seed differences (statistic:
    their mean). Unpaired: resamples each arm independently (statistic:
    ``mean(b) - mean(a)``).

    Returns a dict with keys ``mean_a, mean_b, diff, n_a, n_b, paired,
    seeds (list or None), test, statistic, df, pvalue, significant, wilcoxon,
    hedges_g, g_ci, g_convention, boot_ci, boot_method, n_boot, seed, alpha``.
    """
    alpha = _check_alpha(alpha)
    if not (isinstance(n_boot, (int, np.integer)) and n_boot >= 100):
        raise ValueError(f"n_boot must be an integer >= 100, got {n_boot!r}")
    if paired not in (None, True, False):
        raise ValueError(f"paired must be None, True or False, got {paired!r}")
    a = _as_arm(a, "a")
    b = _as_arm(b, "b")
    if (seeds_a is None) != (seeds_b is None):
        raise ValueError("seeds_a and seeds_b must be given together (or neither)")
    seeds_match = False
    common_seeds = None
    if seeds_a is not None:
        sa = _as_seeds(seeds_a, "seeds_a", a.size)
        sb = _as_seeds(seeds_b, "seeds_b", b.size)
        seeds_match = set(sa) == set(sb)
        if seeds_match:
            ia = sorted(range(len(sa)), key=lambda i: sa[i])
            ib = sorted(range(len(sb)), key=lambda i: sb[i])
            common_seeds = [sa[i] for i in ia]
            a, b = a[ia], b[ib]

    if paired is None:
        paired = seeds_match
    elif paired:
        if seeds_a is not None and not seeds_match:
            raise ValueError("paired=True but seeds_a and seeds_b are not the same set of seeds")
        if a.size != b.size:
            raise ValueError(f"paired=True needs equal lengths, got n_a={a.size}, n_b={b.size}")

    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "diff": float(b.mean() - a.mean()),
        "n_a": int(a.size),
        "n_b": int(b.size),
        "paired": bool(paired),
        "seeds": common_seeds if paired else None,
        "alpha": alpha,
        "n_boot": int(n_boot),
        "seed": seed,
    }
    if paired:
        d = b - a
        degenerate = bool(np.all(d == d[0]))  # zero SD of differences
        if degenerate:
            out.update(test="paired_t", statistic=math.nan, df=int(d.size - 1), pvalue=math.nan)
        else:
            t = sps.ttest_rel(b, a)
            out.update(test="paired_t", statistic=_float(t.statistic),
                       df=int(d.size - 1), pvalue=_float(t.pvalue))
        if np.all(d == 0):
            out["wilcoxon"] = {"statistic": math.nan, "pvalue": math.nan,
                               "method": "degenerate: all differences zero",
                               "zero_method": "wilcox", "n_nonzero": 0}
        else:
            w = sps.wilcoxon(b, a, zero_method="wilcox", method="auto")
            out["wilcoxon"] = {"statistic": _float(w.statistic), "pvalue": _float(w.pvalue),
                               "method": _wilcoxon_method_label(d), "zero_method": "wilcox",
                               "n_nonzero": int(np.count_nonzero(d))}
        if degenerate:
            out["boot_ci"] = (float(d[0]), float(d[0]))
        else:
            res = sps.bootstrap((d,), np.mean, n_resamples=n_boot, method="percentile",
                                confidence_level=1 - alpha, rng=rng, vectorized=True)
            out["boot_ci"] = (float(res.confidence_interval.low),
                              float(res.confidence_interval.high))
        out["boot_method"] = "percentile, resampling paired differences"
    else:
        if a.std() == 0 and b.std() == 0:
            out.update(test="welch_t", statistic=math.nan, df=math.nan, pvalue=math.nan)
        else:
            t = sps.ttest_ind(b, a, equal_var=False)
            out.update(test="welch_t", statistic=_float(t.statistic),
                       df=_float(t.df), pvalue=_float(t.pvalue))
        out["wilcoxon"] = None

        def _mdiff(x, y, axis=-1):
            return np.mean(y, axis=axis) - np.mean(x, axis=axis)

        if a.std() == 0 and b.std() == 0:
            out["boot_ci"] = (out["diff"], out["diff"])
        else:
            res = sps.bootstrap((a, b), _mdiff, n_resamples=n_boot, method="percentile",
                                confidence_level=1 - alpha, rng=rng, vectorized=True)
            out["boot_ci"] = (float(res.confidence_interval.low),
                              float(res.confidence_interval.high))
        out["boot_method"] = "percentile, independent two-sample resampling"

    g = hedges_g(a, b, paired=paired, alpha=alpha)
    out["hedges_g"] = g["g"]
    out["g_ci"] = g["ci"]
    out["g_convention"] = g["convention"]
    p = out["pvalue"]
    out["significant"] = bool(p < alpha) if not math.isnan(p) else False
    return out


# --------------------------------------------------------------------------
# one-sided test and confidence interval of a mean
# --------------------------------------------------------------------------
def one_sided_t(a: Sequence[float], b: Sequence[float], *, alternative: str,
                paired: bool) -> dict:
    """One-sided t test of ``b - a`` (for directional, pre-declared hypotheses).

    ``alternative='greater'``: H1 is mean(b) > mean(a); ``'less'``: mean(b) < mean(a).
    Paired (``a[i]`` pairs with ``b[i]``): ``scipy.stats.ttest_rel(b, a, alternative=...)``;
    unpaired: Welch, ``scipy.stats.ttest_ind(b, a, equal_var=False, alternative=...)``.
    Refuses arms with fewer than :data:`MIN_SEEDS` values (:class:`InsufficientSeeds`).

    Degenerate case (zero SD of the differences when paired, zero variance in both
    arms when unpaired): the t statistic is +/-inf or undefined, so ``pvalue`` is 0.0
    when the (constant) difference lies strictly in the direction of ``alternative``
    and 1.0 otherwise (a zero difference is no evidence for either direction);
    ``test`` says ``degenerate``.

    Returns ``{"test", "alternative", "statistic", "df", "pvalue", "diff"}`` with
    ``diff = mean(b) - mean(a)`` in the unit of the scores.
    """
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative must be 'greater' or 'less', got {alternative!r}")
    if paired not in (True, False):
        raise ValueError(f"paired must be True or False, got {paired!r}")
    a = _as_arm(a, "a")
    b = _as_arm(b, "b")
    diff = float(b.mean() - a.mean())
    sign = 1.0 if alternative == "greater" else -1.0
    if paired:
        if a.size != b.size:
            raise ValueError(f"paired=True needs equal lengths, got n_a={a.size}, n_b={b.size}")
        d = b - a
        degenerate = bool(np.all(d == d[0]))
        test, df = "paired_t", float(d.size - 1)
    else:
        degenerate = bool(a.std() == 0 and b.std() == 0)
        test, df = "welch_t", math.nan
    if degenerate:
        p = 0.0 if sign * diff > 0 else 1.0
        stat = math.copysign(math.inf, diff) if diff != 0 else math.nan
        return {"test": f"{test} (degenerate: zero variance)", "alternative": alternative,
                "statistic": stat, "df": df, "pvalue": p, "diff": diff}
    if paired:
        r = sps.ttest_rel(b, a, alternative=alternative)
    else:
        r = sps.ttest_ind(b, a, equal_var=False, alternative=alternative)
        df = _float(r.df)
    return {"test": test, "alternative": alternative, "statistic": _float(r.statistic),
            "df": df, "pvalue": _float(r.pvalue), "diff": diff}


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
    from statsmodels.stats.multitest import multipletests

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
    from statsmodels.stats.contingency_tables import mcnemar

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
    from statsmodels.stats.weightstats import ttost_ind, ttost_paired

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
# power
# --------------------------------------------------------------------------
def seeds_for_power(effect_size_d: float, *, alpha: float = 0.05, power: float = 0.8,
                    paired: bool = True) -> int | float:
    """Number of seeds needed to detect ``effect_size_d`` with a two-sided t test.

    * ``paired=True``: ``statsmodels.stats.power.TTestPower`` (one-sample t on
      the per-seed differences; ``effect_size_d`` is d_z). Returns number of pairs.
    * ``paired=False``: ``TTestIndPower`` with equal arm sizes; returns seeds
      *per arm* (``effect_size_d`` is the pooled-SD d).

    The solver's fractional n is rounded up (``ceil``) and then floored at
    :data:`MIN_SEEDS`, since fewer seeds are refused elsewhere. When the solver fails
    (statsmodels' power is nan for very large effects), the smallest n is found by an integer
    search on a robust power computation (:func:`_t_test_power`). Returns
    ``math.inf`` when ``|effect_size_d| < 1e-9`` (no finite n detects a zero
    effect). The sign of the effect is ignored.
    """
    from statsmodels.stats.power import TTestIndPower, TTestPower
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    alpha = _check_alpha(alpha)
    if not (isinstance(power, (int, float)) and 0 < float(power) < 1):
        raise ValueError(f"power must be in (0, 1), got {power!r}")
    try:
        es = abs(float(effect_size_d))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"effect_size_d must be a number, got {effect_size_d!r}") from exc
    if not math.isfinite(es):
        raise ValueError(f"effect_size_d must be finite, got {effect_size_d!r}")
    if es < 1e-9:
        return math.inf
    with warnings.catch_warnings():  # a failed solve is handled below
        warnings.simplefilter("ignore", ConvergenceWarning)
        if paired:
            n = TTestPower().solve_power(effect_size=es, nobs=None, alpha=alpha, power=power,
                                         alternative="two-sided")
        else:
            n = TTestIndPower().solve_power(effect_size=es, nobs1=None, alpha=alpha, power=power,
                                            ratio=1.0, alternative="two-sided")
    n = float(np.asarray(n).item())
    if not math.isfinite(n):
        # statsmodels' noncentral-t power returns nan for large noncentrality (large effects):
        # fall back to an integer search with a robust power computation
        return _min_n_for_power(es, alpha=alpha, power=float(power), paired=paired)
    return max(MIN_SEEDS, int(math.ceil(n - 1e-9)))


def _t_test_power(es: float, n: int, *, alpha: float, paired: bool) -> float:
    """Power of the two-sided t test (paired: one-sample on n differences; unpaired: n per arm).

    ``T = (Z + delta) / sqrt(V / df)`` with ``V ~ chi2(df)``, so
    ``P(T > c) = E_V[Phi(delta - c sqrt(V/df))]``; the expectation is integrated over the
    chi-square quantile ``u in (0, 1)``, which stays finite and accurate for any effect size
    (unlike the noncentral-t routines for large noncentrality).
    """
    from scipy import integrate

    df = n - 1 if paired else 2 * n - 2
    delta = es * math.sqrt(n if paired else n / 2)
    c = float(sps.t.ppf(1 - alpha / 2, df))

    def f(u: float) -> float:
        s = math.sqrt(float(sps.chi2.ppf(u, df)) / df)
        return float(sps.norm.cdf(delta - c * s) + sps.norm.cdf(-delta - c * s))

    val, _ = integrate.quad(f, 0.0, 1.0, limit=200)
    return min(1.0, max(0.0, val))


def _min_n_for_power(es: float, *, alpha: float, power: float, paired: bool) -> int:
    """Smallest integer n >= MIN_SEEDS with :func:`_t_test_power` >= ``power`` (doubling + bisection)."""
    def ok(n: int) -> bool:
        return _t_test_power(es, n, alpha=alpha, paired=paired) >= power

    lo = MIN_SEEDS
    if ok(lo):
        return lo
    hi = 2 * lo
    while not ok(hi):
        lo, hi = hi, 2 * hi
        if hi > 10**8:
            raise ValueError(f"power search failed for effect_size_d={es!r}")
    while hi - lo > 1:  # invariant: not ok(lo), ok(hi)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


# --------------------------------------------------------------------------
# two-way ANOVA
# --------------------------------------------------------------------------
def two_way_anova(df: pd.DataFrame, value: str = "value", factor_a: str = "label_type",
                  factor_b: str = "family") -> pd.DataFrame:
    """Two-way ANOVA with interaction, Type II sums of squares.

    Fits ``value ~ C(factor_a) * C(factor_b)`` with ``statsmodels.formula.api.ols``
    and returns ``statsmodels.stats.anova.anova_lm(model, typ=2)`` (rows: the two
    main effects, the interaction, Residual; columns ``sum_sq, df, F, PR(>F)``).
    Every (factor_a, factor_b) cell must have at least :data:`MIN_SEEDS` rows.
    Note: Type II is appropriate when the interaction is negligible; with a
    strong interaction the main-effect rows should be read with care.
    """
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    if not isinstance(df, pd.DataFrame):
        raise ValueError("df must be a pandas DataFrame")
    for arg, col in (("value", value), ("factor_a", factor_a), ("factor_b", factor_b)):
        if col not in df.columns:
            raise ValueError(f"{arg}={col!r} is not a column of df")
    if len({value, factor_a, factor_b}) != 3:
        raise ValueError("value, factor_a and factor_b must be distinct columns")
    data = df[[value, factor_a, factor_b]].copy()
    y = pd.to_numeric(data[value], errors="coerce")
    if y.isna().any() or not np.all(np.isfinite(y)):
        raise ValueError(f"value column {value!r} must be numeric and finite")
    if data[factor_a].nunique() < 2 or data[factor_b].nunique() < 2:
        raise ValueError("factor_a and factor_b must each have at least 2 levels")
    counts = data.groupby([factor_a, factor_b]).size()
    full = len(counts) == data[factor_a].nunique() * data[factor_b].nunique()
    if not full:
        raise ValueError("every combination of factor_a and factor_b must be present")
    if counts.min() < MIN_SEEDS:
        cell = counts.idxmin()
        raise InsufficientSeeds(f"cell {factor_a},{factor_b}={cell}", int(counts.min()))
    data = pd.DataFrame({"y": y.astype(float), "fa": data[factor_a].astype(str),
                         "fb": data[factor_b].astype(str)})
    model = smf.ols("y ~ C(fa) * C(fb)", data=data).fit()
    table = anova_lm(model, typ=2)
    table = table.rename(index={
        "C(fa)": factor_a, "C(fb)": factor_b, "C(fa):C(fb)": f"{factor_a}:{factor_b}",
    })
    return table
