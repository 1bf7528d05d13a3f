"""Proxy-model accuracy mappings (METHOD.md §3.4), measured cleanly.

The reference code's ``exact_model_accuracy`` mapping uses the top-1 accuracy of a CIFAR-10 proxy
network on every TrivialAugment op x signed magnitude bin as the label confidence. Its pitfalls
(§7.2, §7.3, §7.17, §6.6) are avoided here:

- the proxy is trained **without TrivialAugment** (flip + pad-4 crop only) by
  :func:`harness.trainer.train`, on the dataset the mapping is for (:func:`train_proxy`);
- accuracies are measured on held-out **test** images, never on training images
  (:func:`measure_proxy_accuracy`, :func:`measure_proxy_run`), with the batched uint8 TA of the
  training pipeline (``BatchSoftAugment.apply``, so no float-vs-PIL TA mismatch, §7.17);
- accuracies are rescaled so that chance maps to 1/K and the proxy's clean accuracy to 1
  (:func:`normalise_accuracy`), per dataset (§7.2);
- noisy, non-monotone curves are smoothed by n-weighted isotonic regression
  (:func:`isotonic_smooth`): accuracies are binomial proportions, so the weighted least-squares
  monotone fit is their maximum-likelihood non-increasing estimate;
- the result is pre-loaded into per-op, per-sign :class:`~mappings.Table` s of a
  :class:`~mappings.MappingSet` (:func:`proxy_mapping_set`), never re-read per sample (§7.3).

Pipeline::

    run = train_proxy("cifar10", run_dir="runs/proxy_cifar10", epochs=30)
    acc = measure_proxy_run(run, device="auto")            # op, sign, bin, ..., accuracy, n
    table = proxy_confidence_table(acc, num_classes=10)    # + accuracy_iso, confidence_raw, confidence
    save_proxy_table(table, "reports/proxy_cifar10.csv")
    ms = proxy_mapping_set(table, num_classes=10)          # MappingSet of Tables
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from harness.augment._common import check_num_classes
from harness.augment.space import TA_OPS, op_id
from harness.io import atomic_write_text
from mappings.mapping_set import MappingSet
from mappings.ssim import _check_columns, _check_images_u8, _check_int, _pair_chunks, _tables_to_set, op_bin_grid

__all__ = [
    "train_proxy",
    "proxy_config",
    "load_proxy",
    "measure_proxy_accuracy",
    "measure_proxy_run",
    "clean_accuracy",
    "normalise_accuracy",
    "isotonic_smooth",
    "proxy_confidence_table",
    "proxy_mapping_set",
    "save_proxy_table",
    "load_proxy_table",
    "ACCURACY_COLUMNS",
]

#: Columns of :func:`measure_proxy_accuracy`.
ACCURACY_COLUMNS = ("op", "sign", "bin", "magnitude", "severity", "accuracy", "n")

#: The proxy's augmentation: flip + pad-4 crop, no TrivialAugment (METHOD §3.4, §7.2).
PROXY_AUGMENT = ({"kind": "flip"}, {"kind": "crop", "params": {"padding": 4}})


# ------------------------------------------------------------------------------------------ training
def proxy_config(
    dataset: str,
    *,
    epochs: int,
    n_per_class: int | None = None,
    model: str = "smallnet",
    seed: int = 0,
    overrides: dict | None = None,
):
    """The :class:`~harness.config.TrainConfig` of a proxy: flip + crop only, corruptions disabled.

    ``overrides`` may set any other TrainConfig field (``batch_size``, ``lr``, ``device``...);
    an ``augment`` override must not contain ``trivial_augment`` (the proxy must not see TA).
    """
    from harness.config import TrainConfig

    d: dict[str, Any] = {
        "dataset": dataset,
        "n_per_class": n_per_class,
        "model": model,
        "epochs": epochs,
        "seed": seed,
        "augment": [dict(s) for s in PROXY_AUGMENT],
        "corruptions": False,
    }
    if overrides is not None:
        if not isinstance(overrides, dict):
            raise TypeError(f"overrides must be a dict of TrainConfig fields, got {type(overrides).__name__}")
        d.update(overrides)
    aug = d.get("augment") or []
    kinds = [s if isinstance(s, str) else s.get("kind") if isinstance(s, dict) else None for s in aug]
    if "trivial_augment" in kinds:
        raise ValueError(
            f"overrides['augment'] must not contain trivial_augment: the proxy is trained without TA, got {kinds}"
        )
    return TrainConfig.from_dict(d)


def train_proxy(
    dataset: str,
    *,
    run_dir: str | Path,
    epochs: int,
    n_per_class: int | None = None,
    model: str = "smallnet",
    seed: int = 0,
    progress: bool = True,
    overrides: dict | None = None,
) -> Path:
    """Train a proxy model without TrivialAugment into ``run_dir`` (or reuse a complete one).

    Uses :func:`harness.trainer.train` with :func:`proxy_config` (flip + pad-4 crop, corruption
    evaluation disabled; clean test metrics are still written). A complete run whose training
    config equals this one is reused as is; an interrupted one (status ``running`` with a
    checkpoint) is resumed; a complete run with a different config raises ``ValueError``.

    Returns:
        ``Path(run_dir)`` holding ``model.pt`` and ``config.yaml``.
    """
    from harness.config import load_config
    from harness.runs import read_status
    from harness.trainer import train

    if not isinstance(dataset, str):
        raise TypeError(f"dataset must be a dataset name (str), got {dataset!r}")
    epochs = _check_int("epochs", epochs, 1)
    config = proxy_config(dataset, epochs=epochs, n_per_class=n_per_class, model=model, seed=seed,
                          overrides=overrides)
    run_dir = Path(run_dir)
    status = read_status(run_dir)["status"]
    if status == "complete":
        existing = load_config(run_dir / "config.yaml")
        if existing.training_hash() != config.training_hash() or not (run_dir / "model.pt").is_file():
            raise ValueError(
                f"run_dir {run_dir} already holds a complete run with a different training config "
                f"(hash {existing.training_hash()} != {config.training_hash()}); choose another run_dir"
            )
        return run_dir
    resume = status == "running" and (run_dir / "checkpoint.pt").is_file()
    train(config, run_dir, resume=resume, progress=progress)
    return run_dir


def load_proxy(run_dir: str | Path, device: str | torch.device = "auto") -> torch.nn.Module:
    """The trained proxy of ``run_dir`` (``model.pt`` + ``config.yaml``) in eval mode on ``device``."""
    from harness.trainer import load_run_model

    run_dir = Path(run_dir)
    if not (run_dir / "model.pt").is_file():
        raise FileNotFoundError(f"run_dir {run_dir} has no trained model (model.pt); train it with train_proxy")
    return load_run_model(run_dir, device)


# ------------------------------------------------------------------------------------------ measurement
@torch.no_grad()
def measure_proxy_accuracy(
    model: torch.nn.Module,
    test_images_uint8: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_bins: int = 31,
    batch_size: int = 500,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    progress: bool = False,
) -> pd.DataFrame:
    """Top-1 accuracy of ``model`` on every TA op x signed bin applied to held-out test images.

    Every image gets exactly one op at one signed magnitude (``BatchSoftAugment.apply``, uint8,
    the training pipeline's TA); all (op, bin, image) triples are processed in chunks of
    ``batch_size``. Images are fed as ``uint8 / 255`` (the trainer's convention; the model does its
    own normalisation). Pass **test** images: accuracies measured on the proxy's own training
    images overstate robustness (METHOD §6.6, §7.2).

    Args:
        model: a classifier ``[B, C, H, W] float in [0, 1] -> logits [B, K]``; put in eval mode
            for the measurement (its previous mode is restored).
        test_images_uint8: uint8 ``[N, C, H, W]`` (tensor or numpy).
        labels: integer ``[N]``.
        num_bins: magnitude bins per op (31 = TrivialAugmentWide).
        batch_size: triples per forward pass.
        device: where augmentation and inference run (default: the model's device).
        precision: ``"fp32"`` (default) or ``"bf16"`` (autocast).
        progress: show a tqdm bar.

    Returns:
        DataFrame with :data:`ACCURACY_COLUMNS` in :func:`~mappings.ssim.op_bin_grid` order; the
        ``Identity`` row (bin 0) is the clean accuracy.
    """
    from tqdm.auto import tqdm

    from harness.augment.batch_trivial import BatchSoftAugment

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    images = _check_images_u8("test_images_uint8", test_images_uint8)
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor [N], got {getattr(labels, 'dtype', type(labels))}")
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"labels must have shape [N] = [{images.shape[0]}] (one per image), got {tuple(labels.shape)}"
        )
    num_bins = _check_int("num_bins", num_bins, 2)
    batch_size = _check_int("batch_size", batch_size, 1)
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    if device is None:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    images = images.to(device)
    labels = labels.to(device=device, dtype=torch.int64)
    n = images.shape[0]
    grid = op_bin_grid(num_bins, images.shape[2], images.shape[3])
    ids = torch.tensor([op_id(o) for o in grid["op"]], dtype=torch.int64, device=device)
    mags = torch.tensor(grid["magnitude"].to_numpy(), dtype=torch.float32, device=device)
    aug = BatchSoftAugment(2, None, hard=True, num_magnitude_bins=num_bins)
    correct = torch.zeros(len(grid), dtype=torch.int64, device=device)
    was_training = model.training
    model.eval()
    total = len(grid) * n
    bar = tqdm(total=total, desc="proxy accuracy", unit="img", disable=not progress)
    try:
        for combo, img in _pair_chunks(len(grid), n, batch_size):
            combo, img = combo.to(device), img.to(device)
            x, _ = aug.apply(images.index_select(0, img), ids[combo], mags[combo])
            x = x.float().div_(255.0)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits = model(x)
            hit = (logits.argmax(dim=1) == labels[img]).to(torch.int64)
            correct.index_add_(0, combo, hit)
            bar.update(int(img.numel()))
    finally:
        bar.close()
        model.train(was_training)
    grid["accuracy"] = correct.cpu().numpy() / n
    grid["n"] = n
    return grid[list(ACCURACY_COLUMNS)]


def measure_proxy_run(
    run_dir: str | Path,
    *,
    n_per_class: int | None = None,
    num_bins: int = 31,
    batch_size: int = 500,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """:func:`measure_proxy_accuracy` of the proxy in ``run_dir`` on its dataset's **test** split.

    ``n_per_class`` takes a seeded stratified test subset (``ArrayDataset.subset``); None = all.
    """
    from harness.config import load_config
    from harness.datasets import load_dataset

    model = load_proxy(run_dir, device)
    config = load_config(Path(run_dir) / "config.yaml")
    _train, test = load_dataset(config.dataset, source=config.data_source)
    if n_per_class is not None:
        test = test.subset(n_per_class, seed=seed)
    images, labels = test.to_tensors("cpu")
    dev = next(model.parameters()).device
    return measure_proxy_accuracy(model, images, labels, num_bins=num_bins, batch_size=batch_size,
                                  device=dev, precision=precision, progress=progress)


# ------------------------------------------------------------------------------------------ tables
def clean_accuracy(table: pd.DataFrame) -> float:
    """The proxy's clean accuracy: the ``accuracy`` of the ``Identity`` row(s) (n-weighted)."""
    df = _check_columns("table", table, ("op", "accuracy", "n"))
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
    from sklearn.isotonic import IsotonicRegression

    df = _check_columns("table", table, ("op", "sign", "severity", column, weight)).copy()
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
    """Add the confidence columns to a :func:`measure_proxy_accuracy` table.

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

    ``table`` is a :func:`measure_proxy_accuracy` table (the confidence columns are computed with
    :func:`proxy_confidence_table`; an existing ``confidence`` column is recomputed so that it
    always matches ``accuracy``). Knots are the measured severities (tied severities merged by
    n-weighted mean), values the isotonic, normalised ``confidence``.

    Magnitude-free ops: Identity keeps hard labels (c = 1, it defines the clean accuracy).
    AutoContrast and Equalize always have severity 0, so each gets a constant Table with its
    measured confidence when that is below 1 ("c = 1 unless measured lower"), and hard labels
    otherwise.
    """
    k = check_num_classes(num_classes)
    df = _check_columns("table", table, ("op", "sign", "severity", "accuracy", "n"))
    derived = [c for c in ("accuracy_iso", "confidence_raw", "confidence") if c in df.columns]
    df = proxy_confidence_table(df.drop(columns=derived), k)
    return _tables_to_set(df, "confidence", k, "none", name, clip_low=1.0 / k)


def save_proxy_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as CSV (no index) atomically (``harness.io.atomic_write_text``); return the path.

    The ``sign`` of unsigned ops is the empty string; :func:`load_proxy_table` restores it.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    path = Path(path)
    atomic_write_text(path, df.to_csv(index=False))
    return path


def load_proxy_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`save_proxy_table` (``sign`` of unsigned ops back to ``""``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no proxy table at {path}")
    df = pd.read_csv(path)
    if "sign" in df.columns:
        df["sign"] = df["sign"].fillna("").astype(str)
    bad = sorted(set(df.get("op", pd.Series(dtype=str))) - set(TA_OPS))
    if bad:
        raise ValueError(f"{path}: unknown ops {bad}")
    return df
