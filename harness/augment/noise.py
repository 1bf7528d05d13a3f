"""Soft Gaussian / patch-Gaussian noise injection (METHOD.md §2.4): per-sample and batched.

Semantics (reference class ``AddPatchGaussian``):

* applied to **every** sample (no probability); ``sigma = U(0, 1) * sigma_max``;
* mask: ``patch_frac=None`` -> the whole image; otherwise a square of side
  ``int(patch_frac * min(H, W))`` (reference: 0.8). Its integer centre is uniform in ``[0, H)`` x
  ``[0, W)`` for an odd side and ``[0, H]`` x ``[0, W]`` for an even side; the square spans
  ``[c - side//2, c - side//2 + side)`` on each axis and is clipped to the image. (METHOD writes the
  centre range with D; on the reference's square images D = H = W. Here each axis uses its own extent.)
* ``N(0, sigma^2)`` noise per pixel and channel is added to the ``[0, 1]`` image inside the mask and
  the result is clamped to ``[0, 1]``; pixels outside the mask are untouched.
  uint8 images are converted to float32 in [0, 1] (``F.to_dtype(..., scale=True)``), noised and
  clamped, then converted back with ``round(x * 255)`` -- unlike ``F.gaussian_noise`` on uint8, which
  truncates the noise to integers before adding.

Provenance: magnitude = sigma; rho = masked area fraction (clipped box area / (H*W));
severity = ``min(rho * sigma, 1)``; default mapping ``mappings.noise_mapping()`` =
``Polynomial(0.3, k=2)``: ``c = 1 - 0.7 * (rho * sigma)^2``; clamped to ``[1/K, 1]``.
op_ids are always 1 (the stage always fires).

The per-sample path (:class:`SoftNoise`) draws from the global torch RNG and adds the noise with
``torchvision.transforms.v2.functional.gaussian_noise`` on the patch; the batched path takes the
standard-normal noise as an explicit tensor so that it is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torchvision.transforms.v2.functional as F
from torch import nn

from mappings import noise_mapping

from harness.augment._common import (
    AugmentInfo,
    BatchAugmentInfo,
    BatchStage,
    SampleStage,
    box_mask,
    check_batch,
    check_boxes,
    check_hard,
    check_image,
    check_mapping,
    check_num_classes,
    generator_device,
    is_number,
    stage_confidence,
    stage_confidences,
)

__all__ = [
    "STAGE",
    "patch_side",
    "noise_image",
    "noise_batch",
    "SoftNoise",
    "BatchSoftNoise",
]

STAGE = "noise"


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def _check_sigma_max(sigma_max: object) -> float:
    if not is_number(sigma_max) or not math.isfinite(sigma_max) or sigma_max <= 0:
        raise ValueError(f"sigma_max must be a finite number > 0, got sigma_max={sigma_max!r}")
    return float(sigma_max)


def _check_patch_frac(patch_frac: object) -> float | None:
    if patch_frac is None:
        return None
    if not is_number(patch_frac) or not math.isfinite(patch_frac) or not 0.0 < patch_frac <= 1.0:
        raise ValueError(
            f"patch_frac must be None (whole image) or a number in (0, 1], got patch_frac={patch_frac!r}"
        )
    return float(patch_frac)


# ----------------------------------------------------------------------------------------------
# functional kernels
# ----------------------------------------------------------------------------------------------
def patch_side(height: int, width: int, patch_frac: float) -> int:
    """Side of the square noise patch: ``int(patch_frac * min(H, W))``."""
    return int(patch_frac * min(height, width))


def _clip_span(centre: int, side: int, extent: int) -> tuple[int, int]:
    start = centre - side // 2
    lo, hi = max(start, 0), min(start + side, extent)
    return lo, max(hi - lo, 0)


def _to_unit(image: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 in [0, 1] via ``F.to_dtype(scale=True)``; float images unchanged."""
    return F.to_dtype(image, torch.float32, scale=True) if image.dtype == torch.uint8 else image


