"""Seeded trainer: a validated config and a seed become a fully recorded run directory.

Data stays resident on the device as uint8 (airbench-style) and every batch is augmented there
by the batched soft stages; each sample's confidence becomes its soft target
(:func:`harness.soft_targets`) and, optionally, its loss weight.

Determinism: python, numpy and torch are seeded from ``config.seed``; batch order and
augmentation draw from two explicit CPU ``torch.Generator`` s (so sampled parameters are the
same on CPU and CUDA). On CPU the same config and seed give bit-identical metrics.

Precision: ``precision="auto"`` uses bf16 autocast on CUDA and fp32 on the CPU
(:func:`harness.inference.resolve_precision`), ``"bf16"`` / ``"fp32"`` force one, with channels_last memory
format (``channels_last``). The loss is always computed in float32. The forward pass is
:func:`harness.inference.forward`, the one evaluation and proxy measurement use.

Speed (issue 12): a training step never synchronises with the host. The NaN guard keeps every
step's loss in a device buffer and reads it back once per epoch, before that epoch is logged or
checkpointed (a failed run names its first non-finite epoch and step, as a per-step check would);
labels are validated once when the dataset is loaded and confidences come from the pipeline in
``[1/K, 1]``, so the per-step target and loss calls skip their value checks (``validate=False``).
``compile`` (``TrainConfig``): the step's forward pass and loss (:class:`_LossStep`) run through
``torch.compile`` on CUDA (``"auto"``; ``compile_mode``, static shapes via ``drop_last``), with a
fallback to eager if compilation fails; SGD is ``fused`` on CUDA. On the CPU (``"auto"``) the step
is eager and the optimiser the same as before, so CPU numbers are unchanged bit for bit.

Structure: :func:`train` = checks and the run's lock, then :func:`_setup` -> :func:`_epoch_loop`
(-> :func:`_train_epoch` per epoch, :func:`_save_checkpoint` when due) -> :func:`_save_final`, then
an optional ``after_training`` step under the same lock. The trainer does not evaluate:
:func:`harness.workflow.train_and_evaluate` composes training and :func:`harness.evaluate.evaluate_run`
(the CLI's ``softbench train`` uses it; the DVC pipeline runs them as separate stages). The model
helpers both sides use live in :mod:`harness.run_model`.
"""

from __future__ import annotations

import copy
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from harness.config import ConfigError, TrainConfig
from harness.datasets import load_dataset
from harness.inference import autocast, forward, resolve_precision
from harness.io import FileFormatError, atomic_write_text, bad_file, provenance
from harness.loss import label_smoothing_targets_other, label_smoothing_targets_uniform, soft_cross_entropy
from harness.pipeline_builder import build_pipeline
from harness.run_model import build_run_model, check_buildable, load_run_model, resolve_device
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

__all__ = ["train", "check_buildable", "TrainingFailed", "TrainResult", "CHECKPOINT_KEYS", "batch_bounds",
           "first_nonfinite", "resolve_compile", "resolve_drop_last",
           # run-model helpers, defined in harness.run_model (kept importable from here)
           "resolve_device", "build_run_model", "load_run_model"]

#: what every checkpoint holds (a file without them is not a checkpoint this trainer can resume)
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "order_gen", "aug_gen", "torch_rng", "epoch", "log",
                   "training_hash")

#: the autocast of a precision; kept under its old name for benchmarks/train_throughput.py
_autocast = autocast


class TrainingFailed(RuntimeError):
    """Raised when a run stops on a non-finite loss (the run is marked failed on disk)."""


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    status: str
    epochs_done: int


@dataclass
class _Run:
    """Everything one training run works with, set up by :func:`_setup` (under the run's lock)."""

    config: TrainConfig
    run_dir: Path
    device: torch.device
    images: torch.Tensor  # uint8 [N, C, H, W] on the device
    labels: torch.Tensor  # int64 [N] on the device
    num_classes: int
    model: torch.nn.Module
    loss_step: "_LossStep"  # (x, y, conf) -> (loss, logits), eager
    step_fn: Callable  # loss_step, or its torch.compile wrapper
    compiled: bool  # step_fn is compiled (until a compilation fails)
    drop_last: bool  # resolved TrainConfig.drop_last
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    pipeline: Callable  # uint8 images [B, C, H, W], generator -> (images, confidences [B], infos)
    order_gen: torch.Generator  # batch order (CPU)
    aug_gen: torch.Generator  # augmentation parameters (CPU)
    prov: dict
    epoch: int = 0  # epochs done
    global_step: int = 0  # optimiser steps done (the NaN guard's step count)
    log_rows: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=lambda: {"train_s": 0.0})
    compiled_sizes: set[int] = field(default_factory=set)  # batch sizes the compiled step has run

    @property
    def n(self) -> int:
        return int(self.images.shape[0])

    @property
    def steps_per_epoch(self) -> int:
        return len(batch_bounds(self.n, self.config.batch_size, self.drop_last))

    @property
    def ckpt_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"


