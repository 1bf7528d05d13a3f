"""Evaluate a trained run: clean metrics, corruption accuracy, calibration, CIFAR-10H agreement.

Writes ``metrics.json`` (tidy rows ``{metric, corruption, severity, value}``) and
``predictions.npz`` (per-example predicted labels and max-softmax confidences, clean and per
corruption x severity, plus the labels), then marks the run ``complete``. Nothing is marked
complete unless every file was written and every metric is finite. By default these files go into
the run directory; ``out_dir`` puts them elsewhere (the DVC pipeline keeps training and evaluation
outputs apart so that re-evaluating never retrains).

Corruption subset: with ``corruption_n`` smaller than the test set, the corrupted images are a
**class-stratified** subset (classes interleaved in a fixed seeded order, balanced to within one
image per class), identical for every run, so paired per-example tests between runs are valid.
Test sets sorted by class (CIFAR-10 from ``../shared/data``, mnist5k) would otherwise give a
"first N images" subset of one or two classes.

Per-op accuracy (``op_eval_bins``): accuracy on the same subset with every TrivialAugment op
applied at each listed magnitude bin (positive sign), metric ``op_accuracy`` with the op in the
``corruption`` field and the bin in ``severity``.

Corruption source (``corruption_source``): ``"generated"`` (default) scores the reimplemented corruptions of the
test subset; ``"official"`` the released CIFAR-10-C / CIFAR-100-C files, on the same stratified rule applied to the
release's own labels and scored against them (``corruption_indices`` are then rows of the release; refused unless
the test set's class names are the canonical ones; :mod:`harness.corruptions.sources`). ``metrics.json``'s notes
name the source scored.

Speed on an accelerator: the corrupted images go to the device as one ``uint8`` copy that stays there for every
later run the same worker process evaluates (**resident**; reused while the source's identity is unchanged,
one set per process), when it fits in :data:`RESIDENT_FREE_FRACTION` of the device's free memory
(:func:`resident_fits`; a full CIFAR-10 set of 10,000 x 19 x 5 images is 2.9 GB). On the CPU nothing is held
(the operating system's page cache already keeps the file). Predicted labels are taken on the device, so one
``[n]`` integer vector per corruption comes back to the host. Neither changes a number: the same uint8
images, the same forward pass and the same softmax argmax (first maximum on ties, as numpy's).

Metric conventions: accuracy in [0, 1]; NLL in nats; ECE with 15 equal-width bins over the
max-softmax confidence; Brier = mean over samples of the summed squared error against the one-hot
label (range [0, 2]). Corruption means: ``corruption_accuracy_mean15`` is the unweighted mean of
the 15 benchmark corruptions (RobustBench-comparable), ``corruption_accuracy_mean19`` the mean of
all 19 (the reference paper's "robust accuracy"), each corruption averaged over its severities.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from harness import metrics as M
from harness.config import TrainConfig, load_config
from harness.corruptions import CORRUPTIONS
from harness.corruptions.sources import check_corruption_source, open_corruptions, source_identity
from harness.datasets import ArrayDataset, _ranked, load_dataset
from harness.inference import op_accuracy, op_settings, predict_labels, predict_probs
from harness.run_model import load_run_model, resolve_device
from harness.runs import check_run_dir_path, read_status, run_lock, save_npz, write_json, write_status

__all__ = ["evaluate_run", "predict_probs", "predict_labels", "stratified_indices", "subset_rows", "corruption_subset",
           "EvaluationFailed", "resident_fits", "release_resident", "RESIDENT_FREE_FRACTION"]


class EvaluationFailed(RuntimeError):
    """A metric came out non-finite; the run is marked failed on disk (nothing marked complete)."""

CORRUPTION_SUBSET_TAG = "softbench-corruption-subset"


def stratified_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a class-stratified subset of ``n`` rows of ``labels`` (deterministic).

    Every class's rows are put in a seeded hash order; the subset takes rank 0 of every class,
    then rank 1, ... until ``n`` rows, so class counts differ by at most one (classes with too
    few rows contribute all they have). ``n`` must be in ``[1, len(labels)]``.
    """
    labels = np.asarray(labels)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= labels.size:
        raise ValueError(f"n must be an int in [1, {labels.size}] (the number of labels), got {n!r}")
    rows = np.arange(labels.size, dtype=np.int64)
    rank = np.empty(labels.size, dtype=np.int64)  # each row's position in its class's hash order
    for k in np.unique(labels):
        ranked = _ranked(CORRUPTION_SUBSET_TAG, seed, rows[labels == k])
        rank[ranked] = np.arange(ranked.size)
    order = np.lexsort((labels, rank))  # rank 0 of every class (in class order), then rank 1, ...
    return np.sort(order[:n])


