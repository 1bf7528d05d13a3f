"""Shared building blocks of the corruption generators (CORRUPTIONS.md §2).

Everything here works on a *batch* axis first: images are ``[N, H, W, C]`` and single-channel fields
``[N, H, W]``. All functions are pure numpy/SciPy re-derivations of the behaviour described in the spec;
none of them is copied from the original scripts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "Context",
    "bilinear_sample",
    "clipped_zoom",
    "disk_kernel",
    "gaussian",
    "hsv_to_rgb",
    "image_rngs",
    "motion_blur",
    "motion_blur_taps",
    "plasma_fractal",
    "reflect_index",
    "rgb_to_hsv",
    "to_float",
    "to_uint8",
    "zoom_operator",
]


# ------------------------------------------------------------------------------------- randomness
def image_rngs(
    seed: int, corruption_id: int, severity: int, first_index: int, n: int
) -> list[np.random.Generator]:
    """One independent ``numpy.random.Generator`` per image (§2.1 "recommended deliberate deviation").

    Image ``k`` of a call gets ``SeedSequence([seed, corruption_id, severity, first_index + k])``, so a
    result depends only on the image's dataset index, never on batch size or chunking. The streams differ
    from the original's unseeded legacy global RNG; the distributions do not.
    """
    return [
        np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([seed, corruption_id, severity, first_index + k]))
        )
        for k in range(n)
    ]


@dataclass
class Context:
    """What a corruption implementation may need besides the images and its severity parameters."""

    params: str
    seed: int
    corruption_id: int
    severity: int
    first_index: int
    n: int
    size: int
    extra: dict = field(default_factory=dict)

    @cached_property
    def rngs(self) -> list[np.random.Generator]:
        """Per-image generators, created on first use (deterministic corruptions never pay for them)."""
        return image_rngs(self.seed, self.corruption_id, self.severity, self.first_index, self.n)


# ----------------------------------------------------------------------------------------- input
def to_float(u: np.ndarray, dtype=np.float64) -> np.ndarray:
    """``x = u / 255`` as float64, or ``(u / 255).astype(float32)`` where the original used float32."""
    x = u / 255.0
    return x if np.dtype(dtype) == np.float64 else x.astype(dtype)


# ----------------------------------------------------------------------------------------- output
def to_uint8(y: np.ndarray) -> np.ndarray:
    """``store(255 * clip01(y))`` of §2.1: clip to [0, 1], scale by 255 and **truncate** (not round).

    The arithmetic stays in ``y``'s dtype (float32 paths stay float32, as in the original).
    """
    y = np.clip(y, 0, 1, out=np.empty_like(y))
    y *= 255
    return y.astype(np.uint8)


# ---------------------------------------------------------------------------- §2.2 gaussian filter
def gaussian(x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """Separable Gaussian over the two spatial axes (1, 2) of a batch, never across batch or channels.

    SciPy ``gaussian_filter`` semantics (radius ``floor(truncate*sigma + 0.5)``; radius 0 is the
    identity); skimage's defaults are ``mode='nearest'`` and ``truncate=4``. Float inputs keep their dtype.
    """
    if sigma == 0:
        return x.copy()
    sig = [0.0] * x.ndim
    sig[1] = sig[2] = float(sigma)
    return ndi.gaussian_filter(x, sigma=sig, mode=mode, truncate=truncate)


# ------------------------------------------------------------------------------- §2.3 clipped zoom
@lru_cache(maxsize=256)
def zoom_operator(size: int, z: float) -> np.ndarray:
    """The ``clipped_zoom`` recipe along one axis as a ``size x size`` float64 matrix R.

    ``clipped_zoom(A, z) = R @ A @ R.T`` (per channel). Steps (§2.3): crop ``ch = ceil(S/z)`` pixels at
    ``top = floor((S-ch)/2)``, resample to ``n = round(ch*z)`` with corner-aligned bilinear (output ``o``
    reads crop coordinate ``o*(ch-1)/(n-1)``, i.e. ``scipy.ndimage.zoom(order=1)``), keep rows
    ``t .. t+S-1`` with ``t = floor((n-S)/2)``. The non-centred fixed point of the original is kept.
    """
    ch = math.ceil(size / z)
    top = (size - ch) // 2
    n = round(ch * z)
    t = (n - size) // 2
    R = np.zeros((size, size), dtype=np.float64)
    if n == 1 or ch == 1:  # degenerate; not reached for the tabulated factors
        R[:, top] = 1.0
        return R
    scale = (ch - 1) / (n - 1)
    o = np.arange(t, t + size, dtype=np.float64)
    c = o * scale
    i0 = np.floor(c).astype(np.int64)
    i0 = np.minimum(i0, ch - 1)
    f = c - i0
    i1 = np.minimum(i0 + 1, ch - 1)
    rows = np.arange(size)
    np.add.at(R, (rows, top + i0), 1.0 - f)
    np.add.at(R, (rows, top + i1), f)
    R.setflags(write=False)
    return R


def clipped_zoom(a: np.ndarray, z: float, *, channels_last: bool = True) -> np.ndarray:
    """Batched ``clipped_zoom`` of §2.3 for float arrays ``[N, S, S]`` or ``[N, S, S, C]``.

    With ``channels_last=False`` any ``[..., S, S]`` array is zoomed over its last two axes (the fast
    layout: two plain batched matrix products). Computed as ``R @ A @ R.T`` in float64 and cast back to
    ``a``'s dtype, like SciPy's ``zoom`` (float64 interpolation, output in the input dtype); the summation
    order differs, so an ulp differs now and then (±1 grey level in ~1e-5 of zoom_blur outputs).
    """
    if a.ndim == 3 or not channels_last:
        R = zoom_operator(a.shape[-1], float(z))
        return np.matmul(np.matmul(R, a), R.T).astype(a.dtype, copy=False)
    R = zoom_operator(a.shape[1], float(z))
    b = np.ascontiguousarray(np.moveaxis(a, -1, 1))  # N, C, S, S
    return np.ascontiguousarray(
        np.moveaxis(np.matmul(np.matmul(R, b), R.T).astype(a.dtype, copy=False), 1, -1)
    )


# ---------------------------------------------------------------------------- §2.4 plasma fractal
def plasma_fractal(uniforms: np.ndarray, mapsize: int, decay: float) -> np.ndarray:
    """Batched periodic diamond-square height map, normalised to [0, 1] per map.

    ``uniforms`` is ``[N, mapsize**2 - 1]`` of U[0, 1) draws, consumed in the order of §2.4 (square step,
    diamond A, diamond B per level, each level ``(mapsize/s)**2`` values row-major). A draw ``u`` becomes
    the perturbation ``w * U(-w, w) = w * (-w + 2 w u)``, exactly numpy's ``uniform(-w, w)`` transform.
    """
    if mapsize & (mapsize - 1) or mapsize < 2:
        raise ValueError(f"mapsize must be a power of two >= 2, got {mapsize}")
    n_maps = uniforms.shape[0]
    if uniforms.shape[1] != mapsize * mapsize - 1:
        raise ValueError(f"need {mapsize * mapsize - 1} uniforms per map, got {uniforms.shape[1]}")
    P = np.zeros((n_maps, mapsize, mapsize), dtype=np.float64)
    s, w, pos = mapsize, 100.0, 0

    def wibble(m: int) -> np.ndarray:
        nonlocal pos
        u = uniforms[:, pos : pos + m * m].reshape(n_maps, m, m)
        pos += m * m
        return w * (-w + (2 * w) * u)

    while s >= 2:
        h = s // 2
        m = mapsize // s
        C = P[:, ::s, ::s]  # corners, C[i, j] = P[i s, j s]
        # square step: centres (i s + h, j s + h) from the 4 surrounding corners
        below = np.roll(C, -1, axis=1)  # C[i+1, j]
        ctr = ((C + below) + (np.roll(C, -1, axis=2) + np.roll(below, -1, axis=2))) / 4
        P[:, h::s, h::s] = ctr + wibble(m)
        ctr = P[:, h::s, h::s]
        # diamond A: (i s, j s + h) from corners left/right and centres below/above
        A = ((C + np.roll(C, -1, axis=2)) + (ctr + np.roll(ctr, 1, axis=1))) / 4
        # diamond B: (i s + h, j s) from corners above/below and centres right/left
        B = ((C + np.roll(C, -1, axis=1)) + (ctr + np.roll(ctr, 1, axis=2))) / 4
        P[:, ::s, h::s] = A + wibble(m)
        P[:, h::s, ::s] = B + wibble(m)
        s = h
        w /= decay
    lo = P.min(axis=(1, 2), keepdims=True)
    hi = P.max(axis=(1, 2), keepdims=True)
    return (P - lo) / (hi - lo)


# ---------------------------------------------------------------------- §2.5 ImageMagick motion blur
def motion_blur_taps(
    radius: float, sigma: float, theta_deg: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights ``[W]`` and integer tap offsets ``oy, ox`` (each ``[N, W]``) of §2.5 for angles ``theta_deg``.

    ``W = 2*ceil(r) + 1`` one-sided taps, weights ``exp(-i^2 / (2 sigma^2))`` normalised over the W taps,
    offsets ``ceil(i cos(theta) - 1/2)`` (columns) and ``ceil(i sin(theta) - 1/2)`` (rows).
    """
    n_taps = 2 * math.ceil(radius) + 1
    i = np.arange(n_taps, dtype=np.float64)
    wts = np.exp(-(i * i) / (2.0 * sigma * sigma))
    wts /= wts.sum()
    th = np.deg2rad(np.asarray(theta_deg, dtype=np.float64))[:, None]
    ox = np.ceil(i * np.cos(th) - 0.5).astype(np.int64)
    oy = np.ceil(i * np.sin(th) - 0.5).astype(np.int64)
    return wts, oy, ox


