"""Proxy-model accuracy mappings (METHOD.md §3.4): measured accuracy table -> confidence -> MappingSet.

The reference code's ``exact_model_accuracy`` mapping uses the top-1 accuracy of a CIFAR-10 proxy
network on every TrivialAugment op x signed magnitude bin as the label confidence. Measuring that
accuracy -- training the proxy **without TrivialAugment** and applying every op to held-out
images -- is evaluation and lives in :mod:`harness.measure` (``train_proxy``,
``measure_proxy_accuracy``). It hands this module a plain table (:data:`ACCURACY_COLUMNS`), and the
pitfalls of the reference code (§7.2, §7.3) are avoided here:

- accuracies are rescaled so that chance maps to 1/K and the proxy's clean accuracy to 1
  (:func:`normalise_accuracy`), per dataset (§7.2);
- noisy, non-monotone curves are smoothed by n-weighted isotonic regression
  (:func:`isotonic_smooth`): accuracies are binomial proportions, so the weighted least-squares
  monotone fit is their maximum-likelihood non-increasing estimate;
- the result is pre-loaded into per-op, per-sign :class:`~mappings.Table` s of a
  :class:`~mappings.MappingSet` (:func:`proxy_mapping_set`), never re-read per sample (§7.3).

Pipeline::

    run = harness.measure.train_proxy("cifar10", run_dir="runs/proxy_cifar10", epochs=30)
    acc = harness.measure.measure_proxy_run(run, device="auto")  # op, sign, bin, ..., accuracy, n
    table = proxy_confidence_table(acc, num_classes=10)          # + accuracy_iso, confidence_raw, confidence
    harness.measure.save_proxy_table(table, "reports/proxy_cifar10.csv")
    ms = proxy_mapping_set(table, num_classes=10)                # MappingSet of Tables
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.isotonic import IsotonicRegression

from mappings.base import check_num_classes
from mappings.curves import check_table, curves_to_set
from mappings.mapping_set import MappingSet

__all__ = [
    "clean_accuracy",
    "normalise_accuracy",
    "isotonic_smooth",
    "proxy_confidence_table",
    "proxy_mapping_set",
    "ACCURACY_COLUMNS",
]

#: Columns of a measured accuracy table (``harness.measure.measure_proxy_accuracy``): op, sign
#: (``"+"``, ``"-"`` or ``""``), bin, signed magnitude, severity, top-1 accuracy, n (images).
ACCURACY_COLUMNS = ("op", "sign", "bin", "magnitude", "severity", "accuracy", "n")


# ------------------------------------------------------------------------------------------ tables
def clean_accuracy(table: pd.DataFrame) -> float:
    """The proxy's clean accuracy: the ``accuracy`` of the ``Identity`` row(s) (n-weighted)."""
    df = check_table("table", table, ("op", "accuracy", "n"))
    rows = df[df["op"] == "Identity"]
    if rows.empty:
        raise ValueError("table has no Identity row, so the clean accuracy is unknown")
    return float(np.average(rows["accuracy"].to_numpy(dtype=np.float64), weights=rows["n"].to_numpy(dtype=np.float64)))


def _as_unit_array(name: str, value: Any) -> tuple[np.ndarray, bool]:
    scalar = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number or array of them, got {value!r}")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, pd.Series):
        value = value.to_numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number or array of them, got {value!r}") from None
    bad = ~((arr >= 0.0) & (arr <= 1.0))
    if np.any(bad):
        raise ValueError(f"{name} must lie in [0, 1] (NaN not allowed), got {arr[bad].flat[0]!r}")
    return arr, scalar


def normalise_accuracy(acc: Any, clean_acc: float, num_classes: int):
    """Rescale accuracy to a confidence: chance -> 1/K, the proxy's clean accuracy -> 1.

    ``c = 1/K + (1 - 1/K) * clip((acc - 1/K) / (clean_acc - 1/K), 0, 1)``

    Below-chance accuracies give 1/K, accuracies above the clean one give 1 (an op can beat the
    clean accuracy by sampling noise). Monotone non-decreasing in ``acc``.

    Args:
        acc: accuracy in [0, 1]: a float, array, Series or tensor.
        clean_acc: clean accuracy of the proxy in (1/K, 1].
        num_classes: K >= 2.

    Returns:
        a float for a scalar ``acc``, else a float64 numpy array of ``acc``'s shape.
    """
    k = check_num_classes(num_classes)
    chance = 1.0 / k
    if isinstance(clean_acc, (bool, np.bool_)) or not isinstance(clean_acc, numbers.Real):
        raise TypeError(f"clean_acc must be a real number, got {clean_acc!r}")
    clean = float(clean_acc)
    if not (math.isfinite(clean) and chance < clean <= 1.0):
        raise ValueError(f"clean_acc must lie in (1/K, 1] = ({chance:g}, 1], got {clean_acc!r}")
    arr, scalar = _as_unit_array("acc", acc)
    c = chance + (1.0 - chance) * np.clip((arr - chance) / (clean - chance), 0.0, 1.0)
    return float(c) if scalar else c


