"""Vectorised TrivialAugmentWide kernels with one parameter *per sample*.

Why hand-written: the ``torchvision.transforms.v2.functional`` kernels accept a batch
``[N, C, H, W]`` but only ONE scalar parameter per call (one angle, one factor, one
threshold for the whole batch). Calling them once per sample is a Python loop over the
batch, which is what :class:`harness.augment.batch_trivial.BatchSoftAugment` avoids. The
kernels below know nothing about TrivialAugment's ops (the op table :mod:`harness.augment.ops`
says which kernel, factor or affine matrix each op uses); they take per-sample parameter
tensors of shape ``[n]`` and reproduce the torchvision v2 tensor kernels' arithmetic,
operation by operation, so that the outputs agree with a per-sample torchvision loop (see
the tolerance table in :mod:`harness.augment.batch_trivial`):

* geometry (``affine_image`` / ``rotate_image``; :func:`affine_transform`): per-sample
  inverse affine matrices are computed in float64 with the operation order of torchvision's
  ``_get_inverse_affine_matrix`` (Python floats are doubles), cast to the grid dtype
  (float32 for uint8 images) exactly like ``torch.tensor(matrix, dtype=...)``, turned
  into a sampling grid like ``_affine_grid`` and sampled with ONE
  ``grid_sample(mode="nearest", padding_mode="zeros", align_corners=False)`` call;
  ``rotate_image``'s fast paths (0/180 degrees, and 90/270 degrees on square images,
  which use ``clone`` / ``rot90`` instead of a grid) are reproduced;
* colour: ``_blend`` (``x * r + y * (1 - r)``, computed as a fused multiply-add like
  ``Tensor.add_(other, alpha=...)``, then ``clamp`` and a truncating ``.to(uint8)``),
  ``_rgb_to_grayscale_image`` (floored for uint8), the contrast mean and the sharpness
  3x3 kernel (borders kept) with a per-sample factor of shape ``[n, 1, 1, 1]``.

Per-sample parameters are passed as float64 tensors holding the *Python float* values
torchvision would see (e.g. ``1.0 + magnitude``) and are cast to the compute dtype
(float32 for uint8 images, the image dtype for floating images) at the same point where
torchvision casts its Python scalar.

All functions take and return batches ``[n, C, H, W]`` (uint8 or floating, C in {1, 3})
on any device, never modify their input in place, and contain no Python loop over
samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.nn.functional import conv2d, grid_sample

__all__ = [
    "compute_dtype",
    "DEG_TO_RAD",
    "RAD_TO_DEG",
    "inverse_affine_matrices",
    "affine_grid",
    "grid_transform",
    "python_mod",
    "rotate_fast_path",
    "affine_transform",
    "adjust_brightness",
    "adjust_saturation",
    "adjust_contrast",
    "adjust_sharpness",
    "posterize",
    "solarize",
]

# CPython's math.radians / math.degrees multiply by these constants.
DEG_TO_RAD = math.pi / 180.0
RAD_TO_DEG = 180.0 / math.pi


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype torchvision computes in: the image dtype if floating, float32 for uint8."""
    return dtype if dtype.is_floating_point else torch.float32


def _bound(dtype: torch.dtype) -> float:
    return 1.0 if dtype.is_floating_point else 255.0


