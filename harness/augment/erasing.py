"""Soft Random Erasing (METHOD.md §2.3): per-sample and batched, one semantics.

Sampling follows torchvision ``RandomErasing`` (v2 ``make_params``) exactly:

* the stage fires with probability ``p`` (``torch.rand(1) >= p`` -> skip, as torchvision);
* up to 10 attempts: target area ``A = H*W*U(s_min, s_max)``, aspect ratio
  ``r = exp(U(log r_min, log r_max))``, ``h = round(sqrt(A*r))``, ``w = round(sqrt(A/r))``;
  the first attempt with ``h < H and w < W`` is accepted;
* the top-left corner is uniform: ``i ~ randint(0, H-h+1)``, ``j ~ randint(0, W-w+1)``.

Provenance: magnitude = severity = erased area fraction ``a = h*w/(H*W)``. Because ``h`` and ``w``
are rounded, ``a`` can lie slightly outside ``[s_min, s_max]`` (by at most
``(0.5*(sqrt(A*r) + sqrt(A/r)) + 0.25)/(H*W)``), exactly as in torchvision and the reference.
Default mapping ``mappings.erasing_mapping(K)`` = ``Polynomial(1/K, k=1)``:
``c = 1 - (1 - 1/K) * a``. Not fired -> ``c = 1``. The final confidence is clamped to ``[1/K, 1]``.

Deliberate fix of METHOD.md §7.6: when none of the 10 attempts fits, the image is unchanged and
the sample is recorded as *not erased* (``a = 0``, ``c = 1``, op ``"none"`` / op id 0). The
reference code reports ``a = 1`` (``c = 1/K``) for an image it did not touch.

Fill modes (``value``):

* ``"zero"``: 0.
* ``"uniform"``: per-pixel ``U(0, max)`` inside the image range -- float images get ``[0, 1)``,
  uint8 images get integers ``0..255``.
* ``"normal"``: per-pixel ``N(0, 1)`` in ``[0, 1]`` image units, **unclamped**, as the reference
  (torchvision ``value="random"`` on un-normalised images; METHOD §2.3, §7.6): values fall far outside
  ``[0, 1]``. A uint8 image cannot hold them, so both stages first turn a uint8 input into float32 in
  ``[0, 1]`` (``x / 255``, the conversion the model's input applies anyway) and return float32 -- the
  training pipeline then feeds the model exactly the reference's values. (:func:`draw_fill` asked
  directly for a uint8 ``"normal"`` fill still returns ``round(clamp(N(0, 1), 0, 1) * 255)``.)

The per-sample path (:class:`SoftRandomErasing`) draws from the global torch RNG in the same order
as torchvision (``rand`` for ``p``; per attempt ``uniform`` area, ``uniform`` log-ratio; then the fill,
then ``randint`` top, ``randint`` left) and erases with ``torchvision.transforms.v2.functional.erase``;
for ``value="zero"`` and ``value="normal"`` on float images it reproduces torchvision
``RandomErasing(value=0 | "random")`` bit for bit under the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torchvision.transforms.v2.functional as F
from torch import nn

from mappings import erasing_mapping

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
    "VALUE_MODES",
    "MAX_ATTEMPTS",
    "draw_fill",
    "erase_image",
    "erase_batch",
    "SoftRandomErasing",
    "BatchSoftRandomErasing",
]

STAGE = "random_erasing"
VALUE_MODES: tuple[str, ...] = ("zero", "uniform", "normal")
MAX_ATTEMPTS = 10


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def _check_p(p: object) -> float:
    if not is_number(p) or not math.isfinite(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a number in [0, 1], got p={p!r}")
    return float(p)


def _check_pair(value: object, name: str) -> tuple[float, float]:
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != 2
        or not all(is_number(v) and math.isfinite(v) for v in value)
    ):
        raise ValueError(f"{name} must be a pair of finite numbers (min, max), got {name}={value!r}")
    return float(value[0]), float(value[1])


def _check_scale(scale: object) -> tuple[float, float]:
    lo, hi = _check_pair(scale, "scale")
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f"scale must satisfy 0 < s_min <= s_max <= 1, got scale={tuple(scale)!r}")
    return lo, hi


def _check_ratio(ratio: object) -> tuple[float, float]:
    lo, hi = _check_pair(ratio, "ratio")
    if not 0.0 < lo <= hi:
        raise ValueError(f"ratio must satisfy 0 < r_min <= r_max < inf, got ratio={tuple(ratio)!r}")
    return lo, hi


def _check_value(value: object) -> str:
    if value not in VALUE_MODES:
        raise ValueError(f"value must be one of {VALUE_MODES}, got value={value!r}")
    return value  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------
# functional kernels
# ----------------------------------------------------------------------------------------------
def draw_fill(
    value: str,
    shape: Sequence[int],
    dtype: torch.dtype,
    device: Any = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Erasing fill of ``shape`` in image units and ``dtype`` (see the module docstring).

    Draws on the generator's device (or CPU / ``device`` with the global RNG when ``generator`` is
    None) and returns the tensor on ``device``.
    """
    _check_value(value)
    shape = tuple(int(s) for s in shape)
    out_device = torch.device("cpu") if device is None else torch.device(device)
    if value == "zero":
        return torch.zeros(shape, dtype=dtype, device=out_device)
    gdev = generator_device(generator, device)
    if value == "uniform":
        if dtype == torch.uint8:
            fill = torch.randint(0, 256, shape, generator=generator, device=gdev, dtype=torch.uint8)
        else:
            fill = torch.rand(shape, generator=generator, device=gdev, dtype=torch.float32)
    else:  # "normal"
        fill = torch.empty(shape, dtype=torch.float32, device=gdev).normal_(generator=generator)
        if dtype == torch.uint8:
            fill = fill.clamp(0.0, 1.0).mul(255.0).round()
    return fill.to(device=out_device, dtype=dtype)


