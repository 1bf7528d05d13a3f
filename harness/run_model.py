"""A run's model: the device it runs on, building it from a config, loading a trained one.

Used by the trainer (fresh weights), evaluation and proxy measurement (trained weights of a run
directory); neither of those imports the other for it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from harness.config import ConfigError, TrainConfig, load_config
from harness.datasets import DATASET_SPECS
from harness.io import bad_file, read_json
from harness.models import build_model
from harness.pipeline_builder import build_pipeline
from harness.runs import load_torch, read_status

__all__ = ["resolve_device", "build_run_model", "check_buildable", "load_run_model"]


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is a :class:`ConfigError`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config field 'device' is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(name)


def build_run_model(config: TrainConfig, num_classes: int, in_channels: int, image_size: int) -> torch.nn.Module:
    """The run's model (fresh weights drawn from the global torch RNG, channels_last if configured), on
    the CPU; it maps float ``[N, in_channels, image_size, image_size]`` in ``[0, 1]`` to logits
    ``[N, num_classes]``."""
    model = build_model(config.model, num_classes, in_channels=in_channels, image_size=image_size,
                        **config.model_kwargs)
    return model.to(memory_format=torch.channels_last) if config.channels_last else model


def check_buildable(config: TrainConfig) -> None:
    """Build ``config``'s augmentation pipeline and model once on the CPU (at the dataset's nominal size),
    so that a bad ``model_kwargs`` value or stage is a :class:`ConfigError` before any file is written.
    The global RNG state is left as it was."""
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
    ``config`` defaults to the run's ``config.yaml``. A missing, corrupt or mismatching file is an
    error naming it (:class:`~harness.io.FileFormatError`).
    """
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