def _row(metric: str, value: float, corruption: str | None = None, severity: int | None = None) -> dict:
    return {"metric": metric, "corruption": corruption, "severity": severity, "value": float(value)}


def subset_rows(labels: np.ndarray, n: int | None) -> np.ndarray:
    """The rows of the evaluation subset of a set with these ``labels``: all of them (``arange``) when ``n``
    is None or covers the set, else the class-stratified :func:`stratified_indices` of ``n`` rows."""
    total = len(labels)
    n = total if n is None else min(int(n), total)
    return np.arange(total) if n >= total else stratified_indices(labels, n)


def corruption_subset(test, n: int | None):
    """``(dataset, indices)``: the class-stratified evaluation subset of ``n`` test images (all when
    ``n`` is None or covers the test set). The subset is named ``<name>_strat<n>`` so its corruption
    cache never mixes with the full test set's."""
    idx = subset_rows(test.labels, n)
    if idx.size == len(test):
        return test, idx
    return ArrayDataset(f"{test.name}_strat{idx.size}", test.images[idx], test.labels[idx], test.classes), idx


def _op_accuracy_rows(model, images: torch.Tensor, y: np.ndarray, k: int, bins, device, config) -> list[dict]:
    """``op_accuracy`` rows: every TrivialAugment op at every bin of ``bins`` (see the module doc)."""
    settings = op_settings(bins)
    accs = op_accuracy(model, images, y, settings, device=device, batch_size=config.eval_batch_size,
                       precision=config.precision, channels_last=config.channels_last, num_classes=k)
    return [_row("op_accuracy", acc, s.op, s.bin) for s, acc in zip(settings, accs)]


#: the largest share of a device's free memory a resident corrupted set may take
RESIDENT_FREE_FRACTION = 0.25
# the set held by this process: (identity, device, {(name, severity): uint8 [n, C, H, W] on device}); one at a
# time, replaced when a run needs another (module state on purpose: it lives as long as the worker process)
_resident: tuple | None = None


def resident_fits(nbytes: int, device: torch.device) -> bool:
    """Whether ``nbytes`` of corrupted images should be kept resident on ``device``: CUDA only, and only
    within :data:`RESIDENT_FREE_FRACTION` of its free memory (counting the set this process already holds as
    free, since it would be replaced)."""
    device = torch.device(device)
    if device.type != "cuda":
        return False
    free, _total = torch.cuda.mem_get_info(device)
    held = sum(t.numel() for t in _resident[2].values()) if _resident is not None and _resident[1] == device else 0
    return nbytes <= RESIDENT_FREE_FRACTION * (free + held)


