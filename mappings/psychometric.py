"""Psychometric functions: probability correct as a decreasing function of severity.

Used to fit human (HVS) or proxy-model accuracy curves with a parametric form instead of the
piecewise-linear ``np.interp`` lists of METHOD.md §3.3.2 (the fitting itself lives elsewhere).
"""

from __future__ import annotations

import math
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.special import expit

from mappings.base import Mapping, check_real, register

__all__ = ["Psychometric", "PSYCHOMETRIC_FAMILIES"]

#: Supported sigmoid families.
PSYCHOMETRIC_FAMILIES: tuple[str, ...] = ("logistic", "weibull")

_PARAM_NAMES = ("alpha", "beta")


def _as_dict(params: Any) -> dict | None:
    """``params`` as a dict (from a mapping or a sequence of pairs), or None if it is neither."""
    if isinstance(params, AbcMapping):
        return dict(params)
    if isinstance(params, (tuple, list)):
        try:
            return dict(params)
        except (TypeError, ValueError):
            return None
    return None


@register("psychometric")
@dataclass(frozen=True)
class Psychometric(Mapping):
    """``psi(s) = guess + (1 - guess - lapse) * (1 - F(s))``.

    Computed as ``1 - lapse - (1 - guess - lapse) * F(s)`` so that F = 0 gives exactly 1 - lapse.

    Families (``s`` = severity in [0, 1]):

    - ``"logistic"``: ``F(s) = 1 / (1 + exp(-beta * (s - alpha)))``; ``alpha`` (finite, severity
      units) is the 50 % point of F, ``beta`` > 0 the slope (1/severity units).
    - ``"weibull"``: ``F(s) = 1 - exp(-(s / alpha) ** beta)``; ``alpha`` > 0 is the scale
      (severity units, F(alpha) = 1 - 1/e), ``beta`` > 0 the shape.

    Args:
        family: one of :data:`PSYCHOMETRIC_FAMILIES`.
        params: mapping with exactly the keys ``alpha`` and ``beta`` (stored as the sorted tuple
            ``(("alpha", a), ("beta", b))`` so that the object is immutable and hashable; read them
            back with :attr:`alpha` / :attr:`beta` or ``dict(params)``).
        guess: lower asymptote (chance level), in [0, 1).
        lapse: 1 minus the upper asymptote, in [0, 1); ``guess + lapse < 1``.

    Always non-increasing in severity, with values in ``[guess, 1 - lapse]``. Note the value at
    zero severity: ``c(0) = 1 - lapse`` exactly for Weibull, but ``c(0) < 1 - lapse < 1`` for the
    logistic family (its F(0) > 0). A label confidence wants c(0) = 1; that normalisation is
    left to the fitting code.
    """

    family: str
    params: tuple[tuple[str, float], ...]
    guess: float = 0.0
    lapse: float = 0.0

    def __post_init__(self) -> None:
        if self.family not in PSYCHOMETRIC_FAMILIES:
            raise ValueError(f"family must be one of {list(PSYCHOMETRIC_FAMILIES)}, got {self.family!r}")
        params = _as_dict(self.params)
        if params is None or sorted(params) != list(_PARAM_NAMES):
            raise ValueError(
                f"params must be a mapping with exactly the keys {list(_PARAM_NAMES)}, got {self.params!r}"
            )
        alpha = check_real("alpha", params["alpha"])
        beta = check_real("beta", params["beta"])
        if self.family == "weibull":
            if not (alpha > 0.0 and math.isfinite(alpha)):
                raise ValueError(f"alpha must be finite and > 0 for the weibull family, got {alpha!r}")
        elif not math.isfinite(alpha):
            raise ValueError(
                f"alpha must be finite (range (-inf, inf)) for the logistic family, got {alpha!r}"
            )
        if not (beta > 0.0 and math.isfinite(beta)):
            raise ValueError(f"beta must be finite and > 0 (range (0, inf)), got {beta!r}")
        guess = check_real("guess", self.guess)
        lapse = check_real("lapse", self.lapse)
        if not 0.0 <= guess < 1.0:
            raise ValueError(f"guess must be in [0, 1), got {self.guess!r}")
        if not 0.0 <= lapse < 1.0:
            raise ValueError(f"lapse must be in [0, 1), got {self.lapse!r}")
        if not guess + lapse < 1.0:
            raise ValueError(f"guess + lapse must be < 1, got guess={guess!r}, lapse={lapse!r}")
        object.__setattr__(self, "params", (("alpha", alpha), ("beta", beta)))
        object.__setattr__(self, "guess", guess)
        object.__setattr__(self, "lapse", lapse)

    @property
    def alpha(self) -> float:
        return self.params[0][1]

    @property
    def beta(self) -> float:
        return self.params[1][1]

    @property
    def is_monotone(self) -> bool:
        return True

    def to_dict(self) -> dict:
        return {
            "type": self.type_name,
            "family": self.family,
            "params": dict(self.params),
            "guess": self.guess,
            "lapse": self.lapse,
        }

    @property
    def _span(self) -> float:
        return 1.0 - self.guess - self.lapse

    def _numpy(self, s: np.ndarray) -> np.ndarray:
        if self.family == "logistic":
            f = expit(self.beta * (s - self.alpha))
        else:
            with np.errstate(over="ignore"):  # (s/alpha)**beta may overflow to inf -> F = 1
                f = -np.expm1(-np.power(s / self.alpha, self.beta))
        return 1.0 - self.lapse - self._span * f

    def _torch(self, s: torch.Tensor) -> torch.Tensor:
        if self.family == "logistic":
            f = torch.sigmoid(self.beta * (s - self.alpha))
        else:
            f = -torch.expm1(-torch.pow(s / self.alpha, self.beta))
        return 1.0 - self.lapse - self._span * f
