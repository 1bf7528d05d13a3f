"""The corrupted test images an evaluation scores, from either source, as one read-only mapping.

Sources (``corruption_source``; the grid's ``evaluation.corruption_source``):

* ``"generated"`` - the reimplemented corruptions of this package, generated once per evaluation subset of the
  test set and cached (:func:`~harness.corruptions.cache.corrupted_test_set`);
* ``"official"`` - the released CIFAR-10-C / CIFAR-100-C files (Hendrycks & Dietterich 2019), read with
  :func:`~harness.corruptions.official.load_official_cifar_c` (per-file MD5 checked once per process). Each file
  holds the 10,000 test images, in the release's own order (the original CIFAR test order), five severity
  blocks, and ``labels.npy`` their labels. They are scored against **the release's own labels**, on rows of
  the release chosen by the caller (the evaluation's class-stratified subset rule applied to those labels), so
  the order of this project's test set does not matter (the class-sorted arrays of ``../shared/data/cifar10``
  work as well as torchvision's files). What must agree is the meaning of a label: the test set's class names
  must be the dataset's canonical ones in the canonical order, checked before anything is scored. The
  indices recorded with the predictions are then rows of the release, not of the test set. Tiny-ImageNet-C
  (per-class folders of JPEGs) is not wired.

Both give ``(name, severity) -> uint8 [n, H, W, 3]`` for the scored rows, plus ``labels`` (of those rows),
``corruptions``, ``severities``, ``close()``; the official one also ``indices`` (its rows of the release; a
generated set's rows are the test subset's); :func:`source_identity` tells whether two open sources give the
same images (a device-resident copy is reused only while it is the same).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Self

import numpy as np

from harness.corruptions.cache import CorruptedSet, corrupted_test_set
from harness.corruptions.official import _FOLDER, _find_cifar_dir, fetch_official_corruptions, load_official_cifar_c
from harness.corruptions.registry import CORRUPTIONS, _check_severity
from harness.datasets import CIFAR10_CLASSES, CIFAR100_CLASSES

__all__ = ["CORRUPTION_SOURCES", "OFFICIAL_SCORED_DATASETS", "OfficialCorruptions", "check_corruption_source",
           "open_corruptions", "source_identity"]

CORRUPTION_SOURCES = ("generated", "official")
#: datasets whose official corruption files can be scored (one ``.npy`` per corruption with its ``labels.npy``)
OFFICIAL_SCORED_DATASETS = tuple(_FOLDER)
#: the class names the release's labels index, by dataset
DATASET_CLASSES = {"cifar10": CIFAR10_CLASSES, "cifar100": CIFAR100_CLASSES}


def check_corruption_source(source: str, dataset: str | None = None) -> None:
    """``ValueError`` unless ``source`` is one of :data:`CORRUPTION_SOURCES` and, for ``"official"`` with a
    ``dataset`` given, the dataset's official files can be scored (:data:`OFFICIAL_SCORED_DATASETS`)."""
    if source not in CORRUPTION_SOURCES:
        raise ValueError(f"corruption_source must be one of {list(CORRUPTION_SOURCES)}, got {source!r}")
    if source == "official" and dataset is not None and dataset not in OFFICIAL_SCORED_DATASETS:
        raise ValueError(f"corruption_source 'official' is scored for datasets {list(OFFICIAL_SCORED_DATASETS)}, "
                         f"not {dataset!r}; use corruption_source 'generated'")


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
    """The released CIFAR-10-C / CIFAR-100-C images of the release rows ``select(labels)`` (see the module doc).

    Args:
        root: the folder holding ``CIFAR-10-C/`` (or ``CIFAR-100-C/``), or that folder itself.
        dataset: ``"cifar10"`` or ``"cifar100"``.
        classes: the class names of the test set the model was trained for, by label; must be the dataset's
            canonical names in the canonical order (:data:`harness.datasets.CIFAR10_CLASSES` / ``CIFAR100_``).
        severities: severities to offer, each in 1..5.
        select: the release's labels ``[M]`` -> the rows to score (sorted or not, unique, in ``[0, M)``);
            default all rows.
        verify: check each file's MD5 against CORRUPTIONS.md §5 on first use (cached per process).

    Raises ``ValueError`` naming the first differing class when ``classes`` are not the canonical ones.
    """

    def __init__(self, root: str | os.PathLike, dataset: str, classes: Sequence[str], severities: Iterable[int], *,
                 select: Callable[[np.ndarray], np.ndarray] | None = None, verify: bool = True):
        check_corruption_source("official", dataset)
        canonical = list(DATASET_CLASSES[dataset])
        if list(classes) != canonical:
            where = next((i for i, (a, b) in enumerate(zip(classes, canonical)) if a != b), min(len(classes),
                                                                                              len(canonical)))
            raise ValueError(f"the official {dataset} corruption labels use the canonical class order; this test "
                             f"set's classes differ at label {where} ({list(classes)[where:where + 1]} vs "
                             f"{canonical[where:where + 1]}, {len(classes)} vs {len(canonical)} classes), so its "
                             f"labels do not mean the release's: use corruption_source 'generated'")
        self.dataset, self.verify = dataset, verify
        self.folder = _find_cifar_dir(Path(root), CORRUPTIONS[0], dataset)
        self.severities = tuple(_check_severity(s) for s in severities)
        self.corruptions = CORRUPTIONS
        _img, release_labels = load_official_cifar_c(self.folder, CORRUPTIONS[0], 1, dataset=dataset, verify=verify,
                                                      mmap=True)
        release_labels = np.asarray(release_labels).astype(np.int64)
        rows = np.arange(release_labels.size) if select is None else np.asarray(select(release_labels))
        if rows.ndim != 1 or rows.size == 0 or rows.min() < 0 or rows.max() >= release_labels.size \
                or np.unique(rows).size != rows.size:
            raise ValueError(f"select must give unique release rows in [0, {release_labels.size}), got {rows!r}")
        self.indices = rows.astype(np.int64)
        self.labels = release_labels[self.indices]
        digest = hashlib.sha256(self.indices.tobytes()).hexdigest()[:16]
        self.identity = ("official", *_file_identity(self.folder / "labels.npy"), digest, self.severities)

    def verify_all(self) -> None:
        """Check the MD5 of every corruption file now (otherwise each is checked when first read)."""
        for name in self.corruptions:
            load_official_cifar_c(self.folder, name, 1, dataset=self.dataset, verify=True, mmap=True)

    def describe(self) -> str:
        md5 = "verified" if self.verify else "not checked"
        return (f"official {self.folder.name} files at {self.folder} (MD5 {md5}), {self.indices.size} rows of the "
                "release scored against its labels (corruption_indices: release rows)")

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


