"""Soft-target cross-entropy and the two fixed label-smoothing conventions (METHOD.md §1.2, §7.15, §7.16)."""

from __future__ import annotations

import torch

from harness.targets import soft_targets

__all__ = [
    "soft_cross_entropy",
    "label_smoothing_targets_other",
    "label_smoothing_targets_uniform",
    "LABEL_SMOOTHING_CONVENTIONS",
]

#: Names of the fixed label-smoothing conventions.
#: ``"other"``: eps spread over the K-1 wrong classes (reference code, "LS 0.9" = eps 0.1).
#: ``"uniform"``: eps/K over all K classes (Szegedy et al.; ``torch.nn.CrossEntropyLoss(label_smoothing=eps)``).
LABEL_SMOOTHING_CONVENTIONS: tuple[str, ...] = ("other", "uniform")


def soft_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor | None = None,
    normalize_weights: bool = False,
    *,
    validate: bool = True,
) -> torch.Tensor:
    """Mean soft-target cross-entropy ``-sum_j t_j log softmax(z)_j`` over the batch.

    This has the same gradient as KL(t || softmax(z)) used by the reference code (the entropy
    of t does not depend on the network), but its value is the cross-entropy, so it equals
    ``F.cross_entropy`` for one-hot targets.

    Args:
        logits: float tensor [N, K].
        targets: float tensor [N, K]; each row a probability vector (non-negative, sums to 1).
        weights: optional per-sample weights [N] >= 0, e.g. the confidences c (SA "Target & Weight").
        normalize_weights: False (reference, METHOD §1.2): ``mean_i(w_i * l_i)``, which scales the
            effective learning rate by mean(w) (§7.15). True: ``sum_i(w_i * l_i) / sum_i(w_i)``,
            which removes that confound.
        validate: check that ``weights`` are finite and >= 0 (and, with ``normalize_weights``, not all
            zero): these checks read values back from the device (a host synchronisation). The trainer's
            per-step call passes ``False``: its weights are the pipeline's confidences, in ``[1/K, 1]``
            by construction (:func:`harness.combine_confidences`). Shapes and types are always checked.

    Returns:
        scalar tensor (float32 for float32 / bf16 logits; the loss is computed in float32).
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.ndim != 2:
        raise TypeError(f"logits must be a floating tensor [N, K], got {getattr(logits, 'shape', type(logits))}")
    if not isinstance(targets, torch.Tensor) or targets.shape != logits.shape:
        raise ValueError(
            f"targets must have the same shape as logits {tuple(logits.shape)}, "
            f"got {tuple(getattr(targets, 'shape', ()))}"
        )
    if logits.shape[0] == 0:
        raise ValueError("logits must hold at least one sample, got N=0")
    log_probs = torch.log_softmax(logits.float(), dim=1)
    per_sample = -(targets.float() * log_probs).sum(dim=1)
    if weights is None:
        return per_sample.mean()
    if not isinstance(weights, torch.Tensor) or weights.shape != per_sample.shape:
        raise ValueError(
            f"weights must have shape [N]={tuple(per_sample.shape)}, got {tuple(getattr(weights, 'shape', ()))}"
        )
    w = weights.float()
    if validate and (bool((w < 0).any()) or not bool(torch.isfinite(w).all())):
        raise ValueError("weights must be finite and >= 0")
    if normalize_weights:
        total = w.sum()
        if validate and float(total) <= 0.0:
            raise ValueError("weights must not all be zero when normalize_weights=True")
        return (w * per_sample).sum() / total
    return (w * per_sample).mean()


def _check_eps(eps: float) -> float:
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0.0 <= float(eps) <= 1.0:
        raise ValueError(f"eps must be a float in [0, 1], got {eps!r}")
    return float(eps)


def label_smoothing_targets_other(labels: torch.Tensor, eps: float, num_classes: int, *,
                                  validate: bool = True) -> torch.Tensor:
    """Fixed label smoothing, reference-code convention: true class 1-eps, others eps/(K-1).

    "LS 0.9" in the paper's tables is ``eps=0.1`` in this convention (METHOD §1.1, §7.16).
    It is not the same as ``torch.nn.CrossEntropyLoss(label_smoothing=eps)``; for that, use
    :func:`label_smoothing_targets_uniform`. ``validate``: check the label range (a host
    synchronisation, see :func:`harness.soft_targets`); ``eps`` is always checked (no synchronisation).
    """
    eps = _check_eps(eps)
    return soft_targets(labels, 1.0 - eps, num_classes, validate=validate)


def label_smoothing_targets_uniform(labels: torch.Tensor, eps: float, num_classes: int, *,
                                    validate: bool = True) -> torch.Tensor:
    """Fixed label smoothing, Szegedy/torch convention: true class 1-eps+eps/K, others eps/K.

    Identical to the targets implied by ``torch.nn.CrossEntropyLoss(label_smoothing=eps)``.
    ``validate``: as for :func:`label_smoothing_targets_other`.
    """
    eps = _check_eps(eps)
    return soft_targets(labels, 1.0 - eps + eps / num_classes, num_classes, validate=validate)
