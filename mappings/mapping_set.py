"""Per-op confidence mappings for TrivialAugment, with the chance floor (METHOD.md §1.4, §2.2, §3).

A :class:`MappingSet` is keyed by the op names of an :class:`~mappings.ops.OpVocabulary` (plain
data; default :data:`~mappings.ops.TRIVIAL_AUGMENT_WIDE`). It needs the ops' names and
signedness only; magnitudes and severities are computed by the augmentation that calls it.
"""

from __future__ import annotations

import math
import numbers
import types
from collections.abc import Mapping as AbcMapping
from typing import Any

import numpy as np
import torch

from mappings.base import Mapping, check_num_classes, check_severity, from_dict, register
from mappings.ops import TRIVIAL_AUGMENT_WIDE, OpVocabulary

__all__ = ["MappingSet"]

_SIGNS = ("+", "-")


def _parse_key(key: Any, ops: OpVocabulary) -> tuple[str, str | None]:
    """``"Op"`` -> ``("Op", None)``; ``"Op+"`` / ``"Op-"`` -> ``("Op", "+"/"-")``; ValueError otherwise."""
    if not isinstance(key, str):
        raise TypeError(f"mappings keys must be str op names, got {key!r}")
    op, sign = (key[:-1], key[-1]) if key[-1:] in _SIGNS else (key, None)
    if op not in ops:
        raise ValueError(
            f"mappings key {key!r} is not an op name (optionally followed by '+' or '-'); "
            f"allowed ops: {list(ops.names)}"
        )
    if sign is not None and op not in ops.signed:
        raise ValueError(
            f"mappings key {key!r}: {op} has no signed magnitude, use the key {op!r}; "
            f"signed ops: {sorted(ops.signed)}"
        )
    return op, sign


def _vocabulary_to_dict(ops: OpVocabulary) -> dict:
    return {"names": list(ops.names), "signed": sorted(ops.signed), "magnitude_free": sorted(ops.magnitude_free)}


def _vocabulary_from_dict(d: Any) -> OpVocabulary:
    if not isinstance(d, dict) or set(d) != {"names", "signed", "magnitude_free"} or not all(
        isinstance(v, list) for v in d.values()
    ):
        raise ValueError(
            "'mapping_set' key 'ops' must be a dict with the list keys ['magnitude_free', 'names', 'signed'], "
            f"got {d!r}"
        )
    return OpVocabulary(tuple(d["names"]), frozenset(d["signed"]), frozenset(d["magnitude_free"]))


