"""Binomial maximum-likelihood fits of psychometric functions to human (or model) accuracy counts.

Model (the :class:`~mappings.Psychometric` of this package), with ``x`` a **severity-like
strength** (accuracy falls as ``x`` grows, 0 = undistorted; see
:func:`mappings.conversion.to_strength`, e.g. ``1 - contrast``, noise width, blur std,
``1 - visibility``)::

    psi(x) = guess + (1 - guess - lapse) * (1 - F(x; alpha, beta))      (increasing=False, default)

    weibull:  F = 1 - exp(-(x / alpha) ** beta)     alpha > 0, beta > 0, x >= 0
    logistic: F = 1 / (1 + exp(-beta * (x - alpha)))   alpha real, beta > 0

With ``increasing=True`` the classical form ``psi(x) = guess + (1 - guess - lapse) * F(x)`` is
fitted instead (``x`` a signal strength such as contrast); such a fit cannot become a severity
mapping (:meth:`PsychometricFit.mapping` raises).

Fitting: the binomial log-likelihood of the **counts** (not least squares on means) is maximised
from a grid of starting points plus ``n_starts`` seeded random ones: all starts are run together
by a batched projected Fisher-scoring solver (cheap), and the two best distinct end points are
polished with ``scipy.optimize.minimize`` (L-BFGS-B, analytic gradient, box bounds); the lowest
negative log-likelihood wins. ``guess`` is fixed (the study's chance: pass a float or a study id
of :data:`mappings.hvs.CHANCE_BY_STUDY`); ``lapse`` is fitted
within ``lapse_bounds`` (fixed when both bounds are equal). Note: human ceilings in Geirhos et al.
are 0.80-0.91 (lapse 0.1-0.2), so the default ``(0, 0.1)`` pins their lapse at 0.1; pass e.g.
``lapse_bounds=(0, 0.5)`` for those data. Internally ``log(alpha)`` (Weibull)
and ``log(beta)`` are optimised, inside bounds wide relative to the data range
(Weibull ``alpha`` in ``[min x>0 / 20, 20 max x]``, ``beta`` in [0.05, 200]; logistic ``alpha``
within two ranges of the data, ``beta * range`` in [0.05, 500]).

``nll`` is the full binomial negative log-likelihood (including ``log C(n, k)``); ``deviance``
is ``2 (nll - nll_saturated)`` against the saturated binomial model (one p per condition);
``aic = 2 n_params + 2 nll``; ``df = n_conditions - n_params``.

Uncertainty: :func:`bootstrap_fit` (seeded parametric bootstrap, percentile CIs and a pointwise
confidence band) and :func:`profile_ci` (profile-likelihood interval for ``alpha``).
Model choice: :func:`select_family` (AIC). Pooling: :func:`compare_pooled` (likelihood-ratio
test of one shared function against one per study; the chi-square reference is approximate when
a lapse estimate sits on its bound).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, stats
from scipy.special import expit, gammaln, xlogy

from mappings.base import check_int
from mappings.hvs import chance_for_study
from mappings.normalize import Normalized
from mappings.psychometric import Psychometric

__all__ = [
    "FAMILIES",
    "PsychometricFit",
    "BootstrapResult",
    "FamilySelection",
    "PoolingTest",
    "fit_psychometric",
    "bootstrap_fit",
    "profile_ci",
    "select_family",
    "compare_pooled",
]

#: Supported families (same names as :data:`mappings.psychometric.PSYCHOMETRIC_FAMILIES`).
FAMILIES: tuple[str, ...] = ("weibull", "logistic")

_EPS = 1e-12  # probabilities are clipped to [_EPS, 1 - _EPS] inside the likelihood
_WEIBULL_BETA = (0.05, 200.0)
_LOGISTIC_BETA_RANGE = (0.05, 500.0)  # bounds of beta * (data range)


# ============================================================================== validation
def _as_1d(name: str, values: Any, *, integer: bool) -> np.ndarray:
    if isinstance(values, (str, bytes)) or values is None:
        raise TypeError(f"{name} must be a 1-D sequence of numbers, got {type(values).__name__}")
    try:
        arr = np.asarray(values)
    except Exception as exc:  # ragged input
        raise TypeError(f"{name} must be a 1-D sequence of numbers, got {values!r}") from exc
    real = np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    if arr.dtype == np.bool_ or not real:
        raise TypeError(f"{name} must contain real numbers, got dtype={arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN/inf)")
    if integer:
        if np.any(arr < 0):
            raise ValueError(f"{name} must be non-negative counts, got {arr[arr < 0][0]!r}")
        if np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must be whole numbers (counts)")
    return arr


def _check_data(intensity: Any, n_correct: Any, n_trials: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = _as_1d("intensity", intensity, integer=False)
    k = _as_1d("n_correct", n_correct, integer=True)
    n = _as_1d("n_trials", n_trials, integer=True)
    if x.size == 0:
        raise ValueError("intensity must not be empty")
    if not (x.size == k.size == n.size):
        raise ValueError(
            f"intensity, n_correct and n_trials must have the same length, got {x.size}, {k.size}, {n.size}"
        )
    if np.any(k > n):
        i = int(np.argmax(k > n))
        raise ValueError(
            f"n_correct must not exceed n_trials (accuracy > 1): n_correct={k[i]:g} > n_trials={n[i]:g} "
            f"at index {i}"
        )
    if n.sum() <= 0:
        raise ValueError("n_trials must contain at least one trial (all conditions are empty)")
    return x, k, n


def _check_guess(guess: Any, name: str = "guess") -> float:
    """A chance level: a float in [0, 1) or a study id with a known chance level."""
    if isinstance(guess, str):
        return chance_for_study(guess)
    if guess is None:
        raise ValueError(f"{name} is required: a chance level in [0, 1) or a study id")
    if isinstance(guess, (bool, np.bool_)) or not isinstance(guess, numbers.Real):
        raise TypeError(f"{name} must be a real number in [0, 1) or a study id, got {guess!r}")
    g = float(guess)
    if not 0.0 <= g < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {guess!r}")
    return g


def _check_family(family: Any) -> str:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {list(FAMILIES)}, got {family!r}")
    return family


def _check_lapse_bounds(lapse_bounds: Any, guess: float) -> tuple[float, float]:
    if not isinstance(lapse_bounds, (tuple, list)) or len(lapse_bounds) != 2:
        raise TypeError(f"lapse_bounds must be a (low, high) pair, got {lapse_bounds!r}")
    for v in lapse_bounds:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"lapse_bounds must hold real numbers, got {lapse_bounds!r}")
    lo, hi = (float(v) for v in lapse_bounds)
    if not (0.0 <= lo <= hi and guess + hi < 1.0):
        raise ValueError(
            f"lapse_bounds must satisfy 0 <= low <= high and guess + high < 1 (guess={guess!r}), "
            f"got {lapse_bounds!r}"
        )
    return lo, hi


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


# ============================================================================== model
@dataclass(frozen=True)
class _Problem:
    """Validated data and settings of one fit (internal)."""

    x: np.ndarray
    k: np.ndarray
    n: np.ndarray
    guess: float
    family: str
    increasing: bool
    lapse_bounds: tuple[float, float]
    const: float = field(init=False)  # sum of log binomial coefficients

    def __post_init__(self) -> None:
        n, k = self.n, self.k
        const = float(np.sum(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)))
        object.__setattr__(self, "const", const)

    @property
    def fit_lapse(self) -> bool:
        return self.lapse_bounds[1] > self.lapse_bounds[0]

    @property
    def n_params(self) -> int:
        return 3 if self.fit_lapse else 2

    def bounds(self) -> list[tuple[float, float]]:
        x = self.x
        if self.family == "weibull":
            pos = x[x > 0]
            a = (math.log(pos.min() / 20.0), math.log(pos.max() * 20.0))
            b = (math.log(_WEIBULL_BETA[0]), math.log(_WEIBULL_BETA[1]))
        else:
            span = float(x.max() - x.min()) or 1.0
            a = (float(x.min()) - 2.0 * span, float(x.max()) + 2.0 * span)
            b = (math.log(_LOGISTIC_BETA_RANGE[0] / span), math.log(_LOGISTIC_BETA_RANGE[1] / span))
        out = [a, b]
        if self.fit_lapse:
            out.append(self.lapse_bounds)
        return out

    def unpack(self, theta: np.ndarray) -> tuple[float, float, float]:
        """Internal parameters -> (alpha, beta, lapse)."""
        alpha = math.exp(theta[0]) if self.family == "weibull" else float(theta[0])
        lapse = float(theta[2]) if self.fit_lapse else self.lapse_bounds[0]
        return alpha, math.exp(theta[1]), lapse

    def pack(self, alpha: float, beta: float, lapse: float) -> np.ndarray:
        a = math.log(alpha) if self.family == "weibull" else alpha
        vals = [a, math.log(beta)] + ([lapse] if self.fit_lapse else [])
        return np.array(vals, dtype=np.float64)

    def _model(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Batched model: ``theta`` [B, m] -> p [B, c] (clipped) and dp/dtheta [B, c, m]."""
        x, g = self.x[None, :], self.guess
        beta = np.exp(theta[:, 1:2])
        lapse = theta[:, 2:3] if self.fit_lapse else np.full((theta.shape[0], 1), self.lapse_bounds[0])
        with np.errstate(all="ignore"):
            if self.family == "weibull":
                alpha = np.exp(theta[:, 0:1])
                r = x / alpha
                z = np.power(r, beta)
                big = z > 800.0
                e = np.exp(-np.minimum(z, 800.0))
                F = -np.expm1(-z)
                logr = np.log(np.where(x > 0, r, 1.0))
                zc = np.where(big, 0.0, z)
                dF_a = e * (-beta * zc)  # d/d log(alpha)
                dF_b = e * zc * logr * beta  # d/d log(beta)
            else:
                u = beta * (x - theta[:, 0:1])
                F = expit(u)
                d = F * (1.0 - F)
                dF_a = -beta * d  # d/d alpha
                dF_b = d * u  # d/d log(beta)
        span = 1.0 - g - lapse
        if self.increasing:
            p = g + span * F
            dp_dF, dp_dl = span, -F
        else:
            p = g + span * (1.0 - F)
            dp_dF, dp_dl = -span, -(1.0 - F)
        parts = [dp_dF * dF_a, dp_dF * dF_b] + ([dp_dl * np.ones_like(F)] if self.fit_lapse else [])
        return np.clip(p, _EPS, 1.0 - _EPS), np.stack(parts, axis=-1)

    def _nll_batch(self, p: np.ndarray, k: np.ndarray) -> np.ndarray:
        return -np.sum(xlogy(k, p) + xlogy(self.n - k, 1.0 - p), axis=-1)

    def nll_grad(self, theta: np.ndarray, k: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """Binomial NLL without the constant, and its gradient in the internal parameters."""
        k = self.k if k is None else k
        p, dp = self._model(np.asarray(theta, dtype=np.float64)[None, :])
        w = -(k / p - (self.n - k) / (1.0 - p))
        return float(self._nll_batch(p, k)[0]), np.einsum("bc,bcm->m", w, dp)

    def newton(
        self, theta0: np.ndarray, k: np.ndarray, max_iter: int = 100
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Batched projected Fisher scoring (Levenberg-damped) with Armijo backtracking, inside the bounds.

        ``theta0`` [B, m] starting points, ``k`` [B, c] successes (one data set per row).
        Returns (theta [B, m], nll without constant [B], converged [B]).
        """
        bounds = np.array(self.bounds())
        lo, hi = bounds[:, 0], bounds[:, 1]
        theta = np.clip(np.array(theta0, dtype=np.float64), lo, hi)
        B, m = theta.shape
        eye = np.eye(m)
        mu = np.full(B, 1e-3)
        done = np.zeros(B, dtype=bool)
        converged = np.zeros(B, dtype=bool)
        p, dp = self._model(theta)
        f = self._nll_batch(p, k)
        for _ in range(max_iter):
            w = -(k / p - (self.n - k) / (1.0 - p))
            grad = np.einsum("bc,bcm->bm", w, dp)
            info = np.einsum("bc,bcm,bcn->bmn", self.n / (p * (1.0 - p)), dp, dp)
            active = ((theta <= lo + 1e-12) & (grad > 0)) | ((theta >= hi - 1e-12) & (grad < 0))
            pgrad = np.where(active, 0.0, grad)
            small = np.max(np.abs(pgrad), axis=1) <= 1e-7 * (1.0 + np.abs(f))
            converged |= small & ~done
            done |= small
            if done.all():
                break
            diag = np.einsum("bmm->bm", info)
            H = info + (mu[:, None] * diag + 1e-12)[:, :, None] * eye
            mask = active[:, :, None] | active[:, None, :]
            H = np.where(mask, 0.0, H) + np.where(active, 1.0, 0.0)[:, :, None] * eye
            step = -np.linalg.solve(H, pgrad[:, :, None])[:, :, 0]
            t = np.ones(B)
            accepted = done.copy()
            new_theta, new_f = theta.copy(), f.copy()
            for _ls in range(40):
                cand = np.clip(theta + t[:, None] * step, lo, hi)
                pc, _ = self._model(cand)
                fc = self._nll_batch(pc, k)
                ok = ~accepted & (fc <= f + 1e-4 * np.sum(grad * (cand - theta), axis=1) + 1e-12 * np.abs(f))
                new_theta[ok], new_f[ok] = cand[ok], fc[ok]
                accepted |= ok
                if accepted.all():
                    break
                t = np.where(accepted, t, 0.5 * t)
            stuck = ~accepted  # no decrease along the step: a (numerical) optimum
            converged |= stuck & (np.max(np.abs(pgrad), axis=1) <= 1e-4 * (1.0 + np.abs(f)))
            done |= stuck
            tiny = accepted & ~done & (f - new_f <= 1e-13 * (1.0 + np.abs(f)))
            mu = np.where(t < 1.0, mu * 10.0, np.maximum(mu * 0.3, 1e-8))
            theta, f = new_theta, new_f
            p, dp = self._model(theta)
            converged |= tiny
            done |= tiny
        return theta, f, converged

    def saturated_nll(self, k: np.ndarray | None = None) -> float:
        k = self.k if k is None else k
        n = self.n
        with np.errstate(all="ignore"):
            ph = np.where(n > 0, k / np.where(n > 0, n, 1.0), 0.0)
        return -float(np.sum(xlogy(k, ph) + xlogy(n - k, 1.0 - ph)))

    def starts(self, n_random: int, seed: int) -> list[np.ndarray]:
        """Grid + data-driven + seeded random starting points (internal parameters)."""
        x, k, n = self.x, self.k, self.n
        lo, hi = self.lapse_bounds
        with np.errstate(all="ignore"):
            acc = np.where(n > 0, k / np.where(n > 0, n, 1.0), np.nan)
        top = float(np.nanmax(acc))
        lapse0 = float(np.clip(1.0 - top, lo, hi))
        lapses = [lapse0]
        if self.family == "weibull":
            pos = x[x > 0]
            alphas = list(np.geomspace(pos.min(), pos.max(), 4)) if pos.size else [1.0]
            betas = [1.0, 3.0, 10.0]
        else:
            span = float(x.max() - x.min()) or 1.0
            alphas = list(np.linspace(x.min(), x.max(), 4))
            betas = [2.0 / span, 8.0 / span, 30.0 / span]
        # data-driven threshold: where accuracy crosses halfway between the top and the guess
        mid = 0.5 * (top + self.guess)
        order = np.argsort(x)
        xs, accs = x[order], acc[order]
        ok = np.isfinite(accs)
        if ok.sum() >= 2:
            below = np.nonzero((accs[ok] < mid) if not self.increasing else (accs[ok] >= mid))[0]
            if below.size:
                a_mid = float(xs[ok][below[0]])
                if self.family == "logistic" or a_mid > 0:
                    alphas.append(a_mid)
        bounds = self.bounds()
        pts = []
        for a in alphas:
            for b in betas:
                for lapse in lapses:
                    pts.append(self._clip(self.pack_safe(a, b, lapse), bounds))
        rng = np.random.default_rng(seed)
        for _ in range(n_random):
            pts.append(np.array([rng.uniform(lo_, hi_) for lo_, hi_ in bounds]))
        return pts

    def pack_safe(self, alpha: float, beta: float, lapse: float) -> np.ndarray:
        if self.family == "weibull":
            alpha = max(alpha, 1e-300)
        return self.pack(alpha, max(beta, 1e-300), lapse)

    @staticmethod
    def _clip(theta: np.ndarray, bounds: list[tuple[float, float]]) -> np.ndarray:
        return np.array([min(max(t, lo), hi) for t, (lo, hi) in zip(theta, bounds)])

    def minimise(self, starts: list[np.ndarray], k: np.ndarray | None = None,
                 n_polish: int = 2) -> tuple[np.ndarray, float, bool]:
        """Best optimum over ``starts``: (theta, nll without constant, converged).

        All starts are first run together by :meth:`newton` (batched projected Fisher scoring);
        the ``n_polish`` best distinct end points are then refined with ``scipy.optimize.minimize``
        (L-BFGS-B, analytic gradient, bounds) and the lowest NLL wins.
        """
        k = self.k if k is None else k
        bounds = self.bounds()
        theta0 = np.array(starts, dtype=np.float64)
        thetas, nlls, conv = self.newton(theta0, np.broadcast_to(k, (len(theta0), k.size)))
        order = np.argsort(nlls, kind="stable")
        best: tuple[np.ndarray, float, bool] | None = None
        polished: list[np.ndarray] = []
        for i in order:
            if len(polished) >= n_polish:
                break
            if any(np.allclose(thetas[i], q, rtol=1e-4, atol=1e-6) for q in polished):
                continue
            polished.append(thetas[i])
            res = optimize.minimize(
                self.nll_grad, thetas[i], args=(k,), jac=True, method="L-BFGS-B", bounds=bounds,
                options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-8},
            )
            cand = (np.asarray(res.x, dtype=np.float64), float(res.fun), bool(res.success or conv[i]))
            if float(nlls[i]) < cand[1]:  # L-BFGS-B stopped early: keep the Newton end point
                cand = (thetas[i].copy(), float(nlls[i]), bool(conv[i]))
            if best is None or cand[1] < best[1] - 1e-12:
                best = cand
        assert best is not None
        return best


def _psi(family: str, increasing: bool, x: np.ndarray, alpha: float, beta: float, lapse: float,
         guess: float) -> np.ndarray:
    with np.errstate(all="ignore"):
        if family == "weibull":
            F = -np.expm1(-np.power(np.maximum(x, 0.0) / alpha, beta))
        else:
            F = expit(beta * (x - alpha))
    span = 1.0 - guess - lapse
    return guess + span * (F if increasing else 1.0 - F)


# ============================================================================== results
@dataclass(frozen=True)
class PsychometricFit:
    """Maximum-likelihood psychometric fit (immutable). See the module docstring for the model.

    Attributes:
        family, alpha, beta, lapse, guess, increasing: the fitted function.
        nll: binomial negative log-likelihood at the optimum (with the ``log C(n, k)`` constant).
        deviance: ``2 (nll - nll_saturated)``; approximately chi-square with ``df`` under a good fit.
        aic: ``2 n_params + 2 nll``.
        n_params: 3 (alpha, beta, lapse) or 2 when the lapse is fixed.
        df: number of conditions minus ``n_params``.
        converged: the winning optimiser run reported success.
        lapse_bounds: the bounds used for the lapse.
        intensity, n_correct, n_trials: the data (tuples), for bootstraps and profiles.
    """

    family: str
    alpha: float
    beta: float
    lapse: float
    guess: float
    increasing: bool
    nll: float
    deviance: float
    aic: float
    n_params: int
    df: int
    converged: bool
    lapse_bounds: tuple[float, float]
    intensity: tuple[float, ...]
    n_correct: tuple[int, ...]
    n_trials: tuple[int, ...]

    @property
    def params(self) -> dict[str, float]:
        return {"alpha": self.alpha, "beta": self.beta}

    @property
    def deviance_p(self) -> float:
        """Goodness-of-fit p-value ``chi2.sf(deviance, df)`` (NaN when df <= 0)."""
        return float(stats.chi2.sf(self.deviance, self.df)) if self.df > 0 else math.nan

    @property
    def lapse_at_bound(self) -> bool:
        lo, hi = self.lapse_bounds
        return hi > lo and (abs(self.lapse - lo) < 1e-6 or abs(self.lapse - hi) < 1e-6)

    def predict(self, x: Any) -> np.ndarray:
        """Probability correct at strengths ``x`` (array-like -> float64 array)."""
        xs = np.asarray(x, dtype=np.float64)
        return _psi(self.family, self.increasing, xs, self.alpha, self.beta, self.lapse, self.guess)

    def mapping(self, scale: float = 1.0, power: float = 1.0) -> Psychometric:
        """The fit as a severity mapping, with severity ``s`` in [0, 1] linked by ``x = scale * s**power``.

        Weibull: ``alpha_s = (alpha / scale) ** (1 / power)``, ``beta_s = beta * power`` (exact).
        Logistic: only ``power = 1``: ``alpha_s = alpha / scale``, ``beta_s = beta * scale``.
        Use :func:`mappings.conversion.severity_link` for an op's ``scale`` and ``power``.

        Raises:
            ValueError: ``increasing=True`` fits, non-positive scale/power, logistic with power != 1.
        """
        if self.increasing:
            raise ValueError(
                "mapping() needs a fit on a severity-like axis (increasing=False); refit with the strength "
                "of mappings.conversion.to_strength"
            )
        for name, v in (("scale", scale), ("power", power)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if self.family == "weibull":
            alpha = (self.alpha / scale) ** (1.0 / power)
            beta = self.beta * power
        else:
            if power != 1.0:
                raise ValueError(f"power must be 1 for the logistic family, got {power!r}")
            alpha, beta = self.alpha / scale, self.beta * scale
        return Psychometric(self.family, {"alpha": alpha, "beta": beta}, guess=self.guess, lapse=self.lapse)

    def confidence_mapping(
        self, num_classes: int, scale: float = 1.0, power: float = 1.0, ceiling: float | None = None
    ) -> Normalized:
        """:class:`~mappings.normalize.Normalized` label-confidence mapping of :meth:`mapping`.

        ``ceiling`` defaults to the fitted accuracy at zero severity, so that c(0) = 1 and
        chance accuracy gives c = 1/K.
        """
        psy = self.mapping(scale, power)
        a0 = float(psy(0.0)) if ceiling is None else ceiling
        return Normalized(psy, self.guess, a0, num_classes)

    def bootstrap(self, n_boot: int = 200, seed: int = 0, level: float = 0.95) -> BootstrapResult:
        """:func:`bootstrap_fit` on this fit's data and settings."""
        return bootstrap_fit(
            self.intensity, self.n_correct, self.n_trials, family=self.family, guess=self.guess,
            lapse_bounds=self.lapse_bounds, increasing=self.increasing, n_boot=n_boot, seed=seed,
            level=level, fit=self,
        )


def _problem(intensity, n_correct, n_trials, family, guess, lapse_bounds, increasing) -> _Problem:
    family = _check_family(family)
    g = _check_guess(guess)
    bounds = _check_lapse_bounds(lapse_bounds, g)
    increasing = _check_bool("increasing", increasing)
    x, k, n = _check_data(intensity, n_correct, n_trials)
    if family == "weibull":
        if np.any(x < 0):
            raise ValueError("intensity must be >= 0 for the weibull family")
        if not np.any(x > 0):
            raise ValueError("intensity must contain a value > 0 for the weibull family")
    return _Problem(x, k, n, g, family, increasing, bounds)


def _make_fit(prob: _Problem, theta: np.ndarray, nll0: float, success: bool) -> PsychometricFit:
    alpha, beta, lapse = prob.unpack(theta)
    nll = nll0 - prob.const
    deviance = max(0.0, 2.0 * (nll0 - prob.saturated_nll()))
    n_cond = int(np.sum(prob.n > 0))
    return PsychometricFit(
        family=prob.family, alpha=alpha, beta=beta, lapse=lapse, guess=prob.guess,
        increasing=prob.increasing, nll=nll, deviance=deviance, aic=2.0 * prob.n_params + 2.0 * nll,
        n_params=prob.n_params, df=n_cond - prob.n_params, converged=success,
        lapse_bounds=prob.lapse_bounds, intensity=tuple(float(v) for v in prob.x),
        n_correct=tuple(int(v) for v in prob.k), n_trials=tuple(int(v) for v in prob.n),
    )


# ============================================================================== API
def fit_psychometric(
    intensity: Any,
    n_correct: Any,
    n_trials: Any,
    *,
    family: str = "weibull",
    guess: float | str,
    lapse_bounds: tuple[float, float] = (0.0, 0.1),
    increasing: bool = False,
    n_starts: int = 4,
    seed: int = 0,
) -> PsychometricFit:
    """Binomial maximum-likelihood fit of a psychometric function to counts.

    Args:
        intensity: per-condition strength ``x`` (severity-like unless ``increasing``; >= 0 for Weibull).
        n_correct, n_trials: per-condition counts (whole numbers, ``0 <= n_correct <= n_trials``).
        family: ``"weibull"`` or ``"logistic"``.
        guess: fixed lower asymptote: a chance level in [0, 1) or a study id (``"geirhos2018"``, ...).
        lapse_bounds: ``(low, high)`` for the fitted lapse; equal bounds fix it.
        increasing: False (default): accuracy falls with ``x``; True: accuracy rises with ``x``.
        n_starts: extra seeded random starting points (on top of a grid of 12-15).
        seed: seed of the random starting points.

    Raises:
        ValueError / TypeError naming the offending argument (empty or mismatched data, counts
        that are negative or exceed the trials, unknown family, guess outside [0, 1), unknown study).
    """
    prob = _problem(intensity, n_correct, n_trials, family, guess, lapse_bounds, increasing)
    n_starts = check_int(n_starts, "n_starts", 0)
    seed = check_int(seed, "seed", 0)
    theta, nll0, ok = prob.minimise(prob.starts(n_starts, seed))
    return _make_fit(prob, theta, nll0, ok)


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Parametric-bootstrap distribution of a fit.

    Attributes:
        fit: the maximum-likelihood fit.
        samples: ``[n_boot, 3]`` array of refitted ``(alpha, beta, lapse)``.
        level: confidence level of :attr:`ci`.
        ci: ``{"alpha" | "beta" | "lapse": (low, high)}`` percentile intervals.
        seed: the seed used.
    """

    fit: PsychometricFit
    samples: np.ndarray
    level: float
    ci: dict[str, tuple[float, float]]
    seed: int

    def confidence_band(self, xs: Any, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise percentile band ``(low, high)`` of the predicted accuracy at strengths ``xs``."""
        level = self.level if level is None else _check_level(level)
        xs = np.asarray(xs, dtype=np.float64)
        f = self.fit
        curves = np.stack(
            [_psi(f.family, f.increasing, xs, a, b, lam, f.guess) for a, b, lam in self.samples]
        )
        q = 50.0 * (1.0 - level)
        return np.percentile(curves, q, axis=0), np.percentile(curves, 100.0 - q, axis=0)


def _check_level(level: Any) -> float:
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    return float(level)


def bootstrap_fit(
    intensity: Any,
    n_correct: Any,
    n_trials: Any,
    *,
    family: str = "weibull",
    guess: float | str,
    lapse_bounds: tuple[float, float] = (0.0, 0.1),
    increasing: bool = False,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    fit: PsychometricFit | None = None,
) -> BootstrapResult:
    """Seeded parametric bootstrap: resample ``k* ~ Binomial(n, psi_hat(x))`` ``n_boot`` times and refit.

    The refits run together (batched projected Fisher scoring from the maximum-likelihood
    estimate, see ``_Problem.newton``); a replicate that does not converge is refitted from the
    whole starting grid with ``scipy.optimize.minimize``. Percentile
    intervals at ``level`` for alpha, beta and lapse; :meth:`BootstrapResult.confidence_band`
    for the curve. ``fit`` may pass an existing fit of the same data (skips the first fit).
    """
    prob = _problem(intensity, n_correct, n_trials, family, guess, lapse_bounds, increasing)
    n_boot = check_int(n_boot, "n_boot", 2)
    seed = check_int(seed, "seed", 0)
    level = _check_level(level)
    if fit is None:
        fit = fit_psychometric(prob.x, prob.k, prob.n, family=prob.family, guess=prob.guess,
                               lapse_bounds=prob.lapse_bounds, increasing=prob.increasing)
    rng = np.random.default_rng(seed)
    p_hat = fit.predict(prob.x)
    theta_hat = prob.pack(fit.alpha, fit.beta, fit.lapse)
    k_star = rng.binomial(prob.n.astype(np.int64), p_hat, size=(n_boot, prob.n.size)).astype(np.float64)
    thetas, _, conv = prob.newton(np.tile(theta_hat, (n_boot, 1)), k_star)
    for b in np.nonzero(~conv)[0]:  # rare: refit from the full set of starting points
        thetas[b], _, _ = prob.minimise([theta_hat] + prob.starts(0, seed), k=k_star[b])
    samples = np.array([prob.unpack(t) for t in thetas])
    q = 50.0 * (1.0 - level)
    lo, hi = np.percentile(samples, q, axis=0), np.percentile(samples, 100.0 - q, axis=0)
    ci = {name: (float(lo[i]), float(hi[i])) for i, name in enumerate(("alpha", "beta", "lapse"))}
    return BootstrapResult(fit=fit, samples=samples, level=level, ci=ci, seed=seed)


def profile_ci(fit: PsychometricFit, level: float = 0.95) -> tuple[float, float]:
    """Profile-likelihood interval for ``alpha``: ``{alpha: 2 (nll_profile(alpha) - nll) <= chi2_1(level)}``.

    For each fixed ``alpha`` the likelihood is maximised over ``beta`` (and ``lapse``). An end that
    is not reached inside the fitting bounds is returned as the bound (Weibull: 0 / inf; logistic:
    -inf / inf).
    """
    if not isinstance(fit, PsychometricFit):
        raise TypeError(f"fit must be a PsychometricFit, got {type(fit).__name__}")
    level = _check_level(level)
    prob = _problem(fit.intensity, fit.n_correct, fit.n_trials, fit.family, fit.guess, fit.lapse_bounds,
                    fit.increasing)
    bounds = prob.bounds()
    theta_hat = prob.pack(fit.alpha, fit.beta, fit.lapse)
    nll_hat = fit.nll + prob.const
    crit = float(stats.chi2.ppf(level, 1))

    def profile(a: float) -> float:
        def sub(rest: np.ndarray) -> tuple[float, np.ndarray]:
            val, grad = prob.nll_grad(np.concatenate([[a], rest]))
            return val, grad[1:]

        res = optimize.minimize(sub, theta_hat[1:], jac=True, method="L-BFGS-B", bounds=bounds[1:],
                                options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-8})
        return 2.0 * (float(res.fun) - nll_hat) - crit

    ends = []
    for edge in (bounds[0][0], bounds[0][1]):
        if profile(edge) < 0:
            ends.append(None)
        else:
            ends.append(optimize.brentq(profile, min(edge, theta_hat[0]), max(edge, theta_hat[0]), xtol=1e-8))
    lo, hi = ends
    if prob.family == "weibull":
        return (0.0 if lo is None else math.exp(lo), math.inf if hi is None else math.exp(hi))
    return (-math.inf if lo is None else float(lo), math.inf if hi is None else float(hi))


@dataclass(frozen=True)
class FamilySelection:
    """Both families fitted to the same data; ``best`` has the lower AIC."""

    fits: tuple[PsychometricFit, ...]
    best: PsychometricFit

    @property
    def aic(self) -> dict[str, float]:
        return {f.family: f.aic for f in self.fits}

    @property
    def delta_aic(self) -> float:
        """AIC of the worse family minus that of the best (>= 0)."""
        values = sorted(f.aic for f in self.fits)
        return values[-1] - values[0]


def select_family(
    intensity: Any,
    n_correct: Any,
    n_trials: Any,
    *,
    guess: float | str,
    lapse_bounds: tuple[float, float] = (0.0, 0.1),
    increasing: bool = False,
    families: tuple[str, ...] = FAMILIES,
) -> FamilySelection:
    """Fit every family of ``families`` and pick the lowest AIC (ties: the first family listed)."""
    if not families:
        raise ValueError("families must not be empty")
    fits = tuple(
        fit_psychometric(intensity, n_correct, n_trials, family=f, guess=guess, lapse_bounds=lapse_bounds,
                         increasing=increasing)
        for f in families
    )
    best = min(fits, key=lambda f: f.aic)
    return FamilySelection(fits=fits, best=best)


@dataclass(frozen=True)
class PoolingTest:
    """Likelihood-ratio test of one pooled psychometric function against one per study.

    ``statistic = 2 (nll_pooled - sum nll_separate)``, chi-square with
    ``df = sum n_params_separate - n_params_pooled`` under the null (all studies share alpha,
    beta, lapse). A small ``p_value`` says the studies differ.
    """

    statistic: float
    df: int
    p_value: float
    pooled: PsychometricFit
    separate: dict[str, PsychometricFit]


def compare_pooled(
    datasets: Any,
    family: str = "weibull",
    *,
    lapse_bounds: tuple[float, float] = (0.0, 0.1),
    increasing: bool = False,
) -> PoolingTest:
    """Likelihood-ratio test: one shared fit for all studies vs one fit per study.

    Args:
        datasets: ``{study: (intensity, n_correct, n_trials, guess)}`` with at least two studies;
            ``guess`` may be omitted (3-tuple) or None, then the study's chance level is looked up in
            :data:`mappings.hvs.CHANCE_BY_STUDY` (ValueError for a study without one). All studies
            must share the same guess (one pooled function has one lower asymptote).
        family, lapse_bounds, increasing: as in :func:`fit_psychometric`, for every fit.
    """
    if not isinstance(datasets, AbcMapping):
        raise TypeError(
            f"datasets must be a dict of study -> (x, k, n, guess), got {type(datasets).__name__}"
        )
    if len(datasets) < 2:
        raise ValueError(f"datasets must hold at least two studies, got {len(datasets)}")
    _check_family(family)
    parts: dict[str, tuple] = {}
    for study, value in datasets.items():
        if not isinstance(value, (tuple, list)) or len(value) not in (3, 4):
            raise TypeError(f"datasets[{study!r}] must be a tuple (x, k, n) or (x, k, n, guess)")
        g = value[3] if len(value) == 4 else None
        if g is None:
            if not isinstance(study, str):
                raise ValueError(f"datasets[{study!r}] has no guess and its key is not a study id")
            g = chance_for_study(study)
        g = _check_guess(g, f"guess of datasets[{study!r}]")
        parts[study] = (*_check_data(*value[:3]), g)
    guesses = {p[3] for p in parts.values()}
    if len(guesses) != 1:
        raise ValueError(
            f"all studies must share one guess (chance level) for a pooled fit, got {sorted(guesses)}"
        )
    guess = guesses.pop()
    separate = {
        study: fit_psychometric(x, k, n, family=family, guess=g, lapse_bounds=lapse_bounds,
                                increasing=increasing)
        for study, (x, k, n, g) in parts.items()
    }
    xs, ks, ns = (np.concatenate([p[i] for p in parts.values()]) for i in range(3))
    pooled = fit_psychometric(xs, ks, ns, family=family, guess=guess, lapse_bounds=lapse_bounds,
                              increasing=increasing)
    statistic = max(0.0, 2.0 * (pooled.nll - sum(f.nll for f in separate.values())))
    df = sum(f.n_params for f in separate.values()) - pooled.n_params
    p_value = float(stats.chi2.sf(statistic, df))
    return PoolingTest(statistic=statistic, df=df, p_value=p_value, pooled=pooled, separate=separate)