# ------------------------------------------------------------------------------------------ train()
def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    after_training: Callable[[Path, TrainConfig, torch.device], None] | None = None,
    stop_after_epochs: int | None = None,
    nan_at_step: int | None = None,
    extra_files: dict[str, str] | None = None,
) -> TrainResult:
    """Train ``config`` into ``run_dir``, holding the run's lock throughout.

    Steps, each a function: :func:`_setup` (data, model, optimiser, resume state, run record), then
    :func:`_epoch_loop` (epochs with the NaN guard and a checkpoint every ``checkpoint_every`` epochs),
    then :func:`_save_final` (``model.pt``), then ``after_training`` (if given) under the same lock.

    Args:
        config: a validated :class:`TrainConfig`.
        run_dir: output folder; must not hold a run's results (checkpoint, model, metrics) unless
            ``resume``. A directory without results (a run killed before its first checkpoint) is
            started afresh.
        resume: continue from ``run_dir/checkpoint.pt``; the checkpoint's training config must
            match ``config`` exactly (else ``ConfigError``, nothing written). A run that was started
            but killed before its first checkpoint is started afresh.
        progress: show a tqdm progress bar.
        after_training: ``f(run_dir, config, device)`` run under the lock once ``model.pt`` is written
            (:func:`harness.workflow.train_and_evaluate` passes the evaluation); the returned status
            is then the one it leaves in ``status.json``. Without it a trained run stays ``running``
            with the note "trained; not evaluated".
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
    if resume and not run_dir.is_dir():
        raise ConfigError(f"--resume: no checkpoint at {run_dir / 'checkpoint.pt'}: {run_dir} does not exist; "
                          "run without --resume to start the run")
    check_buildable(config)
    started = (run_dir / LOCK_FILE).exists()  # a writer worked here before (possibly killed at once)
    with run_lock(run_dir, command=f"train (seed {config.seed})"):
        ckpt = _start_state(config, run_dir, resume, started)
        run = _setup(config, run_dir, ckpt, extra_files or {})
        _epoch_loop(run, progress=progress, stop_after_epochs=stop_after_epochs, nan_at_step=nan_at_step)
        if run.epoch < config.epochs:  # stopped early (stop_after_epochs)
            return TrainResult(run_dir, "running", run.epoch)
        _save_final(run)
        if after_training is not None:
            after_training(run_dir, config, run.device)
            return TrainResult(run_dir, read_status(run_dir)["status"], config.epochs)
        write_status(run_dir, "running", epoch=config.epochs, note="trained; not evaluated")
        return TrainResult(run_dir, "running", config.epochs)


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


# ------------------------------------------------------------------------------------------ setup
def _setup(config: TrainConfig, run_dir: Path, ckpt: dict | None, extra_files: dict[str, str]) -> _Run:
    """Seed, load the training data onto the device, build model/optimiser/pipeline, restore ``ckpt``
    (if any) and write the run record (extra files, config, provenance, status ``running``)."""
    device = resolve_device(config.device)
    _seed_everything(config.seed)
    images, labels, k = _load_train_data(config, device)
    model_input = {"num_classes": k, "in_channels": int(images.shape[1]), "image_size": int(images.shape[-1])}
    model = build_run_model(config, **model_input).to(device)
    opt, sched = _make_optimizer(model, config, device)
    pipeline = build_pipeline(config.augment, k, config.combine)
    order_gen = torch.Generator().manual_seed(config.seed)
    aug_gen = torch.Generator().manual_seed(config.seed + 1_000_003)
    use_compile = resolve_compile(config.compile, device)
    drop_last = resolve_drop_last(config.drop_last, use_compile)
    _check_batches(config, int(images.shape[0]), drop_last)
    loss_step = _LossStep(model, config, k)
    step_fn, compiled, failure = (_compile_step(loss_step, config.compile_mode) if use_compile
                                  else (loss_step, False, None))
    run = _Run(config=config, run_dir=run_dir, device=device, images=images, labels=labels, num_classes=k,
               model=model, loss_step=loss_step, step_fn=step_fn, compiled=compiled, drop_last=drop_last,
               opt=opt, sched=sched, pipeline=pipeline, order_gen=order_gen, aug_gen=aug_gen,
               prov=provenance(config=config.as_dict(), seed=config.seed))
    if ckpt is not None:
        _restore(run, ckpt)
    run.global_step = run.epoch * run.steps_per_epoch
    precision = {"fp32": "fp32", "bf16": "bf16-autocast"}[resolve_precision(config.precision, device)]
    run.prov.update({"device": str(device), "precision": precision,
                     "num_train": run.n, "num_classes": k, "model_input": model_input,
                     "threads": torch.get_num_threads(),
                     "compile": {"requested": config.compile, "mode": config.compile_mode, "used": compiled,
                                 "fallback": None, "first_step_s": None},
                     "drop_last": drop_last, "steps_per_epoch": run.steps_per_epoch,
                     "fused_sgd": bool(opt.defaults.get("fused"))})
    if failure is not None:
        _record_fallback(run, failure)
    for name, text in extra_files.items():
        atomic_write_text(run_dir / name, text)
    atomic_write_text(run_dir / "config.yaml", config.to_yaml())
    write_json(run_dir / "provenance.json", run.prov)
    write_status(run_dir, "running", epoch=run.epoch)
    return run


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _load_train_data(config: TrainConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(images uint8 [N, C, H, W], labels int64 [N], K)`` of the run's training set (its seeded
    ``n_per_class`` subset when set), on ``device``."""
    train_set, _test_set = load_dataset(config.dataset, source=config.data_source)
    if config.n_per_class is not None:
        train_set = train_set.subset(config.n_per_class, seed=config.seed)
    images, labels = train_set.to_tensors(device)
    return images, labels, train_set.num_classes


