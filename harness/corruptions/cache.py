"""Generate a corrupted evaluation set once and keep it in one ``.npz`` file.

Layout (an ordinary, uncompressed ``.npz``; ``np.load`` reads it):

* ``"<name>/<severity>"`` - uint8 ``[N, H, W, 3]``, the images corrupted with ``name`` at ``severity``
  (e.g. ``"fog/3"``), in the order of the input images;
* ``"labels"`` - the labels as given (one copy, not repeated per severity);
* ``"__meta__"`` - a 0-d unicode array holding JSON: format, generator version, ``seed``, ``params``,
  ``corruptions``, ``severities``, image count and shape, SHA-256 of the input images and labels,
  creation time and library versions.

The file is written to a temporary file in the target folder, fsynced, then ``os.replace``d into
place, so readers see either the old complete file or the new complete file, never a partial one.
Members are streamed one ``(corruption, severity)`` at a time, so memory stays at one array.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from harness.io import atomic_open
from mappings.base import check_int

import numpy as np
from tqdm.auto import tqdm

from harness.corruptions.registry import (
    CORRUPTIONS,
    SEVERITIES,
    _check_images,
    _check_name,
    _check_params,
    _check_severity,
    corrupt,
)

__all__ = ["CACHE_FORMAT", "GENERATOR_VERSION", "CorruptedSet", "load_corrupted_set", "make_corrupted_set"]

CACHE_FORMAT = "softbench-corruptions/1"
#: Bump whenever a change to the generators alters any output, so stale caches are regenerated.
GENERATOR_VERSION = "1"

_MATCH_KEYS = (
    "format",
    "generator_version",
    "seed",
    "params",
    "corruptions",
    "severities",
    "n_images",
    "image_shape",
    "images_sha256",
    "labels_sha256",
)


def _sha256(a: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def _read_meta(path: Path) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if "__meta__" not in z.files:
                return None
            return json.loads(str(z["__meta__"][()]))
    except (OSError, ValueError, zipfile.BadZipFile, json.JSONDecodeError, KeyError):
        return None


def _write_member(zf: zipfile.ZipFile, key: str, arr: np.ndarray) -> None:
    with zf.open(f"{key}.npy", "w", force_zip64=True) as fh:
        np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)


def make_corrupted_set(
    images: np.ndarray,
    labels: np.ndarray,
    out_path: str | os.PathLike,
    *,
    corruptions: Iterable[str] = CORRUPTIONS,
    severities: Iterable[int] = SEVERITIES,
    params: str = "cifar",
    seed: int = 0,
    progress: bool = True,
    chunk_size: int = 1000,
) -> Path:
    """Write every ``(corruption, severity)`` of ``images`` to one ``.npz`` at ``out_path``; return the path.

    If ``out_path`` already holds a set made with the same seed, params, corruption list, severities
    and the same images and labels (by SHA-256) and generator version, nothing is regenerated.
    Otherwise the set is (re)built and atomically replaces the file. Images are processed in chunks of
    ``chunk_size`` (results do not depend on it, see ``corrupt(first_index=...)``).
    """
    batch, single = _check_images(images)
    if single:
        raise ValueError(f"images must be a batch [N, H, W, 3], got a single image {images.shape}")
    labels = np.asarray(labels)
    if labels.shape[:1] != (batch.shape[0],):
        raise ValueError(
            f"labels must have length N = {batch.shape[0]} along axis 0, got shape {labels.shape}"
        )
    if labels.dtype == object:
        raise TypeError("labels must be a numeric array, not dtype=object")
    names = [_check_name(c) for c in corruptions]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"corruptions must be a non-empty list of distinct names, got {names}")
    sevs = [_check_severity(s) for s in severities]
    if not sevs or len(set(sevs)) != len(sevs):
        raise ValueError(f"severities must be a non-empty list of distinct ints in 1..5, got {sevs}")
    params = _check_params(params)
    seed = check_int(seed, "seed", 0)
    chunk_size = check_int(chunk_size, "chunk_size", 0) or 1

    meta = {
        "format": CACHE_FORMAT,
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "params": params,
        "corruptions": names,
        "severities": sevs,
        "n_images": int(batch.shape[0]),
        "image_shape": list(batch.shape[1:]),
        "images_sha256": _sha256(batch),
        "labels_sha256": _sha256(labels),
    }
    out_path = Path(out_path)
    if out_path.is_file():
        old = _read_meta(out_path)
        if old is not None and all(old.get(k) == meta[k] for k in _MATCH_KEYS):
            return out_path
    meta["created_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta["versions"] = {"numpy": np.__version__}

    n = batch.shape[0]
    n_chunks = max(1, -(-n // chunk_size))
    with atomic_open(out_path) as raw:
        with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            _write_member(zf, "__meta__", np.array(json.dumps(meta)))
            _write_member(zf, "labels", labels)
            with tqdm(
                total=len(names) * len(sevs) * n_chunks,
                desc=f"corruptions ({params}, seed {seed})",
                unit="chunk",
                disable=not progress,
            ) as bar:
                for name in names:
                    for sev in sevs:
                        bar.set_postfix_str(f"{name}/{sev}")
                        out = np.empty_like(batch)
                        for s0 in range(0, n, chunk_size):
                            out[s0 : s0 + chunk_size] = corrupt(
                                batch[s0 : s0 + chunk_size],
                                name,
                                sev,
                                params=params,
                                seed=seed,
                                first_index=s0,
                            )
                            bar.update(1)
                        if n == 0:
                            bar.update(1)
                        _write_member(zf, f"{name}/{sev}", out)
    return out_path


class CorruptedSet(Mapping):
    """Read-only view of a file written by :func:`make_corrupted_set`.

    A mapping ``(name, severity) -> uint8 [N, H, W, 3]``; arrays are read from disk on access. Also
    ``.labels``, ``.meta``, ``.corruptions``, ``.severities``, :meth:`images`. Use as a context manager
    (or call :meth:`close`) to release the file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"no corrupted set at {self.path}; create it with make_corrupted_set(...)"
            )
        self._npz = np.load(self.path, allow_pickle=False)
        if "__meta__" not in self._npz.files:
            self._npz.close()
            raise ValueError(f"{self.path} is not a softbench corrupted set (no __meta__ member)")
        self.meta: dict = json.loads(str(self._npz["__meta__"][()]))
        if self.meta.get("format") != CACHE_FORMAT:
            self._npz.close()
            raise ValueError(
                f"{self.path}: unsupported format {self.meta.get('format')!r}, expected {CACHE_FORMAT!r}"
            )
        self.labels: np.ndarray = self._npz["labels"]
        self.corruptions: tuple[str, ...] = tuple(self.meta["corruptions"])
        self.severities: tuple[int, ...] = tuple(self.meta["severities"])

    def images(self, name: str, severity: int) -> np.ndarray:
        """The corrupted images for ``name`` at ``severity`` (uint8 ``[N, H, W, 3]``)."""
        return self[(name, severity)]

    def __getitem__(self, key: tuple[str, int]) -> np.ndarray:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise KeyError(f"key must be (corruption name, severity), got {key!r}")
        name, sev = key
        if name not in self.corruptions or sev not in self.severities:
            raise KeyError(
                f"{key!r} not in this set (corruptions {list(self.corruptions)}, severities {list(self.severities)})"
            )
        return self._npz[f"{name}/{int(sev)}"]

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return ((c, s) for c in self.corruptions for s in self.severities)

    def __len__(self) -> int:
        return len(self.corruptions) * len(self.severities)

    def close(self) -> None:
        self._npz.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"CorruptedSet({str(self.path)!r}, n_images={self.meta['n_images']}, params={self.meta['params']!r}, "
            f"seed={self.meta['seed']}, {len(self.corruptions)} corruptions x {len(self.severities)} severities)"
        )


