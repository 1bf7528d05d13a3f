"""Polynomial softening curve ``c = 1 - (1 - p_min) * x**k`` (METHOD.md §1.5).

This is the mapping family of the reference code for TrivialAugment (§3.1, §3.2, §3.3.4), soft
random erasing (§2.3), soft crop (§2.5) and noise injection (§2.4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mappings.base import Mapping, check_real, register

__all__ = ["Polynomial"]


@register("polynomial")
@dataclass(frozen=True)
class Polynomial(Mapping):
    """``c(s) = 1 - (1 - p_min) * x**k`` with ``x = min(s / s_max, 1)``.

    Args:
        p_min: confidence at (and beyond) ``s = s_max``; in [0, 1].
        k: exponent, finite and > 0 (k = 1 linear; k > 1 gentle at low severity; k < 1 steep).
        s_max: severity at which the curve reaches ``p_min``, in (0, 1]; 1 by default. The
            ``smoothened`` Posterize curve uses 0.75 because its x = 1 - (bits-2)/6 = s / 0.75.

    Always non-increasing in severity; ``c(0) = 1`` and the range on [0, 1] is ``[p_min, 1]``.
    """

    p_min: float
    k: float
    s_max: float = 1.0

    def __post_init__(self) -> None:
        p_min = check_real("p_min", self.p_min)
        k = check_real("k", self.k)
        s_max = check_real("s_max", self.s_max)
        if not 0.0 <= p_min <= 1.0:
            raise ValueError(f"p_min must be in [0, 1], got {self.p_min!r}")
        if not (k > 0.0 and math.isfinite(k)):
            raise ValueError(f"k must be finite and > 0 (range (0, inf)), got {self.k!r}")
        if not 0.0 < s_max <= 1.0:
            raise ValueError(f"s_max must be in (0, 1], got {self.s_max!r}")
        object.__setattr__(self, "p_min", p_min)
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "s_max", s_max)

    @property
    def is_monotone(self) -> bool:
        return True

    def _numpy(self, s: np.ndarray) -> np.ndarray:
        x = np.minimum(s / self.s_max, 1.0)
        return 1.0 - (1.0 - self.p_min) * np.power(x, self.k)

    def _torch(self, s: torch.Tensor) -> torch.Tensor:
        x = torch.clamp(s / self.s_max, max=1.0)
        return 1.0 - (1.0 - self.p_min) * torch.pow(x, self.k)