def resolve_compile(compile_: bool | str, device: torch.device) -> bool:
    """Whether the training step is compiled: ``"auto"`` -> on CUDA only; a boolean as given."""
    return device.type == "cuda" if compile_ == "auto" else bool(compile_)


def resolve_drop_last(drop_last: bool | str, compiled: bool) -> bool:
    """Whether an epoch's last partial batch is dropped: ``"auto"`` -> exactly when the step is compiled
    (one static shape); a boolean as given."""
    return compiled if drop_last == "auto" else bool(drop_last)


def batch_bounds(n: int, batch: int, drop_last: bool) -> list[tuple[int, int]]:
    """``[(start, stop), ...]``: the batches of one epoch over ``n`` samples (positions in the epoch's
    order), ``batch`` at a time (``n >= 0``, ``batch >= 1``).

    Every batch holds ``batch`` samples except the last, which holds ``n % batch`` when that is not 0;
    it is dropped with ``drop_last``, and always when it holds one sample (BatchNorm needs two)."""
    bounds = [(start, min(start + batch, n)) for start in range(0, n, batch)]
    if bounds and (bounds[-1][1] - bounds[-1][0] < 2 or (drop_last and bounds[-1][1] - bounds[-1][0] < batch)):
        bounds.pop()
    return bounds


def _check_batches(config: TrainConfig, n: int, drop_last: bool) -> None:
    """A :class:`ConfigError` when an epoch over ``n`` images would hold no batch at all."""
    if batch_bounds(n, config.batch_size, drop_last):
        return
    if drop_last:
        raise ConfigError(
            f"config field 'batch_size' ({config.batch_size}) exceeds the {n} training images and 'drop_last' is "
            f"in effect (drop_last={config.drop_last!r}, compile={config.compile!r}): an epoch would hold no batch; "
            "lower batch_size or set drop_last: false")
    raise ConfigError(f"the training set holds {n} image(s): an epoch needs a batch of at least 2 (BatchNorm)")


def _optimizer_kwargs(device: torch.device) -> dict:
    """Extra ``torch.optim.SGD`` arguments on ``device``: the fused kernel on CUDA (one launch for all
    parameters); nothing on the CPU, whose optimiser (and numbers) stay as they were."""
    return {"fused": True} if device.type == "cuda" else {}


def _make_optimizer(model: torch.nn.Module, config: TrainConfig, device: torch.device):
    opt = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
        weight_decay=config.weight_decay, **_optimizer_kwargs(device),
    )
    if config.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _e: 1.0)
    return opt, sched


