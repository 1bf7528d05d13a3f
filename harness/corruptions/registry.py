"""Names, families and parameter sets of the corruptions, and the functional entry point :func:`corrupt`."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from types import MappingProxyType

import numpy as np

from mappings.base import check_int
from harness.corruptions import blur, digital, noise, spatter, weather
from harness.corruptions.common import Context
from harness.corruptions.params import NATIVE_SIZE, PARAMETER_SETS, PARAMS

__all__ = [
    "BENCHMARK_CORRUPTIONS",
    "CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
    "FAMILIES",
    "FAMILY_NAMES",
    "PARAMETER_SETS",
    "RANDOM_CORRUPTIONS",
    "SEVERITIES",
    "corrupt",
    "corruption_id",
    "corruption_params",
]

#: All 19 corruptions, in the order of CORRUPTIONS.md §0 (= ``make_cifar_c.py``; file and folder names).
CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
    "speckle_noise",
    "gaussian_blur",
    "spatter",
    "saturate",
)
#: The 15 benchmark (test) corruptions of Hendrycks & Dietterich.
BENCHMARK_CORRUPTIONS = CORRUPTIONS[:15]
#: The 4 extra ("validation") corruptions.
EXTRA_CORRUPTIONS = CORRUPTIONS[15:]

FAMILY_NAMES = ("noise", "blur", "weather", "digital")

#: corruption -> family. The paper puts the 4 extras in no family; theirs is our grouping by analogy (§0).
FAMILIES = MappingProxyType(
    {
        "gaussian_noise": "noise",
        "shot_noise": "noise",
        "impulse_noise": "noise",
        "defocus_blur": "blur",
        "glass_blur": "blur",
        "motion_blur": "blur",
        "zoom_blur": "blur",
        "snow": "weather",
        "frost": "weather",
        "fog": "weather",
        "brightness": "weather",
        "contrast": "digital",
        "elastic_transform": "digital",
        "pixelate": "digital",
        "jpeg_compression": "digital",
        "speckle_noise": "noise",
        "gaussian_blur": "blur",
        "spatter": "weather",
        "saturate": "digital",
    }
)

#: Corruptions that draw random numbers (their output depends on ``seed``).
RANDOM_CORRUPTIONS = frozenset(
    {
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "glass_blur",
        "motion_blur",
        "snow",
        "frost",
        "fog",
        "elastic_transform",
        "speckle_noise",
        "spatter",
    }
)

SEVERITIES = (1, 2, 3, 4, 5)

_IMPL: dict[str, Callable[[np.ndarray, object, Context], np.ndarray]] = {
    "gaussian_noise": noise.gaussian_noise,
    "shot_noise": noise.shot_noise,
    "impulse_noise": noise.impulse_noise,
    "defocus_blur": blur.defocus_blur,
    "glass_blur": blur.glass_blur,
    "motion_blur": blur.motion_blur,
    "zoom_blur": blur.zoom_blur,
    "snow": weather.snow,
    "frost": weather.frost,
    "fog": weather.fog,
    "brightness": weather.brightness,
    "contrast": digital.contrast,
    "elastic_transform": digital.elastic_transform,
    "pixelate": digital.pixelate,
    "jpeg_compression": digital.jpeg_compression,
    "speckle_noise": noise.speckle_noise,
    "gaussian_blur": blur.gaussian_blur,
    "spatter": spatter.spatter,
    "saturate": digital.saturate,
}
assert tuple(_IMPL) == CORRUPTIONS and set(FAMILIES) == set(CORRUPTIONS)

_MIN_SIZE = 8
_CHUNK_PIXELS = 1 << 20  # images per internal chunk = this / (H * W): 1024 at 32 px, 256 at 64 px


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in _IMPL:
        raise ValueError(f"unknown corruption name {name!r}; allowed names: {', '.join(CORRUPTIONS)}")
    return name


def _check_severity(severity: object) -> int:
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral):
        raise TypeError(f"severity must be an int in 1..5, got {type(severity).__name__} {severity!r}")
    if not 1 <= int(severity) <= 5:
        raise ValueError(f"severity must be in 1..5, got {severity}")
    return int(severity)


def _check_params(params: object) -> str:
    if not isinstance(params, str) or params not in PARAMETER_SETS:
        raise ValueError(f"unknown params set {params!r}; allowed: {', '.join(PARAMETER_SETS)}")
    return params


def _check_images(images: object) -> tuple[np.ndarray, bool]:
    if not isinstance(images, np.ndarray):
        raise TypeError(
            f"images must be a numpy uint8 array [N, H, W, 3] or [H, W, 3], got {type(images).__name__}"
        )
    if images.dtype != np.uint8:
        raise TypeError(f"images must have dtype uint8 (values 0..255), got {images.dtype}")
    if images.ndim not in (3, 4) or images.shape[-1] != 3:
        raise ValueError(
            f"images must have shape [N, H, W, 3] or [H, W, 3] (RGB, channels last), got {images.shape}"
        )
    single = images.ndim == 3
    batch = images[None] if single else images
    h, w = batch.shape[1:3]
    if h != w or h < _MIN_SIZE:
        raise ValueError(f"images must be square with side >= {_MIN_SIZE} (H == W), got H={h}, W={w}")
    return np.ascontiguousarray(batch), single


def corruption_id(name: str) -> int:
    """Index of ``name`` in :data:`CORRUPTIONS` (part of every image's RNG seed)."""
    return CORRUPTIONS.index(_check_name(name))


def corruption_params(name: str, severity: int, params: str = "cifar"):
    """The spec's parameter tuple (or scalar) of ``name`` at ``severity`` in parameter set ``params``."""
    return PARAMS[_check_params(params)][_check_name(name)][_check_severity(severity) - 1]


def corrupt(
    images: np.ndarray,
    name: str,
    severity: int,
    *,
    params: str = "cifar",
    seed: int = 0,
    first_index: int = 0,
) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` (1..5) to uint8 RGB images; returns uint8, same shape.

    Args:
        images: uint8 ``[N, H, W, 3]`` or a single ``[H, W, 3]``; square, side >= 8. The parameter sets
            were tuned for 32 px (``"cifar"``) and 64 px (``"tinyimagenet"``); other sides run but are
            off-spec (frost additionally needs a side below the smallest resized texture: 63 / 94).
        name: one of :data:`CORRUPTIONS`.
        severity: int in 1..5.
        params: ``"cifar"`` (CIFAR-10-C / CIFAR-100-C parameters) or ``"tinyimagenet"``.
        seed: non-negative int. Image ``k`` draws from its own ``numpy.random.Generator`` seeded with
            ``SeedSequence([seed, corruption_id(name), severity, first_index + k])``; the global numpy
            RNG is never touched.
        first_index: dataset index of ``images[0]``, so that chunked generation of a dataset gives the
            same result as one call on the whole set.

    Reproducibility: same arguments give bit-identical outputs. Outputs are **not** bit-identical to the
    released CIFAR-10-C / Tiny-ImageNet-C files, whose generator used numpy's unseeded global RNG (and
    2018 library versions); algorithms, parameters and quantisation follow CORRUPTIONS.md.
    """
    name = _check_name(name)
    severity = _check_severity(severity)
    params = _check_params(params)
    seed = check_int(seed, "seed", 0)
    first_index = check_int(first_index, "first_index", 0)
    batch, single = _check_images(images)
    p = PARAMS[params][name][severity - 1]
    fn = _IMPL[name]
    n, size = batch.shape[0], batch.shape[1]
    out = np.empty_like(batch)
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    cid = CORRUPTIONS.index(name)
    for s0 in range(0, n, chunk):
        part = batch[s0 : s0 + chunk]
        ctx = Context(
            params=params,
            seed=seed,
            corruption_id=cid,
            severity=severity,
            first_index=first_index + s0,
            n=part.shape[0],
            size=size,
        )
        res = fn(part, p, ctx)
        assert res.dtype == np.uint8 and res.shape == part.shape, (name, res.dtype, res.shape)
        out[s0 : s0 + chunk] = res
    return out[0] if single else out


def native_size(params: str) -> int:
    """Image side the parameter set was tuned for (32 or 64)."""
    return NATIVE_SIZE[_check_params(params)]
