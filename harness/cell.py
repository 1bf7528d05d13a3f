"""One grid cell (arm x seed): train it, or evaluate it, with the decision to keep, resume or redo.

This is the unit of work that every executor (``harness.executors``: serial, local, ray, slurm) runs,
in whatever process or node it lands on; the pipeline stages (``harness.stages``) only dispatch.

**Train** (:func:`train_cell`). Under the run's lock, the run's stamp (training config hash, training
code hash, dataset hash, torch CPU threads; ``train_stamp.json``) decides:

* same stamp, run finished    -> ``kept`` as it is (e.g. only the arm's factors or docs changed);
* same stamp, run interrupted -> ``resumed`` from its checkpoint (also a finished run whose model.pt
  is unreadable: the final checkpoint rewrites it, and a run whose worker was killed);
* anything else               -> cleared and ``trained`` afresh (also a run killed before its first
  checkpoint, or one whose stamp, status or checkpoint cannot be read).

A non-finite loss marks the run ``failed`` (status.json, with epoch, step and reason) and returns
``failed``: the sweep goes on. Any other error propagates.

**Evaluate** (:func:`evaluate_cell`). The evaluation stamp (``eval_stamp.json``: the trained files'
hashes, the evaluation settings, the evaluation code hash, the dataset hash and the torch CPU threads)
decides: a complete evaluation with the same stamp is ``kept``; otherwise it is redone. A run that did not
train, or whose trained files cannot be read, is recorded ``failed`` with the reason (never skipped).

Each cell's messages go to ``<run_dir>/<train|eval>.log`` when an executor runs it in a worker
(:func:`run_log`); the file is created only when the cell does work, so a kept run's directory is
left byte for byte as it was (DVC sees no change).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Iterator, TextIO

from harness.config import ConfigError, TrainConfig, load_config
from harness.datasets import prepare_dataset
from harness.evaluate import EvaluationFailed, evaluate_run
from harness.grid import Grid, arm_config, eval_dir, train_dir
from harness.io import FileFormatError, atomic_write_text, read_json
from harness.paths import code_root
from harness.runs import clear_run_dir, is_complete, load_torch, read_metrics, read_status, run_lock, write_status
from harness.trainer import TrainingFailed, check_buildable, train

__all__ = ["train_is_current", "evaluation_is_current", "TRAIN_CODE", "EVAL_CODE", "STAMP_FILE", "EVAL_STAMP_FILE", "code_hash", "train_cell", "evaluate_cell",
           "check_arm", "check_cell", "grid_eval_config", "eval_config", "run_log", "TRAIN_ACTIONS", "EVAL_ACTIONS"]

#: the code a training run depends on (also the ``train`` stage's code deps in dvc.yaml)
TRAIN_CODE = ("harness/augment", "harness/config.py", "harness/datasets.py", "harness/grid.py", "harness/inference.py",
              "harness/loss.py", "harness/models.py", "harness/pipeline_builder.py", "harness/run_model.py",
              "harness/targets.py", "harness/trainer.py", "mappings")
#: the code an evaluation depends on (also the ``evaluate`` stage's code deps in dvc.yaml)
EVAL_CODE = ("harness/corruptions", "harness/evaluate.py", "harness/inference.py", "harness/metrics.py",
             "harness/models.py", "harness/run_model.py")
STAMP_FILE = "train_stamp.json"
EVAL_STAMP_FILE = "eval_stamp.json"
#: what :func:`train_cell` / :func:`evaluate_cell` report
TRAIN_ACTIONS = ("kept", "resumed", "trained", "failed")
EVAL_ACTIONS = ("kept", "evaluated", "failed")


def _log(msg: str) -> None:
    print(f"[softbench stage] {msg}", file=sys.stderr, flush=True)


def code_hash(paths: tuple[str, ...] = TRAIN_CODE) -> str:
    """SHA-256 over the Python sources under ``paths`` (relative to the working copy, ``harness.paths.code_root``;
    path and content, sorted). A run is resumed or kept only while the code that trains it is unchanged."""
    h = hashlib.sha256()
    here = code_root(tuple(paths))
    for rel in paths:
        p = here / rel
        for path in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            h.update(str(path.relative_to(here)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _data_hash(grid: Grid) -> str:
    meta = prepare_dataset(grid.dataset, source=grid.data_source) / "meta.json"
    return hashlib.sha256(meta.read_bytes()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ checks
def check_arm(grid: Grid, arm: str | None) -> None:
    if arm is None:
        raise ConfigError("this stage needs --arm")
    if arm not in grid.run_arms:
        raise ConfigError(f"--arm {arm!r} is not in params run_arms {list(grid.run_arms)}")


def check_cell(grid: Grid, arm: str | None, seed: int | None) -> None:
    if arm is None or seed is None:
        raise ConfigError("this stage needs --arm and --seed")
    check_arm(grid, arm)
    if seed not in grid.seeds:
        raise ConfigError(f"--seed {seed} is not in params seeds {list(grid.seeds)}")


def grid_eval_config(grid: Grid) -> TrainConfig:
    """A config carrying the grid's current evaluation settings (they are the same for every arm)."""
    return arm_config(grid, grid.run_arms[0], grid.seeds[0], resolve_fitted=False)


