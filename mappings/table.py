"""Piecewise-linear lookup table (severity knots -> confidences), as in the HVS curves of METHOD.md §3.3."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mappings.base import Mapping, register

__all__ = ["Table"]


def _as_float_tuple(name: str, values: Any) -> tuple[float, ...]:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a 1-D sequence of real numbers, got {type(values).__name__}")
    try:
        arr = np.asarray(values)
    except Exception as exc:  # ragged input and the like
        raise TypeError(f"{name} must be a 1-D sequence of real numbers, got {values!r}") from exc
    if arr.ndim != 1 or arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(
            f"{name} must be a 1-D sequence of real numbers, got shape={arr.shape}, dtype={arr.dtype}"
        )
    return tuple(float(v) for v in arr)


@register("table")
@dataclass(frozen=True)
class Table(Mapping):
    """Linear interpolation between ``(severities[i], confidences[i])`` knots (``np.interp`` semantics).

    Below the first knot the first confidence is used, above the last knot the last one (clamped).

    Args:
        severities: at least 2 knots, strictly increasing, each in [0, 1].
        confidences: one value per knot, each finite and in [0, 1]. Need not be monotone (the HVS
            rotation and occlusion curves are not); see :attr:`is_monotone`.

    Both are stored as tuples of python floats, so the object is hashable.
    """

    severities: tuple[float, ...]
    confidences: tuple[float, ...]

    def __post_init__(self) -> None:
        sev = _as_float_tuple("severities", self.severities)
        conf = _as_float_tuple("confidences", self.confidences)
        if len(sev) < 2:
            raise ValueError(f"severities must have at least 2 knots, got {len(sev)}")
        if len(conf) != len(sev):
            raise ValueError(
                f"confidences must have one value per severity knot ({len(sev)}), got {len(conf)}"
            )
        for i, v in enumerate(sev):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"severities must be in [0, 1], got {v!r} at index {i}")
        for i in range(1, len(sev)):
            if not sev[i] > sev[i - 1]:
                raise ValueError(
                    f"severities must strictly increase, got {sev[i - 1]!r} then {sev[i]!r} at index {i}"
                )
        for i, v in enumerate(conf):
            if not (math.isfinite(v) and 0.0 <= v <= 1.0):
                raise ValueError(f"confidences must be finite and in [0, 1], got {v!r} at index {i}")
        object.__setattr__(self, "severities", sev)
        object.__setattr__(self, "confidences", conf)

    @property
    def is_monotone(self) -> bool:
        """True when the confidences never increase from one knot to the next."""
        return all(b <= a for a, b in zip(self.confidences, self.confidences[1:]))

    def _numpy(self, s: np.ndarray) -> np.ndarray:
        return np.interp(s, self.severities, self.confidences)

    def _torch(self, s: torch.Tensor) -> torch.Tensor:
        # Interpolate in float64 on the input's device: knots closer than float32 resolution stay
        # distinct (exactly np.interp semantics); the result is cast back to the input dtype.
        xs = torch.tensor(self.severities, dtype=torch.float64, device=s.device)
        ys = torch.tensor(self.confidences, dtype=torch.float64, device=s.device)
        x = torch.clamp(s.to(torch.float64), min=xs[0], max=xs[-1])
        # Right interval end: index of the first knot > s, kept inside [1, n-1] so that the last
        # knot falls into the last interval (weight 1 on its right end).
        hi = torch.searchsorted(xs, x.contiguous(), right=True).clamp_(1, len(self.severities) - 1)
        lo = hi - 1
        x0, x1, y0, y1 = xs[lo], xs[hi], ys[lo], ys[hi]
        return (y0 + (x - x0) / (x1 - x0) * (y1 - y0)).to(s.dtype)
