"""The SSIM mapping of METHOD.md §3.5 from measured SSIM curves (pure: tables in, MappingSet out).

An image-similarity metric computed between an image and its augmented version can serve
directly as the label confidence c (clipped at >= 1/K). Measuring it -- augmenting images and
computing SSIM (``harness.measure.ssim_torch``, ``harness.measure.ssim_op_curves``) -- is
augmentation and lives in :mod:`harness.measure`; this module turns the measured table
(:data:`CURVE_COLUMNS`) into a :class:`~mappings.MappingSet` (:func:`ssim_mapping_set`).

Caveat (§3.5 takeaway): SSIM is a *pixel-aligned* structural measure. It collapses to ~0 for any
geometric op (a 1/3-image translation gives SSIM ~0.13 while a classifier is still ~99% correct),
so an SSIM mapping punishes Shear/Translate/Rotate far more than their effect on the label. Use
it for photometric ops, or as a study object, not as a drop-in mapping for geometric ops.
"""

from __future__ import annotations

import pandas as pd

from mappings.base import check_num_classes
from mappings.curves import check_table, curves_to_set
from mappings.mapping_set import MappingSet

__all__ = ["ssim_mapping_set", "CURVE_COLUMNS"]

#: Columns of a measured SSIM table (``harness.measure.ssim_op_curves``): op, sign (``"+"``,
#: ``"-"`` or ``""``), bin, signed magnitude, severity, mean SSIM with its bootstrap 95% CI, n.
CURVE_COLUMNS = ("op", "sign", "bin", "magnitude", "severity", "ssim_mean", "ci_low", "ci_high", "n")


def ssim_mapping_set(
    curves: pd.DataFrame, num_classes: int, *, monotone: str = "running_min", name: str = "ssim"
) -> MappingSet:
    """The SSIM mapping of METHOD §3.5 from a measured SSIM table (``harness.measure.ssim_op_curves``).

    Per op and sign, a :class:`~mappings.Table` over severity of ``clip(ssim_mean, 1/K, 1)``, made
    non-increasing in severity:

    - ``monotone="running_min"`` (default): running minimum over increasing severity, i.e. the
      confidence at severity s is the lowest mean SSIM measured at any severity <= s. It never
      exceeds a measured value (conservative), and on the already monotone photometric curves it
      changes nothing; on Rotate (SSIM bumps near 90 degrees) it flattens the bump.
    - ``monotone="isotonic"``: n-weighted isotonic regression (``sklearn.isotonic``), the
      least-squares monotone fit;
    - ``monotone="none"``: keep the measured (clipped) curve.

    Magnitude-free ops: Identity keeps hard labels (c = 1). AutoContrast / Equalize have
    severity 0 always, so their measured SSIM (clipped) becomes a constant Table when it is below
    1 (else hard labels). The Contrast op uses the full SSIM here, not the contrast-structure term
    ``cs`` of the reference code (§3.5).
    """
    num_classes = check_num_classes(num_classes)
    df = check_table("curves", curves, ("op", "sign", "severity", "ssim_mean", "n"))
    return curves_to_set(df, "ssim_mean", num_classes, monotone, name, clip_low=1.0 / num_classes)
