"""Corrupted-set cache (make/load_corrupted_set) and loaders of the official released files."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

import harness.corruptions.cache as cache_mod
from harness.corruptions import (
    ChecksumMismatchError,
    CorruptedSet,
    corrupt,
    load_corrupted_set,
    load_official_cifar_c,
    load_tinyimagenet_c,
    make_corrupted_set,
    tinyimagenet_c_classes,
    verify_archive,
)
from harness.corruptions.official import CIFAR10_C_MD5

rng0 = np.random.default_rng(7)
IMAGES = rng0.integers(0, 256, (5, 32, 32, 3)).astype(np.uint8)
LABELS = np.arange(5) % 3
NAMES = ("gaussian_noise", "contrast", "fog")
SEVS = (1, 5)


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------ cache
def test_cache_round_trip_and_atomic(tmp_path):
    out = tmp_path / "sub" / "c10c.npz"
    p = make_corrupted_set(
        IMAGES, LABELS, out, corruptions=NAMES, severities=SEVS, seed=3, progress=False, chunk_size=2
    )
    assert p == out and out.is_file()
    assert _leftovers(out.parent) == []
    with load_corrupted_set(out) as cs:
        assert isinstance(cs, CorruptedSet)
        assert cs.corruptions == NAMES and cs.severities == SEVS and len(cs) == 6
        assert set(cs) == {(n, s) for n in NAMES for s in SEVS}
        np.testing.assert_array_equal(cs.labels, LABELS)
        for n in NAMES:
            for s in SEVS:
                np.testing.assert_array_equal(cs[n, s], corrupt(IMAGES, n, s, seed=3))  # chunking invisible
        np.testing.assert_array_equal(cs.images("fog", 5), cs["fog", 5])
        assert cs.meta["seed"] == 3 and cs.meta["params"] == "cifar" and cs.meta["n_images"] == 5
        with pytest.raises(KeyError):
            cs["fog", 3]
        assert "5 images" not in repr(cs) and "n_images=5" in repr(cs)
    # a plain np.load sees the documented keys
    with np.load(out) as z:
        assert set(z.files) == {"__meta__", "labels"} | {f"{n}/{s}" for n in NAMES for s in SEVS}
        assert json.loads(str(z["__meta__"][()]))["corruptions"] == list(NAMES)


def test_cache_skips_when_metadata_match_and_rebuilds_otherwise(tmp_path, monkeypatch):
    out = tmp_path / "set.npz"
    make_corrupted_set(IMAGES, LABELS, out, corruptions=NAMES[:1], severities=(2,), progress=False)
    before = out.stat().st_mtime_ns

    def boom(*a, **k):
        raise AssertionError("should not regenerate")

    monkeypatch.setattr(cache_mod, "corrupt", boom)
    make_corrupted_set(IMAGES, LABELS, out, corruptions=NAMES[:1], severities=(2,), progress=False)
    assert out.stat().st_mtime_ns == before
    monkeypatch.undo()
    # different seed / images / labels -> rebuilt
    for kwargs in ({"seed": 1}, {"params": "tinyimagenet"}):
        make_corrupted_set(
            IMAGES, LABELS, out, corruptions=NAMES[:1], severities=(2,), progress=False, **kwargs
        )
        with load_corrupted_set(out) as cs:
            for k, v in kwargs.items():
                assert cs.meta[k] == v
    make_corrupted_set(
        IMAGES[::-1].copy(), LABELS, out, corruptions=NAMES[:1], severities=(2,), progress=False
    )
    with load_corrupted_set(out) as cs:
        np.testing.assert_array_equal(
            cs["gaussian_noise", 2], corrupt(IMAGES[::-1].copy(), "gaussian_noise", 2)
        )


def test_cache_failure_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    out = tmp_path / "set.npz"
    make_corrupted_set(IMAGES, LABELS, out, corruptions=("contrast",), severities=(1,), progress=False)
    old = out.read_bytes()
    calls = {"n": 0}
    real = cache_mod.corrupt

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("crash mid-way")
        return real(*a, **k)

    monkeypatch.setattr(cache_mod, "corrupt", flaky)
    with pytest.raises(RuntimeError, match="crash mid-way"):
        make_corrupted_set(
            IMAGES, LABELS, out, corruptions=("contrast", "fog"), severities=(1,), progress=False
        )
    assert out.read_bytes() == old
    assert _leftovers(tmp_path) == []


def test_cache_bad_arguments(tmp_path):
    out = tmp_path / "x.npz"
    with pytest.raises(ValueError, match="labels must have length"):
        make_corrupted_set(IMAGES, LABELS[:3], out, progress=False)
    with pytest.raises(ValueError, match="unknown corruption"):
        make_corrupted_set(IMAGES, LABELS, out, corruptions=("nope",), progress=False)
    with pytest.raises(ValueError, match="distinct"):
        make_corrupted_set(IMAGES, LABELS, out, severities=(1, 1), progress=False)
    with pytest.raises(ValueError, match="batch"):
        make_corrupted_set(IMAGES[0], LABELS[:1], out, progress=False)
    with pytest.raises(FileNotFoundError, match="make_corrupted_set"):
        load_corrupted_set(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a softbench corrupted set"):
        load_corrupted_set(tmp_path / "other.npz")
    assert not out.exists() and _leftovers(tmp_path) == []


def test_cache_progress_bar_runs(tmp_path, capsys):
    make_corrupted_set(
        IMAGES, LABELS, tmp_path / "p.npz", corruptions=("contrast",), severities=(1, 2), progress=True
    )
    assert "corruptions" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ official CIFAR-C
def _write_cifar_c(folder, names=("fog",), per_sev=4, n_classes=10, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = np.tile(rng.integers(0, n_classes, per_sev), 5).astype(np.uint8)
    np.save(folder / "labels.npy", labels)
    data = {}
    for name in names:
        arr = rng.integers(0, 256, (5 * per_sev, 32, 32, 3)).astype(np.uint8)
        np.save(folder / f"{name}.npy", arr)
        data[name] = arr
    return data, labels


def test_load_official_cifar_c_layout(tmp_path):
    data, labels = _write_cifar_c(tmp_path / "CIFAR-10-C")
    for root in (tmp_path, tmp_path / "CIFAR-10-C"):
        x, y = load_official_cifar_c(root, "fog", verify=False)
        np.testing.assert_array_equal(x, data["fog"])
        np.testing.assert_array_equal(y, labels)
        for s in range(1, 6):
            xs, ys = load_official_cifar_c(root, "fog", s, verify=False)
            np.testing.assert_array_equal(xs, data["fog"][(s - 1) * 4 : s * 4])  # severity-major blocks
            np.testing.assert_array_equal(ys, labels[:4])
    xm, _ = load_official_cifar_c(tmp_path, "fog", 2, verify=False, mmap=True)
    assert isinstance(xm, np.memmap) and xm.shape == (4, 32, 32, 3)
    with pytest.raises(ValueError, match="severity must be in 1..5"):
        load_official_cifar_c(tmp_path, "fog", 6, verify=False)
    with pytest.raises(ValueError, match="unknown corruption"):
        load_official_cifar_c(tmp_path, "haze", verify=False)


def test_load_official_cifar_c_checksums(tmp_path):
    _write_cifar_c(tmp_path / "CIFAR-10-C")
    with pytest.raises(
        ChecksumMismatchError, match=r"MD5 of .*fog\.npy.*7b397314b5670f825465fbcd1f6e9ccd.*verify=False"
    ):
        load_official_cifar_c(tmp_path, "fog")
    # a file whose MD5 matches the table passes (patch the table to the fixture's own digests)
    import harness.corruptions.official as off

    digest = hashlib.md5((tmp_path / "CIFAR-10-C" / "fog.npy").read_bytes()).hexdigest()
    lab = hashlib.md5((tmp_path / "CIFAR-10-C" / "labels.npy").read_bytes()).hexdigest()
    patched = dict(CIFAR10_C_MD5, fog=digest, labels=lab)
    old = off._PER_FILE_MD5["cifar10"]
    off._PER_FILE_MD5["cifar10"] = patched
    try:
        x, _ = load_official_cifar_c(tmp_path, "fog", 1)
        assert x.shape == (4, 32, 32, 3)
        with pytest.raises(ChecksumMismatchError, match="CIFAR-100-C"):
            load_official_cifar_c(tmp_path / "CIFAR-10-C", "fog", dataset="cifar100")
    finally:
        off._PER_FILE_MD5["cifar10"] = old


def test_load_official_cifar_c_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"fog\.npy not found.*zenodo\.org/records/2535967.*3555552"):
        load_official_cifar_c(tmp_path, "fog")
    with pytest.raises(FileNotFoundError, match=r"CIFAR-100-C.*zenodo\.org/records/3555552"):
        load_official_cifar_c(tmp_path, "fog", dataset="cifar100")
    (tmp_path / "CIFAR-100-C").mkdir()
    np.save(tmp_path / "CIFAR-100-C" / "snow.npy", np.zeros((5, 32, 32, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="labels.npy"):
        load_official_cifar_c(tmp_path, "snow", verify=False)
    np.save(tmp_path / "CIFAR-100-C" / "labels.npy", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="5 equal severity blocks"):
        load_official_cifar_c(tmp_path, "snow", verify=False)
    with pytest.raises(ValueError, match="dataset must be"):
        load_official_cifar_c(tmp_path, "snow", dataset="cifar1000")


# ------------------------------------------------------------------------------------ Tiny-ImageNet-C
def test_load_tinyimagenet_c_folder_layout(tmp_path):
    rng = np.random.default_rng(1)
    wnids = ["n09999999", "n01443537", "n02085620"]  # unsorted on purpose
    root = tmp_path / "Tiny-ImageNet-C"
    expected = {}
    for w in wnids:
        d = root / "fog" / "3" / w
        d.mkdir(parents=True)
        for k in range(2):
            img = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
            Image.fromarray(img).save(d / f"ILSVRC2012_val_{k:08d}.png")
            expected[(w, k)] = img
        (d / "notes.txt").write_text("not an image")
    for r in (tmp_path, root):
        x, y = load_tinyimagenet_c(r, "fog", 3)
        assert x.shape == (6, 64, 64, 3) and x.dtype == np.uint8
        assert y.tolist() == [0, 0, 1, 1, 2, 2]  # sorted wnids, ImageFolder order
        np.testing.assert_array_equal(x[0], expected[("n01443537", 0)])
        np.testing.assert_array_equal(x[5], expected[("n09999999", 1)])
    assert tinyimagenet_c_classes(tmp_path, "fog", 3) == sorted(wnids)
    mapping = {w: i for i, w in enumerate(wnids)}
    _, y = load_tinyimagenet_c(tmp_path, "fog", 3, class_to_idx=mapping)
    assert y.tolist() == [1, 1, 2, 2, 0, 0]
    with pytest.raises(ValueError, match="class_to_idx"):
        load_tinyimagenet_c(tmp_path, "fog", 3, class_to_idx={"n01443537": 0})
    with pytest.raises(FileNotFoundError, match=r"fog severity 4.*zenodo\.org/records/2536630"):
        load_tinyimagenet_c(tmp_path, "fog", 4)


def test_verify_archive(tmp_path):
    f = tmp_path / "CIFAR-10-C.tar"
    f.write_bytes(b"not the archive")
    with pytest.raises(ChecksumMismatchError, match="size"):
        verify_archive(f)
    g = tmp_path / "Tiny-ImageNet-C.tar"
    g.write_bytes(b"x")
    with pytest.raises(ChecksumMismatchError, match="md5.*f9c9a9dbdc11469f0b850190f7ad8be1"):
        verify_archive(g)
    with pytest.raises(ValueError, match="unknown archive"):
        verify_archive(g, name="ImageNet-C.tar")
    with pytest.raises(FileNotFoundError):
        verify_archive(tmp_path / "CIFAR-100-C.tar")
