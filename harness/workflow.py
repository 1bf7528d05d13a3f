"""Compositions of the run steps: train a run, then evaluate it, under one hold of the run's lock.

The trainer (:mod:`harness.trainer`) and the evaluation (:mod:`harness.evaluate`) do not import each
other; this module is where one follows the other (``softbench train``, the proxy measurement). The
DVC pipeline runs them as separate stages instead (``train@`` then ``evaluate@``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.config import TrainConfig
from harness.evaluate import evaluate_run
from harness.trainer import TrainResult, train

__all__ = ["train_and_evaluate"]


def train_and_evaluate(config: TrainConfig, run_dir: str | Path, *, progress: bool = True,
                       **train_kwargs: Any) -> TrainResult:
    """:func:`harness.trainer.train` then :func:`harness.evaluate.evaluate_run` on the trained model,
    without releasing the run's lock in between (no second writer can enter between the steps).

    ``train_kwargs`` go to :func:`~harness.trainer.train` (``resume``, ``stop_after_epochs``, ...). A
    run stopped early (``stop_after_epochs``) is not evaluated. Returns the train result, status
    ``complete`` after a successful evaluation. Raises what either step raises
    (``TrainingFailed``, ``EvaluationFailed``, ``ConfigError``, ``RunBusyError``, ...).
    """

    def _evaluate(path: Path, cfg: TrainConfig, device: Any) -> None:
        evaluate_run(path, progress=progress, config=cfg, device=device)

    return train(config, run_dir, progress=progress, after_training=_evaluate, **train_kwargs)
