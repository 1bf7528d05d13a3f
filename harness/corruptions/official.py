"""Loaders for the released CIFAR-10-C, CIFAR-100-C and Tiny-ImageNet-C files (CORRUPTIONS.md §5).

The loaders never download: missing files raise ``FileNotFoundError`` saying where to put them and where
to get them. :func:`fetch_official_corruptions` finds the extracted release in the working copy
(``datasets/raw/<dataset>-c/``), beside it (``../shared/data/<dataset>-c/``) or under ``$SOFTBENCH_DATA``,
and, with ``download=True`` (the pipeline's ``download: auto`` with ``evaluation.corruption_source:
official``), fetches the official archive(s) from Zenodo with a progress bar, checks them against the
published size / MD5 / SHA-256 (:data:`ARCHIVES`) and unpacks them; nothing partial is left on failure.
The source is overridable per archive with ``$SOFTBENCH_DATA_URL_<CIFAR10_C|CIFAR100_C|TINYIMAGENET_C|
TINYIMAGENET_C_EXTRA>`` (and a mirror's own MD5 with ``$SOFTBENCH_DATA_MD5_<...>``; see
:mod:`harness.download`). Checksums are those of §5 (per-file MD5 for the CIFAR ``.npy`` files; archive
checksums for the tars, see :func:`verify_archive`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image

from harness.corruptions.registry import CORRUPTIONS, _check_name, _check_severity
from harness.download import ChecksumMismatchError, DownloadError, Remote, fetch_and_extract
from harness.paths import raw_data_dir, shared_data_dir

__all__ = [
    "ARCHIVES",
    "CIFAR10_C_MD5",
    "CIFAR100_C_MD5",
    "DOWNLOAD_HINTS",
    "OFFICIAL_SOURCES",
    "ChecksumMismatchError",
    "fetch_official_corruptions",
    "file_digest",
    "official_search_paths",
    "load_official_cifar_c",
    "load_tinyimagenet_c",
    "tinyimagenet_c_classes",
    "verify_archive",
]

CIFAR10_C_MD5 = {
    "brightness": "0a81ef75e0b523c3383219c330a85d48",
    "contrast": "3c8262171c51307f916c30a3308235a8",
    "defocus_blur": "7d1322666342a0702b1957e92f6254bc",
    "elastic_transform": "9421657c6cd452429cf6ce96cc412b5f",
    "fog": "7b397314b5670f825465fbcd1f6e9ccd",
    "frost": "31f6ab3bce1d9934abfb0cc13656f141",
    "gaussian_blur": "c33370155bc9b055fb4a89113d3c559d",
    "gaussian_noise": "ecaf8b9a2399ffeda7680934c33405fd",
    "glass_blur": "7361fb4019269e02dbf6925f083e8629",
    "impulse_noise": "2090e01c83519ec51427e65116af6b1a",
    "jpeg_compression": "2b9cc4c864e0193bb64db8d7728f8187",
    "labels": "c439b113295ed5254878798ffe28fd54",
    "motion_blur": "fffa5f852ff7ad299cfe8a7643f090f4",
    "pixelate": "0f14f7e2db14288304e1de10df16832f",
    "saturate": "1cfae0964219c5102abbb883e538cc56",
    "shot_noise": "3a7239bb118894f013d9bf1984be7f11",
    "snow": "bb238de8555123da9c282dea23bd6e55",
    "spatter": "8a5a3903a7f8f65b59501a6093b4311e",
    "speckle_noise": "ef00b87611792b00df09c0b0237a1e30",
    "zoom_blur": "6ea8e63f1c5cdee1517533840641641b",
}

CIFAR100_C_MD5 = {
    "brightness": "f22d7195aecd6abb541e27fca230c171",
    "contrast": "322bb385f1d05154ee197ca16535f71e",
    "defocus_blur": "d923e3d9c585a27f0956e2f2ad832564",
    "elastic_transform": "a0792bd6581f6810878be71acedfc65a",
    "fog": "4efc7ebd5e82b028bdbe13048e3ea564",
    "frost": "3a39c6823bdfaa0bf8b12fe7004b8117",
    "gaussian_blur": "5204ba0d557839772ef5a4196a052c3e",
    "gaussian_noise": "ecc4d366eac432bdf25c024086f5e97d",
    "glass_blur": "0bf384f38e5ccbf8dd479d9059b913e1",
    "impulse_noise": "3b3c210ddfa0b5cb918ff4537a429fef",
    "jpeg_compression": "c851b7f1324e1d2ffddeb76920576d11",
    "labels": "bb4026e9ce52996b95f439544568cdb2",
    "motion_blur": "732a7e2e54152ff97c742d4c388c5516",
    "pixelate": "96c00c60f144539e14cffb02ddbd0640",
    "saturate": "c0697e9fdd646916a61e9c312c77bf6b",
    "shot_noise": "b0a1fa6e1e465a747c1b204b1914048a",
    "snow": "0237be164583af146b7b144e73b43465",
    "spatter": "12ccf41d62564d36e1f6a6ada5022728",
    "speckle_noise": "e3f215b1a0f9fd9fd6f0d1cf94a7ce99",
    "zoom_blur": "0204613400c034a81c4830d5df81cb82",
}

_PER_FILE_MD5 = {"cifar10": CIFAR10_C_MD5, "cifar100": CIFAR100_C_MD5}
_FOLDER = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}

#: Archive checksums from §5 (file name -> known values; record 8206060 for the Tiny-ImageNet-C tars).
ARCHIVES = {
    "CIFAR-10-C.tar": {
        "size": 2_918_471_680,
        "md5": "56bf5dcef84df0e2308c6dcbcbbd8499",
        "sha256": "c72763e101c723b7c507b96205f7e938912a5d587376173b825850cf3cb876a7",
    },
    "CIFAR-100-C.tar": {"size": 2_918_473_216, "md5": "11f0ed0f1191edbf9fa23466ae6021d3"},
    "Tiny-ImageNet-C.tar": {"md5": "f9c9a9dbdc11469f0b850190f7ad8be1"},
    "Tiny-ImageNet-C-extra.tar": {"md5": "0db0588d243cf403ef93449ec52b70eb"},
}

DOWNLOAD_HINTS = {
    "cifar10": "CIFAR-10-C.tar from Zenodo record 2535967 (https://zenodo.org/records/2535967)",
    "cifar100": "CIFAR-100-C.tar from Zenodo record 3555552 (https://zenodo.org/records/3555552)",
    "tinyimagenet": (
        "Tiny-ImageNet-C.tar from Zenodo record 2536630 (https://zenodo.org/records/2536630; 15 corruptions) "
        "or Tiny-ImageNet-C.tar + Tiny-ImageNet-C-extra.tar from record 8206060 "
        "(https://zenodo.org/records/8206060; all 19)"
    ),
}

#: Where each dataset's official corruption release is published: ``(override key, URL, archive, top folder)``.
#: Tiny-ImageNet-C: record 8206060 (15 corruptions + the 4 extras), whose MD5s :data:`ARCHIVES` holds.
OFFICIAL_SOURCES = {
    "cifar10": [("CIFAR10_C", "https://zenodo.org/records/2535967/files/CIFAR-10-C.tar", "CIFAR-10-C.tar",
                 "CIFAR-10-C")],
    "cifar100": [("CIFAR100_C", "https://zenodo.org/records/3555552/files/CIFAR-100-C.tar", "CIFAR-100-C.tar",
                  "CIFAR-100-C")],
    "tinyimagenet": [
        ("TINYIMAGENET_C", "https://zenodo.org/records/8206060/files/Tiny-ImageNet-C.tar", "Tiny-ImageNet-C.tar",
         "Tiny-ImageNet-C"),
        ("TINYIMAGENET_C_EXTRA", "https://zenodo.org/records/8206060/files/Tiny-ImageNet-C-extra.tar",
         "Tiny-ImageNet-C-extra.tar", "Tiny-ImageNet-C"),
    ],
}



_VERIFIED: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in 8 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 23), b""):
            h.update(block)
    return h.hexdigest()


def _md5_cached(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = file_digest(path, "md5")
    return _VERIFIED[key]


def _verify_member(path: Path, stem: str, dataset: str | None) -> None:
    tables = [dataset] if dataset else ["cifar10", "cifar100"]
    expected = {t: _PER_FILE_MD5[t][stem] for t in tables}
    got = _md5_cached(path)
    if got not in expected.values():
        want = ", ".join(f"{_FOLDER[t]}: {v}" for t, v in expected.items())
        raise ChecksumMismatchError(
            f"MD5 of {path} is {got}, expected {want} (CORRUPTIONS.md §5). The file is corrupt, truncated or "
            "not the official release; re-download it, or pass verify=False to skip the check."
        )


def _check_dataset(dataset: str | None) -> str | None:
    if dataset is None:
        return None
    if dataset not in _PER_FILE_MD5:
        raise ValueError(f"dataset must be None (auto), 'cifar10' or 'cifar100', got {dataset!r}")
    return dataset


def _find_cifar_dir(root: Path, name: str, dataset: str | None) -> Path:
    folders = [_FOLDER[dataset]] if dataset else list(_FOLDER.values())
    candidates = [root] + [root / f for f in folders]
    for d in candidates:
        if (d / f"{name}.npy").is_file():
            return d
    which = [dataset] if dataset else ["cifar10", "cifar100"]
    hint = " or ".join(DOWNLOAD_HINTS[w] for w in which)
    raise FileNotFoundError(
        f"{name}.npy not found; looked in {', '.join(str(c) for c in candidates)}. Download {hint}, and "
        f"extract it under {root} so that {root / folders[0] / (name + '.npy')} exists (together with labels.npy)."
    )


def load_official_cifar_c(
    root: str | os.PathLike,
    name: str,
    severity: int | None = None,
    *,
    dataset: str | None = None,
    verify: bool = True,
    mmap: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Load a released CIFAR-10-C / CIFAR-100-C corruption file and its labels.

    Args:
        root: the extracted ``CIFAR-10-C/`` (or ``CIFAR-100-C/``) folder, or a folder containing it.
        name: corruption name (file ``<name>.npy``), one of :data:`CORRUPTIONS`.
        severity: ``None`` for all 5 severities (the file's (5 * 10000, 32, 32, 3) layout, severity-major:
            index ``(s - 1) * 10000 + i``), or 1..5 for that block of 10,000 test images in test-set order.
        dataset: ``"cifar10"``, ``"cifar100"`` or ``None`` (look for either folder; accept either checksum).
        verify: check the per-file MD5 of ``<name>.npy`` and ``labels.npy`` against §5 (cached per file
            path, size and mtime within the process); a mismatch raises :class:`ChecksumMismatchError`.
        mmap: memory-map the ``.npy`` instead of reading it (slices then stay memory-mapped).

    Returns:
        ``(images uint8 [M, 32, 32, 3], labels [M])`` with M = 50000 or 10000.
    """
    name = _check_name(name)
    if severity is not None:
        severity = _check_severity(severity)
    dataset = _check_dataset(dataset)
    root = Path(root)
    folder = _find_cifar_dir(root, name, dataset)
    img_path, lab_path = folder / f"{name}.npy", folder / "labels.npy"
    if not lab_path.is_file():
        raise FileNotFoundError(
            f"{lab_path} not found next to {img_path.name}; it ships in the same archive "
            f"({' / '.join(DOWNLOAD_HINTS[d] for d in ([dataset] if dataset else ['cifar10', 'cifar100']))})."
        )
    if verify:
        ds = dataset
        if ds is None:
            ds = next((d for d, f in _FOLDER.items() if folder.name == f), None)
        _verify_member(img_path, name, ds)
        _verify_member(lab_path, "labels", ds)
    images = np.load(img_path, mmap_mode="r" if mmap else None, allow_pickle=False)
    labels = np.load(lab_path, allow_pickle=False)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{img_path}: expected uint8 [5*N, H, W, 3], got {images.dtype} {images.shape}")
    if len(images) % 5 or len(labels) != len(images):
        raise ValueError(
            f"{img_path}: expected 5 equal severity blocks and one label per image, got {len(images)} images "
            f"and {len(labels)} labels"
        )
    if severity is None:
        return images, labels
    block = len(images) // 5
    sl = slice((severity - 1) * block, severity * block)
    return images[sl], labels[sl]


