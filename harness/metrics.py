"""Evaluation metrics: accuracy, NLL, Brier, ECE, agreement with CIFAR-10H, corruption aggregation.

Conventions (one for the whole module):

* Every classification metric takes ``probs`` ``[N, K]`` (each row a probability distribution: entries in
  [0, 1], rows summing to 1 within ``ROW_SUM_ATOL``) and integer ``labels`` ``[N]`` in ``[0, K)``. Turn logits
  into probabilities with :func:`softmax_probs`. Inputs may be numpy arrays, torch tensors (any device; they
  are copied to the CPU) or nested lists; all arithmetic is float64 and results are python floats.
* Predictions are ``argmax_k p_k`` (ties → the lowest class index, as ``numpy.argmax``); the confidence is
  ``max_k p_k``.
* **NLL**: ``mean_i -log p_{i, y_i}``, with ``p`` clamped below at ``eps`` (default 1e-12, so one underflowed
  probability costs 27.6 nats instead of making the mean infinite; ``eps=0`` disables the clamp).
* **Brier**: ``mean_i sum_k (p_ik - [k == y_i])^2`` — summed over classes, averaged over samples, range
  [0, 2] (the original multi-class Brier score; divide by K for the per-class variant).
* **ECE** (``n_bins`` equal-width bins, default 15, over the max-softmax confidence): bin edges
  ``numpy.linspace(0, 1, n_bins + 1)``; bin m (1-based) holds the samples with
  ``e_{m-1} < conf <= e_m`` (right-closed ``(lo, hi]``, the ``numpy.digitize(..., right=True)``
  convention of the SA code, METHOD.md §4.6), except that the first bin is closed on the left too, so
  ``conf == 0`` (impossible for valid rows, since ``max_k p_k >= 1/K``) falls into bin 1; ``conf == 1``
  falls into the last bin. Then ``ECE = sum_m (|B_m| / N) * |acc(B_m) - conf(B_m)|``; empty bins
  contribute nothing. ECE lies in [0, 1].
* **Human agreement** (CIFAR-10H): ``cross_entropy = mean_i -sum_k h_ik log p_ik``,
  ``kl = mean_i sum_k h_ik (log h_ik - log p_ik)``, ``human_entropy = mean_i -sum_k h_ik log h_ik``
  (terms with ``h_ik = 0`` are 0, ``p`` is clamped at ``eps``), so
  ``cross_entropy = human_entropy + kl >= human_entropy`` with equality iff ``p = h``;
  ``majority_accuracy`` = share of images whose predicted class is a human majority class (with tied
  majorities any tied class counts as correct; 3 of the 10,000 CIFAR-10H images have a tie).
* **Corruptions** (METHOD.md §4.5, CORRUPTIONS.md §6): per-corruption accuracy = unweighted mean over
  severities 1–5; ``mean15`` = mean over the 15 benchmark corruptions (comparable with RobustBench / AugMix);
  ``mean19`` = mean over all 19 (comparable with the reference paper); family means over benchmark members.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from harness.corruptions import BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS, SEVERITIES
from harness.corruptions import CORRUPTIONS as _CORRUPTIONS
from harness.corruptions import FAMILIES as _FAMILY_OF
from harness.corruptions import FAMILY_NAMES as _FAMILY_NAMES
from harness.paths import shared_data_dir

__all__ = [
    "BENCHMARK_CORRUPTIONS",
    "CORRUPTION_FAMILIES",
    "EXTRA_CORRUPTIONS",
    "ALL_CORRUPTIONS",
    "ROW_SUM_ATOL",
    "SEVERITIES",
    "DEFAULT_CIFAR10H_PATH",
    "softmax_probs",
    "accuracy",
    "nll",
    "brier",
    "expected_calibration_error",
    "reliability_diagram_data",
    "confidence_bin_sums",
    "classification_metrics",
    "human_agreement",
    "load_cifar10h",
    "summarize_corruptions",
]

#: Tolerance on ``|sum_k p_k - 1|`` (and on ``p_k <= 1``) accepted for a probability row.
ROW_SUM_ATOL = 1e-3

# ----------------------------------------------------------------------------------------------
# corruption constants: the single source is harness.corruptions (CORRUPTIONS.md §0; METHOD.md §4.5)
# ----------------------------------------------------------------------------------------------
#: ``BENCHMARK_CORRUPTIONS`` (the 15, paper order), ``EXTRA_CORRUPTIONS`` (speckle_noise, gaussian_blur,
#: spatter, saturate), ``ALL_CORRUPTIONS`` (all 19, benchmark first) and ``SEVERITIES`` (1–5) are re-exported
#: from :mod:`harness.corruptions`.
ALL_CORRUPTIONS: tuple[str, ...] = tuple(_CORRUPTIONS)
#: The paper's four families of the 15 benchmark corruptions, family -> members (built from
#: ``harness.corruptions.FAMILIES``). The extras belong to no family in the paper; CORRUPTIONS.md groups them
#: by analogy (speckle_noise → noise, gaussian_blur → blur, spatter → weather, saturate → digital), but the
#: family means here are over the benchmark members only (CORRUPTIONS.md §6).
CORRUPTION_FAMILIES: dict[str, tuple[str, ...]] = {
    fam: tuple(c for c in BENCHMARK_CORRUPTIONS if _FAMILY_OF[c] == fam) for fam in _FAMILY_NAMES
}
if ALL_CORRUPTIONS != tuple(BENCHMARK_CORRUPTIONS) + tuple(EXTRA_CORRUPTIONS) or sorted(
    c for members in CORRUPTION_FAMILIES.values() for c in members
) != sorted(BENCHMARK_CORRUPTIONS):
    raise ImportError("harness.corruptions constants are inconsistent (CORRUPTIONS / FAMILIES)")

#: Where ``cifar10/cifar10h.npz`` lives next to the working copy (``<repo root>/../shared/data``, see
#: ``harness.paths``); the value at import time. ``load_cifar10h`` looks beside the current root.
DEFAULT_CIFAR10H_PATH = shared_data_dir() / "cifar10" / "cifar10h.npz"


# ----------------------------------------------------------------------------------------------
# input validation
# ----------------------------------------------------------------------------------------------
def _to_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.is_complex():
            raise TypeError(f"{name} must be real, got dtype={x.dtype}")
        if x.dtype == torch.bool or not x.is_floating_point():
            return x.cpu().numpy()
        return x.to(device="cpu", dtype=torch.float64).numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged lists etc.
        raise ValueError(f"{name} could not be converted to an array: {exc}") from exc


def _check_probs(probs: Any, name: str = "probs") -> np.ndarray:
    p = _to_numpy(probs, name)
    if p.dtype == bool or p.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real-valued [N, K] array of probabilities, got dtype={p.dtype}")
    p = p.astype(np.float64, copy=False)
    if p.ndim != 2:
        raise ValueError(f"{name} must have shape [N, K], got shape={p.shape}")
    n, k = p.shape
    if n == 0:
        raise ValueError(f"{name} must contain at least one row, got shape={p.shape}")
    if k < 2:
        raise ValueError(f"{name} must have K >= 2 columns (classes), got shape={p.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"{name} must be finite (no NaN/inf)")
    if p.min() < 0.0 or p.max() > 1.0 + ROW_SUM_ATOL:
        raise ValueError(
            f"{name} entries must lie in [0, 1], got min={p.min():.6g}, max={p.max():.6g} "
            f"(pass probabilities, e.g. softmax_probs(logits), not logits)"
        )
    dev = np.abs(p.sum(axis=1) - 1.0)
    if dev.max() > ROW_SUM_ATOL:
        i = int(dev.argmax())
        raise ValueError(
            f"{name} rows must sum to 1 (within {ROW_SUM_ATOL}); row {i} sums to {p[i].sum():.6g} "
            f"(pass probabilities, e.g. softmax_probs(logits), not logits)"
        )
    return p


def _check_labels(labels: Any, n: int, k: int, name: str = "labels") -> np.ndarray:
    y = _to_numpy(labels, name)
    if y.dtype == bool or y.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of shape [N], got dtype={y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"{name} must have shape [N], got shape={y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} entries but probs has N={n} rows (shape mismatch)")
    if y.min() < 0 or y.max() >= k:
        raise ValueError(
            f"{name} must lie in [0, {k - 1}] for K={k} classes, got min={y.min()}, max={y.max()}"
        )
    return y.astype(np.int64, copy=False)


def _check_probs_labels(probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    p = _check_probs(probs, "probs")
    return p, _check_labels(labels, p.shape[0], p.shape[1], "labels")


def _check_n_bins(n_bins: Any) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)):
        raise TypeError(f"n_bins must be an int >= 1, got {n_bins!r}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be an int >= 1, got {n_bins}")
    return int(n_bins)


def _check_eps(eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 <= float(eps) < 1.0:
        raise ValueError(f"eps must be a float in [0, 1), got {eps!r}")
    return float(eps)


# ----------------------------------------------------------------------------------------------
# classification metrics
# ----------------------------------------------------------------------------------------------
def softmax_probs(logits: Any) -> Any:
    """Row-wise softmax of logits ``[N, K]``, computed in float64.

    Returns a float64 torch tensor on the input's device for a torch input, a float64 numpy array otherwise.
    """
    if isinstance(logits, torch.Tensor):
        if not logits.is_floating_point():
            raise TypeError(f"logits must be a floating-point tensor, got dtype={logits.dtype}")
        if logits.ndim != 2:
            raise ValueError(f"logits must have shape [N, K], got shape={tuple(logits.shape)}")
        if not bool(torch.isfinite(logits).all()):
            raise ValueError("logits must be finite (no NaN/inf)")
        return torch.softmax(logits.detach().to(torch.float64), dim=1)
    z = np.asarray(logits)
    if z.dtype == bool or z.dtype.kind not in "fiu":
        raise TypeError(f"logits must be real-valued, got dtype={z.dtype}")
    z = z.astype(np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits must have shape [N, K], got shape={z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("logits must be finite (no NaN/inf)")
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def accuracy(probs: Any, labels: Any) -> float:
    """Top-1 accuracy: share of rows whose argmax equals the label."""
    p, y = _check_probs_labels(probs, labels)
    return float(np.mean(p.argmax(axis=1) == y))


def nll(probs: Any, labels: Any, *, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood ``-log max(p_{i, y_i}, eps)`` in nats."""
    p, y = _check_probs_labels(probs, labels)
    eps = _check_eps(eps)
    py = np.maximum(p[np.arange(p.shape[0]), y], eps)
    with np.errstate(divide="ignore"):
        return float(np.mean(-np.log(py)))


