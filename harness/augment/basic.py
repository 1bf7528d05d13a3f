"""Hard (label-preserving) batched stages: random horizontal flip and padded random crop.

These are the reference pipeline's always-on base augmentations (METHOD.md §2.1): flip with
p = 0.5 and ``RandomCrop(D, padding=4)`` with zero padding. They report provenance like the
soft stages (op id 1 = applied) with confidence 1.0, so a pipeline can chain them freely.

Hand-written rather than torchvision's ``RandomHorizontalFlip`` / ``RandomCrop`` because those
draw one set of parameters per call; here every sample in the batch gets its own draw from an
explicit generator, on the device where the data lives.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.augment._common import BatchAugmentInfo, check_batch, generator_device, is_number

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


class BatchRandomHorizontalFlip(nn.Module):
    """Flip each sample left-right with probability ``p`` in [0, 1] (hard labels)."""

    stage = "flip"

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not is_number(p) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be a number in [0, 1], got p={p!r}")
        self.p = float(p)

    def forward(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, BatchAugmentInfo]:
        check_batch(images)
        n = images.shape[0]
        draw = torch.rand(n, generator=generator, device=generator_device(generator, None))
        flip = (draw < self.p).to(images.device)
        out = torch.where(flip[:, None, None, None], images.flip(-1), images)
        return out, _info(self.stage, flip, flip.float())


class BatchRandomCrop(nn.Module):
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

    def forward(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, BatchAugmentInfo]:
        check_batch(images)
        n, _, h, w = images.shape
        pad = self.padding
        dev = generator_device(generator, None)
        top = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev).to(images.device)
        left = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev).to(images.device)
        return self.apply(images, top, left)

    def apply(
        self, images: torch.Tensor, top: torch.Tensor, left: torch.Tensor
    ) -> tuple[torch.Tensor, BatchAugmentInfo]:
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
