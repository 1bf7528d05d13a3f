"""Inference at a run's precision: one forward pass and one per-op accuracy loop for everybody.

Training (:mod:`harness.trainer`), evaluation (:mod:`harness.evaluate`) and proxy-accuracy
measurement feed a model the same way, defined here once:

* **input**: images ``[N, C, H, W]``; ``uint8`` in ``[0, 255]`` becomes ``float32 / 255`` (values in
  ``[0, 1]``), a floating tensor is taken as already in ``[0, 1]`` and cast to ``float32``; no
  normalisation (a model normalises itself, :func:`harness.models.build_model` ``normalize=``);
* **memory format**: ``channels_last=True`` makes the batch ``torch.channels_last`` contiguous
  (the run's model is built channels_last too, ``TrainConfig.channels_last``);
* **precision** (:func:`resolve_precision`): ``"bf16"`` runs the model under
  ``torch.autocast(device.type, dtype=torch.bfloat16)`` (CPU and CUDA alike), so the logits come out
  bfloat16; callers that need float32 call ``.float()`` on them (the loss and the softmax always do).
  ``"fp32"`` runs without autocast. ``"auto"`` is ``"bf16"`` on CUDA and ``"fp32"`` on the CPU: most CPUs
  emulate bf16 (about 3x slower than fp32 on an AVX2-only CPU, ``docs/benchmarks.md``), and one rule for
  every CPU keeps a config's numbers from depending on which instruction set the machine has. A CPU
  with native bf16 (AVX-512 BF16, AMX) can ask for it with ``"bf16"``.

Per-op accuracy: every TrivialAugmentWide op (:data:`harness.augment.space.TA_OPS`) applied to every
image at a magnitude bin, with the batched uint8 TA kernels of the training pipeline
(``BatchSoftAugment.apply``), then top-1 accuracy of the model on the result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch

from harness.augment.batch_trivial import BatchSoftAugment
from harness.augment.space import TA_OPS, magnitude_bins, op_id
from harness.config import PRECISIONS

__all__ = ["resolve_precision", "autocast", "model_input", "forward", "predict_probs", "predict_labels", "OpSetting",
           "op_settings", "op_accuracy"]


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """What ``precision`` (``"auto"``, ``"fp32"``, ``"bf16"``) means on ``device``: ``"fp32"`` or ``"bf16"``;
    ``"auto"`` is ``"bf16"`` on CUDA and ``"fp32"`` elsewhere (see the module doc)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if torch.device(device).type == "cuda" else "fp32"
    return precision


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context of ``precision`` on ``device``'s type: bfloat16 where :func:`resolve_precision`
    says ``"bf16"``, disabled otherwise."""
    device_type = torch.device(device).type
    if resolve_precision(precision, device) == "fp32":
        return torch.autocast(device_type, enabled=False)
    return torch.autocast(device_type, dtype=torch.bfloat16)


def model_input(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``images`` as the model's input, on their own device.

    Args:
        images: ``[N, C, H, W]``, ``uint8`` (0..255) or floating (values in ``[0, 1]``).
        channels_last: make the result ``torch.channels_last`` contiguous.

    Returns:
        ``float32 [N, C, H, W]`` with values in ``[0, 1]`` (a new tensor for uint8 input).
    """
    x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def forward(model: torch.nn.Module, images: torch.Tensor, *, precision: str, channels_last: bool) -> torch.Tensor:
    """Logits ``[N, K]`` of ``model`` on one batch ``images`` (``uint8`` or ``[0, 1]`` float
    ``[N, C, H, W]``, already on the model's device), under the caller's grad mode and the model's
    current train/eval mode. The logits are bfloat16 under autocast (:func:`resolve_precision` ``"bf16"``),
    else float32."""
    x = model_input(images, channels_last)
    with autocast(x.device, precision):
        return model(x)


def _batched_softmax(model: torch.nn.Module, images: torch.Tensor, device: torch.device, batch_size: int,
                     precision: str, channels_last: bool) -> Iterator[torch.Tensor]:
    """The float32 softmax ``[b, K]`` of each batch of ``batch_size`` images, on ``device`` (model in eval mode,
    no grad: the callers' decorators)."""
    model.eval()
    for start in range(0, images.shape[0], batch_size):
        logits = forward(model, images[start:start + batch_size].to(device), precision=precision,
                         channels_last=channels_last)
        yield torch.softmax(logits.float(), dim=1)