def _restore(run: _Run, ckpt: dict) -> None:
    """Put the checkpoint's model, optimiser, scheduler, generators, RNG, epoch, log and timings into
    ``run``; a state that does not fit is an error naming the checkpoint."""
    try:
        run.model.load_state_dict(ckpt["model"])
        run.opt.load_state_dict(ckpt["optimizer"])
        run.sched.load_state_dict(ckpt["scheduler"])
        run.order_gen.set_state(ckpt["order_gen"])
        run.aug_gen.set_state(ckpt["aug_gen"])
        torch.set_rng_state(ckpt["torch_rng"])
        if run.device.type == "cuda" and ckpt.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ckpt["cuda_rng"])
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise bad_file(run.ckpt_path, "a training checkpoint of this run's model and optimiser",
                       f"its state does not fit ({str(exc).splitlines()[0]})",
                       f"the run cannot be resumed from it: delete {run.run_dir} and train it again") from None
    run.epoch = ckpt["epoch"]
    run.log_rows = ckpt["log"]
    run.timings = ckpt.get("timings", run.timings)


# ------------------------------------------------------------------------------------------ epochs
def _epoch_loop(run: _Run, *, progress: bool, stop_after_epochs: int | None, nan_at_step: int | None) -> None:
    """Train the remaining epochs; after each, write the log and (when due) a checkpoint. Returns early
    after ``stop_after_epochs`` epochs; a non-finite loss marks the run failed (:class:`TrainingFailed`)."""
    config = run.config
    with tqdm(range(run.epoch, config.epochs), desc=f"train {run.run_dir.name}", disable=not progress,
              initial=run.epoch, total=config.epochs, unit="epoch") as bar:
        for epoch in bar:
            row = _train_epoch(run, epoch, nan_at_step)
            run.log_rows.append(row)
            run.epoch = epoch + 1
            bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['train_acc']:.3f}")
            _write_log(run.run_dir, run.log_rows)
            if run.epoch % config.checkpoint_every == 0 or run.epoch == config.epochs:
                _save_checkpoint(run)
            if stop_after_epochs is not None and stop_after_epochs <= run.epoch < config.epochs:
                return


def _train_epoch(run: _Run, epoch: int, nan_at_step: int | None) -> dict:
    """One pass over the training set in seeded order (one SGD step per batch); returns its
    ``epochs.csv`` row (mean loss, train accuracy and confidence over the samples seen, lr, seconds).

    No step reads a value back to the host: the sums stay on the device and every step's loss goes into
    a device buffer that :func:`_check_finite` reads once, after the last step (a non-finite loss marks
    the run failed there, before the epoch is logged or checkpointed). ``time_s`` includes that read, so
    it covers the device's work too."""
    device = run.device
    run.model.train()
    t0 = time.perf_counter()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    conf_sum = torch.zeros((), device=device, dtype=torch.float64)
    step_losses = torch.empty(run.steps_per_epoch, device=device, dtype=torch.float32)
    first_step = run.global_step
    seen = 0
    for i, (x, y, conf) in enumerate(_batches(run)):
        loss, logits = _step(run, x, y, conf, nan_at_step)
        step_losses[i] = loss.detach()
        bs = y.numel()
        seen += bs
        loss_sum += loss.detach().double() * bs
        correct += (logits.detach().argmax(1) == y).sum()
        conf_sum += conf.double().sum()
    _check_finite(run, step_losses, epoch, first_step)
    row = {"epoch": epoch + 1, "loss": float(loss_sum) / seen, "train_acc": int(correct) / seen,
           "mean_confidence": float(conf_sum) / seen, "lr": run.opt.param_groups[0]["lr"]}
    run.sched.step()
    elapsed = time.perf_counter() - t0
    run.timings["train_s"] += elapsed
    return {**row, "time_s": elapsed}