def _per_sample(values: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[n] parameter -> [n, 1, 1, 1] in ``dtype`` on ``device``."""
    return values.to(device=device, dtype=dtype).view(-1, 1, 1, 1)


def _cast_back(output: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Truncating cast of a float tensor already in [0, 255] back to uint8; no-op for floats.

    Equal to torchvision's ``output.to(torch.uint8)`` for values in [0, 255] (both truncate
    toward zero); going through int32 is ~2-3x faster on CPU than the direct float->uint8
    conversion.
    """
    return output if dtype.is_floating_point else output.to(torch.int32).to(dtype)


# --------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------


def inverse_affine_matrices(
    center: torch.Tensor,
    angle: torch.Tensor,
    translate: torch.Tensor,
    shear: torch.Tensor,
    scale: float = 1.0,
) -> torch.Tensor:
    """Vectorised torchvision ``_get_inverse_affine_matrix(..., inverted=True)``.

    Args:
        center: float64 [n, 2], centre in pixels relative to the image centre
            (torchvision's ``center_f``).
        angle: float64 [n], degrees.
        translate: float64 [n, 2], pixels.
        shear: float64 [n, 2], degrees.
        scale: positive scale (TrivialAugment always uses 1.0).

    Returns:
        float64 [n, 6] row-major inverse matrices ``[a, b, c, d, e, f]``. Every product and
        sum is a separate double operation in torchvision's order (no fused multiply-add,
        like CPython), so the float32 cast of the result matches torchvision.
    """
    rot = angle * DEG_TO_RAD
    sx = shear[:, 0] * DEG_TO_RAD
    sy = shear[:, 1] * DEG_TO_RAD
    cx, cy = center[:, 0], center[:, 1]
    tx, ty = translate[:, 0], translate[:, 1]

    cos_sy = torch.cos(sy)
    tan_sx = torch.tan(sx)
    rot_minus_sy = rot - sy
    cx_plus_tx = cx + tx
    cy_plus_ty = cy + ty

    a = torch.cos(rot_minus_sy) / cos_sy
    b = -((a * tan_sx) + torch.sin(rot))
    c = torch.sin(rot_minus_sy) / cos_sy
    d = torch.cos(rot) - (c * tan_sx)

    m0 = d / scale
    m1 = -b / scale
    m3 = -c / scale
    m4 = a / scale
    zero = torch.zeros_like(m0)
    m2 = zero + ((cx - (m0 * cx_plus_tx)) - (m1 * cy_plus_ty))
    m5 = zero + ((cy - (m3 * cx_plus_tx)) - (m4 * cy_plus_ty))
    return torch.stack([m0, m1, m2, m3, m4, m5], dim=1)


def python_mod(x: torch.Tensor, y: float) -> torch.Tensor:
    """Python's float ``x % y`` (result has the sign of ``y``), vectorised for y > 0."""
    mod = torch.fmod(x, y)
    mod = torch.where(mod < 0, mod + y, mod)
    return torch.where(mod == 0, torch.zeros_like(mod), mod)  # copysign(0.0, y) for y > 0


_BASE_GRID_CACHE: dict[tuple, torch.Tensor] = {}


def _base_grid(height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """torchvision ``_affine_grid``'s base grid [1, H*W, 3] (pixel centres relative to the image centre)."""
    key = (height, width, dtype, device)
    grid = _BASE_GRID_CACHE.get(key)
    if grid is None:
        grid = torch.empty(1, height, width, 3, dtype=dtype, device=device)
        x_grid = torch.linspace((1.0 - width) * 0.5, (width - 1.0) * 0.5, steps=width, device=device)
        grid[..., 0].copy_(x_grid)
        y_grid = torch.linspace((1.0 - height) * 0.5, (height - 1.0) * 0.5, steps=height, device=device)
        grid[..., 1].copy_(y_grid.unsqueeze_(-1))
        grid[..., 2].fill_(1)
        grid = grid.view(1, height * width, 3)
        if len(_BASE_GRID_CACHE) > 32:
            _BASE_GRID_CACHE.clear()
        _BASE_GRID_CACHE[key] = grid
    return grid


def affine_grid(theta: torch.Tensor, height: int, width: int, method: str = "auto") -> torch.Tensor:
    """Per-sample version of torchvision ``_affine_grid`` (output size = input size).

    torchvision computes ``base [1, HW, 3] @ (theta^T / [W/2, H/2]) [1, 3, 2]`` with ``bmm``:
    every grid value is a 3-term dot product ``x * t0 + y * t1 + 1 * t2``.

    Args:
        theta: [n, 2, 3] inverse matrices in the grid dtype.
        method: ``"matmul"``: ONE ``[HW, 3] @ [3, 2n]`` matrix product for all samples
            (the same BLAS dot products as torchvision's bmm; bit-identical on CPU in the
            tests, and much faster than a bmm over an expanded base grid);
            ``"elementwise"``: ``addcmul(x * t0, y, t1) + t2`` (the fused order the CPU
            BLAS uses, also bit-identical on CPU in the tests), which never goes through a
            matrix-multiply unit and so is immune to TF32 (``allow_tf32`` /
            ``set_float32_matmul_precision("high")``), which would otherwise quantise the
            sampling coordinates on GPUs; ``"auto"``: matmul on CPU, elementwise elsewhere.

    Returns:
        [n, H, W, 2] normalised sampling grid for ``grid_sample(align_corners=False)``.
    """
    if method == "auto":
        method = "matmul" if theta.device.type == "cpu" else "elementwise"
    n = theta.shape[0]
    base = _base_grid(height, width, theta.dtype, theta.device)  # [1, HW, 3]
    rescaled = theta.transpose(1, 2).div(
        torch.tensor([0.5 * width, 0.5 * height], dtype=theta.dtype, device=theta.device)
    )  # [n, 3, 2], as torchvision
    if method == "matmul":
        grid = base[0].mm(rescaled.permute(1, 0, 2).reshape(3, 2 * n))  # [HW, 2n]
        return grid.view(height * width, n, 2).permute(1, 0, 2).reshape(n, height, width, 2)
    if method == "elementwise":
        x = base[0, :, 0].view(1, -1, 1)
        y = base[0, :, 1].view(1, -1, 1)
        t0, t1, t2 = rescaled[:, None, 0, :], rescaled[:, None, 1, :], rescaled[:, None, 2, :]
        grid = torch.addcmul(x * t0, y, t1).add_(t2)  # [n, HW, 2]
        return grid.view(n, height, width, 2)
    raise ValueError(f"method must be 'auto', 'matmul' or 'elementwise', got {method!r}")


def _fill_list(fill: float | Sequence[float] | None) -> list[float] | None:
    if fill is None:
        return None
    if isinstance(fill, (int, float)):
        return [float(fill)]
    return [float(v) for v in fill]


def grid_transform(
    images: torch.Tensor, grid: torch.Tensor, fill: float | Sequence[float] | None = None
) -> torch.Tensor:
    """Per-sample torchvision ``_apply_grid_transform`` with ``mode="nearest"``.

    One ``grid_sample`` call for the whole batch; uint8 images are rounded back like
    torchvision (``round_().to(uint8)``). ``fill`` (None = zeros, a number, or one value per
    channel) is applied with the same appended-mask trick as torchvision.
    """
    fill_values = _fill_list(fill)
    fp = images.dtype == grid.dtype
    float_img = images if fp else images.to(grid.dtype)
    n, c, h, w = images.shape
    if fill_values is not None:
        if len(fill_values) not in (1, c):
            raise ValueError(f"fill must have 1 or {c} values, got {len(fill_values)}")
        mask = torch.ones((n, 1, h, w), dtype=float_img.dtype, device=float_img.device)
        float_img = torch.cat((float_img, mask), dim=1)
    out = grid_sample(float_img, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    if fill_values is not None:
        out, mask = torch.tensor_split(out, indices=(-1,), dim=-3)
        mask = mask.expand_as(out)
        fill_img = torch.tensor(fill_values, dtype=out.dtype, device=out.device).view(1, -1, 1, 1)
        out = torch.where(mask < 0.5, fill_img.expand_as(out), out)
    return out if fp else _cast_back(out.round_(), images.dtype)


def rotate_fast_path(angles: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Number of quarter turns for ``rotate_image``'s no-grid fast paths, per sample.

    ``angles`` are the rotation angles in degrees (float64). Returns int64 [n]: ``k`` in
    {0, 1, 2, 3} where torchvision returns ``clone`` (angle % 360 == 0) or
    ``rot90(k)`` (180 always; 90 / 270 only for square images), and -1 where it samples a
    grid.
    """
    a = python_mod(angles.to(torch.float64), 360.0)
    k = torch.full(a.shape, -1, dtype=torch.int64, device=a.device)
    k = torch.where(a == 0, 0, k)
    k = torch.where(a == 180, 2, k)
    if height == width:
        k = torch.where(a == 90, 1, k)
        k = torch.where(a == 270, 3, k)
    return k


def affine_transform(
    images: torch.Tensor,
    matrices: torch.Tensor,
    quarter_turns: torch.Tensor,
    fill: float | Sequence[float] | None = None,
) -> torch.Tensor:
    """Warp each sample with its own inverse affine matrix, as torchvision ``affine_image`` /
    ``rotate_image`` with NEAREST interpolation.

    All samples go through ONE grid computation and ONE ``grid_sample`` call; samples with
    ``quarter_turns[i] >= 0`` (``rotate_image``'s ``clone`` / ``rot90`` fast paths, see
    :func:`rotate_fast_path`) are then overwritten with that fast path (a loop over the four
    quarter-turn counts, not over samples).

    Args:
        images: [n, C, H, W].
        matrices: float64 [n, 6] inverse matrices (:func:`inverse_affine_matrices`).
        quarter_turns: int64 [n], ``k`` in {0, 1, 2, 3} or -1 (sample the grid).
        fill: None (zeros), a number or one value per channel.
    """
    n, _, h, w = images.shape
    if n == 0:
        return images.clone()
    gdtype = compute_dtype(images.dtype)
    theta = matrices.to(device=images.device, dtype=gdtype).view(n, 2, 3)
    out = grid_transform(images, affine_grid(theta, h, w), fill)

    k = quarter_turns.to(images.device)
    counts = torch.bincount(k + 1, minlength=5).tolist()  # one host sync: [-1, 0, 1, 2, 3]
    for turns in range(4):
        if counts[turns + 1] == 0:
            continue
        idx = (k == turns).nonzero().flatten()
        sub = images.index_select(0, idx)
        out.index_copy_(0, idx, sub if turns == 0 else torch.rot90(sub, k=turns, dims=(-2, -1)))
    return out


# --------------------------------------------------------------------------------------
# Colour
# --------------------------------------------------------------------------------------


def _grayscale(images: torch.Tensor) -> torch.Tensor:
    """``_rgb_to_grayscale_image(preserve_dtype=False)`` + floor for uint8 (3-channel input)."""
    r, g, b = images.unbind(dim=-3)
    gray = r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(dim=-3)
    if not images.is_floating_point():
        gray = gray.floor_()
    return gray


def _blend(images: torch.Tensor, other: torch.Tensor, ratio64: torch.Tensor) -> torch.Tensor:
    """Per-sample torchvision ``_blend``: ``clamp(x * r + y * (1 - r))`` (fused like ``add_(alpha=)``)."""
    cdtype = compute_dtype(images.dtype)
    ratio = _per_sample(ratio64, cdtype, images.device)
    alpha = _per_sample(1.0 - ratio64, cdtype, images.device)
    out = images.mul(ratio)  # uint8 * float32 -> float32, like image.mul(python_float)
    # Tensor.add_(other, alpha=a) is a fused multiply-add; addcmul with t2=alpha is too.
    out = out.addcmul_(other, alpha).clamp_(0, _bound(images.dtype))
    return _cast_back(out, images.dtype)


def adjust_brightness(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Per-sample ``adjust_brightness_image``; ``factors`` float64 [n] (= 1 + magnitude)."""
    f = _per_sample(factors, compute_dtype(images.dtype), images.device)
    out = images.mul(f).clamp_(0, _bound(images.dtype))
    return _cast_back(out, images.dtype)


def adjust_saturation(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Per-sample ``adjust_saturation_image`` (identity for 1-channel images, like torchvision)."""
    if images.shape[-3] == 1:
        return images.clone()
    return _blend(images, _grayscale(images), factors)


def adjust_contrast(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Per-sample ``adjust_contrast_image``: blend with the per-image mean grey level."""
    if images.shape[-3] == 3:
        gray = _grayscale(images)
    else:
        gray = images if images.is_floating_point() else images.to(torch.float32)
    mean = torch.mean(gray, dim=(-3, -2, -1), keepdim=True)
    return _blend(images, mean, factors)


def adjust_sharpness(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Per-sample ``adjust_sharpness_image``: blend with a 3x3 smoothed image, borders kept."""
    n, c, h, w = images.shape
    if images.numel() == 0 or h <= 2 or w <= 2:
        return images.clone()
    fp = images.is_floating_point()
    kdtype = compute_dtype(images.dtype)
    a, b = 1.0 / 13.0, 5.0 / 13.0
    kernel = torch.tensor([[a, a, a], [a, b, a], [a, a, a]], dtype=kdtype, device=images.device)
    kernel = kernel.expand(c, 1, 3, 3)
    output = images.to(dtype=kdtype, copy=True)
    blurred = conv2d(output, kernel, groups=c)
    if not fp:
        blurred = blurred.round_()
    view = output[..., 1:-1, 1:-1]
    alpha = _per_sample(1.0 - factors, kdtype, images.device)
    view.addcmul_(blurred.sub_(view), alpha)  # == view.add_(diff, alpha=1 - factor), fused
    output = output.clamp_(0, _bound(images.dtype))
    return _cast_back(output, images.dtype)


def posterize(images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Per-sample ``posterize_image``; ``bits`` int [n] in [0, 8].

    uint8: ``image & mask`` with the per-sample mask ``((1 << b) - 1) << (8 - b)``;
    float: ``floor(x * 2^b).clamp(0, 2^b - 1) / 2^b``.
    """
    b = bits.to(device=images.device, dtype=torch.int64)
    if images.is_floating_point():
        levels = _per_sample(torch.pow(2.0, b.to(torch.float64)), images.dtype, images.device)
        out = images.mul(levels).floor_().clamp_(min=0)
        return torch.minimum(out, levels - 1).mul_(1.0 / levels)
    if images.dtype != torch.uint8:
        raise TypeError(f"posterize supports uint8 or floating images, got {images.dtype}")
    b = b.clamp(0, 8)
    mask = ((torch.ones_like(b) << b) - 1) << (8 - b)  # bits == 8 -> 255 (no-op)
    return images & mask.to(torch.uint8).view(-1, 1, 1, 1)


def solarize(images: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Per-sample ``solarize_image``: invert pixels ``>= threshold`` (float64 [n], image units)."""
    thr = _per_sample(thresholds, compute_dtype(images.dtype), images.device)
    inverted = (1.0 - images) if images.is_floating_point() else images.bitwise_not()
    return torch.where(images >= thr, inverted, images)
