"""Soft random crop, SA-style (METHOD.md §2.5): per-sample and batched, one semantics.

Geometry and sign convention: the image is pasted in the centre of a ``3H x 3W`` canvas filled with
the background, and an ``H x W`` window is cropped at offset ``(ty, tx)`` from the centre, i.e. at
canvas position ``(H + ty, W + tx)``. Hence ``out[y, x] = image[y + ty, x + tx]`` where that index is
inside the image and background elsewhere: **the content moves by (-ty, -tx)** (positive ``tx``
moves the content left, positive ``ty`` moves it up).

Offsets: ``t = int(N(0, sigma^2))`` (truncation toward 0), re-drawn while ``|t| > D`` (``D`` = the
side on that axis: W for tx, H for ty), at most 100 draws, then ``t = 0`` (reference §2.5). The
standard deviation is given either in pixels (``sigma_px``; SA uses 12 px) or as a fraction of the
side (``sigma_frac``; the paper uses 0.3, i.e. ``sigma = 0.3 * W`` for tx and ``0.3 * H`` for ty);
exactly one of the two.

Visibility ``v = (W - |tx|)(H - |ty|) / (H W)``; severity = magnitude = ``1 - v``. Default mapping
``mappings.crop_mapping(K)`` = ``Polynomial(1/K, k=2)``: ``c = 1 - (1 - 1/K)(1 - v)^2``; clamped to
``[1/K, 1]``. op_ids are always 1 (the stage always fires; a (0, 0) offset is an identity crop).

Background (METHOD §7.5 -- these are not the same setting):

* ``"zero"``: black in [0, 1] image space -- the paper and the thesis;
* ``"mean"``: the image's own per-channel mean colour (uint8: rounded) -- close to SA, whose
  background is ``0.01 * N(0, 1)`` in *normalised* space, i.e. approximately the dataset mean;
* a tuple of per-channel values (length 1 or C) in image units: ``[0, 1]`` for float images,
  integers ``0..255`` for uint8 images (checked when applied).

The ``"mean"`` colour is accumulated in float64 (so the per-sample and batched reductions agree
bit for bit on any device) and, for floating images, rounded to float32 precision (torchvision's
vector ``fill`` goes through float32), so float64 images get the same background in both paths.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torchvision.transforms.v2.functional as F
from torch import nn

from mappings import crop_mapping

from harness.augment._common import (
    AugmentInfo,
    BatchAugmentInfo,
    BatchStage,
    SampleStage,
    check_batch,
    check_hard,
    check_image,
    check_mapping,
    check_num_classes,
    generator_device,
    is_number,
    max_value,
    stage_confidence,
    stage_confidences,
)

__all__ = [
    "STAGE",
    "BACKGROUND_MODES",
    "MAX_TRIES",
    "visibility",
    "background_values",
    "soft_crop_image",
    "soft_crop_batch",
    "SoftRandomCrop",
    "BatchSoftRandomCrop",
]

STAGE = "soft_crop"
BACKGROUND_MODES: tuple[str, ...] = ("zero", "mean")
MAX_TRIES = 100


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def _check_sigmas(sigma_px: object, sigma_frac: object) -> tuple[float | None, float | None]:
    if (sigma_px is None) == (sigma_frac is None):
        raise ValueError(
            "exactly one of sigma_px (pixels) and sigma_frac (fraction of the side) must be given, "
            f"got sigma_px={sigma_px!r}, sigma_frac={sigma_frac!r}"
        )
    if sigma_px is not None:
        if not is_number(sigma_px) or not math.isfinite(sigma_px) or sigma_px <= 0:
            raise ValueError(f"sigma_px must be a finite number > 0 (pixels), got sigma_px={sigma_px!r}")
        return float(sigma_px), None
    if not is_number(sigma_frac) or not math.isfinite(sigma_frac) or sigma_frac <= 0:
        raise ValueError(
            f"sigma_frac must be a finite number > 0 (fraction of the side), got sigma_frac={sigma_frac!r}"
        )
    return None, float(sigma_frac)


def _check_background(background: object) -> str | tuple[float, ...]:
    if isinstance(background, str):
        if background not in BACKGROUND_MODES:
            raise ValueError(
                f"background must be one of {BACKGROUND_MODES} or a tuple of per-channel values, "
                f"got background={background!r}"
            )
        return background
    if (
        isinstance(background, Sequence)
        and len(background) >= 1
        and all(is_number(v) and math.isfinite(v) and v >= 0 for v in background)
    ):
        return tuple(float(v) for v in background)
    raise ValueError(
        f"background must be one of {BACKGROUND_MODES} or a non-empty tuple of finite per-channel "
        "values >= 0, "
        f"got background={background!r}"
    )


# ----------------------------------------------------------------------------------------------
# functional kernels
# ----------------------------------------------------------------------------------------------
def visibility(tx: Any, ty: Any, height: int, width: int) -> Any:
    """Visible fraction ``(W - |tx|)(H - |ty|) / (H W)`` (python ints or tensors)."""
    return (width - abs(tx)) * (height - abs(ty)) / (height * width)


def background_values(images: torch.Tensor, background: str | Sequence[float]) -> torch.Tensor:
    """Per-sample, per-channel background ``[N, C]`` in the dtype of ``images`` ``[N, C, H, W]``."""
    background = _check_background(background)
    n, channels = images.shape[:2]
    if background == "zero":
        return torch.zeros(n, channels, dtype=images.dtype, device=images.device)
    if background == "mean":
        # accumulated in float64 so that the per-sample and batched reductions agree bit for bit
        mean = images.double().mean(dim=(-2, -1))
        if images.dtype == torch.uint8:
            return mean.round().to(torch.uint8)
        return mean.to(torch.float32).to(images.dtype)
    values = background
    if len(values) not in (1, channels):
        raise ValueError(
            f"background must have 1 or C={channels} per-channel values, got background={values!r}"
        )
    top = max_value(images.dtype)
    if images.dtype == torch.uint8 and not all(float(v).is_integer() and v <= top for v in values):
        raise ValueError(
            f"background for uint8 images must be integers in [0, 255], got background={values!r}"
        )
    if images.is_floating_point() and not all(v <= top for v in values):
        raise ValueError(f"background for float images must be in [0, 1], got background={values!r}")
    bg = torch.tensor(values, dtype=torch.float32, device=images.device).to(images.dtype)
    return bg.expand(channels).expand(n, channels).clone()


def soft_crop_image(
    image: torch.Tensor, tx: int, ty: int, background: str | Sequence[float] = "zero"
) -> torch.Tensor:
    """Per-sample kernel: ``F.pad`` to the 3H x 3W canvas, then ``F.crop`` at ``(H + ty, W + tx)``."""
    height, width = image.shape[-2:]
    fill = background_values(image[None], background)[0].tolist()
    canvas = F.pad(image, [width, height, width, height], fill=fill, padding_mode="constant")
    return F.crop(canvas, top=height + int(ty), left=width + int(tx), height=height, width=width).contiguous()


def soft_crop_batch(
    images: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, background: str | Sequence[float] = "zero"
) -> torch.Tensor:
    """Batched kernel: ``out[n, :, y, x] = images[n, :, y + ty[n], x + tx[n]]`` or background.

    Hand-written (index grids + ``gather``) because torchvision's ``crop``/``pad`` apply one offset per
    call. Pixel-identical to :func:`soft_crop_image` per sample.
    """
    n, channels, height, width = images.shape
    bg = background_values(images, background)
    tx = tx.to(images.device)
    ty = ty.to(images.device)
    rows = torch.arange(height, device=images.device)[None, :] + ty[:, None]  # [N, H]
    cols = torch.arange(width, device=images.device)[None, :] + tx[:, None]  # [N, W]
    valid_r = (rows >= 0) & (rows < height)
    valid_c = (cols >= 0) & (cols < width)
    shape = (n, channels, height, width)
    out = images.gather(2, rows.clamp(0, height - 1)[:, None, :, None].expand(shape))
    out = out.gather(3, cols.clamp(0, width - 1)[:, None, None, :].expand(shape))
    valid = valid_r[:, None, :, None] & valid_c[:, None, None, :]
    return torch.where(valid, out, bg[:, :, None, None])


def _check_offsets(t: object, name: str, n: int, limit: int) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.dtype not in (torch.int64, torch.int32) or t.shape != (n,):
        raise ValueError(f"{name} must be an int64 tensor of shape [{n}], got {t!r}")
    if not bool((t.abs() <= limit).all()):
        raise ValueError(f"{name} must satisfy |{name}| <= {limit} (the image side), got {name}={t.tolist()}")
    return t.long()


# ----------------------------------------------------------------------------------------------
# transforms
# ----------------------------------------------------------------------------------------------
class _CropBase(nn.Module):
    stage = STAGE

    def __init__(
        self,
        num_classes: int,
        sigma_px: float | None = None,
        sigma_frac: float | None = None,
        background: str | Sequence[float] = "zero",
        mapping: Callable | None = None,
        hard: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.sigma_px, self.sigma_frac = _check_sigmas(sigma_px, sigma_frac)
        self.background = _check_background(background)
        self.hard = check_hard(hard)
        self.mapping = crop_mapping(self.num_classes) if mapping is None else check_mapping(mapping)

    def sigma(self, side: int) -> float:
        """Offset standard deviation in pixels for an axis of ``side`` pixels."""
        return self.sigma_px if self.sigma_px is not None else self.sigma_frac * side

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, sigma_px={self.sigma_px}, sigma_frac={self.sigma_frac}, "
            f"background={self.background!r}, hard={self.hard}"
        )


class SoftRandomCrop(_CropBase, SampleStage):
    """Per-sample soft random crop of one image ``[C, H, W]`` (uint8 or float in [0, 1]).

    Args:
        num_classes: K >= 2.
        sigma_px / sigma_frac: offset std in pixels, or as a fraction of the side -- exactly one.
        background: ``"zero"``, ``"mean"`` or per-channel values (see the module docstring).
        mapping: severity -> confidence; None -> ``mappings.crop_mapping(K)`` (Polynomial(1/K, 2)).
        hard: record provenance but return confidence 1.0.

    The per-sample stage protocol: ``sample_params(image)`` (alias ``make_params``) -> ``dict(tx, ty)``;
    ``apply(image, tx, ty)``; ``forward(image) -> (image, AugmentInfo("soft_crop", 1 - v, 1 - v, c))``;
    global torch RNG.
    """

    def _draw_offset(self, side: int) -> int:
        sigma = self.sigma(side)
        for _ in range(MAX_TRIES):
            t = int(torch.randn(1, dtype=torch.float32).double().item() * sigma)
            if abs(t) <= side:
                return t
        return 0

    def sample_params(self, image: torch.Tensor) -> dict[str, int]:
        """Draw ``dict(tx, ty)`` from the global RNG (tx first)."""
        height, width = image.shape[-2:]
        tx = self._draw_offset(width)
        ty = self._draw_offset(height)
        return dict(tx=tx, ty=ty)

    def apply(self, image: torch.Tensor, tx: int, ty: int) -> tuple[torch.Tensor, AugmentInfo]:
        """Crop at offset ``(ty, tx)`` from the centre of the background canvas (content moves by -t)."""
        image = check_image(image)
        height, width = image.shape[-2:]
        out = soft_crop_image(image, tx, ty, self.background)
        severity = 1.0 - visibility(tx, ty, height, width)
        c = stage_confidence(self.mapping, severity, self.num_classes, self.hard)
        return out, AugmentInfo(STAGE, severity, severity, c)


class BatchSoftRandomCrop(_CropBase, BatchStage):
    """Batched soft random crop of ``[N, C, H, W]``, one offset pair per sample.

    Hand-written (index grids + gather, no Python loop over samples) because torchvision applies one
    set of crop parameters per call. Same arguments and semantics as :class:`SoftRandomCrop`; the 100
    rejection tries are drawn as ``[N, 100]`` tensors and the first accepted one is taken.

    * ``sample_params(n, height, width, device=None, generator=None) -> {"tx": int64 [N], "ty": int64 [N]}``
    * ``apply(images, tx, ty, generator=None) -> (images, BatchAugmentInfo)`` (deterministic)
    * ``forward(images, generator=None)``
    """

    def _draw_offsets(
        self, n: int, side: int, gdev: torch.device, generator: torch.Generator | None
    ) -> torch.Tensor:
        z = torch.randn(n, MAX_TRIES, generator=generator, device=gdev, dtype=torch.float32)
        t = torch.trunc(z.double() * self.sigma(side)).long()
        ok = t.abs() <= side
        first = ok.int().argmax(dim=1, keepdim=True)
        return t.gather(1, first).squeeze(1) * ok.any(dim=1).long()

    def sample_params(
        self,
        n: int,
        height: int,
        width: int,
        device: Any = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        gdev = generator_device(generator, device)
        out_device = gdev if device is None else torch.device(device)
        tx = self._draw_offsets(n, width, gdev, generator)
        ty = self._draw_offsets(n, height, gdev, generator)
        return {"tx": tx.to(out_device), "ty": ty.to(out_device)}

    def apply(self, images: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, BatchAugmentInfo]:
        check_batch(images)
        n, _, height, width = images.shape
        tx = _check_offsets(tx, "tx", n, width).to(images.device)
        ty = _check_offsets(ty, "ty", n, height).to(images.device)
        out = soft_crop_batch(images, tx, ty, self.background)
        severity = (1.0 - visibility(tx, ty, height, width)).to(torch.float32)
        conf = stage_confidences(self.mapping, severity, self.num_classes, self.hard)
        op_ids = torch.ones(n, dtype=torch.int64, device=images.device)
        return out, BatchAugmentInfo(STAGE, op_ids, severity.clone(), severity, conf)
