"""The TrivialAugmentWide op space: op names, magnitude bins, signs and severities.

A re-export of the op table :mod:`harness.augment.ops` (one row per op: name, bins,
signedness, severity, per-sample and batched kernels), kept because other modules and the
tests read the op space from here. Nothing here touches pixels; see :mod:`harness.augment.ops`
for the magnitude and severity table.
"""

from __future__ import annotations

from harness.augment.ops import (
    GEOMETRIC_OPS,
    MAGNITUDE_FREE_OPS,
    SIGNED_OPS,
    TA_OPS,
    magnitude_bins,
    op_id,
    severity_from_magnitude,
    severity_scalar,
)

__all__ = [
    "GEOMETRIC_OPS",
    "MAGNITUDE_FREE_OPS",
    "SIGNED_OPS",
    "TA_OPS",
    "magnitude_bins",
    "op_id",
    "severity_from_magnitude",
    "severity_scalar",
]