def load_corrupted_set(path: str | os.PathLike) -> CorruptedSet:
    """Open a set written by :func:`make_corrupted_set` (lazy; see :class:`CorruptedSet`)."""
    return CorruptedSet(path)


def corrupted_test_set(
    test,
    *,
    n: int | None = None,
    severities: Iterable[int] = SEVERITIES,
    seed: int = 0,
    params: str | None = None,
    root: str | os.PathLike = "datasets/prepared",
    progress: bool = True,
) -> CorruptedSet:
    """The (cached) corrupted version of the first ``n`` images of a test ``ArrayDataset``.

    The cache lives at ``<root>/<dataset>/corrupted_<params>_n<n>_s<severities>_seed<seed>.npz``
    and is rebuilt only when its metadata (seed, params, images, labels, generator version) differ.
    ``params`` defaults to ``"cifar"`` for images up to 48 px and ``"tinyimagenet"`` above.
    Returns an open :class:`CorruptedSet` (use it as a context manager).
    """
    n = len(test) if n is None else int(n)
    if not 1 <= n <= len(test):
        raise ValueError(f"n must be in [1, {len(test)}] (test-set size), got {n}")
    sevs = tuple(int(s) for s in severities)
    if params is None:
        params = "cifar" if test.images.shape[1] <= 48 else "tinyimagenet"
    tag = "".join(str(s) for s in sevs)
    path = Path(root) / test.name / f"corrupted_{params}_n{n}_s{tag}_seed{seed}.npz"
    make_corrupted_set(test.images[:n], test.labels[:n], path, severities=sevs, params=params, seed=seed,
                       progress=progress)
    return load_corrupted_set(path)