def motion_blur(a: np.ndarray, radius: float, sigma: float, theta_deg: np.ndarray) -> np.ndarray:
    """Wand-free ImageMagick ``MotionBlurImage`` on uint8 ``[N, H, W]`` or ``[N, H, W, C]`` (§2.5).

    ``acc = sum_i w_i * 257 * A[clamp(y + oy_i), clamp(x + ox_i)]`` (edge replication), quantised as
    IM 6.9.11 Q16 does: ``q = clamp(floor(acc + 1/2), 0, 65535)``, output ``floor(q / 257)``.

    Every image has its own angle, so the taps differ per image. Vectorised by sorting the batch by
    angle: tap offsets are monotone in the angle, so images sharing an offset form contiguous runs and
    each (tap, run) is one sliced multiply-add on views of an edge-padded copy.
    """
    squeeze = a.ndim == 3
    if squeeze:
        a = a[..., None]
    n, h, w, _ = a.shape
    wts, oy, ox = motion_blur_taps(radius, sigma, theta_deg)
    order = np.argsort(np.asarray(theta_deg), kind="stable")
    oy, ox = oy[order], ox[order]
    pad = int(max(np.abs(oy).max(initial=0), np.abs(ox).max(initial=0)))
    src = np.pad(a[order], ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge").astype(np.float64)
    src *= 257.0  # the 8 -> 16 bit scale; exact
    acc = np.zeros(a.shape, dtype=np.float64)
    tmp = np.empty(a.shape, dtype=np.float64)
    for k, wk in enumerate(wts):
        key = oy[:, k] * 4096 + ox[:, k]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        ends = np.r_[starts[1:], n]
        for s0, s1 in zip(starts, ends):
            dy, dx = pad + oy[s0, k], pad + ox[s0, k]
            t = tmp[s0:s1]
            np.multiply(src[s0:s1, dy : dy + h, dx : dx + w], wk, out=t)
            acc[s0:s1] += t  # taps accumulate in order i = 0 .. W-1
    q = np.clip(np.floor(acc + 0.5), 0, 65535).astype(np.int64)
    out = np.empty(a.shape, dtype=np.uint8)
    out[order] = (q // 257).astype(np.uint8)
    return out[..., 0] if squeeze else out


# ------------------------------------------------------------------------------ §2.7 disk kernel
@lru_cache(maxsize=64)
def disk_kernel(radius: float, alias_sigma: float) -> np.ndarray:
    """Anti-aliased disk ``D(r, a)`` of §2.7 as a float32 array (17x17 for r <= 8; sums to 1).

    Indicator of ``i^2 + j^2 <= r^2`` on the grid L = -8..8 (or -r..r for r > 8), normalised, then a
    3-tap (5-tap for r > 8) separable Gaussian of sigma ``a`` with mirror (reflect-101) border, not
    renormalised.
    """
    if radius <= 8:
        L = np.arange(-8, 9)
        ksize = 3
    else:
        L = np.arange(-int(radius), int(radius) + 1)
        ksize = 5
    X, Y = np.meshgrid(L, L)
    k = np.asarray(X**2 + Y**2 <= radius**2, dtype=np.float32)
    k /= np.sum(k)
    half = ksize // 2
    t = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-(t * t) / (2.0 * alias_sigma * alias_sigma))
    g = (g / g.sum()).astype(np.float32)
    # separable pass in float32, taps summed left to right (bit-identical to cv2.GaussianBlur on the
    # float32 kernel in our development check)
    p = np.pad(k, half, mode="reflect")  # numpy 'reflect' = reflect-101
    n = k.shape[0]
    rows = sum((p[:, i : i + n] * g[i] for i in range(1, ksize)), start=p[:, 0:n] * g[0])
    k = sum((rows[i : i + n] * g[i] for i in range(1, ksize)), start=rows[0:n] * g[0])
    k = k.astype(np.float32)
    k.setflags(write=False)
    return k


# ------------------------------------------------------------------------------------ §2.6 HSV
def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """scikit-image ``rgb2hsv`` semantics (§2.6) on ``[..., 3]`` floats in [0, 1] (float64 out).

    ``V = max``, ``S = (max - min)/V``; H from the channel holding the max, later rules winning
    (blue over green over red), ``H = (H/6) mod 1``; H = S = 0 where ``max == min``.
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = np.maximum(np.maximum(r, g), b)
    delta = v - np.minimum(np.minimum(r, g), b)
    flat = delta == 0
    safe = np.where(flat, 1.0, delta)
    s = np.where(flat, 0.0, delta / np.where(v == 0, 1.0, v))
    h = np.where(b == v, 4.0 + (r - g) / safe, np.where(g == v, 2.0 + (b - r) / safe, (g - b) / safe))
    h = np.mod(h / 6.0, 1.0)
    h[flat] = 0.0
    return np.stack([h, s, v], axis=-1)


# Every output channel of hsv2rgb is V * (1 - alpha * S) with alpha in {0 (-> V), 1 - f (-> t), 1 (-> p),
# f (-> q)}; alpha = A0[k] + A1[k] * f reproduces each candidate's float64 value exactly.
_A0 = np.array([[0, 1, 1], [0, 0, 1], [1, 0, 1], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
_A1 = np.array([[0, -1, 0], [1, 0, 0], [0, 0, -1], [0, 1, 0], [-1, 0, 0], [0, 0, 1]], dtype=np.float64)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """scikit-image ``hsv2rgb`` semantics (§2.6) on ``[..., 3]`` floats (float64 out).

    ``k = floor(6H) mod 6``, ``f = 6H - floor(6H)``, ``p = V(1-S)``, ``q = V(1-fS)``,
    ``t = V(1-(1-f)S)``; (R, G, B) = (V,t,p) (q,V,p) (p,V,t) (p,q,V) (t,p,V) (V,p,q) for k = 0..5.
    """
    hsv = np.asarray(hsv, dtype=np.float64)
    h, s, v = hsv[..., 0:1], hsv[..., 1:2], hsv[..., 2:3]
    h6 = h * 6.0
    hi = np.floor(h6)
    f = h6 - hi
    k = hi[..., 0].astype(np.int64) % 6
    alpha = _A0[k] + _A1[k] * f
    return v * (1 - alpha * s)


# ------------------------------------------------------------------------------- bilinear sampling
def reflect_index(i: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Map integer indices into ``0 .. n-1`` with a boundary rule.

    ``mode='mirror'`` is whole-sample symmetric (... c b | a b c ...; OpenCV ``BORDER_REFLECT_101``),
    ``mode='reflect'`` is half-sample symmetric (... b a | a b c ...; SciPy ``reflect``).
    """
    if mode not in ("mirror", "reflect"):
        raise ValueError(f"mode must be 'mirror' or 'reflect', got {mode!r}")
    lo, hi = i.min(initial=0), i.max(initial=0)
    if 0 <= lo and hi < n:
        return i
    if mode == "mirror":
        if n == 1:
            return np.zeros_like(i)
        period = 2 * (n - 1)
        if not (-(n - 1) <= lo and hi < period):  # far outside: fold into one period first
            i = np.mod(i, period)
        j = np.abs(i)
        return np.minimum(j, period - j, out=j)
    period = 2 * n
    if not (-n <= lo and hi < period):
        i = np.mod(i, period)
    j = np.maximum(i, ~i)  # ~i = -1 - i
    return np.minimum(j, period - 1 - j, out=j)


def bilinear_sample(
    img: np.ndarray, rows: np.ndarray, cols: np.ndarray, mode: str, dtype=np.float64
) -> np.ndarray:
    """Bilinear samples of ``img [N, H, W, C]`` at per-image coordinates ``rows, cols [N, H', W']``.

    Neighbour indices outside the image follow ``mode`` (see :func:`reflect_index`); interpolating the
    boundary-extended signal this way equals ``scipy.ndimage.map_coordinates(order=1, mode=mode)`` up to
    float round-off. Weights and the sum are computed in ``dtype``; returns ``[N, H', W', C]`` in ``dtype``.
    Gathers work on channel planes with 1-D ``take`` (much faster than N-d fancy indexing).
    """
    n, h, w, ch = img.shape
    r0f = np.floor(rows)
    c0f = np.floor(cols)
    fr = (rows - r0f).astype(dtype, copy=False).ravel()
    fc = (cols - c0f).astype(dtype, copy=False).ravel()
    r0 = r0f.astype(np.int64)
    c0 = c0f.astype(np.int64)
    base = (np.arange(n, dtype=np.int64) * (h * w)).reshape((n,) + (1,) * (rows.ndim - 1))
    ra = (base + reflect_index(r0, h, mode) * w).ravel()
    rb = (base + reflect_index(r0 + 1, h, mode) * w).ravel()
    ca = reflect_index(c0, w, mode).ravel()
    cb = reflect_index(c0 + 1, w, mode).ravel()
    i00, i01, i10, i11 = ra + ca, ra + cb, rb + ca, rb + cb
    one = dtype(1)
    gr, gc = one - fr, one - fc
    w00, w01, w10, w11 = gr * gc, gr * fc, fr * gc, fr * fc
    planes = np.moveaxis(img, -1, 0).reshape(ch, -1)
    out = np.empty((ch, fr.size), dtype=dtype)
    for k in range(ch):
        p = planes[k]
        out[k] = (p.take(i00) * w00 + p.take(i01) * w01) + (p.take(i10) * w10 + p.take(i11) * w11)
    return np.moveaxis(out.reshape((ch,) + rows.shape), 0, -1)