@torch.no_grad()
def predict_probs(model: torch.nn.Module, images: torch.Tensor, device: torch.device | str, batch_size: int,
                  precision: str = "auto", channels_last: bool = True) -> np.ndarray:
    """Softmax probabilities of ``model`` (put in eval mode) on ``images``, in batches.

    Args:
        model: a classifier on ``device``.
        images: ``uint8 [N, C, H, W]`` (or ``[0, 1]`` float) on any device; each batch of ``batch_size``
            images is moved to ``device``.
        device: where the forward pass runs.
        batch_size: images per forward pass.
        precision, channels_last: see the module doc.

    Returns:
        ``float32`` numpy ``[N, K]``: softmax over the float32 logits, rows summing to 1.
    """
    device = torch.device(device)
    return torch.cat([p.cpu() for p in _batched_softmax(model, images, device, batch_size, precision,
                                                         channels_last)]).numpy()


@torch.no_grad()
def predict_labels(model: torch.nn.Module, images: torch.Tensor, device: torch.device | str, batch_size: int,
                   precision: str = "auto", channels_last: bool = True) -> np.ndarray:
    """Top-1 labels (``int64`` numpy ``[N]``) of ``model`` on ``images``: the argmax of the softmax of
    :func:`predict_probs` (same arguments), taken on ``device`` (the first maximum on ties, as numpy's
    argmax), so only the labels come back to the host, once."""
    device = torch.device(device)
    return torch.cat([p.argmax(1) for p in _batched_softmax(model, images, device, batch_size, precision,
                                                             channels_last)]).cpu().numpy()


class OpSetting(NamedTuple):
    """One TrivialAugment op at one magnitude bin: ``magnitude`` is the op's signed magnitude in its
    own unit (degrees, pixels, ...; 0.0 for the magnitude-free ops)."""

    op: str
    bin: int
    magnitude: float


def op_settings(bins: Sequence[int], num_bins: int = 31) -> list[OpSetting]:
    """Every op of :data:`TA_OPS` (in that order) at every bin of ``bins`` (positive sign), with the
    magnitudes of :func:`~harness.augment.space.magnitude_bins` for ``num_bins`` bins. A
    magnitude-free op (Identity, AutoContrast, Equalize) is listed once, at ``bins[0]``."""
    settings = []
    for op in TA_OPS:
        mags = magnitude_bins(op, num_bins)
        for b in bins:
            if mags is None and b != bins[0]:
                continue  # magnitude-free ops: one measurement
            settings.append(OpSetting(op, int(b), 0.0 if mags is None else float(mags[b])))
    return settings


@torch.no_grad()
def op_accuracy(model: torch.nn.Module, images: torch.Tensor, labels: np.ndarray | torch.Tensor,
                settings: Iterable[OpSetting], *, device: torch.device | str, batch_size: int,
                precision: str = "auto", channels_last: bool = True, num_classes: int = 2) -> list[float]:
    """Top-1 accuracy of ``model`` on ``images`` with each op setting applied to every image.

    For each setting, all ``N`` images get that op at that magnitude (``BatchSoftAugment.apply``,
    uint8 in, uint8 out, computed on the images' device), then :func:`predict_labels` in batches of
    ``batch_size`` on ``device``: a prediction is the argmax of the softmax probabilities.

    Args:
        model: a classifier on ``device`` (left in eval mode).
        images: ``uint8 [N, C, H, W]``, any device.
        labels: integer ``[N]`` (numpy or tensor), the true classes.
        settings: the (op, bin, magnitude) to measure, e.g. :func:`op_settings`.
        device, batch_size, precision, channels_last: as for :func:`predict_probs`.
        num_classes: K of the augmenter (it reports no confidences here, so any K >= 2 will do).

    Returns:
        one accuracy (fraction of correct images, in ``[0, 1]``) per setting, in ``settings`` order.
    """
    y = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    n = images.shape[0]
    aug = BatchSoftAugment(num_classes, hard=True)
    out = []
    for s in settings:
        x, _ = aug.apply(images, torch.full((n,), op_id(s.op)), torch.full((n,), s.magnitude))
        pred = predict_labels(model, x, device, batch_size, precision, channels_last)
        out.append(float((pred == y).mean()))
    return out
