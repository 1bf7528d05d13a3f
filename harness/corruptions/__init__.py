"""Common corruptions of CIFAR-10-C / CIFAR-100-C / Tiny-ImageNet-C, reimplemented from CORRUPTIONS.md.

Functional API::

    from harness.corruptions import corrupt, CORRUPTIONS
    y = corrupt(images_uint8_nhwc, "fog", 3, params="cifar", seed=0)

* :func:`corrupt` - one corruption at one severity on a uint8 batch (or one image); seeded per image.
* :func:`make_corrupted_set` / :func:`load_corrupted_set` - a cached ``.npz`` of many corruptions.
* :func:`load_official_cifar_c` / :func:`load_tinyimagenet_c` - the released files (never downloaded).

Modules: ``common`` (shared blocks: Gaussian filter, clipped zoom, plasma fractal, ImageMagick motion
blur, disk kernel, HSV, bilinear sampling), ``noise``, ``blur``, ``weather``, ``spatter`` (with OpenCV-free
Canny / chamfer distance / equalizeHist), ``digital``, ``textures`` (frost), ``params`` (severity tables),
``registry`` (names, families, :func:`corrupt`), ``cache``, ``official``, ``sources`` (generated or official: what an
evaluation scores).

Reproducibility and deliberate deviations from the original generators
----------------------------------------------------------------------
* **RNG.** The original draws from numpy's unseeded global RNG, so the released files cannot be
  regenerated bit-exactly. Here image ``k`` gets its own ``numpy.random.Generator`` seeded with
  ``SeedSequence([seed, corruption_id, severity, first_index + k])`` (the spec's recommendation); the
  global RNG is never touched. Streams differ from the original, distributions do not. Where the original
  made many small draws, one call of the same distribution is made per image (documented per function:
  e.g. glass_blur's displacements, fog's 1023 plasma uniforms, impulse_noise's two Bernoulli masks).
* **spatter** with no liquid at all (the original's 0/0 -> NaN; never observed) returns the clean image.
* **No OpenCV / Wand.** Their operations are re-derived: motion blur per §2.5 (equal to the spec's
  line-kernel formulation, tested); Canny, the 5x5 chamfer distance transform, equalizeHist, the float
  box blur, the disk kernel's anti-alias blur and the frost texture resize (fixed-point INTER_LINEAR at
  f = 0.3) were bit-identical to opencv-python 5.0.0 in our development check. The affine warp of
  elastic_transform is a float64 bilinear (reflect-101): ±1 grey level in ~1e-5 of the values against an
  OpenCV + SciPy reference.
* **Exactness against the libraries the original called** (tested): HSV round trip (brightness,
  saturate) = scikit-image; gaussian_blur = ``skimage.filters.gaussian``; pixelate (vectorised BOX) and
  jpeg_compression = Pillow; zoom_blur = the ``scipy.ndimage.zoom`` recipe (bit-identical in our runs).
* **Input.** Square uint8 RGB images, side >= 8 (the original works on one S x S image). Parameters are
  the 32-px (``"cifar"``) or 64-px (``"tinyimagenet"``) tables; frost needs a side below the smallest
  resized texture (63 / 94 px).
* **Frost textures** are read (never downloaded) from the installed ``imagecorruptions-imaug`` (or
  ``imagecorruptions``) package and verified against the spec's SHA-256; see ``textures``.

Quirks of the original that are reproduced on purpose: truncating float->uint8 stores; the non-centred
``clipped_zoom``; zoom_blur's 7 / 12 factors at severities 1 / 2 (``np.arange`` end point); glass_blur's
pixel *copy* (not swap), displacements in {-delta .. delta-1} and untouched border rows/columns; one-sided
motion-blur streaks; snow's 180°-rotated second layer; frost never using ``frost6.jpg`` and never the last
crop origin; spatter's modulo-256 wrap of the liquid layer; per-channel salt-and-pepper; the elastic
severity ordering (severity 1 is a pure affine with the largest jitter, so its PSNR is the *lowest*).
"""

from harness.corruptions.cache import CorruptedSet, corrupted_test_set, load_corrupted_set, make_corrupted_set
from harness.corruptions.official import (
    ChecksumMismatchError,
    load_official_cifar_c,
    load_tinyimagenet_c,
    tinyimagenet_c_classes,
    verify_archive,
)
from harness.corruptions.params import PARAMETER_SETS, PARAMS
from harness.corruptions.registry import (
    BENCHMARK_CORRUPTIONS,
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    FAMILIES,
    FAMILY_NAMES,
    RANDOM_CORRUPTIONS,
    SEVERITIES,
    corrupt,
    corruption_id,
    corruption_params,
    native_size,
)
from harness.corruptions.textures import FrostTexturesNotFound, frost_textures_available

__all__ = [
    "BENCHMARK_CORRUPTIONS",
    "CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
    "FAMILIES",
    "FAMILY_NAMES",
    "PARAMETER_SETS",
    "PARAMS",
    "RANDOM_CORRUPTIONS",
    "SEVERITIES",
    "ChecksumMismatchError",
    "CorruptedSet",
    "FrostTexturesNotFound",
    "corrupt",
    "corruption_id",
    "corruption_params",
    "frost_textures_available",
    "load_corrupted_set",
    "load_official_cifar_c",
    "load_tinyimagenet_c",
    "corrupted_test_set",
    "make_corrupted_set",
    "native_size",
    "tinyimagenet_c_classes",
    "verify_archive",
]