def open_corruptions(test, subset, *, dataset: str, severities: Iterable[int], source: str = "generated",
                     select: Callable[[np.ndarray], np.ndarray] | None = None,
                     official_root: str | os.PathLike | None = None, cache_root: str | os.PathLike,
                     progress: bool = False) -> CorruptedSet | OfficialCorruptions:
    """Open the corrupted images an evaluation scores, from ``source`` (see the module doc).

    Args:
        test: the whole test ``ArrayDataset`` (its ``classes``).
        subset: the test set's evaluation subset, an ``ArrayDataset`` (what a generated set is generated from).
        dataset: the dataset's name (``TrainConfig.dataset``).
        severities: severities in 1..5.
        source: one of :data:`CORRUPTION_SOURCES`.
        select: official only: the release's labels -> the rows to score (the same subset rule as ``subset``'s).
        official_root: the official release's folder; ``None`` searches the usual places
            (:func:`~harness.corruptions.official.fetch_official_corruptions`, never downloading).
        cache_root: where generated sets are cached.
        progress: progress bar while a generated set is first generated.
    """
    check_corruption_source(source, dataset)  # before searching for files that cannot be used
    sevs = tuple(int(s) for s in severities)
    if source == "generated":
        return corrupted_test_set(subset, n=len(subset), severities=sevs, seed=0, root=cache_root, progress=progress)
    root = fetch_official_corruptions(dataset, download=False) if official_root is None else Path(official_root)
    return OfficialCorruptions(root, dataset, test.classes, sevs, select=select)
