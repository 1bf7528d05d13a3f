"""Frost textures (CORRUPTIONS.md §4), read from an installed package; never downloaded.

The five used textures (``frost1.png`` ... ``frost5.jpg``; ``frost6.jpg`` is never picked) ship inside the
``imagecorruptions`` import package, provided by the PyPI distributions ``imagecorruptions-imaug``
(maintained fork, Apache-2.0) or ``imagecorruptions`` (bethgelab). Their files are byte-identical to the
hendrycks/robustness originals; we check every file against the spec's SHA-256 before use.

The package is located with ``importlib.util.find_spec``, which does **not** import it: importing
``imagecorruptions`` would pull in OpenCV and numba, neither of which softbench needs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "FROST_FILES",
    "FROST_PACKAGE_HINT",
    "FROST_SHA256",
    "FrostTexturesNotFound",
    "frost_texture_dir",
    "frost_textures",
    "frost_textures_available",
    "resize_linear",
]

FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")

FROST_SHA256 = {
    "frost1.png": "ff9f907860bd7a835d459e32f9d588062b7f61ee267343cc7222b56753a14755",
    "frost2.png": "fe211a89b336999c207a852ce05818d4545d0b57c5beadd824b4cc9d9a9b6137",
    "frost3.png": "2d0d50b4a9bb213f38b024ef7768731bb83cc08d2f26b5766bbc167cdfa0e504",
    "frost4.jpg": "3f8b91ca1a9fa7167b09e773da53f5ae60d0a1fd88f02a783f6e328a72887f6e",
    "frost5.jpg": "5fc6a19df4a429ba68abdcc8f8a4278d4c9f81c9ccafd2c92ab0c8cf8992ebd2",
}

FROST_PACKAGE_HINT = (
    "The frost corruption needs the five frost textures of hendrycks/robustness, which softbench reads "
    "from an installed package instead of downloading them. Install one that ships them, e.g. "
    "`pip install imagecorruptions-imaug` (or `pip install imagecorruptions`); `--no-deps` is enough, "
    "softbench only reads the image files."
)


class FrostTexturesNotFound(ImportError):
    """No installed package provides the (checksum-verified) frost textures."""


def frost_texture_dir() -> Path:
    """Folder holding ``frost1.png`` ... inside the installed ``imagecorruptions`` package."""
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None or not spec.submodule_search_locations:
        raise FrostTexturesNotFound(FROST_PACKAGE_HINT)
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "frost"
        if all((d / f).is_file() for f in FROST_FILES):
            return d
    raise FrostTexturesNotFound(
        f"The installed `imagecorruptions` package ({list(spec.submodule_search_locations)}) has no "
        f"frost/{{{', '.join(FROST_FILES)}}}. " + FROST_PACKAGE_HINT
    )


def frost_textures_available() -> bool:
    """True when :func:`frost_textures` can load (package installed and files present)."""
    try:
        frost_texture_dir()
    except FrostTexturesNotFound:
        return False
    return True


@lru_cache(maxsize=1)
def _decoded() -> tuple[np.ndarray, ...]:
    d = frost_texture_dir()
    out = []
    for name in FROST_FILES:
        data = (d / name).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != FROST_SHA256[name]:
            raise FrostTexturesNotFound(
                f"{d / name} has SHA-256 {digest}, expected {FROST_SHA256[name]} (CORRUPTIONS.md §4); "
                "the installed package ships different textures. " + FROST_PACKAGE_HINT
            )
        with Image.open(d / name) as im:
            # PNGs are RGBA with alpha = 255: drop alpha without compositing (same pixels as OpenCV).
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
        arr.setflags(write=False)
        out.append(arr)
    return tuple(out)


def _axis_taps(n_in: int, factor: float) -> tuple[int, np.ndarray, np.ndarray]:
    """OpenCV-style INTER_LINEAR taps along one axis: half-pixel centres, edge clamp."""
    n_out = round(n_in * factor)  # cvRound of the scaled size: ties to even, like Python's round
    inv = 1.0 / factor
    c = (np.arange(n_out) + 0.5) * inv - 0.5
    i0 = np.floor(c).astype(np.int64)
    f = c - i0
    low = i0 < 0
    i0[low], f[low] = 0, 0.0
    high = i0 >= n_in - 1
    i0[high], f[high] = n_in - 1, 0.0
    return n_out, i0, f


def resize_linear(img: np.ndarray, factor: float) -> np.ndarray:
    """Resize a uint8 ``[H, W, C]`` image by ``factor`` like ``cv2.resize(fx=fy=factor, INTER_LINEAR)``.

    Output size ``(round(W f), round(H f))``; source coordinate ``(dst + 1/2)/f - 1/2``, clamped at the
    edges. At ``f = 0.2`` the coordinates are the integers ``5 dst + 2``: exact point sampling. Otherwise
    OpenCV's 8-bit fixed-point bilinear is emulated: per-axis weights rounded to 1/2048; a horizontal
    integer pass; a vertical pass that scales each row term by ``(b * (h >> 4)) >> 16`` and rounds the
    sum with ``(s + 2) >> 2``. In our development check this was bit-identical to opencv-python 5.0.0
    on all five textures at f = 0.2 and 0.3 (a float bilinear differs by ±1 in ~12 % of the values).
    """
    h_out, r0, fr = _axis_taps(img.shape[0], factor)
    w_out, c0, fc = _axis_taps(img.shape[1], factor)
    if not fr.any() and not fc.any():
        return img[r0][:, c0].copy()
    r1 = np.minimum(r0 + 1, img.shape[0] - 1)
    c1 = np.minimum(c0 + 1, img.shape[1] - 1)
    a0 = np.rint((1.0 - fc) * 2048).astype(np.int64)[None, :, None]
    a1 = np.rint(fc * 2048).astype(np.int64)[None, :, None]
    b0 = np.rint((1.0 - fr) * 2048).astype(np.int64)[:, None, None]
    b1 = np.rint(fr * 2048).astype(np.int64)[:, None, None]
    x = img.astype(np.int64)
    rows = x[:, c0] * a0 + x[:, c1] * a1  # horizontal pass, scale 2^11
    out = (((b0 * (rows[r0] >> 4)) >> 16) + ((b1 * (rows[r1] >> 4)) >> 16) + 2) >> 2
    assert out.shape[:2] == (h_out, w_out)
    return out.clip(0, 255).astype(np.uint8)


@lru_cache(maxsize=8)
def frost_textures(factor: float) -> tuple[np.ndarray, ...]:
    """The five frost textures as RGB uint8 arrays, resized by ``factor`` (1 = no resize), cached."""
    if not (factor > 0 and math.isfinite(factor)):
        raise ValueError(f"factor must be a positive finite number, got {factor!r}")
    tex = _decoded()
    if factor == 1:
        return tex
    out = []
    for t in tex:
        r = resize_linear(t, factor)
        r.setflags(write=False)
        out.append(r)
    return tuple(out)
