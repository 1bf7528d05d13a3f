"""Measured per-op curves -> :class:`~mappings.MappingSet`: the pure half of the SSIM and proxy mappings.

A *measured table* is a pandas DataFrame with one row per op x sign x magnitude bin and (at
least) the columns ``op`` (a name of the :class:`~mappings.ops.OpVocabulary`), ``sign`` (``"+"``,
``"-"`` or ``""`` for unsigned ops), ``severity`` in [0, 1], a value column (mean SSIM, accuracy,
confidence) and ``n`` (images measured). :mod:`harness.measure` produces such tables (it augments
images and runs models); this module only merges, smooths and turns them into per-op, per-sign
:class:`~mappings.Table` s (:func:`curves_to_set`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from mappings.mapping_set import MappingSet
from mappings.ops import TRIVIAL_AUGMENT_WIDE, OpVocabulary
from mappings.table import Table

__all__ = ["MONOTONE", "check_table", "monotone_table", "sign_series", "curves_to_set"]

#: Ways :func:`curves_to_set` makes a curve non-increasing in severity.
MONOTONE: tuple[str, ...] = ("running_min", "isotonic", "none")


def check_table(
    name: str, df: Any, required: tuple[str, ...], ops: OpVocabulary = TRIVIAL_AUGMENT_WIDE
) -> pd.DataFrame:
    """``df`` unchanged if it is a non-empty DataFrame with the ``required`` columns and known ops.

    Raises ``TypeError`` (not a DataFrame) or ``ValueError`` naming ``name`` and what is missing.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{name} is missing columns {missing}; it has {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{name} has no rows")
    bad_ops = sorted(set(df["op"]) - set(ops.names))
    if bad_ops:
        raise ValueError(f"{name} has unknown ops {bad_ops}; allowed: {list(ops.names)}")
    return df


def sign_series(df: pd.DataFrame) -> pd.Series:
    """The ``sign`` column as strings, missing values (unsigned ops read back from CSV) as ``""``."""
    return df["sign"].fillna("").astype(str)


def monotone_table(severities: np.ndarray, confidences: np.ndarray, weights: np.ndarray | None = None) -> Table:
    """A :class:`Table` from (severity, confidence) points: equal severities merged (weighted mean).

    Used by the SSIM and proxy mapping builders. Posterize bins share severities (several bins keep
    the same number of bits), so knots are grouped by severity first. Confidences are clipped to
    [0, 1]; monotonicity is the caller's job.
    """
    sev = np.asarray(severities, dtype=np.float64)
    conf = np.asarray(confidences, dtype=np.float64)
    w = np.ones_like(sev) if weights is None else np.asarray(weights, dtype=np.float64)
    knots, inverse = np.unique(sev, return_inverse=True)
    wsum = np.bincount(inverse, weights=w, minlength=len(knots))
    values = np.bincount(inverse, weights=w * conf, minlength=len(knots)) / wsum
    if len(knots) < 2:
        raise ValueError(f"need at least 2 distinct severities to build a Table, got {knots.tolist()}")
    return Table(tuple(knots.tolist()), tuple(np.clip(values, 0.0, 1.0).tolist()))


def curves_to_set(
    df: pd.DataFrame,
    column: str,
    num_classes: int,
    monotone: str,
    name: str,
    clip_low: float,
    ops: OpVocabulary = TRIVIAL_AUGMENT_WIDE,
) -> MappingSet:
    """MappingSet of per-op, per-sign Tables over severity of ``clip(df[column], clip_low, 1)``.

    Rows are grouped by (op, sign) and sorted by severity; ``monotone`` (one of :data:`MONOTONE`)
    makes each curve non-increasing: ``"running_min"`` (equal severities merged n-weighted, then the
    running minimum), ``"isotonic"`` (n-weighted isotonic regression) or ``"none"``. Identity keeps
    hard labels (c = 1); other magnitude-free ops get a constant Table of their n-weighted value when
    it is below 1 (else hard labels). Signed ops are keyed ``"<op>+"`` / ``"<op>-"``.
    """
    if monotone not in MONOTONE:
        raise ValueError(f"monotone must be 'running_min', 'isotonic' or 'none', got {monotone!r}")
    df = df.assign(sign=sign_series(df))
    values = df[column].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"column {column!r} must be finite")
    mappings: dict[str, Table] = {}
    for (op, sign), g in df.groupby(["op", "sign"], sort=False):
        if op == "Identity":
            continue
        g = g.sort_values("severity", kind="stable")
        conf = np.clip(g[column].to_numpy(dtype=np.float64), clip_low, 1.0)
        w = g["n"].to_numpy(dtype=np.float64)
        if op in ops.magnitude_free:
            c = float(np.average(conf, weights=w))
            if c < 1.0:
                mappings[op] = Table((0.0, 1.0), (c, c))
            continue
        if op in ops.signed and sign not in ("+", "-"):
            raise ValueError(f"rows of signed op {op} must have sign '+' or '-', got {sign!r}")
        sev = g["severity"].to_numpy(dtype=np.float64)
        if monotone == "running_min":
            # merge equal severities first, then the running minimum over increasing severity
            table = monotone_table(sev, conf, w)
            table = Table(table.severities, tuple(np.minimum.accumulate(np.array(table.confidences)).tolist()))
        elif monotone == "isotonic":
            fit = IsotonicRegression(increasing=False).fit_transform(sev, conf, sample_weight=w)
            table = monotone_table(sev, fit, w)
        else:
            table = monotone_table(sev, conf, w)
        mappings[op + (sign if op in ops.signed else "")] = table
    return MappingSet(mappings, num_classes, name=name, ops=ops)
