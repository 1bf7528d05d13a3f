"""Base class of every confidence mapping (severity in [0, 1] -> label confidence in [0, 1]).

A mapping is a small immutable value object. Calling it on a severity returns the confidence of
the true class for a sample augmented with that severity (METHOD.md §1.5, §3). Subclasses only
implement the arithmetic (:meth:`Mapping._numpy` on float64 arrays, :meth:`Mapping._torch` on
float32/float64 tensors); this module does the input checking, the dtype/device bookkeeping and the
JSON round trip (:meth:`Mapping.to_dict` / :func:`from_dict`).

Accepted severities (all in [0, 1], NaN rejected):

- a python ``float``/``int`` -> python ``float``;
- a numpy floating scalar or array (float16/32/64) -> the same type and dtype (computed in float64);
- a torch floating tensor (float16/bfloat16/float32/float64) -> the same dtype and device (computed
  in float64 on the tensor's device, then cast back).

Integer or boolean arrays/tensors raise ``TypeError`` naming ``severity``.
"""

from __future__ import annotations

import abc
import dataclasses
import numbers
from typing import Any, ClassVar

import numpy as np
import torch

__all__ = ["Mapping", "from_dict", "register", "check_severity", "check_real", "check_num_classes", "check_int", "known_types"]

#: type name -> class with a ``_from_dict`` classmethod (mappings and MappingSet).
_REGISTRY: dict[str, type] = {}

_HALF_DTYPES = (torch.float16, torch.bfloat16)


def register(type_name: str):
    """Class decorator: let :func:`from_dict` rebuild ``type_name`` (the ``"type"`` key of ``to_dict``)."""

    def decorate(cls: type) -> type:
        if type_name in _REGISTRY:
            raise ValueError(f"mapping type {type_name!r} is already registered by {_REGISTRY[type_name]!r}")
        cls.type_name = type_name
        _REGISTRY[type_name] = cls
        return cls

    return decorate


def known_types() -> list[str]:
    """Sorted ``"type"`` names that :func:`from_dict` understands."""
    return sorted(_REGISTRY)


def from_dict(d: Any):
    """Rebuild a mapping (or a ``MappingSet``) from the dict produced by its ``to_dict()``.

    Raises:
        TypeError: ``d`` is not a dict.
        ValueError: missing or unknown ``"type"`` (the message lists the known types), or
            unexpected/missing parameters.
    """
    if not isinstance(d, dict):
        raise TypeError(f"d must be a dict produced by to_dict(), got {type(d).__name__}")
    type_name = d.get("type")
    cls = _REGISTRY.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise ValueError(f"unknown mapping type {type_name!r}; known types: {known_types()}")
    return cls._from_dict({k: v for k, v in d.items() if k != "type"})


def check_real(name: str, value: Any) -> float:
    """``value`` as a python float; ``TypeError`` naming ``name`` unless it is a real number (not a bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    return float(value)


def check_int(value: object, name: str, minimum: int = 0) -> int:
    """Validate an integer field ``name`` >= ``minimum`` (numpy integers accepted, bools refused).

    ``TypeError`` for a non-integer, ``ValueError`` below ``minimum``; the message names the field, the
    value and what is allowed. The one integer validator of ``mappings`` and ``harness``.
    """
    allowed = "a non-negative int" if minimum == 0 else f"an int >= {minimum}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {allowed}, got {type(value).__name__} {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def check_num_classes(num_classes: object) -> int:
    """Validate K (number of classes), an int >= 2: ``TypeError`` for a non-int, ``ValueError`` below 2."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes}")
    return num_classes


def _range_error(value: Any) -> ValueError:
    return ValueError(f"severity must be in [0, 1] (NaN not allowed), got {value!r}")