def brier(probs: Any, labels: Any) -> float:
    """Multi-class Brier score ``mean_i sum_k (p_ik - onehot_ik)^2`` in [0, 2]."""
    p, y = _check_probs_labels(probs, labels)
    d = p.copy()
    d[np.arange(p.shape[0]), y] -= 1.0
    return float(np.mean(np.sum(d * d, axis=1)))


def confidence_bin_sums(confidence: Any, correct: Any, n_bins: int = 15) -> tuple[np.ndarray, ...]:
    """``(count, confidence_sum, correct_sum)`` per equal-width, right-closed confidence bin (see the
    module doc; confidence 0 falls in the first bin). Sums, not means, so that several runs can be
    pooled by adding them; ECE and :func:`reliability_diagram_data` are built on these."""
    conf = np.asarray(confidence, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # number of interior edges strictly below conf: conf in (e_{m-1}, e_m] -> m - 1; conf == 0 -> 0; 1 -> last
    idx = np.searchsorted(edges[1:-1], conf, side="left")
    return (np.bincount(idx, minlength=n_bins).astype(np.int64),
            np.bincount(idx, weights=conf, minlength=n_bins),
            np.bincount(idx, weights=np.asarray(correct, dtype=np.float64), minlength=n_bins))


def _bin_stats(p: np.ndarray, y: np.ndarray, n_bins: int) -> dict[str, np.ndarray]:
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    count, conf_sum, acc_sum = confidence_bin_sums(p.max(axis=1), p.argmax(axis=1) == y, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, conf_sum / np.maximum(count, 1), np.nan)
        mean_acc = np.where(count > 0, acc_sum / np.maximum(count, 1), np.nan)
    return {
        "bin_lower": edges[:-1].copy(),
        "bin_upper": edges[1:].copy(),
        "count": count,
        "confidence": mean_conf,
        "accuracy": mean_acc,
        "_conf_sum": conf_sum,
        "_acc_sum": acc_sum,
    }


def expected_calibration_error(probs: Any, labels: Any, n_bins: int = 15) -> float:
    """ECE with ``n_bins`` equal-width, right-closed confidence bins weighted by counts (see module doc)."""
    p, y = _check_probs_labels(probs, labels)
    s = _bin_stats(p, y, _check_n_bins(n_bins))
    # sum_m |B_m|/N * |acc_m - conf_m| = (1/N) * sum_m |acc_sum_m - conf_sum_m|
    ece = float(np.sum(np.abs(s["_acc_sum"] - s["_conf_sum"])) / p.shape[0])
    return min(max(ece, 0.0), 1.0)


def reliability_diagram_data(probs: Any, labels: Any, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Per-bin data for a reliability diagram (same bins as :func:`expected_calibration_error`).

    Returns a dict of numpy arrays of length ``n_bins``: ``bin_lower``, ``bin_upper`` (edges), ``count``
    (int64), ``confidence`` (mean max-probability in the bin) and ``accuracy`` (share correct in the bin);
    the last two are NaN for empty bins.
    """
    p, y = _check_probs_labels(probs, labels)
    s = _bin_stats(p, y, _check_n_bins(n_bins))
    return {k: v for k, v in s.items() if not k.startswith("_")}


def classification_metrics(probs: Any, labels: Any, *, n_bins: int = 15) -> dict[str, float]:
    """``{"accuracy", "nll", "ece", "brier"}`` for one set of predictions."""
    p, y = _check_probs_labels(probs, labels)
    return {
        "accuracy": accuracy(p, y),
        "nll": nll(p, y),
        "ece": expected_calibration_error(p, y, n_bins=n_bins),
        "brier": brier(p, y),
    }


# ----------------------------------------------------------------------------------------------
# CIFAR-10H
# ----------------------------------------------------------------------------------------------
def human_agreement(probs: Any, human_probs: Any, *, eps: float = 1e-12) -> dict[str, float]:
    """Agreement of model predictive distributions ``probs`` with human label distributions ``human_probs``.

    Both ``[N, K]`` with rows summing to 1. Returns ``cross_entropy``, ``kl`` (KL(h ‖ p)),
    ``human_entropy`` (all averaged over images, in nats) and ``majority_accuracy`` (see the module doc).
    """
    p = _check_probs(probs, "probs")
    h = _check_probs(human_probs, "human_probs")
    if p.shape != h.shape:
        raise ValueError(f"probs and human_probs must have the same shape, got {p.shape} and {h.shape}")
    eps = _check_eps(eps)
    pos = h > 0
    with np.errstate(divide="ignore"):
        log_p = np.log(np.maximum(p, eps))
        log_h = np.log(np.where(pos, h, 1.0))
    ce_rows = -np.sum(np.where(pos, h * log_p, 0.0), axis=1)
    ent_rows = -np.sum(np.where(pos, h * log_h, 0.0), axis=1)
    kl_rows = np.sum(np.where(pos, h * (log_h - log_p), 0.0), axis=1)
    pred = p.argmax(axis=1)
    hmax = h.max(axis=1)
    majority_hit = h[np.arange(h.shape[0]), pred] >= hmax - 1e-12
    return {
        "cross_entropy": float(np.mean(ce_rows)),
        "kl": float(max(np.mean(kl_rows), 0.0)),
        "human_entropy": float(np.mean(ent_rows)),
        "majority_accuracy": float(np.mean(majority_hit)),
    }


def load_cifar10h(path: str | Path | None = None, *, order: str = "test_npz") -> np.ndarray:
    """CIFAR-10H human label distributions, float64 ``[10000, 10]`` (rows sum to 1).

    ``cifar10h.npz`` (shared/data/README.md §1.3) holds ``counts``/``probs`` (original CIFAR-10 test order),
    ``orig_labels``, ``test_npz_orig_index``, ``counts_test_order``/``probs_test_order`` (rows aligned with
    ``cifar10/test.npz``) and ``classes``.

    Args:
        path: the npz file; default :data:`DEFAULT_CIFAR10H_PATH`.
        order: ``"test_npz"`` (default; row i belongs to image i of ``shared/data/cifar10/test.npz``, key
            ``probs_test_order``) or ``"original"`` (original CIFAR-10 test order, key ``probs``).
    """
    keys = {"test_npz": "probs_test_order", "original": "probs"}
    if order not in keys:
        raise ValueError(f"order must be one of {sorted(keys)}, got {order!r}")
    file = Path(shared_data_dir() / "cifar10" / "cifar10h.npz" if path is None else path)
    if not file.is_file():
        raise FileNotFoundError(
            f"CIFAR-10H file not found: {file} (expected shared/data/cifar10/cifar10h.npz, see "
            f"shared/data/README.md §1.3)"
        )
    with np.load(file) as z:
        if keys[order] not in z.files:
            raise ValueError(f"{file} has no key {keys[order]!r}; keys are {sorted(z.files)}")
        h = np.asarray(z[keys[order]], dtype=np.float64)
    if h.shape != (10000, 10):
        raise ValueError(f"{file}[{keys[order]!r}] must have shape (10000, 10), got {h.shape}")
    _check_probs(h, "human_probs")
    return h


# ----------------------------------------------------------------------------------------------
# corruption aggregation
# ----------------------------------------------------------------------------------------------
_MEANS = {"mean15": BENCHMARK_CORRUPTIONS, "mean19": ALL_CORRUPTIONS}


def summarize_corruptions(
    table: Any,
    *,
    means: Iterable[str] = ("mean15", "mean19"),
    severities: Iterable[int] | None = None,
) -> dict[str, Any]:
    """Aggregate a long table of corruption accuracies (METHOD.md §4.5, CORRUPTIONS.md §6).

    Args:
        table: pandas DataFrame with columns ``corruption`` (str, one of :data:`ALL_CORRUPTIONS`),
            ``severity`` (int) and ``accuracy`` (fraction in [0, 1]); one row per (corruption, severity), in
            any order; extra columns are ignored.
        means: which aggregate means to compute: ``"mean15"`` (the 15 benchmark corruptions) and/or
            ``"mean19"`` (all 19). A requested mean whose corruptions are not all in the table raises
            ``ValueError`` naming the missing ones; there is never a partial mean.
        severities: ``None`` (default) accepts the set of severities found in the table, provided every
            corruption has the same set (e.g. a quick run at severities (1, 5)); the result's ``severities``
            says which were averaged. Pass the levels explicitly, e.g. :data:`SEVERITIES` (1–5, the full
            benchmark and the only setting comparable with published numbers), to require exactly those.

    Returns:
        dict with python floats:

        * ``per_corruption``: {corruption: unweighted mean over its severities}, every corruption present, in
          :data:`ALL_CORRUPTIONS` order;
        * ``severities``: the tuple of severities averaged over;
        * for ``"mean15"``: ``mean15`` (mean of the 15 per-corruption accuracies; comparable with
          RobustBench / AugMix), ``families`` ({family: mean over its benchmark members},
          :data:`CORRUPTION_FAMILIES`) and ``per_severity`` ({severity: mean over the 15 at that severity});
        * for ``"mean19"``: ``mean19`` (mean of the 19 per-corruption accuracies; the reference paper's
          number, METHOD.md §4.5).
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    if isinstance(means, str):
        means = (means,)
    means = tuple(means)
    bad = [m for m in means if m not in _MEANS]
    if bad or not means:
        raise ValueError(f"means must be a non-empty subset of {sorted(_MEANS)}, got {means!r}")
    if severities is not None:
        sev_req = tuple(int(s) for s in severities)
        if not sev_req or len(set(sev_req)) != len(sev_req):
            raise ValueError(f"severities must be non-empty and distinct, got {severities!r}")
    missing_cols = [c for c in ("corruption", "severity", "accuracy") if c not in table.columns]
    if missing_cols:
        raise ValueError(f"table is missing column(s) {missing_cols}; has {list(table.columns)}")
    if len(table) == 0:
        raise ValueError("table is empty")
    df = table[["corruption", "severity", "accuracy"]]
    unknown = sorted(set(map(str, df["corruption"])) - set(ALL_CORRUPTIONS))
    if unknown:
        raise ValueError(
            f"table has unknown corruption name(s) {unknown}; expected names from {ALL_CORRUPTIONS}"
        )
    acc = pd.to_numeric(df["accuracy"], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(acc).all():
        raise ValueError("table column 'accuracy' must be finite numbers (found NaN/inf or non-numbers)")
    if acc.min() < 0.0 or acc.max() > 1.0:
        raise ValueError(
            f"table column 'accuracy' must be fractions in [0, 1], got min={acc.min()}, max={acc.max()} "
            f"(percentages? divide by 100)"
        )
    sev_col = pd.to_numeric(df["severity"], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(sev_col).all() or not np.all(sev_col == np.round(sev_col)):
        raise ValueError("table column 'severity' must hold integers")
    df = pd.DataFrame(
        {"corruption": df["corruption"].astype(str).to_numpy(), "severity": sev_col.astype(np.int64),
         "accuracy": acc}
    )
    dup = df[df.duplicated(["corruption", "severity"], keep=False)]
    if len(dup):
        pairs = sorted({(c, int(s)) for c, s in zip(dup["corruption"], dup["severity"], strict=True)})
        raise ValueError(f"table has duplicate (corruption, severity) rows: {pairs}")
    have = {c: frozenset(g["severity"].tolist()) for c, g in df.groupby("corruption", sort=False)}
    if severities is None:
        sets = set(have.values())
        if len(sets) != 1:
            detail = "; ".join(f"{c}: {sorted(v)}" for c, v in sorted(have.items()))
            raise ValueError(f"every corruption must have the same severities, got {detail}")
        sev = tuple(sorted(next(iter(sets))))
    else:
        sev = sev_req
        problems = [f"{c}: has {sorted(v)}, needs {sorted(sev)}" for c, v in have.items() if v != set(sev)]
        if problems:
            raise ValueError("table has incomplete or unexpected severities: " + "; ".join(problems))

    present = set(have)
    for m in means:
        missing = [c for c in _MEANS[m] if c not in present]
        if missing:
            raise ValueError(
                f"cannot compute {m!r} (mean over {len(_MEANS[m])} corruptions): table lacks {missing}"
            )

    by_corruption = df.groupby("corruption")["accuracy"].mean()
    per_corruption = {c: float(by_corruption[c]) for c in ALL_CORRUPTIONS if c in present}
    out: dict[str, Any] = {"per_corruption": per_corruption, "severities": sev}
    if "mean15" in means:
        out["mean15"] = float(np.mean([per_corruption[c] for c in BENCHMARK_CORRUPTIONS]))
        out["families"] = {
            fam: float(np.mean([per_corruption[c] for c in members]))
            for fam, members in CORRUPTION_FAMILIES.items()
        }
        bench = df[df["corruption"].isin(BENCHMARK_CORRUPTIONS)]
        by_sev = bench.groupby("severity")["accuracy"].mean()
        out["per_severity"] = {s: float(by_sev[s]) for s in sev}
    if "mean19" in means:
        out["mean19"] = float(np.mean([per_corruption[c] for c in ALL_CORRUPTIONS]))
    return out
