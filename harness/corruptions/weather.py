"""Weather corruptions: snow, frost, fog, brightness (benchmark); spatter (extra) lives in ``spatter.py``.

CORRUPTIONS.md §3.8-3.11, vectorised over the batch axis.
"""

from __future__ import annotations

import numpy as np

from harness.corruptions.common import (
    Context,
    clipped_zoom,
    hsv_to_rgb,
    motion_blur,
    plasma_fractal,
    rgb_to_hsv,
    to_float,
    to_uint8,
)
from harness.corruptions.params import FROST_RESIZE
from harness.corruptions.textures import frost_textures

__all__ = ["brightness", "fog", "frost", "snow"]


def snow(u: np.ndarray, p: tuple, ctx: Context) -> np.ndarray:
    """§3.8: thresholded, zoomed noise field, motion-blurred downwards, added twice (180° mirrored).

    Draw order per image: ``normal(mu, sigma, (S, S))``, then the angle ``uniform(-135, -45)``.
    """
    mu, sigma, z, thr, mb_r, mb_s, beta = p
    n, size = u.shape[0], u.shape[1]
    x = to_float(u, np.float32)
    field = np.empty((n, size, size), dtype=np.float64)
    theta = np.empty(n, dtype=np.float64)
    for k, rng in enumerate(ctx.rngs):
        field[k] = rng.normal(mu, sigma, (size, size))
        theta[k] = rng.uniform(-135, -45)
    field = clipped_zoom(field, z)
    field[field < thr] = 0
    flakes8 = to_uint8(field)  # truncating uint8 cast of 255 * clip01
    layer = to_float(motion_blur(flakes8, mb_r, mb_s, theta))  # float64 [N, S, S]
    layer = layer[..., None]
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    grey = (np.float32(0.299) * r + np.float32(0.587) * g + np.float32(0.114) * b)[..., None]
    x = beta * x + (1 - beta) * np.maximum(x, grey * 1.5 + 0.5)
    return to_uint8(x + layer + layer[:, ::-1, ::-1])


def frost(u: np.ndarray, p: tuple, ctx: Context) -> np.ndarray:
    """§3.9: ``clip(a u + b crop, 0, 255)`` with a random crop of one of five frost textures.

    Draw order per image: texture ``integers(5)`` (frost6 never used), row origin
    ``integers(0, H' - S)``, column origin ``integers(0, W' - S)`` (the last origin is never chosen).
    The crop is a per-image slice (cheap); the blend is vectorised.
    """
    a, b = p
    size = u.shape[1]
    tex = frost_textures(FROST_RESIZE[ctx.params])
    smallest = min(min(t.shape[:2]) for t in tex)
    if size >= smallest:
        raise ValueError(
            f"frost with params={ctx.params!r} needs images smaller than {smallest} px "
            f"(the smallest resized texture side), got {size} px"
        )
    crops = np.empty_like(u)
    for k, rng in enumerate(ctx.rngs):
        t = tex[int(rng.integers(5))]
        r0 = int(rng.integers(0, t.shape[0] - size))
        c0 = int(rng.integers(0, t.shape[1] - size))
        crops[k] = t[r0 : r0 + size, c0 : c0 + size]
    y = np.clip(a * u + b * crops, 0, 255)
    return y.astype(np.uint8)


def fog(u: np.ndarray, p: tuple, ctx: Context) -> np.ndarray:
    """§3.10: grey plasma-fractal fog, rescaled by ``M / (M + a)`` so the output never exceeds max(x).

    The map side is the next power of two >= S (32 for CIFAR, 64 for Tiny-ImageNet), cropped top-left.
    Each image draws its ``mapsize**2 - 1`` uniforms in one call.
    """
    a, decay = p
    size = u.shape[1]
    mapsize = 1 << (size - 1).bit_length()
    uni = np.empty((ctx.n, mapsize * mapsize - 1), dtype=np.float64)
    for k, rng in enumerate(ctx.rngs):
        rng.random(out=uni[k])
    fmap = plasma_fractal(uni, mapsize, decay)[:, :size, :size, None]
    x = to_float(u)
    m = x.max(axis=(1, 2, 3), keepdims=True)
    x = x + a * fmap
    return to_uint8(x * m / (m + a))


def brightness(u: np.ndarray, dv: float, ctx: Context) -> np.ndarray:
    """§3.11: ``V <- clip01(V + dV)`` through the scikit-image HSV round trip (bit-faithful path)."""
    hsv = rgb_to_hsv(to_float(u))
    hsv[..., 2] = np.clip(hsv[..., 2] + dv, 0, 1)
    return to_uint8(hsv_to_rgb(hsv))
