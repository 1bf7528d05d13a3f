"""What the per-sample and the batched soft TrivialAugment share: arguments, validation, the
sampling tables built from the op table, and the confidence mapping.

:class:`TrivialAugmentBase` is mixed into :class:`harness.augment.trivial.SoftTrivialAugment`
(a :class:`~harness.augment._common.SampleStage`) and
:class:`harness.augment.batch_trivial.BatchSoftAugment` (a
:class:`~harness.augment._common.BatchStage`); both dispatch every op from
:data:`harness.augment.ops.TA_TABLE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

import mappings
from harness.augment._common import check_num_classes
from harness.augment.ops import TA_OPS, TA_TABLE, op_id

__all__ = [
    "FillType",
    "TrivialAugmentBase",
    "check_num_bins",
    "convert_fill",
    "resolve_mapping",
    "validate_ops",
]

FillType = float | int | Sequence[float] | None


def convert_fill(fill: FillType) -> float | list[float] | None:
    """Fill as torchvision stores it: None, a number, or a list of floats."""
    if fill is None or isinstance(fill, (int, float)):
        if isinstance(fill, bool):
            raise TypeError(f"fill must be None, a number or a sequence of numbers, got {fill!r}")
        return fill
    if isinstance(fill, (str, bytes)) or not isinstance(fill, Sequence):
        raise TypeError(f"fill must be None, a number or a sequence of numbers, got {fill!r}")
    return [float(v) for v in fill]


def check_num_bins(num_magnitude_bins: object) -> int:
    """Validate the number of magnitude bins, an int >= 2."""
    n = num_magnitude_bins
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"num_magnitude_bins must be an int >= 2, got {num_magnitude_bins!r}")
    return num_magnitude_bins


def validate_ops(ops: Sequence[str] | None) -> tuple[str, ...]:
    """Validate an op subset (the paper's ``selected_transforms``); ``None`` = all 14 ops.

    The given order is kept (it defines which op an RNG draw selects). Raises ``ValueError``
    for an empty list, unknown names or duplicates, ``TypeError`` for a non-sequence.
    """
    if ops is None:
        return TA_OPS
    if isinstance(ops, (str, bytes)) or not isinstance(ops, Sequence):
        raise TypeError(f"ops must be a sequence of op names from {list(TA_OPS)}, got {ops!r}")
    ops = tuple(ops)
    if not ops:
        raise ValueError("ops must name at least one op")
    for name in ops:
        op_id(name)  # ValueError naming the allowed ops
    if len(set(ops)) != len(ops):
        raise ValueError(f"ops must not contain duplicates, got {list(ops)}")
    return ops


def resolve_mapping(mapping: Any, num_classes: int, hard: bool) -> Any:
    """Turn ``mapping`` (a preset name, a MappingSet, or None when ``hard``) into a MappingSet.

    A MappingSet is any object with ``num_classes``, ``confidence(op, magnitude, severity)``
    and ``__call__(op_ids, magnitudes, severities)`` (see ``mappings``).
    """
    if mapping is None:
        if hard:
            return None
        raise ValueError(
            "mapping must be a preset name or a MappingSet (None is only allowed with hard=True)"
        )
    if isinstance(mapping, str):
        return mappings.preset(mapping, num_classes)
    if not (callable(mapping) and hasattr(mapping, "num_classes") and hasattr(mapping, "confidence")):
        raise TypeError(
            "mapping must be a preset name or a MappingSet (callable with .num_classes and .confidence), "
            f"got {type(mapping).__name__}"
        )
    if mapping.num_classes != num_classes:
        raise ValueError(
            f"mapping.num_classes ({mapping.num_classes}) must equal num_classes ({num_classes})"
        )
    return mapping


class TrivialAugmentBase:
    """Arguments, validation, sampling tables and confidences of soft TrivialAugmentWide.

    Args:
        num_classes: K >= 2 (confidences are floored at 1/K by the mapping).
        mapping: a ``mappings.preset`` name (``"polynomial_chance"``, ``"polynomial_custom"``,
            ``"exact_hvs"``, ``"smoothened"``) or a MappingSet whose ``num_classes`` equals
            ``num_classes``. May be None only with ``hard=True``.
        hard: record provenance but report confidence 1.0 (plain TrivialAugment).
        num_magnitude_bins: number of magnitude bins (31 = TrivialAugmentWide).
        ops: optional subset of op names to sample from uniformly (the paper's
            ``selected_transforms``); default all 14 ops in torchvision order.
        fill: fill of the geometric ops: None (zeros, TA's default), a number or one value per
            channel, in the images' units.

    Attributes set here: ``num_classes``, ``hard``, ``num_magnitude_bins``, ``ops``, ``fill``,
    ``mapping``; ``_table`` (float32 [14, bins], row ``op_id`` = that op's unsigned magnitudes,
    zeros for magnitude-free ops), ``_signed`` (bool [14]), ``_op_lookup`` (int64 ids of ``ops``)
    and ``_device_tables`` (their copies per device, filled by the batched path).
    """

    stage = "trivial_augment"

    def __init__(
        self,
        num_classes: int,
        mapping: Any = "polynomial_chance",
        *,
        hard: bool = False,
        num_magnitude_bins: int = 31,
        ops: Sequence[str] | None = None,
        fill: FillType = None,
    ) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.hard = bool(hard)
        self.num_magnitude_bins = check_num_bins(num_magnitude_bins)
        self.ops = validate_ops(ops)
        self.fill = convert_fill(fill)
        self.mapping = resolve_mapping(mapping, self.num_classes, self.hard)
        table = torch.zeros(len(TA_TABLE), num_magnitude_bins, dtype=torch.float32)
        for row in TA_TABLE:
            if row.bins is not None:
                table[row.op_id] = row.bins(num_magnitude_bins)
        self._table = table
        self._signed = torch.tensor([row.signed for row in TA_TABLE])
        self._op_lookup = torch.tensor([op_id(name) for name in self.ops], dtype=torch.int64)
        self._device_tables: dict[torch.device, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _confidence(self, op: str, magnitude: float, severity: float) -> float:
        """Confidence of one sample (1.0 when ``hard``)."""
        if self.hard:
            return 1.0
        return float(self.mapping.confidence(op, float(magnitude), severity))

    def _confidences(
        self, op_ids: torch.Tensor, magnitudes: torch.Tensor, severities: torch.Tensor
    ) -> torch.Tensor:
        """Confidences of a batch (float32 on the severities' device; ones when ``hard``)."""
        if self.hard:
            return torch.ones_like(severities)
        return self.mapping(op_ids, magnitudes, severities).to(device=severities.device, dtype=torch.float32)

    def _repr_fields(self) -> str:
        return (
            f"num_classes={self.num_classes}, hard={self.hard}, "
            f"num_magnitude_bins={self.num_magnitude_bins}, ops={list(self.ops)}"
        )
