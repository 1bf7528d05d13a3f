"""Noise corruptions: gaussian_noise, shot_noise, impulse_noise (benchmark) and speckle_noise (extra).

CORRUPTIONS.md §3.1-3.3 and §3.16. Each image draws from its own Generator (see ``Context.rngs``); the
arithmetic is then vectorised over the whole batch.
"""

from __future__ import annotations

import numpy as np

from harness.corruptions.common import Context, to_float, to_uint8

__all__ = ["gaussian_noise", "impulse_noise", "shot_noise", "speckle_noise"]


def _standard_normal(ctx: Context, shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty((ctx.n, *shape), dtype=np.float64)
    for k, rng in enumerate(ctx.rngs):
        rng.standard_normal(out=out[k])  # == rng.normal(0, 1, shape)
    return out


def gaussian_noise(u: np.ndarray, sigma: float, ctx: Context) -> np.ndarray:
    """§3.1: ``255 * clip01(x + N(0, sigma^2))``, chromatic (independent per channel)."""
    x = to_float(u)
    noise = _standard_normal(ctx, u.shape[1:])
    noise *= sigma  # loc + scale * z with loc = 0, exactly numpy's normal(0, sigma)
    return to_uint8(x + noise)


def shot_noise(u: np.ndarray, c: float, ctx: Context) -> np.ndarray:
    """§3.2: ``255 * clip01(Pois(c x) / c)``; higher c means less noise, black stays black."""
    lam = to_float(u) * c
    k = np.empty(u.shape, dtype=np.float64)
    for i, rng in enumerate(ctx.rngs):
        k[i] = rng.poisson(lam[i])
    return to_uint8(k / c)


def impulse_noise(u: np.ndarray, amount: float, ctx: Context) -> np.ndarray:
    """§3.3: salt-and-pepper **per element** (coloured specks); flip ~ B(amount), salt ~ B(1/2).

    Draw order per image: the flip mask, then the salt mask, each one ``random`` call over H x W x 3.
    """
    flip = np.empty(u.shape, dtype=bool)
    salt = np.empty(u.shape, dtype=bool)
    for i, rng in enumerate(ctx.rngs):
        flip[i] = rng.random(u.shape[1:]) < amount
        salt[i] = rng.random(u.shape[1:]) < 0.5
    out = u.copy()
    out[flip & salt] = 255
    out[flip & ~salt] = 0
    return out  # 255 * clip01 of {0, x, 1} is exactly {0, u, 255}


def speckle_noise(u: np.ndarray, sigma: float, ctx: Context) -> np.ndarray:
    """§3.16: multiplicative noise ``255 * clip01(x + x n)``, n ~ N(0, sigma^2); black is unaffected."""
    x = to_float(u)
    noise = _standard_normal(ctx, u.shape[1:])
    noise *= sigma
    return to_uint8(x + x * noise)