def eval_config(grid: Grid, config: TrainConfig) -> TrainConfig:
    """``config`` with the grid's current evaluation settings (evaluation never changes training)."""
    ev = grid_eval_config(grid)
    return replace(config, corruption_n=ev.corruption_n, corruption_severities=ev.corruption_severities,
                   op_eval_bins=ev.op_eval_bins, corruptions=ev.corruptions, eval_batch_size=ev.eval_batch_size,
                   corruption_cache=ev.corruption_cache)


# ------------------------------------------------------------------------------------------ logs
class _LazyLog:
    """A text stream that creates (appends to) ``path`` on its first write, so a cell that only looks
    (a kept run) leaves its directory untouched. Writes are flushed line by line: a killed worker's
    log ends at its last message."""

    def __init__(self, path: Path):
        self.path = path
        self._f: TextIO | None = None

    def write(self, text: str) -> int:
        if self._f is not None and not self.path.exists():  # the run directory was cleared under us
            self._f.close()
            self._f = None
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")
        n = self._f.write(text)
        self._f.flush()
        return n

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


@contextlib.contextmanager
def run_log(path: Path) -> Iterator[None]:
    """Send this process's ``sys.stderr`` messages (the stage's, the trainer's) to ``path`` for the block."""
    log = _LazyLog(path)
    try:
        with contextlib.redirect_stderr(log):
            yield
    finally:
        log.close()


# ------------------------------------------------------------------------------------------ train
def train_stamp(grid: Grid, config: TrainConfig) -> dict:
    """What a finished run must still match to be kept: training config hash, training code hash, dataset hash
    and the torch CPU thread count (``execution.threads_per_run``: part of a CPU run's numbers, so a run trained
    at another count is retrained rather than mixed with the new ones; conservative on CUDA)."""
    return {"training_hash": config.training_hash(), "code": code_hash(), "data": _data_hash(grid),
            "threads": grid.execution.threads_per_run}


def train_cell(grid: Grid, arm: str, seed: int, *, progress: bool = False) -> str:
    """Train (or keep, or resume) the run ``arm`` x ``seed`` of ``grid``; returns one of :data:`TRAIN_ACTIONS`.
    The config is checked in full (augmentation stages, fitted mappings, model_kwargs) before anything is
    written; the run's lock is held throughout (another writer: :class:`~harness.runs.RunBusyError`)."""
    check_cell(grid, arm, seed)
    config = arm_config(grid, arm, seed)
    check_buildable(config)
    run_dir = train_dir(arm, seed)
    stamp = train_stamp(grid, config)
    with run_lock(run_dir, command=f"softbench stage train --arm {arm} --seed {seed}"):
        action = _train_action(run_dir, config, stamp)
        if action == "keep":
            return "kept"
        if action == "fresh":
            clear_run_dir(run_dir)
            _log(f"{run_dir}: training afresh ({config.epochs} epochs, seed {seed}, stamp {stamp})")
        else:
            _log(f"{run_dir}: resuming from its checkpoint")
        try:
            train(config, run_dir, resume=action == "resume", progress=progress,
                  extra_files={STAMP_FILE: json.dumps(stamp) + "\n"})
        except TrainingFailed as exc:
            _log(f"run FAILED and is recorded as failed: {exc}")
            return "failed"
        _log(f"{run_dir}: trained")
    return "resumed" if action == "resume" else "trained"


def train_is_current(grid: Grid, arm: str, seed: int) -> bool:
    """Whether :func:`train_cell` would keep the run as it is (a read-only look, without its lock: the
    dispatcher skips such cells; the cell itself decides again under the lock)."""
    run_dir = train_dir(arm, seed)
    if not (run_dir / "model.pt").is_file():
        return False
    config = arm_config(grid, arm, seed)
    return _train_action(run_dir, config, train_stamp(grid, config)) == "keep"


