"""Hard (label-preserving) batched stages: random horizontal flip and padded random crop.

These are the reference pipeline's always-on base augmentations (METHOD.md §2.1): flip with
p = 0.5 and ``RandomCrop(D, padding=4)`` with zero padding. They follow the batched stage
protocol (:class:`~harness.augment._common.BatchStage`: ``sample_params`` / ``apply`` /
``forward``) and report provenance like the soft stages (op id 1 = applied) with confidence
1.0, so a pipeline can chain them freely. Their draws are made on the generator's device (CPU
for the default generator) whatever the images' device.

Hand-written rather than torchvision's ``RandomHorizontalFlip`` / ``RandomCrop`` because those
draw one set of parameters per call; here every sample in the batch gets its own draw from an
explicit generator, on the device where the data lives.
"""

from __future__ import annotations

import torch
from typing import Any

from harness.augment._common import BatchAugmentInfo, BatchStage, check_batch, generator_device, is_number

__all__ = ["BatchRandomHorizontalFlip", "BatchRandomCrop"]


def _info(stage: str, applied: torch.Tensor, magnitudes: torch.Tensor) -> BatchAugmentInfo:
    n = applied.shape[0]
    return BatchAugmentInfo(
        stage=stage,
        op_ids=applied.long(),
        magnitudes=magnitudes.float(),
        severities=torch.zeros(n, device=applied.device),
        confidences=torch.ones(n, device=applied.device),
    )


def _to(t: torch.Tensor, device: Any) -> torch.Tensor:
    return t if device is None else t.to(device)


class BatchRandomHorizontalFlip(BatchStage):
    """Flip each sample left-right with probability ``p`` in [0, 1] (hard labels)."""

    stage = "flip"

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not is_number(p) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be a number in [0, 1], got p={p!r}")
        self.p = float(p)

    def sample_params(
        self, n: int, height: int, width: int, device: Any = None, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """``{"flip": bool [n]}``, True with probability ``p``."""
        draw = torch.rand(n, generator=generator, device=generator_device(generator, None))
        return {"flip": _to(draw < self.p, device)}

    def apply(
        self, images: torch.Tensor, flip: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, BatchAugmentInfo]:
        """Flip the samples where ``flip`` (bool [N]) is True."""
        check_batch(images)
        if not isinstance(flip, torch.Tensor) or flip.dtype != torch.bool or flip.shape != images.shape[:1]:
            raise ValueError(f"flip must be a bool tensor of shape [{images.shape[0]}], got {flip!r}")
        flip = flip.to(images.device)
        out = torch.where(flip[:, None, None, None], images.flip(-1), images)
        return out, _info(self.stage, flip, flip.float())


class BatchRandomCrop(BatchStage):
    """Zero-pad by ``padding`` px and crop back to the original size at a per-sample random offset.

    Equivalent to torchvision ``RandomCrop(size, padding=padding)`` per sample (fill 0): offsets
    are uniform integers in [0, 2 * padding] on each axis. Magnitude = |dx| + |dy| shift in px.
    """

    stage = "crop"

    def __init__(self, padding: int = 4) -> None:
        super().__init__()
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be an int >= 0, got padding={padding!r}")
        self.padding = padding

    def sample_params(
        self, n: int, height: int, width: int, device: Any = None, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """``{"top": int64 [n], "left": int64 [n]}``, uniform in [0, 2 * padding]."""
        pad = self.padding
        dev = generator_device(generator, None)
        top = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev)
        left = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev)
        return {"top": _to(top, device), "left": _to(left, device)}

    def apply(self, images: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, BatchAugmentInfo]:
        """Deterministic crop: sample n is cut at (top[n], left[n]) of the padded image."""
        check_batch(images)
        n, c, h, w = images.shape
        pad = self.padding
        padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
        rows = (top[:, None] + torch.arange(h, device=images.device)[None]).long()  # [N, H]
        cols = (left[:, None] + torch.arange(w, device=images.device)[None]).long()  # [N, W]
        idx_n = torch.arange(n, device=images.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # [N, H, W, C]
        out = out.permute(0, 3, 1, 2).contiguous()
        shift = (top - pad).abs() + (left - pad).abs()
        return out, _info(self.stage, torch.ones(n, dtype=torch.long, device=images.device), shift.float())