def _to_device_nchw(images_nhwc: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 ``[n, H, W, 3]`` (host) -> contiguous uint8 ``[n, 3, H, W]`` on ``device`` (moved before the
    permute, so an accelerator does the copy)."""
    return torch.from_numpy(np.ascontiguousarray(images_nhwc)).to(device).permute(0, 3, 1, 2).contiguous()


def _corrupted_images(corr, keys: list[tuple[str, int]], device: torch.device, resident: bool | None):
    """Yield ``(key, uint8 [n, 3, H, W] on device)`` for ``keys`` of the open source ``corr``, from the
    resident copy when this process holds it (see the module doc); ``resident=None`` decides by
    :func:`resident_fits`, ``True`` / ``False`` force it (tests, benchmarks)."""
    global _resident
    identity = (source_identity(corr), tuple(keys))
    if _resident is not None and _resident[0] == identity and _resident[1] == device:
        yield from ((k, _resident[2][k]) for k in keys)
        return
    first = corr[keys[0]]
    if resident is None:
        resident = resident_fits(first.nbytes * len(keys), device)
    if not resident:
        for i, k in enumerate(keys):
            yield k, _to_device_nchw(first if i == 0 else corr[k], device)
        return
    _resident = None  # release the previous set before loading the next
    arrays = {k: _to_device_nchw(first if i == 0 else corr[k], device) for i, k in enumerate(keys)}
    _resident = (identity, device, arrays)
    yield from arrays.items()


def release_resident() -> None:
    """Drop the corrupted set this process holds on its device (the next evaluation loads it again)."""
    global _resident
    _resident = None


def evaluate_run(run_dir: str | Path, *, progress: bool = True, config: TrainConfig | None = None,
                 device: torch.device | None = None, out_dir: str | Path | None = None,
                 corruption_source: str = "generated", official_root: str | Path | None = None,
                 resident: bool | None = None) -> list[dict]:
    """Evaluate ``run_dir/model.pt``; write metrics, predictions and status to ``out_dir`` (default
    ``run_dir``; see the module doc). Holds the lock of ``run_dir`` (and of ``out_dir``) throughout:
    another process writing either raises :class:`~harness.runs.RunBusyError`.

    ``corruption_source``: ``"generated"`` or ``"official"`` (then ``official_root`` is the release's folder,
    or ``None`` to search the usual places); ``resident``: keep the corrupted set on the device for later runs
    of this process (``None``: when it fits, CUDA only; see the module doc)."""
    check_corruption_source(corruption_source)
    if official_root is not None and corruption_source != "official":
        raise ValueError(f"official_root ({official_root}) is only used with corruption_source 'official', "
                         f"got corruption_source {corruption_source!r}")
    run_dir = Path(run_dir)
    out_dir = run_dir if out_dir is None else check_run_dir_path(out_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"evaluate: run directory {run_dir} does not exist")
    with run_lock(run_dir, command="evaluate"), (
            run_lock(out_dir, command="evaluate") if out_dir != run_dir else contextlib.nullcontext()):
        return _evaluate_locked(run_dir, out_dir, progress=progress, config=config, device=device,
                                source=corruption_source, official_root=official_root, resident=resident)


def _evaluate_locked(run_dir: Path, out_dir: Path, *, progress: bool, config: TrainConfig | None,
                     device: torch.device | None, source: str, official_root, resident: bool | None) -> list[dict]:
    if not (run_dir / "model.pt").is_file():
        raise FileNotFoundError(f"evaluate: no trained model at {run_dir / 'model.pt'} "
                                f"(status: {read_status(run_dir)['status']})")
    if config is None:
        config = load_config(run_dir / "config.yaml")
    device = device or resolve_device(config.device)
    t0 = time.perf_counter()
    _train, test = load_dataset(config.dataset, source=config.data_source)
    model = load_run_model(run_dir, device, config)

    images, labels = test.to_tensors("cpu")
    y = labels.numpy()
    probs = predict_probs(model, images, device, config.eval_batch_size, config.precision, config.channels_last)
    clean = M.classification_metrics(probs, y)
    rows = [_row(name, value) for name, value in clean.items()]
    preds: dict[str, np.ndarray] = {"labels": y.astype(np.int64), "clean": probs.argmax(1).astype(np.int16),
                                    "clean_confidence": probs.max(1).astype(np.float32)}
    notes: list[str] = []
    test_sub, sub = corruption_subset(test, config.corruption_n)
    n = len(sub)
    if n < len(y):
        notes.append(f"corruption and op metrics on a class-stratified subset of {n} of {len(y)} test images")
    y_sub = y[sub]

    if config.op_eval_bins:
        rows += _op_accuracy_rows(model, images[torch.from_numpy(sub)], y_sub, len(test.classes),
                                  tuple(config.op_eval_bins), device, config)

    if config.corruptions:
        corr = open_corruptions(test, test_sub, dataset=config.dataset, severities=config.corruption_severities,
                                source=source, select=lambda labels: subset_rows(labels, config.corruption_n),
                                official_root=official_root, cache_root=config.corruption_cache, progress=progress)
        try:
            # generated: rows of the test subset; official: rows of the release, scored against its own labels
            y_corr, rows_corr = (y_sub, sub) if source == "generated" else (corr.labels, corr.indices)
            notes.append("corruptions scored: " + (corr.describe() if source == "official" else
                         f"generated (softbench generators, version {corr.meta['generator_version']}), {corr.path}"))
            keys = [(name, sev) for name in CORRUPTIONS for sev in config.corruption_severities]
            acc_rows = []
            bar = tqdm(total=len(keys), desc="corruptions", disable=not progress)
            for (name, sev), x_c in _corrupted_images(corr, keys, device, resident):
                pred = predict_labels(model, x_c, device, config.eval_batch_size, config.precision,
                                      config.channels_last)
                acc = float((pred == y_corr).mean())
                rows.append(_row("accuracy", acc, name, sev))
                acc_rows.append({"corruption": name, "severity": sev, "accuracy": acc})
                preds[f"{name}/{sev}"] = pred.astype(np.int16)
                bar.update()
        finally:
            corr.close()
        bar.close()
        summary = M.summarize_corruptions(pd.DataFrame(acc_rows), severities=config.corruption_severities)
        rows.append(_row("corruption_accuracy_mean15", summary["mean15"]))
        rows.append(_row("corruption_accuracy_mean19", summary["mean19"]))
        for fam, value in summary["families"].items():
            rows.append(_row("corruption_accuracy_family", value, fam))
        preds["corruption_labels"] = y_corr.astype(np.int64)
        preds["corruption_indices"] = rows_corr.astype(np.int64)
    else:
        notes.append("corruptions disabled in config")

    if config.dataset == "cifar10":
        try:
            human = M.load_cifar10h()
        except FileNotFoundError as exc:
            notes.append(f"CIFAR-10H agreement skipped: {exc}")
        else:
            # The rows of CIFAR-10H must be this test set's images in this order. A test set in another
            # order (e.g. torchvision's pickles vs the class-sorted npz) would silently pair the wrong
            # images, so the human majority label must agree with the true label (it does for ~99 %
            # of CIFAR-10 test images; a misaligned order gives ~10 %).
            agree = float((human.argmax(1) == y).mean()) if human.shape[0] == len(y) else 0.0
            if human.shape[0] == len(y) and agree >= 0.9:
                for name, value in M.human_agreement(probs, human).items():
                    rows.append(_row(f"cifar10h_{name}", value))
            elif human.shape[0] == len(y):
                notes.append(f"CIFAR-10H agreement skipped: its rows do not follow this test set's order "
                             f"(human majority label = true label for only {agree:.1%} of images)")
            else:
                notes.append(f"CIFAR-10H agreement skipped: test set has {len(y)} images, CIFAR-10H {human.shape[0]}")

    bad = [r for r in rows if not math.isfinite(r["value"])]
    if bad:
        write_status(out_dir, "failed", reason=f"non-finite metric {bad[0]['metric']} at evaluation")
        raise EvaluationFailed(f"evaluation produced a non-finite metric: {bad[0]}")
    save_npz(out_dir / "predictions.npz", **preds)
    write_json(out_dir / "metrics.json", {"rows": rows, "notes": notes, "model_dir": str(run_dir),
                                          "eval_time_s": time.perf_counter() - t0})
    write_status(out_dir, "complete", epoch=config.epochs)
    return rows
