"""Seeded trainer: a validated config and a seed become a fully recorded run directory.

Data stays resident on the device as uint8 (airbench-style) and every batch is augmented there
by the batched soft stages; each sample's confidence becomes its soft target
(:func:`harness.soft_targets`) and, optionally, its loss weight.

Determinism: python, numpy and torch are seeded from ``config.seed``; batch order and
augmentation draw from two explicit CPU ``torch.Generator`` s (so sampled parameters are the
same on CPU and CUDA). On CPU the same config and seed give bit-identical metrics.

Precision: ``precision="auto"`` uses bf16 autocast (CPU and CUDA) with channels_last memory
format; ``"fp32"`` disables autocast. The loss is always computed in float32.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from harness.config import ConfigError, TrainConfig
from harness.io import FileFormatError, atomic_write_text, bad_file, provenance, read_json
from harness.loss import label_smoothing_targets_other, label_smoothing_targets_uniform, soft_cross_entropy
from harness.pipeline_builder import build_pipeline
from harness.runs import (
    LOCK_FILE,
    RESULT_FILES,
    check_run_dir_path,
    load_torch,
    read_status,
    run_lock,
    save_torch,
    write_json,
    write_status,
)
from harness.targets import soft_targets

__all__ = ["train", "resolve_device", "build_run_model", "load_run_model", "check_buildable", "TrainingFailed",
           "TrainResult", "CHECKPOINT_KEYS"]

#: what every checkpoint holds (a file without them is not a checkpoint this trainer can resume)
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "order_gen", "aug_gen", "torch_rng", "epoch", "log",
                   "training_hash")


class TrainingFailed(RuntimeError):
    """Raised when a run stops on a non-finite loss (the run is marked failed on disk)."""


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    status: str
    epochs_done: int


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config field 'device' is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(name)


def build_run_model(config: TrainConfig, num_classes: int, in_channels: int, image_size: int) -> torch.nn.Module:
    """The run's model (fresh weights, channels_last if configured), on the CPU."""
    from harness.models import build_model

    model = build_model(config.model, num_classes, in_channels=in_channels, image_size=image_size,
                        **config.model_kwargs)
    return model.to(memory_format=torch.channels_last) if config.channels_last else model


def check_buildable(config: TrainConfig) -> None:
    """Build ``config``'s augmentation pipeline and model once on the CPU (at the dataset's nominal size),
    so that a bad ``model_kwargs`` value or stage is a :class:`ConfigError` before any file is written.
    The global RNG state is left as it was."""
    from harness.datasets import DATASET_SPECS

    spec = DATASET_SPECS[config.dataset]
    build_pipeline(config.augment, spec.num_classes, config.combine)
    with torch.random.fork_rng(devices=[]):
        try:
            build_run_model(config, spec.num_classes, 3, spec.image_size)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config field 'model_kwargs' ({config.model_kwargs!r}) does not build model "
                              f"{config.model!r}: {exc}") from None


def load_run_model(run_dir: str | Path, device: torch.device | str = "auto",
                   config: TrainConfig | None = None) -> torch.nn.Module:
    """The trained model of ``run_dir`` (``model.pt``) in eval mode on ``device``.

    The model's input shape and class count come from the run's ``provenance.json``
    (``model_input``), i.e. from the data it was trained on, not from a dataset's nominal size.
    A missing, corrupt or mismatching file is an error naming it (:class:`~harness.io.FileFormatError`).
    """
    from harness.config import load_config

    run_dir = Path(run_dir)
    weights = run_dir / "model.pt"
    if not weights.is_file():
        raise FileNotFoundError(f"no trained model at {weights} (status: {read_status(run_dir)['status']})")
    config = config or load_config(run_dir / "config.yaml")
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    hint = (f"rerun training with --resume (rewrites model.pt from the last checkpoint), or delete {run_dir} "
            "and train it again")
    prov_path = run_dir / "provenance.json"
    expected = "the run's provenance (a JSON object with model_input {num_classes, in_channels, image_size})"
    shape = read_json(prov_path, expected, hint=hint).get("model_input")
    if not isinstance(shape, dict) or any(not isinstance(shape.get(k), int)
                                          for k in ("num_classes", "in_channels", "image_size")):
        raise bad_file(prov_path, expected, f"its model_input is {shape!r}", hint)
    model = build_run_model(config, shape["num_classes"], shape["in_channels"], shape["image_size"])
    state = load_torch(weights, "trained model weights (a state_dict written by softbench train)", hint=hint)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, KeyError) as exc:
        raise bad_file(weights, f"the weights of model {config.model!r} as configured in config.yaml",
                       f"they do not fit it ({str(exc).splitlines()[0]})", hint) from None
    return model.to(device).eval()


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _targets(config: TrainConfig, labels: torch.Tensor, conf: torch.Tensor, k: int) -> torch.Tensor:
    if config.label_smoothing > 0:
        if config.label_smoothing_convention == "other":
            return label_smoothing_targets_other(labels, config.label_smoothing, k)
        return label_smoothing_targets_uniform(labels, config.label_smoothing, k)
    return soft_targets(labels, conf, k)