def check_severity(severity: Any) -> None:
    """Raise unless every severity is a floating value in [0, 1].

    ``TypeError`` (naming ``severity``) for integer/bool arrays and unsupported types;
    ``ValueError`` naming ``severity``, the first offending value and the range [0, 1] otherwise.
    For tensors this costs one device synchronisation.
    """
    if isinstance(severity, torch.Tensor):
        if not severity.is_floating_point():
            raise TypeError(f"severity must be a floating-point tensor, got dtype={severity.dtype}")
        bad = ~((severity >= 0) & (severity <= 1))  # NaN compares False -> bad
        if bool(bad.any()):
            raise _range_error(float(severity[bad].flatten()[0]))
        return
    if isinstance(severity, (np.ndarray, np.generic)):
        if not np.issubdtype(severity.dtype, np.floating):
            raise TypeError(f"severity must be a floating-point numpy array, got dtype={severity.dtype}")
        bad = ~((severity >= 0) & (severity <= 1))
        if np.any(bad):
            raise _range_error(float(np.asarray(severity)[bad].flat[0]))
        return
    if isinstance(severity, bool) or not isinstance(severity, numbers.Real):
        raise TypeError(
            "severity must be a float, a floating numpy array or a floating torch tensor, "
            f"got {type(severity).__name__}"
        )
    if not 0.0 <= float(severity) <= 1.0:
        raise _range_error(float(severity))


class Mapping(abc.ABC):
    """A severity -> confidence function on [0, 1] (abstract base).

    Subclasses are frozen dataclasses decorated with :func:`register`; they implement
    :meth:`_numpy`, :meth:`_torch` and :attr:`is_monotone`. Constructor parameters are validated
    eagerly (``ValueError`` naming the parameter, its value and the allowed range).
    """

    type_name: ClassVar[str] = ""

    # ----------------------------------------------------------------- subclass hooks
    @abc.abstractmethod
    def _numpy(self, s: np.ndarray) -> np.ndarray:
        """Confidence for a float64 array of valid severities (float64 out, same shape)."""

    @abc.abstractmethod
    def _torch(self, s: torch.Tensor) -> torch.Tensor:
        """Confidence for a float32/float64 tensor of valid severities (same dtype and device)."""

    @property
    @abc.abstractmethod
    def is_monotone(self) -> bool:
        """True when the confidence is non-increasing in severity on [0, 1]."""

    # ----------------------------------------------------------------- evaluation
    def __call__(self, severity):
        """Confidence(s) in [0, 1] for ``severity`` in [0, 1]; same type, dtype and device as the input."""
        check_severity(severity)
        if isinstance(severity, torch.Tensor):
            return self._eval_torch(severity)
        if isinstance(severity, (np.ndarray, np.generic)):
            out = self._numpy(np.asarray(severity, dtype=np.float64)).astype(severity.dtype, copy=False)
            return out if isinstance(severity, np.ndarray) else out[()]
        return float(self._numpy(np.asarray(float(severity), dtype=np.float64)))

    def _eval_torch(self, s: torch.Tensor) -> torch.Tensor:
        """Unchecked torch evaluation keeping dtype/device (computed in float64 on the device, cast back)."""
        if s.dtype != torch.float64:
            # Compute in float64 like the numpy path (severities are small [N] vectors, so this is
            # cheap): float32 pow on subnormal severities differs from float64 by up to ~3e-5.
            return self._torch(s.double()).to(s.dtype)
        return self._torch(s)

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        """JSON-serialisable ``{"type": ..., <parameters>}``; :func:`from_dict` rebuilds an equal object."""
        params = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return {"type": self.type_name, **{k: _jsonable(v) for k, v in params.items()}}

    @classmethod
    def _from_dict(cls, params: dict):
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        names = [f.name for f in fields]
        required = [f.name for f in fields if f.default is dataclasses.MISSING]
        unexpected = sorted(set(params) - set(names))
        missing = [n for n in required if n not in params]
        if unexpected or missing:
            raise ValueError(
                f"{cls.type_name!r} dict must have keys {names} (plus 'type'); "
                f"unexpected: {unexpected}, missing: {missing}"
            )
        return cls(**params)


def _jsonable(value: Any) -> Any:
    """Tuples (stored for hashability) become JSON lists; parameters are finite floats/str already."""
    return [_jsonable(v) for v in value] if isinstance(value, tuple) else value