def _train_action(run_dir: Path, config: TrainConfig, stamp: dict) -> str:
    """``keep``, ``resume`` or ``fresh`` for the run in ``run_dir`` (see the module doc; under its lock)."""
    ckpt, stamp_path = run_dir / "checkpoint.pt", run_dir / STAMP_FILE
    if not (ckpt.is_file() and stamp_path.is_file()):
        return "fresh"
    try:
        if read_json(stamp_path, "the run's training stamp") != stamp:
            return "fresh"
    except FileFormatError as exc:
        _log(f"{exc}: training afresh")
        return "fresh"
    try:  # status.json records the epoch of the last checkpoint (written right after it)
        st = read_status(run_dir)
    except FileFormatError as exc:
        _log(f"{exc}: resuming from the checkpoint, which holds the run's state")
        return "resume"
    status, epoch = st["status"], int(st.get("epoch") or 0)
    if status == "failed":
        return "fresh"
    if epoch >= config.epochs and (run_dir / "model.pt").is_file():
        try:
            load_torch(run_dir / "model.pt", "trained model weights")
        except FileFormatError as exc:
            _log(f"{exc}: rewriting it from the final checkpoint")
            return "resume"
        return "keep"
    return "resume" if status == "running" else "fresh"


# ------------------------------------------------------------------------------------------ evaluate
def eval_stamp(grid: Grid, tdir: Path, config: TrainConfig) -> dict:
    """What a complete evaluation must still match to be kept: the trained weights and config, the evaluation
    settings and corruption source, the evaluation code, the dataset and the torch CPU thread count (a CPU
    forward pass's reductions depend on it, like training's)."""
    settings = {k: getattr(config, k) for k in ("corruption_n", "corruption_severities", "op_eval_bins",
                                                "corruptions", "eval_batch_size", "corruption_cache")}
    return {"model": _file_hash(tdir / "model.pt"), "config": _file_hash(tdir / "config.yaml"),
            "settings": json.loads(json.dumps(settings, default=list)), "corruption_source": grid.corruption_source,
            "code": code_hash(EVAL_CODE),
            "data": _data_hash(grid), "threads": grid.execution.threads_per_run}


def evaluate_cell(grid: Grid, arm: str, seed: int, *, progress: bool = False) -> str:
    """Evaluate (or keep the evaluation of) the run ``arm`` x ``seed``; returns one of :data:`EVAL_ACTIONS`.
    The run's evaluation directory is locked while it is written."""
    check_cell(grid, arm, seed)
    tdir, out_dir = train_dir(arm, seed), eval_dir(arm, seed)
    rid = f"{arm}-s{seed}"
    with run_lock(out_dir, command=f"softbench stage evaluate --arm {arm} --seed {seed}"):
        try:
            if not (tdir / "model.pt").is_file():
                status = read_status(tdir)
                reason = status.get("reason") or f"training did not finish (status {status['status']!r})"
                clear_run_dir(out_dir)
                write_status(out_dir, "failed", reason=reason, epoch=status.get("epoch"))
                _log(f"{rid}: not evaluated: {reason}")
                return "failed"
            config = eval_config(grid, load_config(tdir / "config.yaml"))
            stamp = eval_stamp(grid, tdir, config)
            if _evaluation_kept(out_dir, stamp):
                return "kept"
            clear_run_dir(out_dir)
            _log(f"{out_dir}: evaluating {tdir}")
            atomic_write_text(out_dir / EVAL_STAMP_FILE, json.dumps(stamp) + "\n")
            evaluate_run(tdir, progress=progress, config=config, out_dir=out_dir,
                         corruption_source=grid.corruption_source)
            _log(f"{out_dir}: evaluated")
        except EvaluationFailed as exc:  # non-finite metric, recorded as failed; other errors stop the stage
            _log(f"{rid}: evaluation FAILED and is recorded as failed: {exc}")
            return "failed"
        except (FileFormatError, ConfigError) as exc:  # a trained file that cannot be read: listed, not lost
            clear_run_dir(out_dir)
            write_status(out_dir, "failed", reason=str(exc))
            _log(f"{rid}: not evaluated: {exc}")
            return "failed"
    return "evaluated"


def evaluation_is_current(grid: Grid, arm: str, seed: int) -> bool:
    """Whether :func:`evaluate_cell` would keep the evaluation (read-only, like :func:`train_is_current`)."""
    tdir, out_dir = train_dir(arm, seed), eval_dir(arm, seed)
    if not (tdir / "model.pt").is_file():
        return False
    try:
        stamp = eval_stamp(grid, tdir, eval_config(grid, load_config(tdir / "config.yaml")))
    except (FileFormatError, ConfigError):
        return False
    return _evaluation_kept(out_dir, stamp)


def _evaluation_kept(out_dir: Path, stamp: dict) -> bool:
    """The one keep rule of an evaluation: status ``complete``, result files that can be used (a damaged
    ``metrics.json`` is re-evaluated) and the same stamp."""
    if not (is_complete(out_dir) and (out_dir / "predictions.npz").is_file()):
        return False
    try:
        read_metrics(out_dir / "metrics.json")
        return read_json(out_dir / EVAL_STAMP_FILE, "the evaluation's stamp") == stamp
    except FileFormatError:  # also a missing stamp file
        return False