def _from_unit(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Inverse of :func:`_to_unit` for values in [0, 1]: ``round(x * 255)`` for uint8."""
    return x.mul(255.0).round().to(torch.uint8) if dtype == torch.uint8 else x


def noise_image(
    image: torch.Tensor, sigma: float, box: tuple[int, int, int, int] | None = None
) -> torch.Tensor:
    """Per-sample kernel: ``F.gaussian_noise(mean=0, sigma, clip=True)`` inside ``box`` (global RNG).

    ``box = (top, left, h, w)``; None -> whole image. Noise is drawn with ``randn_like`` on the
    (float) patch, so it is reproducible under ``torch.manual_seed``.
    """
    x = _to_unit(image)
    if box is None:
        top, left, h, w = 0, 0, image.shape[-2], image.shape[-1]
    else:
        top, left, h, w = (int(v) for v in box)
    out = image.clone()
    if h * w == 0:
        return out
    patch = x[..., top : top + h, left : left + w]
    noisy = F.gaussian_noise(patch, mean=0.0, sigma=float(sigma), clip=True)
    out[..., top : top + h, left : left + w] = _from_unit(noisy, image.dtype)
    return out


def noise_batch(
    images: torch.Tensor, sigmas: torch.Tensor, noise: torch.Tensor, boxes: torch.Tensor | None = None
) -> torch.Tensor:
    """Batched kernel: ``clamp(x + sigma[n] * noise[n], 0, 1)`` inside ``boxes[n]`` (None -> everywhere).

    Hand-written (masked, vectorised) because ``F.gaussian_noise`` uses one sigma per call and draws
    its own noise. Pixel-identical to :func:`noise_image` per sample when ``noise`` holds the same
    standard-normal draws.
    """
    x = _to_unit(images)
    sig = sigmas.to(device=images.device, dtype=x.dtype).view(-1, 1, 1, 1)
    noise = noise.to(device=images.device, dtype=x.dtype)
    noisy = _from_unit((x + noise * sig).clamp(0.0, 1.0), images.dtype)
    if boxes is None:
        return noisy
    mask = box_mask(boxes.to(images.device), images.shape[-2], images.shape[-1])
    return torch.where(mask, noisy, images)


def _check_sigmas(sigmas: object, n: int) -> torch.Tensor:
    if not isinstance(sigmas, torch.Tensor) or not sigmas.is_floating_point() or sigmas.shape != (n,):
        raise ValueError(f"sigmas must be a floating tensor of shape [{n}], got {sigmas!r}")
    if not bool(((sigmas >= 0) & torch.isfinite(sigmas)).all()):
        raise ValueError(f"sigmas must be finite and >= 0, got sigmas={sigmas.tolist()}")
    return sigmas


# ----------------------------------------------------------------------------------------------
# transforms
# ----------------------------------------------------------------------------------------------
class _NoiseBase(nn.Module):
    stage = STAGE

    def __init__(
        self,
        num_classes: int,
        sigma_max: float = 0.1,
        patch_frac: float | None = None,
        mapping: Callable | None = None,
        hard: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.sigma_max = _check_sigma_max(sigma_max)
        self.patch_frac = _check_patch_frac(patch_frac)
        self.hard = check_hard(hard)
        self.mapping = noise_mapping() if mapping is None else check_mapping(mapping)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, sigma_max={self.sigma_max}, patch_frac={self.patch_frac}, "
            f"hard={self.hard}"
        )


class SoftNoise(_NoiseBase, SampleStage):
    """Per-sample soft noise on one image ``[C, H, W]`` (uint8 or float in [0, 1]).

    Args:
        num_classes: K >= 2 (confidence floor 1/K).
        sigma_max: > 0, ``sigma = U(0, 1) * sigma_max`` (reference: 0.1 full image, 1.0 patch).
        patch_frac: None -> whole image; else in (0, 1], patch side ``int(patch_frac * min(H, W))``
            (reference 0.8).
        mapping: severity -> confidence; None -> ``mappings.noise_mapping()`` (Polynomial(0.3, 2)).
        hard: record provenance but return confidence 1.0.

    The per-sample stage protocol: ``sample_params(image)`` (alias ``make_params``) ->
    ``dict(sigma, box)``; ``apply(image, sigma, box=None)`` (the noise itself is drawn there);
    ``forward(image) -> (image, AugmentInfo("noise", sigma, min(rho*sigma, 1), c))``; global torch RNG.
    """

    def sample_params(self, image: torch.Tensor) -> dict[str, Any]:
        """Draw ``dict(sigma, box)`` from the global RNG; ``box=(top, left, h, w)`` or None (whole image)."""
        height, width = image.shape[-2:]
        sigma = float(torch.rand(1) * self.sigma_max)  # float32 product, as the batched path
        if self.patch_frac is None:
            return dict(sigma=sigma, box=None)
        side = patch_side(height, width, self.patch_frac)
        even = int(side % 2 == 0)
        cy = int(torch.randint(0, height + even, (1,)).item())
        cx = int(torch.randint(0, width + even, (1,)).item())
        top, h = _clip_span(cy, side, height)
        left, w = _clip_span(cx, side, width)
        return dict(sigma=sigma, box=(top, left, h, w))

    def apply(
        self, image: torch.Tensor, sigma: float, box: tuple[int, int, int, int] | None = None
    ) -> tuple[torch.Tensor, AugmentInfo]:
        """Add ``N(0, sigma^2)`` noise (global RNG) inside ``box = (top, left, h, w)`` (None: everywhere)."""
        image = check_image(image)
        out = noise_image(image, sigma, box)
        height, width = image.shape[-2:]
        rho = 1.0 if box is None else box[2] * box[3] / (height * width)
        severity = min(rho * sigma, 1.0)
        c = stage_confidence(self.mapping, severity, self.num_classes, self.hard)
        return out, AugmentInfo(STAGE, sigma, severity, c)


class BatchSoftNoise(_NoiseBase, BatchStage):
    """Batched soft noise on ``[N, C, H, W]``, independent sigma / patch / noise per sample.

    Hand-written and vectorised (masks, no Python loop over samples) because torchvision's
    ``gaussian_noise`` applies a single sigma per call. Same arguments and semantics as
    :class:`SoftNoise`.

    * ``sample_params(n, height, width, device=None, generator=None)`` ->
      ``{"sigmas": float32 [N], "boxes": int64 [N, 4] (top, left, h, w) or None (whole image)}``.
    * ``apply(images, sigmas, boxes=None, noise=None, generator=None)``: deterministic given ``noise``
      (standard normal, [N, C, H, W]); ``noise=None`` draws it from ``generator``.
    * ``forward(images, generator=None)``.
    """

    def sample_params(
        self,
        n: int,
        height: int,
        width: int,
        device: Any = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor | None]:
        gdev = generator_device(generator, device)
        out_device = gdev if device is None else torch.device(device)
        sigmas = torch.rand(n, generator=generator, device=gdev) * self.sigma_max
        if self.patch_frac is None:
            return {"sigmas": sigmas.to(out_device), "boxes": None}
        side = patch_side(height, width, self.patch_frac)
        even = int(side % 2 == 0)
        u = torch.rand(n, 2, generator=generator, device=gdev, dtype=torch.float64)
        extent = torch.tensor([height, width], device=gdev)
        centre = torch.minimum(torch.floor(u * (extent + even)).long(), extent + even - 1)  # [N, 2] (y, x)
        start = centre - side // 2
        lo = start.clamp(min=0)
        size = (torch.minimum(start + side, extent) - lo).clamp(min=0)
        boxes = torch.stack([lo[:, 0], lo[:, 1], size[:, 0], size[:, 1]], dim=1)
        return {"sigmas": sigmas.to(out_device), "boxes": boxes.to(out_device)}

    def apply(
        self,
        images: torch.Tensor,
        sigmas: torch.Tensor,
        boxes: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, BatchAugmentInfo]:
        check_batch(images)
        n, _, height, width = images.shape
        sigmas = _check_sigmas(sigmas, n).to(device=images.device, dtype=torch.float32)
        if boxes is not None:
            boxes = check_boxes(boxes, n, height, width).to(images.device)
        if noise is None:
            gdev = generator_device(generator, images.device)
            noise = torch.randn(images.shape, generator=generator, device=gdev, dtype=torch.float32)
        elif (
            not isinstance(noise, torch.Tensor)
            or noise.shape != images.shape
            or not noise.is_floating_point()
        ):
            raise ValueError(
                f"noise must be a floating tensor of shape {tuple(images.shape)}, got "
                f"{getattr(noise, 'shape', type(noise))}"
            )
        out = noise_batch(images, sigmas, noise.to(images.device), boxes)
        if boxes is None:
            rho = torch.ones(n, dtype=torch.float32, device=images.device)
        else:
            rho = (boxes[:, 2] * boxes[:, 3]).to(torch.float32) / float(height * width)
        severity = (rho * sigmas).clamp(max=1.0)
        conf = stage_confidences(self.mapping, severity, self.num_classes, self.hard)
        op_ids = torch.ones(n, dtype=torch.int64, device=images.device)
        return out, BatchAugmentInfo(STAGE, op_ids, sigmas.clone(), severity, conf)
