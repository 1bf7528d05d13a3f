"""Evaluate a trained run: clean metrics, corruption accuracy, calibration, CIFAR-10H agreement.

Writes ``metrics.json`` (tidy rows ``{metric, corruption, severity, value}``) and
``predictions.npz`` (per-example predicted labels, clean and per corruption x severity, plus the
labels), then marks the run ``complete``. Nothing is marked complete unless every file was
written and every metric is finite.

Metric conventions: accuracy in [0, 1]; NLL in nats; ECE with 15 equal-width bins over the
max-softmax confidence; Brier = mean over samples of the summed squared error against the one-hot
label (range [0, 2]). Corruption means: ``corruption_accuracy_mean15`` is the unweighted mean of
the 15 benchmark corruptions (RobustBench-comparable), ``corruption_accuracy_mean19`` the mean of
all 19 (the reference paper's "robust accuracy"), each corruption averaged over its severities.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from harness.config import TrainConfig, load_config
from harness.runs import read_status, save_npz, write_json, write_status

__all__ = ["evaluate_run", "predict_probs"]


@torch.no_grad()
def predict_probs(model: torch.nn.Module, images_u8: torch.Tensor, device: torch.device, batch_size: int,
                  precision: str = "auto", channels_last: bool = True) -> np.ndarray:
    """Softmax probabilities (float32 numpy [N, K]) for uint8 images [N, C, H, W]."""
    model.eval()
    out = []
    for start in range(0, images_u8.shape[0], batch_size):
        x = images_u8[start:start + batch_size].to(device).float().div_(255.0)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if precision == "fp32":
            logits = model(x)
        else:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                logits = model(x)
        out.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(out).numpy()


def _row(metric: str, value: float, corruption: str | None = None, severity: int | None = None) -> dict:
    return {"metric": metric, "corruption": corruption, "severity": severity, "value": float(value)}


def evaluate_run(run_dir: str | Path, *, progress: bool = True, config: TrainConfig | None = None,
                 device: torch.device | None = None) -> list[dict]:
    """Evaluate ``run_dir/model.pt`` and write metrics, predictions and status (see module doc)."""
    from harness import metrics as M
    from harness.datasets import load_dataset
    from harness.trainer import load_run_model, resolve_device

    run_dir = Path(run_dir)
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
    preds: dict[str, np.ndarray] = {"labels": y.astype(np.int64), "clean": probs.argmax(1).astype(np.int16)}
    notes: list[str] = []

    if config.corruptions:
        from harness.corruptions import CORRUPTIONS, corrupted_test_set

        n = config.corruption_n or len(y)
        corr = corrupted_test_set(test, n=n, severities=config.corruption_severities, seed=0,
                                  progress=progress)
        try:
            acc_rows = []
            bar = tqdm(total=len(CORRUPTIONS) * len(config.corruption_severities), desc="corruptions",
                       disable=not progress)
            for name in CORRUPTIONS:
                for sev in config.corruption_severities:
                    x_c = torch.from_numpy(corr[(name, sev)]).permute(0, 3, 1, 2).contiguous()
                    p = predict_probs(model, x_c, device, config.eval_batch_size, config.precision,
                                      config.channels_last)
                    pred = p.argmax(1)
                    acc = float((pred == y[:n]).mean())
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
        preds["corruption_labels"] = y[:n].astype(np.int64)
    else:
        notes.append("corruptions disabled in config")

    if config.dataset == "cifar10":
        try:
            human = M.load_cifar10h()
        except FileNotFoundError as exc:
            notes.append(f"CIFAR-10H agreement skipped: {exc}")
        else:
            if human.shape[0] == len(y):
                for name, value in M.human_agreement(probs, human).items():
                    rows.append(_row(f"cifar10h_{name}", value))
            else:
                notes.append(f"CIFAR-10H agreement skipped: test set has {len(y)} images, CIFAR-10H {human.shape[0]}")

    bad = [r for r in rows if not math.isfinite(r["value"])]
    if bad:
        write_status(run_dir, "failed", reason=f"non-finite metric {bad[0]['metric']} at evaluation")
        raise RuntimeError(f"evaluation produced a non-finite metric: {bad[0]}")
    save_npz(run_dir / "predictions.npz", **preds)
    write_json(run_dir / "metrics.json", {"rows": rows, "notes": notes,
                                          "eval_time_s": time.perf_counter() - t0})
    write_status(run_dir, "complete", epoch=config.epochs)
    return rows