@register("mapping_set")
class MappingSet:
    """Confidence of a TrivialAugment sample from its (op, signed magnitude, severity).

    Args:
        mappings: dict from key to :class:`~mappings.base.Mapping`. A key is an op name of
            ``ops.names`` (the mapping applies to both signs) or ``"Op+"`` / ``"Op-"`` for a signed op
            (applies when the signed magnitude is >= 0 / < 0; a magnitude of 0 counts as ``+``).
            An op and its signed keys may not both be given. Ops (or signs) not listed keep hard
            labels, c = 1. Mappings must be hashable (all built-in ones are frozen).
        num_classes: K, an int >= 2. Every confidence is floored at ``1/K`` (METHOD §1.4).
        name: free-form label (the preset name for presets).
        sources: optional provenance per op (key: op name or ``"Op+"`` / ``"Op-"``; value: a short
            string such as ``"hvs:contrast"``, ``"proxy"``, ``"ssim"`` or ``"polynomial"``), recorded by
            fitted mapping sets and kept in the JSON round trip.
        ops: the op vocabulary (names, signed ops) the keys and op ids refer to; an op id is an
            index into ``ops.names``. Default :data:`~mappings.ops.TRIVIAL_AUGMENT_WIDE`; any other
            vocabulary is written to (and read back from) the JSON under ``"ops"``.

    Immutable and hashable; equal when name, K, mappings, sources and vocabulary are equal.
    """

    __slots__ = ("_name", "_num_classes", "_mappings", "_rules", "_sources", "_ops")

    def __init__(
        self,
        mappings: dict,
        num_classes: int,
        name: str = "custom",
        sources: dict | None = None,
        ops: OpVocabulary = TRIVIAL_AUGMENT_WIDE,
    ) -> None:
        if not isinstance(ops, OpVocabulary):
            raise TypeError(f"ops must be a mappings.ops.OpVocabulary, got {type(ops).__name__}")
        if not isinstance(mappings, AbcMapping):
            raise TypeError(f"mappings must be a dict of key -> Mapping, got {type(mappings).__name__}")
        num_classes = check_num_classes(num_classes)
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str, got {name!r}")
        rules: list[tuple[int, str | None, Mapping]] = []
        seen: dict[str, str] = {}
        for key, mapping in mappings.items():
            op, sign = _parse_key(key, ops)
            if not isinstance(mapping, Mapping):
                raise TypeError(f"mappings[{key!r}] must be a Mapping, got {type(mapping).__name__}")
            for s in (sign,) if sign else _SIGNS:
                if op + s in seen:
                    raise ValueError(
                        f"mappings keys {seen[op + s]!r} and {key!r} both cover {op} with sign {s!r}"
                    )
                seen[op + s] = key
            rules.append((ops.op_id(op), sign, mapping))
        # Canonical order (vocabulary order, unsigned before '+' before '-') for eq/hash/to_dict.
        rules.sort(key=lambda r: (r[0], (None, "+", "-").index(r[1])))
        object.__setattr__(self, "_rules", tuple(rules))
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_ops", ops)
        src = {} if sources is None else sources
        if not isinstance(src, AbcMapping):
            raise TypeError(f"sources must be a dict of op key -> str or None, got {type(src).__name__}")
        for key, value in src.items():
            _parse_key(key, ops)
            if not isinstance(value, str) or not value:
                raise ValueError(f"sources[{key!r}] must be a non-empty str, got {value!r}")
        object.__setattr__(self, "_sources", tuple(sorted(src.items())))
        object.__setattr__(self, "_num_classes", num_classes)
        object.__setattr__(
            self, "_mappings", {ops.names[i] + (sign or ""): m for i, sign, m in self._rules}
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    # ----------------------------------------------------------------- properties
    @property
    def name(self) -> str:
        return self._name

    @property
    def sources(self) -> dict[str, str]:
        """Provenance per op key (empty for presets)."""
        return dict(self._sources)

    @property
    def ops(self) -> OpVocabulary:
        """The op vocabulary whose names are the keys (op id = index into ``ops.names``)."""
        return self._ops

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def floor(self) -> float:
        """Lowest confidence returned, ``1 / num_classes`` (chance)."""
        return 1.0 / self._num_classes

    @property
    def mappings(self) -> types.MappingProxyType:
        """Read-only view ``key -> Mapping`` in canonical (``ops.names``) order."""
        return types.MappingProxyType(self._mappings)

    def mapping_for(self, op: str, magnitude: float) -> Mapping | None:
        """The mapping used for ``op`` at the signed ``magnitude``, or None (hard label)."""
        index = self._ops.op_id(op)
        negative = magnitude < 0
        for i, sign, mapping in self._rules:
            if i == index and (sign is None or (sign == "-") == negative):
                return mapping
        return None

    # ----------------------------------------------------------------- evaluation
    def confidence(self, op: str, magnitude: float, severity: float) -> float:
        """Scalar confidence in ``[1/K, 1]`` of one sample (python floats in and out).

        Args:
            op: op name in ``ops.names``.
            magnitude: signed magnitude in the op's unit (only its sign is used here).
            severity: normalised severity in [0, 1] (see ``harness.augment.space``).
        """
        magnitude = _check_magnitude(magnitude)
        check_severity(severity)
        if isinstance(severity, (np.ndarray, np.generic)) and np.ndim(severity) != 0:
            raise TypeError(f"severity must be a scalar, got an array of shape {np.shape(severity)}")
        mapping = self.mapping_for(op, magnitude)
        c = 1.0 if mapping is None else float(mapping(float(severity)))
        return max(c, self.floor)

    def __call__(self, op_ids, magnitudes, severities):
        """Vectorised confidences of a batch.

        Args:
            op_ids: integer tensor [N] of indices into ``ops.names``.
            magnitudes: real tensor [N] of signed magnitudes in each op's unit (only the sign is used).
            severities: floating tensor [N] in [0, 1].

            All three may instead be numpy arrays (then a numpy array is returned).

        Returns:
            float32 tensor [N] in ``[1/K, 1]`` on the device of ``severities`` (numpy float32 for
            numpy inputs). Mappings are evaluated in the severities' precision (float64 stays
            float64, half is promoted to float32) before the cast to float32.
        """
        arrays = (op_ids, magnitudes, severities)
        if all(isinstance(a, np.ndarray) for a in arrays):
            check_severity(severities)  # numpy-worded TypeError for integer severities
            out = self(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))
            return out.numpy()
        for arg, value in zip(("op_ids", "magnitudes", "severities"), arrays):
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"{arg} must be a torch.Tensor (or all three numpy arrays), got {type(value).__name__}"
                )
        if op_ids.dtype == torch.bool or op_ids.is_floating_point() or op_ids.is_complex():
            raise TypeError(f"op_ids must be an integer tensor, got dtype={op_ids.dtype}")
        if magnitudes.dtype == torch.bool or magnitudes.is_complex():
            raise TypeError(f"magnitudes must be a real-valued tensor, got dtype={magnitudes.dtype}")
        if not (op_ids.ndim == 1 and op_ids.shape == magnitudes.shape == severities.shape):
            raise ValueError(
                "op_ids, magnitudes and severities must be 1-D of equal length, got shapes "
                f"{tuple(op_ids.shape)}, {tuple(magnitudes.shape)}, {tuple(severities.shape)}"
            )
        check_severity(severities)
        device = severities.device
        ops = op_ids.to(device)
        mags = magnitudes.to(device)
        bad = (ops < 0) | (ops >= len(self._ops))
        if mags.is_floating_point():
            bad = bad | torch.isnan(mags)
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0])
            raise ValueError(
                f"op_ids must lie in [0, {len(self._ops) - 1}] and magnitudes must not be NaN; "
                f"got op_id={int(ops[i])}, magnitude={float(mags[i])} at index {i}"
            )
        conf = torch.ones(severities.shape, dtype=torch.float32, device=device)
        negative = mags < 0
        values: dict[Mapping, torch.Tensor] = {}  # presets share one mapping between many keys
        for index, sign, mapping in self._rules:
            mask = ops == index
            if sign is not None:
                mask = mask & (negative if sign == "-" else ~negative)
            if mapping not in values:
                values[mapping] = mapping._eval_torch(severities).to(torch.float32)
            conf = torch.where(mask, values[mapping], conf)
        return conf.clamp_(min=self.floor)

    # ----------------------------------------------------------------- serialisation / dunder
    def to_dict(self) -> dict:
        """JSON-serialisable ``{"type": "mapping_set", "name", "num_classes", "mappings": {key: dict}}``.

        Plus ``"sources"`` when provenance was recorded and ``"ops"`` (``{"names", "signed",
        "magnitude_free"}``) when the vocabulary is not :data:`~mappings.ops.TRIVIAL_AUGMENT_WIDE`
        (so TrivialAugment sets serialise exactly as before the vocabulary became data).
        """
        return {
            "type": self.type_name,
            "name": self._name,
            "num_classes": self._num_classes,
            "mappings": {key: m.to_dict() for key, m in self._mappings.items()},
            **({"sources": dict(self._sources)} if self._sources else {}),
            **({"ops": _vocabulary_to_dict(self._ops)} if self._ops != TRIVIAL_AUGMENT_WIDE else {}),
        }

    @classmethod
    def _from_dict(cls, params: dict) -> MappingSet:
        keys = set(params) - {"sources", "ops"}
        if keys != {"name", "num_classes", "mappings"} or not isinstance(params["mappings"], dict):
            raise ValueError(
                "'mapping_set' dict must have the keys ['mappings', 'name', 'num_classes'] (plus 'type' and "
                f"optional 'sources', 'ops') with 'mappings' a dict, got keys {sorted(params)}"
            )
        ops = _vocabulary_from_dict(params["ops"]) if "ops" in params else TRIVIAL_AUGMENT_WIDE
        mappings = {key: from_dict(d) for key, d in params["mappings"].items()}
        return cls(mappings, params["num_classes"], name=params["name"], sources=params.get("sources"), ops=ops)

    def _key(self) -> tuple:
        return (self._name, self._num_classes, tuple(self._mappings.items()), self._sources, self._ops)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MappingSet):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        body = ", ".join(f"{k!r}: {m!r}" for k, m in self._mappings.items())
        ops = "" if self._ops == TRIVIAL_AUGMENT_WIDE else f", ops={self._ops!r}"
        return f"MappingSet({{{body}}}, num_classes={self._num_classes}, name={self._name!r}{ops})"


def _check_magnitude(magnitude: Any) -> float:
    if isinstance(magnitude, (bool, np.bool_)) or not isinstance(magnitude, numbers.Real):
        raise TypeError(f"magnitude must be a real number, got {magnitude!r}")
    if math.isnan(float(magnitude)):
        raise ValueError(f"magnitude must not be NaN, got {magnitude!r}")
    return float(magnitude)