def _output_dtype(dtype: torch.dtype, value: str) -> torch.dtype:
    """The dtype a stage returns (and its fill has) for input ``dtype``: float32 for uint8 with ``"normal"``."""
    return torch.float32 if (value == "normal" and dtype == torch.uint8) else dtype


def _unit_float_for_normal(images: torch.Tensor, value: str) -> torch.Tensor:
    """``images`` as float32 in [0, 1] (``x / 255``) when they are uint8 and ``value == "normal"`` (the
    reference's unclamped N(0, 1) fill needs a floating image), else unchanged."""
    if _output_dtype(images.dtype, value) != images.dtype:
        return images.float().div_(255.0)
    return images


def erase_image(
    image: torch.Tensor, top: int, left: int, height: int, width: int, fill: torch.Tensor
) -> torch.Tensor:
    """Per-sample kernel: ``torchvision.transforms.v2.functional.erase`` (not in place).

    ``fill`` is broadcastable to ``[C, height, width]`` and is cast to the image dtype/device.
    """
    v = fill.to(device=image.device, dtype=image.dtype)
    return F.erase(image, int(top), int(left), int(height), int(width), v=v, inplace=False)


def erase_batch(images: torch.Tensor, boxes: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Batched kernel: erase box ``boxes[n] = (top, left, h, w)`` of ``images[n]`` with ``fill[n]``.

    Hand-written (vectorised with an arange-comparison mask) because torchvision's ``F.erase`` applies
    one box per call. ``fill`` is broadcastable to ``[N, C, H, W]`` (None -> 0). Pixel-identical to
    calling :func:`erase_image` per sample with ``fill[n][:, top:top+h, left:left+w]``.
    """
    n, _, height, width = images.shape
    mask = box_mask(boxes.to(images.device), height, width)
    if fill is None:
        return images.masked_fill(mask, 0)
    return torch.where(mask, fill.to(device=images.device, dtype=images.dtype), images)


# ----------------------------------------------------------------------------------------------
# per-sample transform
# ----------------------------------------------------------------------------------------------
class _ErasingBase(nn.Module):
    """Parameters and validation shared by the per-sample and batched erasing stages."""

    stage = STAGE

    def __init__(
        self,
        num_classes: int,
        p: float = 0.5,
        scale: Sequence[float] = (0.02, 0.33),
        ratio: Sequence[float] = (0.3, 3.3),
        value: str = "zero",
        mapping: Callable | None = None,
        hard: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.p = _check_p(p)
        self.scale = _check_scale(scale)
        self.ratio = _check_ratio(ratio)
        self.value = _check_value(value)
        self.hard = check_hard(hard)
        self.mapping = erasing_mapping(self.num_classes) if mapping is None else check_mapping(mapping)
        # float32 log-ratio bounds, exactly as torchvision (torch.log(torch.tensor(ratio)))
        log_ratio = torch.log(torch.tensor(self.ratio))
        self._log_ratio = (float(log_ratio[0]), float(log_ratio[1]))

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, p={self.p}, scale={self.scale}, ratio={self.ratio}, "
            f"value={self.value!r}, hard={self.hard}"
        )


class SoftRandomErasing(_ErasingBase, SampleStage):
    """Per-sample soft Random Erasing on one image ``[C, H, W]`` (uint8 or float in [0, 1]).

    Args:
        num_classes: K >= 2 (confidence floor 1/K and the default mapping).
        p: firing probability in [0, 1].
        scale: (s_min, s_max), 0 < s_min <= s_max <= 1, erased area range as a fraction of H*W.
        ratio: (r_min, r_max), 0 < r_min <= r_max, aspect-ratio range (sampled log-uniformly).
        value: fill mode, one of ``"zero"``, ``"uniform"``, ``"normal"`` (see the module docstring).
        mapping: severity -> confidence callable; None -> ``mappings.erasing_mapping(K)``.
        hard: record provenance but return confidence 1.0.

    The per-sample stage protocol: ``sample_params(image)`` (alias ``make_params``) ->
    ``dict(top, left, height, width, fill)``; ``apply(image, top, left, height, width, fill)``;
    ``forward(image)`` returns ``(image, AugmentInfo(op, magnitude, severity, confidence))`` with op
    ``"random_erasing"`` when a box was erased and ``"none"`` otherwise. Random draws use the global
    torch RNG (like torchvision).
    """

    def sample_params(self, image: torch.Tensor) -> dict[str, Any]:
        """Draw ``dict(top, left, height, width, fill)`` from the global RNG.

        ``height = width = 0`` (and ``fill=None``) when the stage did not fire or no box fitted.
        """
        channels, img_h, img_w = image.shape[-3:]
        nothing = dict(top=0, left=0, height=0, width=0, fill=None)
        if torch.rand(1) >= self.p:
            return nothing
        area = img_h * img_w
        for _ in range(MAX_ATTEMPTS):
            erase_area = area * torch.empty(1).uniform_(self.scale[0], self.scale[1]).item()
            aspect_ratio = torch.exp(torch.empty(1).uniform_(self._log_ratio[0], self._log_ratio[1])).item()
            h = int(round(math.sqrt(erase_area * aspect_ratio)))
            w = int(round(math.sqrt(erase_area / aspect_ratio)))
            if not (h < img_h and w < img_w):
                continue
            # fill drawn (on CPU, global RNG) before the position, in torchvision's order
            fill = draw_fill(self.value, (channels, h, w), _output_dtype(image.dtype, self.value))
            i = int(torch.randint(0, img_h - h + 1, size=(1,)).item())
            j = int(torch.randint(0, img_w - w + 1, size=(1,)).item())
            return dict(top=i, left=j, height=h, width=w, fill=fill)
        return nothing  # no box fitted: unchanged image, c = 1 (fix of METHOD §7.6)

    def apply(
        self, image: torch.Tensor, top: int, left: int, height: int, width: int, fill: torch.Tensor | None
    ) -> tuple[torch.Tensor, AugmentInfo]:
        """Erase the ``height x width`` box at ``(top, left)`` with ``fill``; an empty box is no erasure. A uint8
        image with ``value="normal"`` becomes float32 in [0, 1] first, erased or not (one output dtype)."""
        image = _unit_float_for_normal(check_image(image), self.value)
        if height * width == 0:
            return image, AugmentInfo("none", 0.0, 0.0, 1.0)
        out = erase_image(image, top, left, height, width, fill)
        a = height * width / (image.shape[-2] * image.shape[-1])
        c = stage_confidence(self.mapping, a, self.num_classes, self.hard)
        return out, AugmentInfo(STAGE, a, a, c)


# ----------------------------------------------------------------------------------------------
# batched transform
# ----------------------------------------------------------------------------------------------
class BatchSoftRandomErasing(_ErasingBase, BatchStage):
    """Batched soft Random Erasing on ``[N, C, H, W]`` with one independent box per sample.

    Hand-written and vectorised (no Python loop over samples) because torchvision transforms apply a
    single set of parameters per call. Same arguments, parameter distribution and pixel semantics as
    :class:`SoftRandomErasing`; the 10 attempts are drawn as ``[N, 10]`` tensors and the first valid
    attempt is taken.

    * ``sample_params(n, height, width, device=None, generator=None) -> {"boxes": int64 [N, 4]}``
      with rows ``(top, left, h, w)``; ``h = w = 0`` means not erased (did not fire / no fit).
    * ``apply(images, boxes, fill=None, generator=None) -> (images, BatchAugmentInfo)``:
      deterministic given ``fill`` ([N, C, H, W] in the image dtype); with ``fill=None`` it is drawn
      according to ``value`` from ``generator``.
    * ``forward(images, generator=None)`` = ``apply(images, **sample_params(...), generator=generator)``.

    op_ids: 1 = a box was erased, 0 = not (did not fire, or no box fitted).
    """

    def sample_params(
        self,
        n: int,
        height: int,
        width: int,
        device: Any = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Draw boxes for ``n`` samples of size ``height x width``.

        All draws come from ``generator`` on its device (global RNG on ``device`` when None) and the
        result is moved to ``device`` (default: the generator's device).
        """
        gdev = generator_device(generator, device)
        out_device = gdev if device is None else torch.device(device)
        fired = torch.rand(n, generator=generator, device=gdev) < self.p
        frac = torch.empty(n, MAX_ATTEMPTS, device=gdev).uniform_(
            self.scale[0], self.scale[1], generator=generator
        )
        log_r = torch.empty(n, MAX_ATTEMPTS, device=gdev).uniform_(
            self._log_ratio[0], self._log_ratio[1], generator=generator
        )
        # float32 draws, float64 arithmetic -- as torchvision's `.item()` + math.sqrt
        area = (height * width) * frac.double()
        aspect = torch.exp(log_r).double()
        h = torch.round(torch.sqrt(area * aspect)).long()
        w = torch.round(torch.sqrt(area / aspect)).long()
        valid = (h < height) & (w < width)
        first = valid.int().argmax(dim=1, keepdim=True)  # index of the first valid attempt
        h = h.gather(1, first).squeeze(1)
        w = w.gather(1, first).squeeze(1)
        erased = fired & valid.any(dim=1)
        # uniform integer position in [0, H - h] / [0, W - w]
        u_top = torch.rand(n, generator=generator, device=gdev, dtype=torch.float64)
        u_left = torch.rand(n, generator=generator, device=gdev, dtype=torch.float64)
        top = torch.minimum(torch.floor(u_top * (height - h + 1)).long(), height - h)
        left = torch.minimum(torch.floor(u_left * (width - w + 1)).long(), width - w)
        boxes = torch.stack([top, left, h, w], dim=1) * erased[:, None].long()
        return {"boxes": boxes.to(out_device)}

    def apply(
        self,
        images: torch.Tensor,
        boxes: torch.Tensor,
        fill: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, BatchAugmentInfo]:
        """Erase ``boxes`` (int64 [N, 4]: top, left, h, w) with ``fill`` ([N, C, H, W], image dtype; float32
        for a uint8 batch with ``value="normal"``, which is returned as float32 in [0, 1] units)."""
        check_batch(images)
        images = _unit_float_for_normal(images, self.value)
        n, channels, height, width = images.shape
        boxes = check_boxes(boxes, n, height, width).to(images.device)
        if fill is None:
            if self.value != "zero":
                fill = draw_fill(self.value, images.shape, images.dtype, images.device, generator)
        else:
            if not isinstance(fill, torch.Tensor) or fill.shape != images.shape or fill.dtype != images.dtype:
                raise ValueError(
                    f"fill must be a tensor with the shape and dtype of images ({tuple(images.shape)}, "
                    f"{images.dtype}), got {getattr(fill, 'shape', None)} / "
                    f"{getattr(fill, 'dtype', type(fill))}"
                )
        out = erase_batch(images, boxes, fill)
        area = (boxes[:, 2] * boxes[:, 3]).to(torch.float32) / float(height * width)
        op_ids = (area > 0).long()
        conf = torch.where(op_ids.bool(), stage_confidences(self.mapping, area, self.num_classes, self.hard), 1.0)
        info = BatchAugmentInfo(STAGE, op_ids, area.clone(), area, conf)
        return out, info
