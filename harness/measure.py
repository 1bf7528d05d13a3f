"""Measuring for the fitted mappings: proxy-model accuracy and SSIM of augmented images, as plain tables.

Measuring is evaluation: it trains and runs models and augments images, so it lives here in
``harness``. It hands plain tables -- one row per TrivialAugment op x sign x magnitude bin
(``op, sign, bin, magnitude, severity``, the measured value and ``n``) -- to :mod:`mappings`, which
fits, smooths, normalises and serialises them (:mod:`mappings.proxy`, :mod:`mappings.ssim`,
:mod:`mappings.curves`); ``mappings`` itself imports nothing from ``harness``.

Proxy accuracy (METHOD.md §3.4; the reference code's pitfalls §7.2, §7.3, §7.17, §6.6 avoided):

- the proxy is trained **without TrivialAugment** (flip + pad-4 crop only) by
  :func:`harness.workflow.train_and_evaluate`, on the dataset the mapping is for (:func:`train_proxy`);
- accuracies are measured on held-out images, never on the proxy's training images
  (:func:`measure_proxy_accuracy`, :func:`measure_proxy_run`), with the batched uint8 TA of the
  training pipeline through the per-op accuracy loop shared with evaluation
  (:func:`harness.inference.op_accuracy`; so no float-vs-PIL TA mismatch, §7.17);
- the table (:data:`mappings.proxy.ACCURACY_COLUMNS`) goes to
  :func:`mappings.proxy.proxy_confidence_table` / :func:`mappings.proxy.proxy_mapping_set`.

SSIM (METHOD.md §3.5):

- :func:`ssim_torch`: per-image SSIM of a batch ``[N, C, H, W]`` (separable window filter as two
  batched matrix products with banded filter matrices), numerically equal to
  ``skimage.metrics.structural_similarity(..., channel_axis=-1)`` with the same settings
  (``tests/test_ssim.py`` asserts |diff| <= 1e-4 on CIFAR-10 test images; measured <= 1.2e-6 in
  float32 and <= 4e-14 in float64);
- :func:`ssim_op_curves`: mean SSIM (with a bootstrap CI) of every TrivialAugment op x signed
  magnitude bin, applied with :class:`harness.augment.batch_trivial.BatchSoftAugment`; the table
  (:data:`mappings.ssim.CURVE_COLUMNS`) goes to :func:`mappings.ssim.ssim_mapping_set`;
- :class:`SSIMConfidence`: a per-sample (content-conditioned) confidence, c = clip(SSIM, 1/K, 1)
  of each (original, augmented) pair (the paper's open question on per-sample smoothing).

Why a hand-written SSIM: scikit-image computes one image at a time on the CPU in numpy (far too
slow to call per training sample), and the torch libraries that batch SSIM (e.g. torchmetrics,
pytorch-msssim) use their own window conventions (padding, window size tied to sigma, population
covariance, different cropping), so none returns per-image values that equal scikit-image's. The
filter here reproduces scikit-image's exactly: a normalised uniform ``win_size`` box or a Gaussian
with ``truncate = 3.5`` (radius ``int(3.5 * sigma + 0.5)``, 11 taps for sigma = 1.5), both
separable; ``NP = win_size**2``; sample covariance factor ``NP / (NP - 1)`` when
``use_sample_covariance``; the SSIM map is averaged over the region ``(win_size - 1) // 2`` pixels
away from the border and then over channels. Only the filter outputs inside that region are used,
so the padding mode never matters except when a Gaussian wider than ``win_size`` is requested
explicitly; then the border is treated like ``scipy.ndimage`` ``mode="reflect"`` (edge sample
repeated), as scikit-image does.

Implementation: the five local statistics (x, y, x², y², xy of every channel) are stacked and
filtered with ``stack @ M_w`` then ``@ M_h``, where ``M`` is the banded [side, side - 2*crop]
filter matrix (taps, cropping and reflection folded in). This equals a depthwise separable
``conv2d`` (same sums) but runs ~5x faster on CPU (one GEMM instead of a grouped convolution:
~25 ms vs ~140 ms for 512x15x32x32 with an 11-tap filter on 2 shared cores).

Pipeline::

    run = train_proxy("cifar10", run_dir="runs/proxy_cifar10", epochs=30)
    acc = measure_proxy_run(run, device="auto")                         # ACCURACY_COLUMNS
    ms = mappings.proxy.proxy_mapping_set(acc, num_classes=10)          # MappingSet of Tables
    curves = ssim_op_curves(test_images_uint8)                          # CURVE_COLUMNS
    ms = mappings.ssim.ssim_mapping_set(curves, num_classes=10)
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Mapping as AbcMapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from skimage.metrics import structural_similarity
from tqdm.auto import tqdm

from mappings.base import check_int
from harness.augment.batch_trivial import BatchSoftAugment
from harness.augment.space import SIGNED_OPS, TA_OPS, magnitude_bins, op_id, severity_from_magnitude
from harness.config import TrainConfig, load_config
from harness.datasets import load_dataset
from harness.inference import OpSetting, op_accuracy
from harness.io import atomic_write_text
from harness.run_model import load_run_model
from harness.runs import read_status
from harness.workflow import train_and_evaluate
from mappings.base import check_num_classes
from mappings.ops import TRIVIAL_AUGMENT_WIDE
from mappings.proxy import ACCURACY_COLUMNS
from mappings.ssim import CURVE_COLUMNS

__all__ = [
    # proxy accuracy
    "PROXY_AUGMENT",
    "proxy_config",
    "train_proxy",
    "load_proxy",
    "measure_proxy_accuracy",
    "measure_proxy_run",
    "save_proxy_table",
    "load_proxy_table",
    # SSIM
    "WANG_SSIM",
    "ssim_torch",
    "ssim_op_curves",
    "SSIMConfidence",
    # the op x sign x bin grid both measure
    "op_bin_grid",
]

#: The Wang et al. (2004) setting: 11-tap Gaussian window, sigma 1.5, population covariance.
#: Closest to torchmetrics' default SSIM used by the reference code (§3.5).
WANG_SSIM: dict[str, Any] = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}

_TRUNCATE = 3.5  # scikit-image's truncate for gaussian_weights=True


# ------------------------------------------------------------------------------------------ SSIM
def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not (
        math.isfinite(float(value)) and float(value) > 0
    ):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _to_float(name: str, x: Any) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [N, C, H, W], got {type(x).__name__}")
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a uint8 or floating tensor, got dtype={x.dtype}")
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.to(torch.float32)
    return x


def _taps(gaussian_weights: bool, win_size: int, sigma: float) -> np.ndarray:
    """1-D filter taps: scipy.ndimage's normalised Gaussian (radius ``int(3.5 * sigma + 0.5)``)
    or the uniform box of ``uniform_filter(size=win_size)``."""
    if gaussian_weights:
        radius = int(_TRUNCATE * sigma + 0.5)
        x = np.arange(-radius, radius + 1, dtype=np.float64)
        phi = np.exp(-0.5 / sigma**2 * x**2)
        return phi / phi.sum()
    return np.full(win_size, 1.0 / win_size)


def _reflect(i: int, n: int) -> int:
    """scipy.ndimage ``mode='reflect'`` index (``d c b a | a b c d | d c b a``)."""
    period = 2 * n
    i %= period
    return i if i < n else period - 1 - i


@functools.lru_cache(maxsize=64)
def _filter_matrix(n: int, gaussian_weights: bool, win_size: int, sigma: float) -> np.ndarray:
    """Banded matrix ``M`` [n, n - 2*crop]: ``x @ M`` filters the last axis of ``x`` (one row each)
    and keeps only the outputs more than ``crop = (win_size - 1) // 2`` samples from either end.

    Boundary handling (scipy ``reflect``) is folded into the matrix; it only matters when a
    Gaussian wider than ``win_size`` is requested, because the kept outputs of a window no wider
    than ``win_size`` never reach past the border.
    """
    taps = _taps(gaussian_weights, win_size, sigma)
    half = (len(taps) - 1) // 2
    crop = (win_size - 1) // 2
    m = np.zeros((n, n - 2 * crop), dtype=np.float64)
    for o in range(n - 2 * crop):
        for t, weight in enumerate(taps):
            m[_reflect(crop + o + t - half, n), o] += weight
    m.setflags(write=False)
    return m


def ssim_torch(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float = 1.0,
    win_size: int | None = None,
    gaussian_weights: bool = False,
    sigma: float = 1.5,
    use_sample_covariance: bool = True,
    channel_axis: int = 1,
    K1: float = 0.01,
    K2: float = 0.03,
) -> torch.Tensor:
    """Per-image SSIM of two batches (equal to scikit-image's ``structural_similarity``).

    Args:
        x, y: image batches of equal shape, ``[N, C, H, W]`` (``channel_axis=1``, default) or
            ``[N, H, W, C]`` (``channel_axis=-1`` or ``3``); uint8 or floating. uint8 input is
            converted to floats in [0, 1] (``/255``); ``data_range`` then refers to the converted
            values (keep 1.0), which equals scikit-image on the uint8 arrays with
            ``data_range=255``. Half precision is computed in float32, float64 stays float64.
        data_range: max - min of the value range (1.0 for images in [0, 1]).
        win_size: odd window side >= 3, at most min(H, W). ``None`` (scikit-image's default)
            means 7 for the uniform window and ``2 * int(3.5 * sigma + 0.5) + 1`` (11 for
            sigma 1.5) for the Gaussian window.
        gaussian_weights: Gaussian instead of uniform window (``gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False`` is the Wang et al. 2004 setting, :data:`WANG_SSIM`).
        sigma: Gaussian standard deviation (pixels).
        use_sample_covariance: normalise (co)variances by ``NP - 1`` instead of ``NP``.
        channel_axis: 1 (NCHW) or -1 / 3 (NHWC).
        K1, K2: SSIM stabilisers, ``C1 = (K1 * data_range)**2``, ``C2 = (K2 * data_range)**2``.

    Returns:
        float tensor ``[N]`` (float32, or float64 for float64 input) on the inputs' device: the
        SSIM map averaged over the valid region and then over channels.
    """
    xf, yf = _to_float("x", x), _to_float("y", y)
    if xf.shape != yf.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if xf.ndim != 4:
        raise ValueError(f"x and y must be 4-D image batches, got shape {tuple(x.shape)}")
    if xf.device != yf.device:
        raise ValueError(f"x and y must be on the same device, got {xf.device} and {yf.device}")
    if isinstance(channel_axis, bool) or channel_axis not in (1, -1, 3):
        raise ValueError(f"channel_axis must be 1 (NCHW) or -1 / 3 (NHWC), got {channel_axis!r}")
    if channel_axis != 1:
        xf, yf = xf.permute(0, 3, 1, 2), yf.permute(0, 3, 1, 2)
    data_range = _check_positive("data_range", data_range)
    sigma = _check_positive("sigma", sigma)
    for name, k in (("K1", K1), ("K2", K2)):
        if isinstance(k, bool) or not isinstance(k, numbers.Real) or not (math.isfinite(k) and k >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {k!r}")
    if not isinstance(gaussian_weights, bool):
        raise TypeError(f"gaussian_weights must be a bool, got {gaussian_weights!r}")
    if not isinstance(use_sample_covariance, bool):
        raise TypeError(f"use_sample_covariance must be a bool, got {use_sample_covariance!r}")
    radius = int(_TRUNCATE * sigma + 0.5)
    if win_size is None:
        win_size = 2 * radius + 1 if gaussian_weights else 7
    win_size = check_int(win_size, "win_size", 3)
    if win_size % 2 != 1:
        raise ValueError(f"win_size must be odd, got {win_size}")
    n, c, h, w = xf.shape
    if win_size > min(h, w):
        raise ValueError(f"win_size ({win_size}) exceeds the image extent {h}x{w}")
    dtype = torch.promote_types(xf.dtype, yf.dtype)
    xf, yf = xf.to(dtype), yf.to(dtype)
    if n == 0:
        return torch.empty(0, dtype=dtype, device=xf.device)

    # The five local statistics of every channel, filtered separably with two matrix products
    # (a banded filter matrix per axis; on CPU about 5x faster than a depthwise conv2d). On CUDA
    # the products run in float64 so that TF32 settings can never quantise the filter; autocast
    # is disabled so that a caller's bf16 region cannot either.
    device = xf.device
    work = torch.float64 if device.type == "cuda" else dtype
    m_w = torch.tensor(_filter_matrix(w, gaussian_weights, win_size, sigma), dtype=work, device=device)
    m_h = torch.tensor(_filter_matrix(h, gaussian_weights, win_size, sigma), dtype=work, device=device)
    with torch.autocast(device.type, enabled=False):
        # (Co)variances are computed on data centred by each image-channel's mean (a, b): they
        # are shift-invariant, and centring removes most of the float32 cancellation in
        # E[x^2] - E[x]^2 (max |error| vs float64 over the full TA op x bin grid on 64 CIFAR-10 test
        # images: 9.8e-5 -> 9.5e-6).
        x_, y_ = xf.to(work), yf.to(work)
        a = x_.mean(dim=(2, 3), keepdim=True)
        b = y_.mean(dim=(2, 3), keepdim=True)
        stack = torch.empty((n, 5 * c, h, w), dtype=work, device=device)  # [N, 5C, H, W], no cat copy
        xc, yc = stack[:, :c], stack[:, c:2 * c]
        torch.sub(x_, a, out=xc)
        torch.sub(y_, b, out=yc)
        torch.mul(xc, xc, out=stack[:, 2 * c:3 * c])
        torch.mul(yc, yc, out=stack[:, 3 * c:4 * c])
        torch.mul(xc, yc, out=stack[:, 4 * c:])
        out = (stack @ m_w).transpose(-1, -2) @ m_h  # [N, 5C, W', H'] (transposed; fine for means)
    uxc, uyc, uxx, uyy, uxy = out.split(c, dim=1)
    a, b = a.transpose(-1, -2), b.transpose(-1, -2)
    ux, uy = uxc + a, uyc + b
    np_ = win_size**2
    cov_norm = np_ / (np_ - 1) if use_sample_covariance else 1.0
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    # scikit-image's formula, with shared products and fewer temporaries (in centred terms):
    #   vx + vy = cov_norm * (uxx + uyy - uxc^2 - uyc^2),  vxy = cov_norm * (uxy - uxc * uyc)
    #   S = (2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)(vx + vy + C2))
    # (uxx, uyy, uxy are the filtered centred products; uxc, uyc the filtered centred values.)
    var_sum = (uxx + uyy).sub_(uxc * uxc).sub_(uyc * uyc).mul_(cov_norm).add_(c2)
    cov2 = (uxy - uxc * uyc).mul_(2.0 * cov_norm).add_(c2)
    uxuy = ux * uy
    mu2 = ux * ux
    mu2.addcmul_(uy, uy)  # ux^2 + uy^2
    num = uxuy.mul_(2.0).add_(c1).mul_(cov2)
    s = num.div_(mu2.add_(c1).mul_(var_sum))
    return s.reshape(n, -1).to(torch.float64).mean(dim=1).to(dtype)


# ------------------------------------------------------------------------------------------ op x bin grid
def op_bin_grid(num_bins: int = 31, height: int = 32, width: int = 32) -> pd.DataFrame:
    """Every TA op x sign x magnitude bin, one row each: op, sign, bin, magnitude, severity.

    Signed ops get both signs ``"+"`` and ``"-"`` for every bin (bin 0 has magnitude +0.0 / -0.0,
    the unaugmented image); Posterize and Solarize get sign ``""`` and every bin; the
    magnitude-free ops (Identity, AutoContrast, Equalize) get one row (sign ``""``, bin 0,
    magnitude 0, severity 0). Severity is ``harness.augment.space.severity_from_magnitude``
    (Translate uses the real image size).
    """
    num_bins = check_int(num_bins, "num_bins", 2)
    rows = []
    for op in TA_OPS:
        mags = magnitude_bins(op, num_bins)
        if mags is None:
            rows.append((op, "", 0, 0.0))
            continue
        mags = mags.to(torch.float32).tolist()  # the float32 magnitudes BatchSoftAugment samples
        signs = ("+", "-") if op in SIGNED_OPS else ("",)
        for sign in signs:
            for b, m in enumerate(mags):
                rows.append((op, sign, b, -m if sign == "-" else m))
    df = pd.DataFrame(rows, columns=["op", "sign", "bin", "magnitude"])
    ids = torch.tensor([op_id(o) for o in df["op"]], dtype=torch.int64)
    mags = torch.tensor(df["magnitude"].to_numpy(), dtype=torch.float32)
    df["severity"] = severity_from_magnitude(ids, mags, height, width).to(torch.float64).numpy()
    return df


def _check_images_u8(name: str, images: Any) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a uint8 tensor [N, C, H, W], got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(f"{name} must be uint8 [N, C, H, W], got dtype={images.dtype}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have shape [N, C, H, W] with C in (1, 3), got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image, got shape {tuple(images.shape)}")
    return images


def _pair_chunks(n_combos: int, n_images: int, chunk: int):
    """Yield (combo index, image index) LongTensors covering the product grid in chunks of ``chunk``."""
    total = n_combos * n_images
    for start in range(0, total, chunk):
        flat = torch.arange(start, min(start + chunk, total), dtype=torch.int64)
        yield flat // n_images, flat % n_images


def _bootstrap_mean_ci(values: np.ndarray, n_boot: int, seed: int, level: float = 0.95):
    """Seeded percentile bootstrap CI of the mean of every row of ``values`` [G, n].

    One set of ``n_boot`` multinomial resampling weights is drawn (``np.random.default_rng(seed)``)
    and shared by all rows (each row's interval is a valid percentile bootstrap; the rows are
    merely resampled with the same index draws). Returns ``(low, high)`` arrays of shape [G].
    """
    g, n = values.shape
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    weights = np.zeros((n_boot, n), dtype=np.float64)
    np.add.at(weights, (np.repeat(np.arange(n_boot), n), idx.ravel()), 1.0 / n)
    means = values @ weights.T  # [G, n_boot]
    alpha = (1.0 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha], axis=1)
    return low, high


def ssim_op_curves(
    images_uint8: torch.Tensor,
    *,
    n_images: int = 500,
    num_bins: int = 31,
    n_boot: int = 200,
    seed: int = 0,
    backend: str = "torch",
    ssim_kwargs: AbcMapping | None = None,
    batch_size: int = 2048,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """Mean SSIM(original, augmented) of every TA op x signed bin, with a bootstrap CI.

    The first ``n_images`` images (all when fewer) each get exactly that op at that signed
    magnitude via ``BatchSoftAugment(...).apply`` (uint8, NEAREST, zero fill: the training
    pipeline's TA, METHOD §7.17), and SSIM is computed between the original and the result.

    Args:
        images_uint8: uint8 ``[N, C, H, W]`` (tensor or numpy array), C in {1, 3}.
        n_images: number of images used (the first ``n_images``), >= 1.
        num_bins: magnitude bins per op (31 = TrivialAugmentWide).
        n_boot: bootstrap resamples for the 95% percentile CI of the mean (>= 10).
        seed: seeds the bootstrap (the augmentation itself is deterministic).
        backend: ``"torch"`` (default; :func:`ssim_torch`, asserted equal to scikit-image within
            1e-4 by ``tests/test_ssim.py``) or ``"skimage"`` (``structural_similarity`` per image
            on float64 ``/255`` images, slow: about 1 ms per image).
        ssim_kwargs: SSIM settings (``gaussian_weights``, ``sigma``, ``win_size``,
            ``use_sample_covariance``); default :data:`WANG_SSIM`. ``data_range`` is fixed to 1.
        batch_size: (op, bin, image) triples augmented and scored per step.
        device: where augmentation and torch SSIM run (default: the images' device).

    Returns:
        DataFrame with :data:`CURVE_COLUMNS`: op, sign (``"+"``, ``"-"`` or ``""``), bin,
        magnitude (signed, op units), severity, ssim_mean, ci_low, ci_high, n; rows in
        :func:`op_bin_grid` order.
    """
    images = _check_images_u8("images_uint8", images_uint8)
    n_images = check_int(n_images, "n_images", 1)
    num_bins = check_int(num_bins, "num_bins", 2)
    n_boot = check_int(n_boot, "n_boot", 10)
    seed = check_int(seed, "seed", 0)
    batch_size = check_int(batch_size, "batch_size", 1)
    if backend not in ("torch", "skimage"):
        raise ValueError(f"backend must be 'torch' or 'skimage', got {backend!r}")
    kwargs = dict(WANG_SSIM if ssim_kwargs is None else ssim_kwargs)
    allowed = {"gaussian_weights", "sigma", "win_size", "use_sample_covariance"}
    if set(kwargs) - allowed:
        raise ValueError(f"ssim_kwargs may only hold {sorted(allowed)}, got {sorted(kwargs)}")
    device = images.device if device is None else torch.device(device)
    images = images[:n_images].to(device)
    n = images.shape[0]
    grid = op_bin_grid(num_bins, images.shape[2], images.shape[3])
    ids = torch.tensor([op_id(o) for o in grid["op"]], dtype=torch.int64, device=device)
    mags = torch.tensor(grid["magnitude"].to_numpy(), dtype=torch.float32, device=device)
    aug = BatchSoftAugment(10, None, hard=True, num_magnitude_bins=num_bins)
    values = np.empty((len(grid), n), dtype=np.float64)
    for combo, img in _pair_chunks(len(grid), n, batch_size):
        combo_d, img_d = combo.to(device), img.to(device)
        orig = images.index_select(0, img_d)
        out, _ = aug.apply(orig, ids[combo_d], mags[combo_d])
        if backend == "torch":
            s = ssim_torch(orig, out, data_range=1.0, **kwargs).double().cpu().numpy()
        else:
            a = orig.permute(0, 2, 3, 1).cpu().numpy().astype(np.float64) / 255.0
            b = out.permute(0, 2, 3, 1).cpu().numpy().astype(np.float64) / 255.0
            s = np.array([structural_similarity(a[i], b[i], data_range=1.0, channel_axis=-1, **kwargs)
                          for i in range(a.shape[0])])
        values[combo.numpy(), img.numpy()] = s
    low, high = _bootstrap_mean_ci(values, n_boot, seed)
    grid["ssim_mean"] = values.mean(axis=1)
    grid["ci_low"] = low
    grid["ci_high"] = high
    grid["n"] = n
    return grid[list(CURVE_COLUMNS)]


# ------------------------------------------------------------------------------------------ per-sample
class SSIMConfidence:
    """Per-sample, content-conditioned confidence: c_i = clip(SSIM(original_i, augmented_i), 1/K, 1).

    Computed in one batch with :func:`ssim_torch` on the images' device; uint8 or float images
    in [0, 1], ``[N, C, H, W]``. Default SSIM setting :data:`WANG_SSIM` (override with keyword
    arguments of :func:`ssim_torch`, except ``data_range`` which is 1).

    Warning (METHOD §3.5 takeaway): SSIM is pixel-aligned and collapses towards 0 for geometric
    ops (Shear/Translate/Rotate) even when the content is perfectly recognisable, so this gives
    near-chance targets for every geometric sample. Restrict it to photometric ops (e.g. apply it
    only where ``op_ids`` is not geometric) or treat it as an experimental arm.
    """

    def __init__(self, **ssim_kwargs: Any) -> None:
        allowed = {"gaussian_weights", "sigma", "win_size", "use_sample_covariance", "K1", "K2"}
        unknown = sorted(set(ssim_kwargs) - allowed)
        if unknown:
            raise ValueError(f"SSIMConfidence got unknown SSIM options {unknown}; allowed: {sorted(allowed)}")
        self.ssim_kwargs = {**WANG_SSIM, **ssim_kwargs}

    def __repr__(self) -> str:
        return f"SSIMConfidence({', '.join(f'{k}={v!r}' for k, v in self.ssim_kwargs.items())})"

    def __call__(self, original: torch.Tensor, augmented: torch.Tensor, num_classes: int) -> torch.Tensor:
        """float32 ``[N]`` confidences in [1/K, 1] on the images' device."""
        k = check_num_classes(num_classes)
        if isinstance(original, torch.Tensor) and isinstance(augmented, torch.Tensor):
            if original.dtype != augmented.dtype:
                raise TypeError(
                    f"original and augmented must have the same dtype, got {original.dtype} and {augmented.dtype}"
                )
        s = ssim_torch(original, augmented, data_range=1.0, **self.ssim_kwargs)
        return s.to(torch.float32).clamp(min=1.0 / k, max=1.0)


# ------------------------------------------------------------------------------------------ proxy: training
#: The proxy's augmentation: flip + pad-4 crop, no TrivialAugment (METHOD §3.4, §7.2).
PROXY_AUGMENT = ({"kind": "flip"}, {"kind": "crop", "params": {"padding": 4}})


def proxy_config(
    dataset: str,
    *,
    epochs: int,
    n_per_class: int | None = None,
    model: str = "smallnet",
    seed: int = 0,
    overrides: dict | None = None,
):
    """The :class:`~harness.config.TrainConfig` of a proxy: flip + crop only, corruptions disabled.

    ``overrides`` may set any other TrainConfig field (``batch_size``, ``lr``, ``device``...);
    an ``augment`` override must not contain ``trivial_augment`` (the proxy must not see TA).
    """
    d: dict[str, Any] = {
        "dataset": dataset,
        "n_per_class": n_per_class,
        "model": model,
        "epochs": epochs,
        "seed": seed,
        "augment": [dict(s) for s in PROXY_AUGMENT],
        "corruptions": False,
    }
    if overrides is not None:
        if not isinstance(overrides, dict):
            raise TypeError(f"overrides must be a dict of TrainConfig fields, got {type(overrides).__name__}")
        d.update(overrides)
    aug = d.get("augment") or []
    kinds = [s if isinstance(s, str) else s.get("kind") if isinstance(s, dict) else None for s in aug]
    if "trivial_augment" in kinds:
        raise ValueError(
            f"overrides['augment'] must not contain trivial_augment: the proxy is trained without TA, got {kinds}"
        )
    return TrainConfig.from_dict(d)


def train_proxy(
    dataset: str,
    *,
    run_dir: str | Path,
    epochs: int,
    n_per_class: int | None = None,
    model: str = "smallnet",
    seed: int = 0,
    progress: bool = True,
    overrides: dict | None = None,
) -> Path:
    """Train a proxy model without TrivialAugment into ``run_dir`` (or reuse a complete one).

    Uses :func:`harness.workflow.train_and_evaluate` with :func:`proxy_config` (flip + pad-4 crop, corruption
    evaluation disabled; clean test metrics are still written). A complete run whose training
    config equals this one is reused as is; an interrupted one (status ``running`` with a
    checkpoint) is resumed; a complete run with a different config raises ``ValueError``.

    Returns:
        ``Path(run_dir)`` holding ``model.pt`` and ``config.yaml``.
    """
    if not isinstance(dataset, str):
        raise TypeError(f"dataset must be a dataset name (str), got {dataset!r}")
    epochs = check_int(epochs, "epochs", 1)
    config = proxy_config(dataset, epochs=epochs, n_per_class=n_per_class, model=model, seed=seed,
                          overrides=overrides)
    run_dir = Path(run_dir)
    status = read_status(run_dir)["status"]
    if status == "complete":
        existing = load_config(run_dir / "config.yaml")
        if existing.training_hash() != config.training_hash() or not (run_dir / "model.pt").is_file():
            raise ValueError(
                f"run_dir {run_dir} already holds a complete run with a different training config "
                f"(hash {existing.training_hash()} != {config.training_hash()}); choose another run_dir"
            )
        return run_dir
    resume = status == "running" and (run_dir / "checkpoint.pt").is_file()
    train_and_evaluate(config, run_dir, resume=resume, progress=progress)
    return run_dir


def load_proxy(run_dir: str | Path, device: str | torch.device = "auto") -> torch.nn.Module:
    """The trained proxy of ``run_dir`` (``model.pt`` + ``config.yaml``) in eval mode on ``device``."""
    run_dir = Path(run_dir)
    if not (run_dir / "model.pt").is_file():
        raise FileNotFoundError(f"run_dir {run_dir} has no trained model (model.pt); train it with train_proxy")
    return load_run_model(run_dir, device)


# ------------------------------------------------------------------------------------------ proxy: measurement
@torch.no_grad()
def measure_proxy_accuracy(
    model: torch.nn.Module,
    test_images_uint8: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_bins: int = 31,
    batch_size: int = 500,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    progress: bool = False,
) -> pd.DataFrame:
    """Top-1 accuracy of ``model`` on every TA op x signed bin applied to held-out test images.

    Every image gets exactly one op at one signed magnitude, through the per-op accuracy loop
    shared with evaluation (:func:`harness.inference.op_accuracy`: ``BatchSoftAugment.apply``,
    uint8, the training pipeline's TA; images fed as ``uint8 / 255`` in NCHW, the model does its own
    normalisation). One op setting at a time: all images augmented, then predicted in batches of
    ``batch_size``. Pass **test** images: accuracies measured on the proxy's own training images
    overstate robustness (METHOD §6.6, §7.2).

    Args:
        model: a classifier ``[B, C, H, W] float in [0, 1] -> logits [B, K]``; put in eval mode
            for the measurement (its previous mode is restored).
        test_images_uint8: uint8 ``[N, C, H, W]`` (tensor or numpy).
        labels: integer ``[N]``.
        num_bins: magnitude bins per op (31 = TrivialAugmentWide).
        batch_size: images per forward pass.
        device: where augmentation and inference run (default: the model's device).
        precision: ``"fp32"`` (default) or ``"bf16"`` (autocast).
        progress: show a tqdm bar (one step per op setting).

    Returns:
        DataFrame with :data:`~mappings.proxy.ACCURACY_COLUMNS` in :func:`op_bin_grid` order; the
        ``Identity`` row (bin 0) is the clean accuracy.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    images = _check_images_u8("test_images_uint8", test_images_uint8)
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor [N], got {getattr(labels, 'dtype', type(labels))}")
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"labels must have shape [N] = [{images.shape[0]}] (one per image), got {tuple(labels.shape)}"
        )
    num_bins = check_int(num_bins, "num_bins", 2)
    batch_size = check_int(batch_size, "batch_size", 1)
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    if device is None:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    images = images.to(device)
    n = images.shape[0]
    grid = op_bin_grid(num_bins, images.shape[2], images.shape[3])
    settings = [OpSetting(op, int(b), float(m)) for op, b, m in zip(grid["op"], grid["bin"], grid["magnitude"])]
    was_training = model.training
    try:
        accuracy = op_accuracy(
            model, images, labels.to(torch.int64),
            tqdm(settings, desc="proxy accuracy", unit="op", disable=not progress),
            device=device, batch_size=batch_size, precision=precision, channels_last=False,
        )
    finally:
        model.train(was_training)
    grid["accuracy"] = np.asarray(accuracy, dtype=np.float64)
    grid["n"] = n
    return grid[list(ACCURACY_COLUMNS)]


def measure_proxy_run(
    run_dir: str | Path,
    *,
    n_per_class: int | None = None,
    num_bins: int = 31,
    batch_size: int = 500,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """:func:`measure_proxy_accuracy` of the proxy in ``run_dir`` on its dataset's **test** split.

    ``n_per_class`` takes a seeded stratified test subset (``ArrayDataset.subset``); None = all.
    """
    model = load_proxy(run_dir, device)
    config = load_config(Path(run_dir) / "config.yaml")
    _train, test = load_dataset(config.dataset, source=config.data_source)
    if n_per_class is not None:
        test = test.subset(n_per_class, seed=seed)
    images, labels = test.to_tensors("cpu")
    dev = next(model.parameters()).device
    return measure_proxy_accuracy(model, images, labels, num_bins=num_bins, batch_size=batch_size,
                                  device=dev, precision=precision, progress=progress)


# ------------------------------------------------------------------------------------------ proxy: tables on disk
def save_proxy_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as CSV (no index) atomically (``harness.io.atomic_write_text``); return the path.

    The ``sign`` of unsigned ops is the empty string; :func:`load_proxy_table` restores it.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    path = Path(path)
    atomic_write_text(path, df.to_csv(index=False))
    return path


def load_proxy_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`save_proxy_table` (``sign`` of unsigned ops back to ``""``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no proxy table at {path}")
    df = pd.read_csv(path)
    if "sign" in df.columns:
        df["sign"] = df["sign"].fillna("").astype(str)
    bad = sorted(set(df.get("op", pd.Series(dtype=str))) - set(TRIVIAL_AUGMENT_WIDE.names))
    if bad:
        raise ValueError(f"{path}: unknown ops {bad}")
    return df
