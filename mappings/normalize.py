"""Human (or model) accuracy -> label confidence: rescale [guess, ceiling] onto [1/K, 1].

A human observer in a 16-AFC task is at chance 1/16 when the image carries no information and at
its ceiling ``a0`` (about 0.85-0.9 in Geirhos et al., not 1: lapses, ambiguous images) on
undistorted images. A label confidence should be 1 for an undistorted sample and 1/K (uniform over
the K classes of *our* task) for an uninformative one. :func:`human_to_confidence` maps

    c = 1/K + (1 - 1/K) * clip((acc - g) / (a0 - g), 0, 1)

so ``acc = g`` -> ``1/K``, ``acc = a0`` -> ``1`` and it is linear and non-decreasing in between.
:class:`Normalized` applies the same rescaling to any severity mapping (typically a fitted
:class:`~mappings.Psychometric`, see ``mappings.fit.PsychometricFit.confidence_mapping``), giving a
regular, JSON-serialisable confidence mapping.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mappings.base import Mapping, check_real, from_dict, register

__all__ = ["human_to_confidence", "Normalized"]


def _check_levels(guess: Any, ceiling: Any, num_classes: Any) -> tuple[float, float, int]:
    g = check_real("guess", guess)
    a0 = check_real("ceiling", ceiling)
    if isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if not 0.0 <= g < 1.0:
        raise ValueError(f"guess must be in [0, 1), got {guess!r}")
    if not (math.isfinite(a0) and g < a0 <= 1.0):
        raise ValueError(f"ceiling must be in (guess, 1] = ({g!r}, 1], got {ceiling!r}")
    return g, a0, int(num_classes)


def _rescale_numpy(acc: np.ndarray, g: float, a0: float, k: int) -> np.ndarray:
    floor = 1.0 / k
    return floor + (1.0 - floor) * np.clip((acc - g) / (a0 - g), 0.0, 1.0)


def _rescale_torch(acc: torch.Tensor, g: float, a0: float, k: int) -> torch.Tensor:
    floor = 1.0 / k
    return floor + (1.0 - floor) * torch.clamp((acc - g) / (a0 - g), 0.0, 1.0)


def human_to_confidence(acc, guess: float, ceiling: float, num_classes: int):
    """Label confidence from an accuracy: ``1/K + (1 - 1/K) * clip((acc - g) / (a0 - g), 0, 1)``.

    Args:
        acc: accuracy (or probability correct) in [0, 1]: a python float, a floating numpy
            scalar/array or a floating torch tensor. NaN is rejected.
        guess: chance level ``g`` of the study the accuracy comes from, in [0, 1).
        ceiling: accuracy ``a0`` at zero distortion, in ``(guess, 1]``.
        num_classes: K of the task the label is for, an int >= 2.

    Returns:
        The same kind of object as ``acc`` (float -> float; numpy keeps dtype and shape; torch
        keeps dtype and device), with values in ``[1/K, 1]``.

    Raises:
        TypeError: non-real ``acc``/``guess``/``ceiling``, integer arrays, non-int ``num_classes``.
        ValueError: ``acc`` outside [0, 1] or NaN; ``guess`` outside [0, 1); ``ceiling`` not in
            ``(guess, 1]``; ``num_classes < 2``.
    """
    g, a0, k = _check_levels(guess, ceiling, num_classes)
    if isinstance(acc, torch.Tensor):
        if not acc.is_floating_point():
            raise TypeError(f"acc must be a floating-point tensor, got dtype={acc.dtype}")
        if bool((~((acc >= 0) & (acc <= 1))).any()):
            raise ValueError("acc must be in [0, 1] (NaN not allowed)")
        work = acc.float() if acc.dtype in (torch.float16, torch.bfloat16) else acc
        return _rescale_torch(work, g, a0, k).to(acc.dtype)
    if isinstance(acc, (np.ndarray, np.generic)):
        if not np.issubdtype(acc.dtype, np.floating):
            raise TypeError(f"acc must be a floating-point numpy array, got dtype={acc.dtype}")
        if np.any(~((acc >= 0) & (acc <= 1))):
            raise ValueError("acc must be in [0, 1] (NaN not allowed)")
        out = _rescale_numpy(np.asarray(acc, dtype=np.float64), g, a0, k).astype(acc.dtype, copy=False)
        return out if isinstance(acc, np.ndarray) else out[()]
    value = check_real("acc", acc)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"acc must be in [0, 1] (NaN not allowed), got {acc!r}")
    return float(_rescale_numpy(np.asarray(value), g, a0, k))


@register("normalized")
@dataclass(frozen=True)
class Normalized(Mapping):
    """``c(s) = human_to_confidence(mapping(s), guess, ceiling, num_classes)``.

    Args:
        mapping: any :class:`~mappings.base.Mapping` giving an accuracy in [0, 1] per severity
            (e.g. a fitted :class:`~mappings.Psychometric`, or a :class:`~mappings.Table` of human
            accuracies).
        guess: the accuracy mapped to 1/K (chance of the study), in [0, 1).
        ceiling: the accuracy mapped to 1, in ``(guess, 1]``; use ``mapping(0.0)`` so that an
            undistorted sample gets c = 1.
        num_classes: K (>= 2) of the task the labels are for.

    Values lie in ``[1/K, 1]``; monotone (non-increasing) whenever ``mapping`` is. JSON round trip
    through :func:`~mappings.from_dict` (the inner mapping is stored as its own ``to_dict()``).
    """

    mapping: Mapping
    guess: float
    ceiling: float
    num_classes: int

    def __post_init__(self) -> None:
        if not isinstance(self.mapping, Mapping):
            raise TypeError(f"mapping must be a Mapping, got {type(self.mapping).__name__}")
        g, a0, k = _check_levels(self.guess, self.ceiling, self.num_classes)
        object.__setattr__(self, "guess", g)
        object.__setattr__(self, "ceiling", a0)
        object.__setattr__(self, "num_classes", k)

    @property
    def is_monotone(self) -> bool:
        return self.mapping.is_monotone

    def _numpy(self, s: np.ndarray) -> np.ndarray:
        return _rescale_numpy(self.mapping._numpy(s), self.guess, self.ceiling, self.num_classes)

    def _torch(self, s: torch.Tensor) -> torch.Tensor:
        return _rescale_torch(self.mapping._torch(s), self.guess, self.ceiling, self.num_classes)

    def to_dict(self) -> dict:
        return {
            "type": self.type_name,
            "mapping": self.mapping.to_dict(),
            "guess": self.guess,
            "ceiling": self.ceiling,
            "num_classes": self.num_classes,
        }

    @classmethod
    def _from_dict(cls, params: dict) -> Normalized:
        keys = {"mapping", "guess", "ceiling", "num_classes"}
        if set(params) != keys:
            raise ValueError(
                f"'normalized' dict must have keys {sorted(keys)} (plus 'type'), got {sorted(params)}"
            )
        return cls(from_dict(params["mapping"]), params["guess"], params["ceiling"], params["num_classes"])