def _find_tiny_dir(root: Path, name: str, severity: int) -> Path:
    candidates = [root / name / str(severity), root / "Tiny-ImageNet-C" / name / str(severity)]
    for d in candidates:
        if d.is_dir():
            return d
    raise FileNotFoundError(
        f"Tiny-ImageNet-C folder for {name} severity {severity} not found; looked in "
        f"{', '.join(str(c) for c in candidates)}. Download {DOWNLOAD_HINTS['tinyimagenet']} and extract it "
        f"under {root}, giving the layout Tiny-ImageNet-C/<corruption>/<severity>/<wnid>/<image>."
    )


_IMAGE_EXT = {".jpeg", ".jpg", ".png", ".bmp", ".webp"}


def tinyimagenet_c_classes(root: str | os.PathLike, name: str, severity: int) -> list[str]:
    """Sorted class folder names (wnids) of one Tiny-ImageNet-C ``<corruption>/<severity>`` folder."""
    d = _find_tiny_dir(Path(root), _check_name(name), _check_severity(severity))
    return sorted(p.name for p in d.iterdir() if p.is_dir())


def load_tinyimagenet_c(
    root: str | os.PathLike,
    name: str,
    severity: int,
    *,
    class_to_idx: dict[str, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one ``Tiny-ImageNet-C/<name>/<severity>/<wnid>/<file>`` folder into memory.

    Labels follow torchvision ``ImageFolder``: class index = position of the wnid among the **sorted**
    class folders (the training set must use the same sorted-wnid mapping, not ``wnids.txt`` order), unless
    ``class_to_idx`` is given. Files are read in sorted order within each class, as RGB uint8. The released
    images are JPEG (quality 85) on top of the corruption (§5.3). There are no published per-file checksums;
    check the archive with :func:`verify_archive` before extracting.

    Returns ``(images uint8 [M, H, W, 3], labels int64 [M])``.
    """
    name = _check_name(name)
    severity = _check_severity(severity)
    d = _find_tiny_dir(Path(root), name, severity)
    classes = sorted(p.name for p in d.iterdir() if p.is_dir())
    if not classes:
        raise FileNotFoundError(f"{d} has no class folders (<wnid>/); is the archive fully extracted?")
    mapping = class_to_idx if class_to_idx is not None else {c: i for i, c in enumerate(classes)}
    missing = [c for c in classes if c not in mapping]
    if missing:
        raise ValueError(
            f"class_to_idx has no index for class folders {missing[:5]}{'...' if len(missing) > 5 else ''}"
        )
    images, labels = [], []
    for c in classes:
        for f in sorted((d / c).iterdir()):
            if f.suffix.lower() not in _IMAGE_EXT or not f.is_file():
                continue
            with Image.open(f) as im:
                images.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            labels.append(mapping[c])
    if not images:
        raise FileNotFoundError(f"no images under {d}/<wnid>/")
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise ValueError(f"{d}: images have different shapes {sorted(shapes)[:4]}")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def verify_archive(path: str | os.PathLike, *, name: str | None = None) -> None:
    """Check a downloaded archive against §5 (size, MD5, SHA-256 where known).

    ``name`` is the archive's official file name (default: ``path``'s name), one of :data:`ARCHIVES`.
    Raises ``FileNotFoundError``, ``ValueError`` (unknown archive) or :class:`ChecksumMismatchError`.
    """
    path = Path(path)
    key = name or path.name
    if key not in ARCHIVES:
        raise ValueError(f"unknown archive {key!r}; known: {', '.join(ARCHIVES)}")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    ref = ARCHIVES[key]
    size = path.stat().st_size
    if "size" in ref and size != ref["size"]:
        raise ChecksumMismatchError(f"{path}: size {size} bytes, expected {ref['size']} for {key}")
    for algo in ("md5", "sha256"):
        if algo in ref:
            got = file_digest(path, algo)
            if got != ref[algo]:
                raise ChecksumMismatchError(f"{path}: {algo} {got}, expected {ref[algo]} for {key}")


def _release_complete(folder: Path, dataset: str) -> bool:
    if dataset in _FOLDER:
        return all((folder / f"{c}.npy").is_file() for c in (*CORRUPTIONS, "labels"))
    return all((folder / c).is_dir() for c in CORRUPTIONS)


def official_search_paths(dataset: str) -> list[Path]:
    """Folders searched for the extracted release of ``dataset`` (each holding e.g. ``CIFAR-10-C/``), in order."""
    name = f"{dataset}-c"
    paths = [raw_data_dir(name), shared_data_dir() / name]
    env = os.environ.get("SOFTBENCH_DATA")
    if env:
        paths += [Path(env) / name, Path(env)]
    return paths


def fetch_official_corruptions(dataset: str, *, download: bool = False) -> Path:
    """The folder holding the complete official corruption release of ``dataset``; fetched on first use.

    Returns the parent of ``CIFAR-10-C/`` / ``CIFAR-100-C/`` / ``Tiny-ImageNet-C/`` (the ``root`` of
    :func:`load_official_cifar_c` and :func:`load_tinyimagenet_c`), found in :func:`official_search_paths`.
    When missing and ``download``, the archive(s) of :data:`OFFICIAL_SOURCES` are downloaded into
    ``datasets/raw/<dataset>-c/`` of the working copy, checked against :data:`ARCHIVES` (size, MD5, SHA-256
    where published), unpacked and deleted. Raises ``FileNotFoundError`` (searched folders, where to get the
    files; also when a source cannot be reached), :class:`ChecksumMismatchError` (download refused, nothing
    left) or ``ValueError`` (unknown dataset, an archive without the expected folder).
    """
    if dataset not in OFFICIAL_SOURCES:
        raise ValueError(f"official corruption files exist for {sorted(OFFICIAL_SOURCES)}, not {dataset!r}")
    top = OFFICIAL_SOURCES[dataset][0][3]
    tried = []
    for d in official_search_paths(dataset):
        if _release_complete(d / top, dataset):
            return d
        tried.append(d / top)
    dest = raw_data_dir(f"{dataset}-c")
    failure = None
    if download:
        try:
            for i, (key, url, archive, folder) in enumerate(OFFICIAL_SOURCES[dataset]):
                ref = ARCHIVES[archive]
                remote = Remote(key, url, archive, ref["md5"], ref.get("size"), ref.get("sha256"))
                print(f"[corruptions] {dataset}: downloading {remote.resolved().url} into {dest}", flush=True)
                fetch_and_extract(remote, dest, folder, merge=i > 0)
        except DownloadError as exc:
            failure = str(exc)
        else:
            if _release_complete(dest / top, dataset):
                return dest
            raise ValueError(f"{dest / top}: the unpacked release lacks some of the 19 corruptions "
                             f"({', '.join(CORRUPTIONS)}) or labels.npy")
    lines = [f"official {dataset} corruption files not found. Searched:"]
    lines += [f"  - {p} (missing or incomplete)" for p in tried]
    if failure is not None:
        lines.append(f"Download tried and failed: {failure}.")
    else:
        lines.append("Set 'download: auto' in params.yaml (the default) to fetch them on first use.")
    keys = " / ".join(f"$SOFTBENCH_DATA_URL_{k}" for k, *_ in OFFICIAL_SOURCES[dataset])
    lines.append(f"Or get {DOWNLOAD_HINTS[dataset]} and extract it into {dest}/ (another source: {keys}).")
    raise FileNotFoundError("\n".join(lines))


assert set(CIFAR10_C_MD5) == set(CORRUPTIONS) | {"labels"} == set(CIFAR100_C_MD5)