def _batches(run: _Run) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One epoch's batches ``(x [B, C, H, W] augmented, y [B], confidences [B])`` in an order drawn from
    ``order_gen``, augmented with ``aug_gen``.

    Samples are augmented ``augment_chunk`` at a time (a whole number of batches) in one pipeline call:
    on CUDA the batched stages are launch-bound at batch 128 (trainer/bare = 2.0x on an H100), not at 8192.
    The batches are :func:`batch_bounds` (a last batch of a single sample is skipped; with ``drop_last`` any
    partial last batch). Dropping changes no random draw: the dropped samples are still augmented.
    """
    n, batch = run.n, run.config.batch_size
    chunk = max(1, run.config.augment_chunk // batch) * batch
    perm = torch.randperm(n, generator=run.order_gen).to(run.device)
    for start, stop in batch_bounds(n, batch, run.drop_last):
        idx = perm[start:stop]
        if start % chunk == 0:
            x_chunk, conf_chunk, _infos = run.pipeline(run.images[perm[start:start + chunk]], generator=run.aug_gen)
        off = start % chunk
        yield x_chunk[off:off + idx.numel()], run.labels[idx], conf_chunk[off:off + idx.numel()]


class _LossStep(torch.nn.Module):
    """``(x, y, conf) -> (loss, logits)`` of one batch: the forward pass at the run's precision
    (:func:`harness.inference.forward`), then the float32 soft-target loss; the unit ``torch.compile``
    compiles. ``x``: augmented images [B, C, H, W] (uint8 or [0, 1] float) on the device; ``y``: int64
    labels [B] in [0, K); ``conf``: the pipeline's confidences [B] in [1/K, 1] (target confidence, and the
    loss weight with ``reweight``). ``loss`` is a float32 scalar, ``logits`` [B, K] (bf16 under autocast).

    Nothing here reads a value back to the host: labels were checked when the dataset was loaded
    (:mod:`harness.datasets`) and confidences come from ``combine_confidences`` in [1/K, 1], so targets
    and loss skip their value checks (``validate=False``)."""

    def __init__(self, model: torch.nn.Module, config: TrainConfig, num_classes: int) -> None:
        super().__init__()
        self.model = model
        self.num_classes = num_classes
        self.precision, self.channels_last = config.precision, config.channels_last
        self.label_smoothing, self.convention = config.label_smoothing, config.label_smoothing_convention
        self.reweight, self.normalize_weights = config.reweight, config.normalize_weights

    def forward(self, x: torch.Tensor, y: torch.Tensor, conf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = forward(self.model, x, precision=self.precision, channels_last=self.channels_last)
        targets = self.targets(y, conf)
        weights = conf if self.reweight else None
        loss = soft_cross_entropy(logits.float(), targets, weights=weights, normalize_weights=self.normalize_weights,
                                  validate=False)
        return loss, logits

    def targets(self, labels: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
        """Soft targets [B, K]: fixed label smoothing in the configured convention, else the confidences'."""
        k = self.num_classes
        if self.label_smoothing > 0:
            if self.convention == "other":
                return label_smoothing_targets_other(labels, self.label_smoothing, k, validate=False)
            return label_smoothing_targets_uniform(labels, self.label_smoothing, k, validate=False)
        return soft_targets(labels, conf, k, validate=False)


def _compile_step(loss_step: _LossStep, mode: str) -> tuple[Callable, bool, BaseException | None]:
    """``(step_fn, compiled, failure)``: ``torch.compile(loss_step)`` in ``mode`` with static shapes, or
    ``loss_step`` itself and the exception when even wrapping it fails (e.g. no compiler backend).

    Compilation itself happens lazily, at the first call of each batch size (:func:`_step`)."""
    try:
        return torch.compile(loss_step, mode=mode, dynamic=False), True, None
    except Exception as exc:  # noqa: BLE001 -- any failure to compile falls back to eager
        return loss_step, False, exc


def _record_fallback(run: _Run, exc: BaseException) -> None:
    """Switch ``run`` to the eager step after a compilation failure: a warning on stderr and
    ``compile.used = false`` with the reason in ``provenance.json`` (written at once)."""
    reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:500]
    run.step_fn, run.compiled = run.loss_step, False
    run.prov["compile"].update(used=False, fallback=reason)
    write_json(run.run_dir / "provenance.json", run.prov)
    _log(f"warning: torch.compile failed ({reason}); training continues in eager mode "
         f"(recorded in {run.run_dir / 'provenance.json'})")


