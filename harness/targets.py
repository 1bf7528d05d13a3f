"""Soft targets and the combination of per-stage confidences (METHOD.md §1.1, §1.3, §1.4).

A sample with true class ``y`` and confidence ``c`` gets the target vector
``t_y = c`` and ``t_j = (1 - c) / (K - 1)`` for every ``j != y``: the missing mass is
spread uniformly over the other K-1 classes (not over all K).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mappings.base import check_num_classes

__all__ = ["soft_targets", "combine_confidences", "COMBINE_RULES"]

#: Allowed values of ``rule`` in :func:`combine_confidences`.
COMBINE_RULES: tuple[str, ...] = ("product", "min")


def _check_confidence(confidence: torch.Tensor, name: str) -> None:
    if not confidence.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype={confidence.dtype}")
    if confidence.numel() == 0:
        return
    bad = ~((confidence >= 0.0) & (confidence <= 1.0))  # also catches NaN
    if bool(bad.any()):
        value = confidence[bad].flatten()[0].item()
        raise ValueError(f"{name} must lie in [0, 1], got a value of {value}")


def soft_targets(labels: torch.Tensor, confidence: torch.Tensor | float, num_classes: int, *,
                 validate: bool = True) -> torch.Tensor:
    """Soft target matrix [N, K] for integer ``labels`` [N] and per-sample ``confidence``.

    Args:
        labels: int tensor [N] with values in [0, K).
        confidence: float tensor [N] (or a python float for every sample) with values in [0, 1];
            the probability mass put on the true class.
        num_classes: K >= 2.
        validate: check label range and confidence range (default). These checks read values back
            from the device (a host synchronisation); the trainer's per-step call passes ``False``
            because its labels are checked once when the dataset is loaded and its confidences come
            from :func:`combine_confidences` (in [1/K, 1] by construction). Types and shapes are
            always checked (no synchronisation).

    Returns:
        float tensor [N, K] (dtype of ``confidence``, float32 for a python float) on the
        labels' device. Each row sums to 1; the true class holds ``c``, every other class
        ``(1 - c) / (K - 1)``. The true class is the argmax as long as ``c > 1/K``.
    """
    k = check_num_classes(num_classes)
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be an integer torch.Tensor of shape [N], got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"labels must be an integer tensor, got dtype={labels.dtype}")
    if labels.ndim != 1:
        raise ValueError(f"labels must have shape [N], got shape={tuple(labels.shape)}")
    if validate and labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise ValueError(
            f"labels must lie in [0, {k - 1}] for num_classes={k}, got min={int(labels.min())}, "
            f"max={int(labels.max())}"
        )
    if not isinstance(confidence, torch.Tensor):
        confidence = torch.full(labels.shape, float(confidence), dtype=torch.float32, device=labels.device)
    if confidence.shape != labels.shape:
        raise ValueError(
            f"confidence must have the same shape as labels {tuple(labels.shape)}, got {tuple(confidence.shape)}"
        )
    if validate:
        _check_confidence(confidence, "confidence")
    elif not confidence.is_floating_point():
        raise TypeError(f"confidence must be a floating-point tensor, got dtype={confidence.dtype}")
    confidence = confidence.to(labels.device)
    off = ((1.0 - confidence) / (k - 1)).unsqueeze(1)
    targets = off.expand(labels.shape[0], k).clone()
    targets.scatter_(1, labels.long().unsqueeze(1), confidence.unsqueeze(1))
    return targets


def combine_confidences(
    confidences: Sequence[torch.Tensor] | torch.Tensor, num_classes: int, rule: str = "product", *,
    validate: bool = True,
) -> torch.Tensor:
    """Combine per-stage confidences into one confidence per sample, floored at chance.

    Args:
        confidences: a sequence of S float tensors of shape [N] (one per augmentation stage; a
            stage that did not fire contributes 1.0), or a single tensor [S, N].
        num_classes: K >= 2; the result is floored at 1/K.
        rule: ``"product"`` (the reference: c = prod_s c_s, METHOD §1.3) or ``"min"``
            (the most damaging stage decides).
        validate: check that every confidence lies in [0, 1] (default; a host synchronisation).
            Augmentation stages, whose confidences come from validated mappings, pass ``False``.

    Returns:
        float tensor [N] with values in [1/K, 1].

    The floor deliberately fixes the reference code, whose un-clipped product can fall below
    chance so that the true class gets less mass than each wrong class (METHOD §1.4, §7.1).
    """
    k = check_num_classes(num_classes)
    if rule not in COMBINE_RULES:
        raise ValueError(f"rule must be one of {list(COMBINE_RULES)}, got {rule!r}")
    if isinstance(confidences, torch.Tensor):
        stacked = confidences
        if stacked.ndim == 1:
            stacked = stacked.unsqueeze(0)
    else:
        items = list(confidences)
        if not items:
            raise ValueError("confidences must hold at least one stage, got an empty sequence")
        shapes = {tuple(t.shape) for t in items}
        if len(shapes) != 1:
            raise ValueError(f"confidences must all have the same shape [N], got shapes {sorted(shapes)}")
        stacked = torch.stack(items)
    if stacked.ndim != 2:
        raise ValueError(f"confidences must be [S, N] or a sequence of [N] tensors, got {tuple(stacked.shape)}")
    if stacked.shape[0] == 0:
        raise ValueError("confidences must hold at least one stage, got S=0")
    if validate:
        _check_confidence(stacked, "confidences")
    combined = stacked.prod(dim=0) if rule == "product" else stacked.amin(dim=0)
    return combined.clamp(min=1.0 / k)