def isotonic_smooth(table: pd.DataFrame, *, column: str = "accuracy", weight: str = "n") -> pd.DataFrame:
    """Make ``column`` non-increasing in severity per op and sign; keep the raw column.

    Fits ``sklearn.isotonic.IsotonicRegression(increasing=False)`` on (severity, value) of each
    (op, sign) group with sample weights ``table[weight]`` (PAVA; tied severities, as in
    Posterize, share one fitted value). Groups of one row (magnitude-free ops) are unchanged.

    Returns:
        a copy of ``table`` with the new column ``f"{column}_iso"`` (rows in the original order).
    """
    df = check_table("table", table, ("op", "sign", "severity", column, weight)).copy()
    values = df[column].to_numpy(dtype=np.float64)
    w = df[weight].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"table[{column!r}] must be finite")
    if not np.all(np.isfinite(w) & (w > 0)):
        raise ValueError(f"table[{weight!r}] must be finite and > 0")
    out = values.copy()
    sign = df["sign"].fillna("").astype(str)
    for _key, idx in df.groupby([df["op"], sign], sort=False).indices.items():
        if len(idx) < 2:
            continue
        sev = df["severity"].to_numpy(dtype=np.float64)[idx]
        fit = IsotonicRegression(increasing=False).fit(sev, values[idx], sample_weight=w[idx])
        out[idx] = fit.predict(sev)
    df[f"{column}_iso"] = out
    return df


def proxy_confidence_table(table: pd.DataFrame, num_classes: int) -> pd.DataFrame:
    """Add the confidence columns to a measured accuracy table (:data:`ACCURACY_COLUMNS`).

    - ``accuracy_iso``: :func:`isotonic_smooth` of ``accuracy`` (n-weighted, per op and sign);
    - ``confidence_raw``: :func:`normalise_accuracy` of the raw accuracy;
    - ``confidence``: :func:`normalise_accuracy` of ``accuracy_iso`` (monotone non-increasing in
      severity, in [1/K, 1]; what :func:`proxy_mapping_set` uses).

    The clean accuracy is that of the Identity row (:func:`clean_accuracy`).
    """
    k = check_num_classes(num_classes)
    df = isotonic_smooth(table, column="accuracy", weight="n")
    clean = clean_accuracy(df)
    df["confidence_raw"] = normalise_accuracy(df["accuracy"].to_numpy(dtype=np.float64), clean, k)
    df["confidence"] = normalise_accuracy(df["accuracy_iso"].to_numpy(dtype=np.float64), clean, k)
    return df


def proxy_mapping_set(table: pd.DataFrame, num_classes: int, *, name: str = "proxy_accuracy") -> MappingSet:
    """MappingSet of per-op, per-sign :class:`~mappings.Table` s over severity from a proxy table.

    ``table`` is a measured accuracy table (:data:`ACCURACY_COLUMNS`; the confidence columns are computed with
    :func:`proxy_confidence_table`; an existing ``confidence`` column is recomputed so that it
    always matches ``accuracy``). Knots are the measured severities (tied severities merged by
    n-weighted mean), values the isotonic, normalised ``confidence``.

    Magnitude-free ops: Identity keeps hard labels (c = 1, it defines the clean accuracy).
    AutoContrast and Equalize always have severity 0, so each gets a constant Table with its
    measured confidence when that is below 1 ("c = 1 unless measured lower"), and hard labels
    otherwise.
    """
    k = check_num_classes(num_classes)
    df = check_table("table", table, ("op", "sign", "severity", "accuracy", "n"))
    derived = [c for c in ("accuracy_iso", "confidence_raw", "confidence") if c in df.columns]
    df = proxy_confidence_table(df.drop(columns=derived), k)
    return curves_to_set(df, "confidence", k, "none", name, clip_low=1.0 / k)