def _step(run: _Run, x: torch.Tensor, y: torch.Tensor, conf: torch.Tensor,
          nan_at_step: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on one batch; returns ``(loss, logits)`` (device tensors, never read here).

    The first call of the compiled step at a batch size compiles it: should that raise, the model,
    optimiser and RNG state are put back as they were and the step runs eagerly, for the rest of
    the run (:func:`_record_fallback`)."""
    if run.compiled and run.device.type == "cuda":
        torch.compiler.cudagraph_mark_step_begin()  # a new iteration: CUDA-graph outputs may be reused
    if not run.compiled or x.shape[0] in run.compiled_sizes:
        return _sgd_step(run, run.step_fn, x, y, conf, nan_at_step)
    saved = _snapshot(run)
    t0 = time.perf_counter()
    try:
        out = _sgd_step(run, run.step_fn, x, y, conf, nan_at_step)
    except Exception as exc:  # noqa: BLE001 -- a failed compilation falls back to eager
        _put_back(run, saved)
        _record_fallback(run, exc)
        return _sgd_step(run, run.step_fn, x, y, conf, nan_at_step)
    run.compiled_sizes.add(int(x.shape[0]))
    if run.prov["compile"]["first_step_s"] is None:
        run.prov["compile"]["first_step_s"] = round(time.perf_counter() - t0, 3)
    return out


def _sgd_step(run: _Run, step_fn: Callable, x: torch.Tensor, y: torch.Tensor, conf: torch.Tensor,
              nan_at_step: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    loss, logits = step_fn(x, y, conf)
    if nan_at_step is not None and run.global_step == nan_at_step:
        loss = loss * float("nan")
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    run.opt.step()
    run.global_step += 1
    return loss, logits


def _snapshot(run: _Run) -> dict:
    """Copies of what a step changes (model, optimiser, RNG), for :func:`_put_back`."""
    return {"model": copy.deepcopy(run.model.state_dict()), "opt": copy.deepcopy(run.opt.state_dict()),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(run.device) if run.device.type == "cuda" else None}


def _put_back(run: _Run, saved: dict) -> None:
    run.model.load_state_dict(saved["model"])
    run.opt.load_state_dict(saved["opt"])
    run.opt.zero_grad(set_to_none=True)
    torch.set_rng_state(saved["rng"])
    if saved["cuda_rng"] is not None:
        torch.cuda.set_rng_state(saved["cuda_rng"], run.device)


def first_nonfinite(values: torch.Tensor) -> int | None:
    """Index of the first non-finite (NaN or +-inf) entry of the 1-D tensor ``values``, or None when all
    are finite (also for an empty tensor); one read back from the device."""
    if values.numel() == 0:
        return None
    bad = ~torch.isfinite(values)
    index = int(torch.where(bad.any(), bad.to(torch.int32).argmax(), -1))  # argmax: the first maximum
    return None if index < 0 else index


def _check_finite(run: _Run, step_losses: torch.Tensor, epoch: int, first_step: int) -> None:
    """The NaN guard, once per epoch: if any of the epoch's step losses (global steps ``first_step``, ...)
    is non-finite, mark the run failed with the first such epoch, step and loss, and raise."""
    index = first_nonfinite(step_losses)
    if index is None:
        return
    step = first_step + index
    write_status(run.run_dir, "failed", epoch=epoch + 1, step=step,
                 reason=f"non-finite loss ({float(step_losses[index])}) at epoch {epoch + 1}, step {step}")
    raise TrainingFailed(f"non-finite loss at epoch {epoch + 1}, step {step}; "
                         f"run marked failed in {run.run_dir / 'status.json'}")


def _write_log(run_dir: Path, rows: list[dict]) -> None:
    atomic_write_text(run_dir / "epochs.csv", pd.DataFrame(rows).to_csv(index=False))


# ------------------------------------------------------------------------------------------ checkpoints
def _save_checkpoint(run: _Run) -> None:
    """Write ``checkpoint.pt`` (everything a resume needs, :data:`CHECKPOINT_KEYS`), then status ``running``
    at this epoch."""
    save_torch(run.ckpt_path, {
        "model": run.model.state_dict(), "optimizer": run.opt.state_dict(), "scheduler": run.sched.state_dict(),
        "order_gen": run.order_gen.get_state(), "aug_gen": run.aug_gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state() if run.device.type == "cuda" else None,
        "epoch": run.epoch, "log": run.log_rows, "timings": run.timings,
        "training_hash": run.config.training_hash(),
    })
    write_status(run.run_dir, "running", epoch=run.epoch)


def _save_final(run: _Run) -> None:
    """The trained weights (``model.pt``) and the provenance with the training time."""
    save_torch(run.run_dir / "model.pt", run.model.state_dict())
    run.prov["timings"] = run.timings
    write_json(run.run_dir / "provenance.json", run.prov)