def _make_optimizer(model: torch.nn.Module, config: TrainConfig):
    opt = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )
    if config.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _e: 1.0)
    return opt, sched


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    evaluate: bool = True,
    stop_after_epochs: int | None = None,
    nan_at_step: int | None = None,
    extra_files: dict[str, str] | None = None,
) -> TrainResult:
    """Train ``config`` into ``run_dir`` and (by default) evaluate it, holding the run's lock throughout.

    Args:
        config: a validated :class:`TrainConfig`.
        run_dir: output folder; must not hold a run's results (checkpoint, model, metrics) unless
            ``resume``. A directory without results (a run killed before its first checkpoint) is
            started afresh.
        resume: continue from ``run_dir/checkpoint.pt``; the checkpoint's training config must
            match ``config`` exactly (else ``ConfigError``, nothing written). A run that was started
            but killed before its first checkpoint is started afresh.
        progress: show a tqdm progress bar.
        evaluate: run :func:`harness.evaluate.evaluate_run` after training.
        stop_after_epochs: testing aid that simulates an interruption after that many epochs
            (the run stays ``running`` with a checkpoint).
        nan_at_step: testing aid that injects a NaN loss at that global step.
        extra_files: ``{name: text}`` written (atomically) into the run directory under the lock before
            training starts (the pipeline's ``train_stamp.json``).

    Raises:
        ConfigError: the run directory holds another run, or nothing to resume, or the config does
            not build; nothing is written.
        RunBusyError: another process holds the run directory's lock.
        FileFormatError: the checkpoint to resume from cannot be read (the message names it).
        TrainingFailed: a non-finite loss (the run is marked failed on disk).
    """
    run_dir = check_run_dir_path(run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    if resume and not run_dir.is_dir():
        raise ConfigError(f"--resume: no checkpoint at {ckpt_path}: {run_dir} does not exist; "
                          "run without --resume to start the run")
    check_buildable(config)
    started = (run_dir / LOCK_FILE).exists()  # a writer worked here before (possibly killed at once)
    with run_lock(run_dir, command=f"train (seed {config.seed})"):
        ckpt = _start_state(config, run_dir, resume, started)
        return _train_locked(config, run_dir, ckpt, progress=progress, evaluate=evaluate,
                             stop_after_epochs=stop_after_epochs, nan_at_step=nan_at_step,
                             extra_files=extra_files or {})


def _start_state(config: TrainConfig, run_dir: Path, resume: bool, started: bool) -> dict | None:
    """Under the run's lock: the checkpoint to resume from (None: start afresh), or a ConfigError."""
    ckpt_path = run_dir / "checkpoint.pt"
    results = [name for name in RESULT_FILES if (run_dir / name).exists()]
    if resume:
        if ckpt_path.exists():
            ckpt = load_torch(ckpt_path, "a training checkpoint written by softbench train", keys=CHECKPOINT_KEYS,
                              hint=f"the run cannot be resumed from it: delete {run_dir} and train it again")
            if ckpt["training_hash"] != config.training_hash():
                raise ConfigError(
                    f"--resume: the config differs from the one that wrote {ckpt_path} "
                    f"(training hash {config.training_hash()} != {ckpt['training_hash']}); "
                    "resume with the original config or start a new run directory"
                )
            return ckpt
        if results:
            raise ConfigError(f"--resume: no checkpoint at {ckpt_path}, but {run_dir} holds results ({results}) "
                              "that a resume cannot rebuild; choose another --out or delete the run")
        if not (started or (run_dir / "status.json").exists() or (run_dir / "config.yaml").exists()):
            raise ConfigError(f"--resume: no checkpoint at {ckpt_path}: {run_dir} holds no run to resume; "
                              "run without --resume to start one")
        _log(f"{run_dir}: the run stopped before its first checkpoint; starting it afresh")
    else:
        try:
            status = read_status(run_dir)["status"]
            said = f"status {status!r}"
        except FileFormatError as exc:
            status, said = "unreadable", f"unreadable status: {exc}"
        if results or status == "complete":
            raise ConfigError(
                f"run directory {run_dir} already holds a run ({said}; results {results}); "
                "use --resume to continue it or choose another --out"
            )
        if status != "missing":
            _log(f"{run_dir}: the run stopped before its first checkpoint (status {status!r}); starting afresh")
    for name in ("epochs.csv", "status.json"):  # a killed attempt's log and status (no results)
        (run_dir / name).unlink(missing_ok=True)
    return None


def _log(msg: str) -> None:
    print(f"[softbench train] {msg}", file=sys.stderr, flush=True)


def _train_locked(config: TrainConfig, run_dir: Path, ckpt: dict | None, *, progress: bool, evaluate: bool,
                  stop_after_epochs: int | None, nan_at_step: int | None, extra_files: dict[str, str]
                  ) -> TrainResult:
    from harness.datasets import load_dataset

    ckpt_path = run_dir / "checkpoint.pt"
    device = resolve_device(config.device)
    _seed_everything(config.seed)
    train_set, _test_set = load_dataset(config.dataset, source=config.data_source)
    if config.n_per_class is not None:
        train_set = train_set.subset(config.n_per_class, seed=config.seed)
    k = train_set.num_classes
    images, labels = train_set.to_tensors(device)
    n = images.shape[0]

    model_input = {"num_classes": k, "in_channels": int(images.shape[1]), "image_size": int(images.shape[-1])}
    model = build_run_model(config, **model_input).to(device)
    opt, sched = _make_optimizer(model, config)
    pipeline = build_pipeline(config.augment, k, config.combine)
    order_gen = torch.Generator().manual_seed(config.seed)
    aug_gen = torch.Generator().manual_seed(config.seed + 1_000_003)
    step_model = torch.compile(model) if config.compile else model

    start_epoch = 0
    log_rows: list[dict] = []
    timings = {"train_s": 0.0}
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            order_gen.set_state(ckpt["order_gen"])
            aug_gen.set_state(ckpt["aug_gen"])
            torch.set_rng_state(ckpt["torch_rng"])
            if device.type == "cuda" and ckpt.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(ckpt["cuda_rng"])
        except (RuntimeError, TypeError, ValueError, KeyError) as exc:
            raise bad_file(ckpt_path, "a training checkpoint of this run's model and optimiser",
                           f"its state does not fit ({str(exc).splitlines()[0]})",
                           f"the run cannot be resumed from it: delete {run_dir} and train it again") from None
        start_epoch = ckpt["epoch"]
        log_rows = ckpt["log"]
        timings = ckpt.get("timings", timings)

    for name, text in extra_files.items():
        atomic_write_text(run_dir / name, text)
    atomic_write_text(run_dir / "config.yaml", config.to_yaml())
    prov = provenance(config=config.as_dict(), seed=config.seed)
    prov.update({"device": str(device), "precision": "fp32" if config.precision == "fp32" else "bf16-autocast",
                 "num_train": n, "num_classes": k, "model_input": model_input,
                 "threads": torch.get_num_threads()})
    write_json(run_dir / "provenance.json", prov)
    write_status(run_dir, "running", epoch=start_epoch)

    batch = config.batch_size
    chunk = max(1, config.augment_chunk // batch) * batch  # a whole number of batches
    global_step = start_epoch * math.ceil(n / batch)
    bar = tqdm(range(start_epoch, config.epochs), desc=f"train {run_dir.name}", disable=not progress,
               initial=start_epoch, total=config.epochs, unit="epoch")
    for epoch in bar:
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=order_gen).to(device)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.long)
        conf_sum = torch.zeros((), device=device, dtype=torch.float64)
        seen = 0
        for start in range(0, n, batch):
            idx = perm[start:start + batch]
            if idx.numel() < 2:  # BatchNorm needs 2+ samples; a single leftover sample is skipped
                continue
            if start % chunk == 0:
                # Augment `chunk` samples (many batches) in one call: on CUDA the batched stages are
                # launch-bound at batch 128 (trainer/bare = 2.0x on an H100), not at 8192.
                c_idx = perm[start:start + chunk]
                x_chunk, conf_chunk, _infos = pipeline(images[c_idx], generator=aug_gen)
            off = start % chunk
            x, conf = x_chunk[off:off + idx.numel()], conf_chunk[off:off + idx.numel()]
            y = labels[idx]
            x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, config.precision):
                logits = step_model(x)
            targets = _targets(config, y, conf, k)
            weights = conf if config.reweight else None
            loss = soft_cross_entropy(logits.float(), targets, weights=weights,
                                      normalize_weights=config.normalize_weights)
            if nan_at_step is not None and global_step == nan_at_step:
                loss = loss * float("nan")
            if not torch.isfinite(loss):
                write_status(run_dir, "failed", epoch=epoch + 1, step=global_step,
                             reason=f"non-finite loss ({loss.item()}) at epoch {epoch + 1}, step {global_step}")
                bar.close()
                raise TrainingFailed(f"non-finite loss at epoch {epoch + 1}, step {global_step}; "
                                     f"run marked failed in {run_dir / 'status.json'}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            global_step += 1
            bs = idx.numel()
            seen += bs
            loss_sum += loss.detach().double() * bs
            correct += (logits.detach().argmax(1) == y).sum()
            conf_sum += conf.double().sum()
        lr = opt.param_groups[0]["lr"]
        sched.step()
        elapsed = time.perf_counter() - t0
        timings["train_s"] += elapsed
        row = {"epoch": epoch + 1, "loss": float(loss_sum) / seen, "train_acc": int(correct) / seen,
               "mean_confidence": float(conf_sum) / seen, "lr": lr, "time_s": elapsed}
        log_rows.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['train_acc']:.3f}")
        _write_log(run_dir, log_rows)
        done = epoch + 1
        if done % config.checkpoint_every == 0 or done == config.epochs:
            save_torch(ckpt_path, {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "order_gen": order_gen.get_state(), "aug_gen": aug_gen.get_state(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state() if device.type == "cuda" else None,
                "epoch": done, "log": log_rows, "timings": timings,
                "training_hash": config.training_hash(),
            })
            write_status(run_dir, "running", epoch=done)
        if stop_after_epochs is not None and done >= stop_after_epochs and done < config.epochs:
            bar.close()
            return TrainResult(run_dir, "running", done)
    bar.close()
    save_torch(run_dir / "model.pt", model.state_dict())
    prov["timings"] = timings
    write_json(run_dir / "provenance.json", prov)
    if evaluate:
        from harness.evaluate import evaluate_run

        evaluate_run(run_dir, progress=progress, config=config, device=device)
        return TrainResult(run_dir, "complete", config.epochs)
    write_status(run_dir, "running", epoch=config.epochs, note="trained; not evaluated")
    return TrainResult(run_dir, "running", config.epochs)


def _write_log(run_dir: Path, rows: list[dict]) -> None:
    import pandas as pd

    atomic_write_text(run_dir / "epochs.csv", pd.DataFrame(rows).to_csv(index=False))
