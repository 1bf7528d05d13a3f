"""The corrupted test images an evaluation scores, from either source, as one read-only mapping.

Sources (``corruption_source``; the grid's ``evaluation.corruption_source``):

* ``"generated"`` - the reimplemented corruptions of this package, generated once per evaluation subset and
  cached (:func:`~harness.corruptions.cache.corrupted_test_set`);
* ``"official"`` - the released CIFAR-10-C / CIFAR-100-C files (Hendrycks & Dietterich 2019), read with
  :func:`~harness.corruptions.official.load_official_cifar_c` (per-file MD5 checked once per process). They
  hold the 10,000 test images **in the original CIFAR test order** (torchvision's ``test_batch`` order), five
  severity blocks per corruption. Image ``i`` of our test set is image ``i`` of a block only when our test set
  is in that order; that is checked before anything is scored: the labels of the official files must equal
  the test set's labels, position by position. A test set in another order (the class-sorted arrays of
  ``../shared/data/cifar10``, for example) is refused with the agreement found, never paired silently.
  Tiny-ImageNet-C (per-class folders of JPEGs) is not wired: refused with a clear error.

Both give ``(name, severity) -> uint8 [n, H, W, 3]`` for the evaluation subset (the test-set rows ``indices``,
in that order), plus ``labels`` (of those rows), ``corruptions``, ``severities``, ``describe()`` (one line for
the run's notes), ``identity`` (changes whenever the images could: a device-resident copy is reused only while
it is the same) and ``close()``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Self

import numpy as np

from harness.corruptions.cache import CorruptedSet, corrupted_test_set
from harness.corruptions.official import _FOLDER, _find_cifar_dir, fetch_official_corruptions, load_official_cifar_c
from harness.corruptions.registry import CORRUPTIONS, _check_severity

__all__ = ["CORRUPTION_SOURCES", "OFFICIAL_SCORED_DATASETS", "OfficialCorruptions", "open_corruptions",
           "source_identity"]

CORRUPTION_SOURCES = ("generated", "official")
#: datasets whose official corruption files can be scored (their files follow the test set's original order)
OFFICIAL_SCORED_DATASETS = tuple(_FOLDER)


def _file_identity(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def source_identity(corr: Mapping) -> tuple:
    """What identifies the images of an open source: the cache file (path, size, mtime) of a generated set,
    or the official folder with the subset and severities. Equal identities give equal images."""
    if isinstance(corr, CorruptedSet):
        return ("generated", *_file_identity(corr.path), corr.corruptions, corr.severities)
    if isinstance(corr, OfficialCorruptions):
        return corr.identity
    raise TypeError(f"not a corruption source: {type(corr).__name__}")


class OfficialCorruptions(Mapping):
    """The released CIFAR-10-C / CIFAR-100-C images of the test-set rows ``indices`` (see the module doc).

    Args:
        root: the folder holding ``CIFAR-10-C/`` (or ``CIFAR-100-C/``), or that folder itself.
        dataset: ``"cifar10"`` or ``"cifar100"``.
        test_labels: the labels of the **whole** test set, in its order (``[10000]`` integers).
        indices: the test-set rows to score (e.g. the class-stratified subset), each in ``[0, 10000)``.
        severities: severities to offer, each in 1..5.
        verify: check each file's MD5 against CORRUPTIONS.md §5 on first use (cached per process).

    Raises ``ValueError`` when the files' labels do not follow ``test_labels`` (another order or another
    test set), naming how many positions agree.
    """

    def __init__(self, root: str | os.PathLike, dataset: str, test_labels: np.ndarray, indices: np.ndarray,
                 severities: Iterable[int], *, verify: bool = True):
        if dataset not in OFFICIAL_SCORED_DATASETS:
            raise ValueError(f"corruption_source 'official' is scored for datasets {list(OFFICIAL_SCORED_DATASETS)}, "
                             f"not {dataset!r}; use corruption_source 'generated'")
        self.dataset, self.verify = dataset, verify
        self.folder = _find_cifar_dir(Path(root), CORRUPTIONS[0], dataset)
        self.severities = tuple(_check_severity(s) for s in severities)
        self.corruptions = CORRUPTIONS
        test_labels = np.asarray(test_labels).astype(np.int64)
        self.indices = np.asarray(indices, dtype=np.int64)
        if self.indices.ndim != 1 or self.indices.size == 0 or not (
                0 <= self.indices.min() and self.indices.max() < test_labels.size):
            raise ValueError(f"indices must be a non-empty 1-D array of test-set rows in [0, {test_labels.size}), "
                             f"got shape {self.indices.shape}")
        _img, official = load_official_cifar_c(self.folder, CORRUPTIONS[0], 1, dataset=dataset, verify=verify,
                                               mmap=True)
        official = np.asarray(official).astype(np.int64)
        if official.size != test_labels.size:
            raise ValueError(f"official {self.folder.name} files hold {official.size} test images per severity, "
                             f"the test set has {test_labels.size}: they are not the same test set")
        agree = float((official == test_labels).mean())
        if agree < 1.0:
            raise ValueError(
                f"official {self.folder.name} files follow the original CIFAR test order, and this test set does "
                f"not: their labels agree at {agree:.1%} of positions (100% required). Prepare the dataset from "
                f"torchvision's files (softbench prepare --dataset {dataset} --download, or a source in that "
                f"order), or use corruption_source 'generated'")
        self.labels = test_labels[self.indices]
        digest = hashlib.sha256(self.indices.tobytes()).hexdigest()[:16]
        self.identity = ("official", *_file_identity(self.folder / "labels.npy"), digest, self.severities)

    def verify_all(self) -> None:
        """Check the MD5 of every corruption file now (otherwise each is checked when first read)."""
        for name in self.corruptions:
            load_official_cifar_c(self.folder, name, 1, dataset=self.dataset, verify=True, mmap=True)

    def describe(self) -> str:
        return f"official {self.folder.name} files at {self.folder} (MD5 {'verified' if self.verify else 'not checked'})"

    def __getitem__(self, key: tuple[str, int]) -> np.ndarray:
        if not (isinstance(key, tuple) and len(key) == 2) or key[0] not in self.corruptions \
                or key[1] not in self.severities:
            raise KeyError(f"{key!r} is not (corruption in CORRUPTIONS, severity in {list(self.severities)})")
        name, sev = key
        block, _labels = load_official_cifar_c(self.folder, name, int(sev), dataset=self.dataset,
                                               verify=self.verify, mmap=True)
        return np.ascontiguousarray(block[self.indices])

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return ((c, s) for c in self.corruptions for s in self.severities)

    def __len__(self) -> int:
        return len(self.corruptions) * len(self.severities)

    def close(self) -> None:
        """Nothing to release (each block is memory-mapped only while it is sliced)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_corruptions(test, indices: np.ndarray, subset, *, dataset: str, severities: Iterable[int],
                     source: str = "generated",
                     official_root: str | os.PathLike | None = None, cache_root: str | os.PathLike,
                     progress: bool = False) -> CorruptedSet | OfficialCorruptions:
    """Open the corrupted images of the evaluation subset from ``source`` (see the module doc).

    Args:
        test: the whole test ``ArrayDataset`` (its ``labels``, in its order).
        indices: the subset's rows of ``test``.
        subset: the subset as an ``ArrayDataset`` (what the generated set is generated from).
        dataset: the dataset's name (``TrainConfig.dataset``).
        severities: severities in 1..5.
        source: one of :data:`CORRUPTION_SOURCES`.
        official_root: the official release's folder; ``None`` searches the usual places
            (:func:`~harness.corruptions.official.fetch_official_corruptions`, never downloading).
        cache_root: where generated sets are cached.
        progress: progress bar while a generated set is first generated.
    """
    sevs = tuple(int(s) for s in severities)
    if source == "generated":
        return corrupted_test_set(subset, n=len(subset), severities=sevs, seed=0, root=cache_root, progress=progress)
    if source != "official":
        raise ValueError(f"corruption_source must be one of {list(CORRUPTION_SOURCES)}, got {source!r}")
    if dataset not in OFFICIAL_SCORED_DATASETS:  # before searching for files that cannot be used
        raise ValueError(f"corruption_source 'official' is scored for datasets {list(OFFICIAL_SCORED_DATASETS)}, "
                         f"not {dataset!r}; use corruption_source 'generated'")
    root = fetch_official_corruptions(dataset, download=False) if official_root is None else Path(official_root)
    return OfficialCorruptions(root, dataset, test.labels, indices, sevs)
