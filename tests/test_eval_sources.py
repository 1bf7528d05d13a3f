"""Evaluation's corrupted images: the official CIFAR-10-C files scored only in their own order, the
device-resident set reused across runs of one process, labels taken on the device; none changes a number."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import harness.corruptions.official as official
import harness.evaluate as E
from harness import cell, grid as G, stages
from harness.cli import main
from harness.config import ConfigError, TrainConfig
from harness.corruptions import CORRUPTIONS, CorruptedSet
from harness.corruptions.sources import OfficialCorruptions, open_corruptions
from harness.datasets import CIFAR10_CLASSES
from harness.evaluate import evaluate_run, predict_labels, subset_rows
from harness.inference import predict_probs
from harness.workflow import train_and_evaluate

N_TEST = 40


def _write_fake_cifar10(folder, seed=0, classes=CIFAR10_CLASSES):
    """A cifar10 source folder (train.npz / test.npz) with 10 training images per class and N_TEST test images."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    classes = np.array(classes)
    for split, n in (("train", 100), ("test", N_TEST)):
        labels = np.arange(n) % 10 if split == "train" else rng.integers(0, 10, n)
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        images[..., 0] = (labels[:, None, None] * 25).astype(np.uint8)  # learnable: the class in the red channel
        np.savez(folder / f"{split}.npz", images=images, labels=labels, classes=classes)
    with np.load(folder / "test.npz") as z:
        return z["images"], z["labels"]


def _write_fake_release(root, images, labels, monkeypatch, *, fog_zero=True):
    """A CIFAR-10-C folder in the release's layout: <name>.npy = 5 severity blocks of the test images (severity
    1: clean copies, severity s > 1: pixel (0, 0) green = s; fog all black), labels.npy = 5 copies of the
    labels; their MD5s put in the checksum table."""
    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True)
    table = {}
    for name in CORRUPTIONS:
        np.save(folder / f"{name}.npy", np.concatenate([_fake_block(images, name, s, fog_zero) for s in range(1, 6)]))
        table[name] = official.file_digest(folder / f"{name}.npy")
    np.save(folder / "labels.npy", np.tile(labels, 5).astype(np.uint8))
    table["labels"] = official.file_digest(folder / "labels.npy")
    monkeypatch.setitem(official._PER_FILE_MD5, "cifar10", table)
    return root


def _fake_block(images, name, severity, fog_zero=True):
    if name == "fog" and fog_zero:
        return np.zeros_like(images)
    block = images.copy()
    if severity > 1:
        block[:, 0, 0, 1] = severity
    return block


@pytest.fixture()
def cifar_run(tmp_path, monkeypatch):
    """A tiny cifar10-shaped run trained in tmp_path (the working copy), its test set and config."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOFTBENCH_DATA", raising=False)
    images, labels = _write_fake_cifar10(tmp_path / "src")
    cfg = TrainConfig.from_dict({"dataset": "cifar10", "data_source": str(tmp_path / "src"), "n_per_class": 10,
                                 "model": "smallnet", "model_kwargs": {"widths": [8, 8, 8]}, "epochs": 1,
                                 "batch_size": 20, "lr": 0.05, "precision": "fp32", "corruptions": False,
                                 "augment": ["flip"]})
    train_and_evaluate(cfg, tmp_path / "run", progress=False)
    ev = dataclasses.replace(cfg, corruptions=True, corruption_n=20, corruption_severities=(1, 3),
                             op_eval_bins=())
    return tmp_path, images, labels, ev


def _rows(rows):
    return {(r["metric"], r["corruption"], r["severity"]): r["value"] for r in rows}


def test_official_files_are_scored_on_the_stratified_rows_of_the_release(cifar_run, monkeypatch):
    tmp, images, labels, ev = cifar_run
    root = _write_fake_release(tmp / "c10c", images, labels, monkeypatch)
    rows = _rows(evaluate_run(tmp / "run", progress=False, config=ev, out_dir=tmp / "eval",
                              corruption_source="official", official_root=root))
    with np.load(tmp / "eval" / "predictions.npz") as z:
        sub, clean, y_sub = z["corruption_indices"], z["clean"], z["corruption_labels"]
        assert len(sub) == 20 and np.array_equal(y_sub, labels[sub])
        # the release's blocks hold the clean test images (fog: black): the predictions of the rows `sub`
        for name in CORRUPTIONS:
            if name == "fog":
                assert all(len(set(z[f"fog/{sev}"].tolist())) == 1 for sev in (1, 3))  # black: one prediction
            else:
                assert np.array_equal(z[f"{name}/1"], clean[sub]), name
    # the images scored are the release's rows `sub` of each severity block, whatever the model predicts
    corr = OfficialCorruptions(root, "cifar10", CIFAR10_CLASSES, (1, 3), select=lambda release_labels: sub)
    for name in ("gaussian_noise", "fog", "saturate"):
        for sev in (1, 3):
            assert np.array_equal(corr[(name, sev)], _fake_block(images, name, sev)[sub]), (name, sev)
    assert np.array_equal(corr.labels, y_sub)
    clean_sub_acc = float((clean[sub] == y_sub).mean())
    assert rows[("accuracy", "gaussian_noise", 1)] == pytest.approx(clean_sub_acc)
    notes = json.loads((tmp / "eval" / "metrics.json").read_text())["notes"]
    assert any("official CIFAR-10-C files" in n and "MD5 verified" in n for n in notes)
    assert json.loads((tmp / "eval" / "status.json").read_text())["status"] == "complete"


def test_official_files_in_another_order_are_scored_against_their_own_labels(cifar_run, monkeypatch):
    """The release need not follow the test set's order (the class-sorted shared arrays do not): its rows are
    chosen and scored with its own labels."""
    tmp, images, labels, ev = cifar_run
    perm = np.roll(np.arange(N_TEST), 7)  # release row r holds test image perm[r]
    root = _write_fake_release(tmp / "c10c", images[perm], labels[perm], monkeypatch)
    rows = _rows(evaluate_run(tmp / "run", progress=False, config=ev, out_dir=tmp / "eval",
                              corruption_source="official", official_root=root))
    with np.load(tmp / "eval" / "predictions.npz") as z:
        release_rows, clean = z["corruption_indices"], z["clean"]
        assert np.array_equal(release_rows, subset_rows(labels[perm], 20))
        assert np.array_equal(z["corruption_labels"], labels[perm][release_rows])
        assert np.array_equal(z["gaussian_noise/1"], clean[perm[release_rows]])  # clean copies: clean predictions
    expected = float((clean[perm[release_rows]] == labels[perm[release_rows]]).mean())
    assert rows[("accuracy", "gaussian_noise", 1)] == pytest.approx(expected)


def test_a_test_set_whose_labels_mean_other_classes_is_refused(tmp_path, cifar_run, monkeypatch):
    tmp, images, labels, ev = cifar_run
    root = _write_fake_release(tmp / "c10c", images, labels, monkeypatch)
    swapped = ("automobile", "airplane", *CIFAR10_CLASSES[2:])
    with pytest.raises(ValueError, match=r"classes differ at label 0 \(\['automobile'\] vs \['airplane'\]"):
        OfficialCorruptions(root, "cifar10", swapped, (1,))
    with pytest.raises(ValueError, match=r"differ at label 10 .* 11 vs 10 classes"):
        OfficialCorruptions(root, "cifar10", (*CIFAR10_CLASSES, "extra"), (1,))
    with pytest.raises(ValueError, match="select must give unique release rows"):
        OfficialCorruptions(root, "cifar10", CIFAR10_CLASSES, (1,), select=lambda lab: np.array([0, 0]))


def test_official_files_with_a_wrong_checksum_are_refused(cifar_run, monkeypatch):
    tmp, images, labels, ev = cifar_run
    root = _write_fake_release(tmp / "c10c", images, labels, monkeypatch)
    monkeypatch.setitem(official._PER_FILE_MD5["cifar10"], "snow", "0" * 32)
    with pytest.raises(official.ChecksumMismatchError, match="snow.npy"):
        evaluate_run(tmp / "run", progress=False, config=ev, out_dir=tmp / "eval", corruption_source="official",
                     official_root=root)


def test_official_source_is_refused_for_a_dataset_without_scored_files(tmp_path):
    with pytest.raises(ValueError, match=r"scored for datasets \['cifar10', 'cifar100'\], not 'mnist5k'"):
        OfficialCorruptions(tmp_path, "mnist5k", CIFAR10_CLASSES, [1])
    with pytest.raises(ValueError, match="corruption_source must be one of"):
        open_corruptions(None, None, dataset="cifar10", severities=[1], source="imagenet-c",
                         cache_root=tmp_path)


def test_cli_evaluate_scores_official_files_and_rejects_a_root_without_official(cifar_run, monkeypatch, capsys):
    tmp, images, labels, ev = cifar_run
    root = _write_fake_release(tmp / "c10c", images, labels, monkeypatch)
    cfg = yaml.safe_load((tmp / "run" / "config.yaml").read_text())
    cfg.update(corruptions=True, corruption_n=20, corruption_severities=[1])
    (tmp / "run" / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["evaluate", str(tmp / "run"), "--corruption-source", "official", "--official-root", str(root),
                 "--no-progress"]) == 0
    notes = json.loads((tmp / "run" / "metrics.json").read_text())["notes"]
    assert any("official CIFAR-10-C" in n for n in notes)
    assert main(["evaluate", str(tmp / "run"), "--official-root", str(root), "--no-progress"]) == 2
    assert "official_root" in capsys.readouterr().err


def test_generated_and_resident_sets_give_the_same_numbers_and_the_resident_one_is_read_once(
        cifar_run, monkeypatch):
    tmp, _images, _labels, ev = cifar_run
    E.release_resident()
    streamed = evaluate_run(tmp / "run", progress=False, config=ev, out_dir=tmp / "e0", resident=False)
    reads = []
    orig = CorruptedSet.__getitem__
    monkeypatch.setattr(CorruptedSet, "__getitem__", lambda self, key: reads.append(key) or orig(self, key))
    first = evaluate_run(tmp / "run", progress=False, config=ev, out_dir=tmp / "e1", resident=True)
    n_keys = len(CORRUPTIONS) * 2
    assert len(reads) == n_keys
    second = evaluate_run(tmp / "run", progress=False, config=ev, out_dir=tmp / "e2")  # auto: reuses what is held
    assert len(reads) == n_keys  # nothing read again
    assert streamed == first == second
    for d in ("e1", "e2"):
        with np.load(tmp / "e0" / "predictions.npz") as a, np.load(tmp / d / "predictions.npz") as b:
            assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)
    notes = json.loads((tmp / "e1" / "metrics.json").read_text())["notes"]
    assert any(n.startswith("corruptions scored: generated") for n in notes)
    # another set of images (the cache file rewritten: new identity) is loaded, not the held one reused
    cache = next((tmp / "datasets" / "prepared").rglob("corrupted_*.npz"))
    with np.load(cache) as z:
        members = {k: z[k] for k in z.files}
    members["fog/1"] = np.zeros_like(members["fog/1"])
    np.savez(cache.with_suffix(".tmp.npz"), **members)
    cache.with_suffix(".tmp.npz").replace(cache)
    corr = CorruptedSet(cache)
    keys = [("fog", 1), ("fog", 3)]
    got = dict(E._corrupted_images(corr, keys, torch.device("cpu"), None))
    corr.close()
    assert int(got[("fog", 1)].sum()) == 0
    E.release_resident()


def test_resident_only_on_cuda_and_within_the_free_memory_share(monkeypatch):
    assert not E.resident_fits(1, torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8_000, 16_000))
    E.release_resident()
    cuda = torch.device("cuda")
    assert E.resident_fits(int(8_000 * E.RESIDENT_FREE_FRACTION), cuda)
    assert not E.resident_fits(int(8_000 * E.RESIDENT_FREE_FRACTION) + 1, cuda)


class _Linear(torch.nn.Module):
    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)

    def forward(self, x):
        return x.flatten(1) @ self.weight.T


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 23), k=st.integers(2, 6), batch=st.integers(1, 9),
       ties=st.booleans())
def test_labels_on_the_device_are_the_argmax_of_the_probabilities(seed, n, k, batch, ties):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 2, 2), generator=g, dtype=torch.uint8)
    weight = torch.randn(k, 4, generator=g)
    if ties:  # two identical classes: equal probabilities, the first one wins in both
        weight[1] = weight[0]
    model = _Linear(weight)
    labels = predict_labels(model, images, "cpu", batch, precision="fp32", channels_last=False)
    probs = predict_probs(model, images, "cpu", batch, precision="fp32", channels_last=False)
    assert labels.shape == (n,) and np.array_equal(labels, probs.argmax(1))
    if ties:
        assert not np.any(labels == 1)


def test_the_evaluation_stamp_names_the_corruption_source(tmp_path, monkeypatch):
    """Switching the grid's corruption source re-evaluates: the stamp differs."""
    monkeypatch.chdir(tmp_path)
    raw = {"grid": "g", "dataset": "cifar10", "seeds": [0], "run_arms": ["a"], "base": {"epochs": 1},
           "arms": {"a": {"factors": {"label_type": "hard", "family": "none"}, "augment": ["flip"]}}}
    gen = G._validate(raw, "g")
    off = G._validate({**raw, "evaluation": {"corruption_source": "official"}}, "g")
    assert gen.corruption_source == "generated" and off.corruption_source == "official"
    monkeypatch.setattr(cell, "_file_hash", lambda p: "x")
    monkeypatch.setattr(cell, "_data_hash", lambda g: "d")
    cfg = TrainConfig.from_dict({"dataset": "cifar10"})
    a, b = cell.eval_stamp(gen, tmp_path, cfg), cell.eval_stamp(off, tmp_path, cfg)
    assert a["corruption_source"] == "generated" and b["corruption_source"] == "official" and a != b


def _official_grid(dataset, source):
    raw = {"grid": "g", "dataset": dataset, "data_source": source, "download": "never", "seeds": [0],
           "run_arms": ["a"], "base": {"epochs": 1},
           "evaluation": {"corruption_source": "official", "corruption_n": 20, "corruption_severities": [1]},
           "arms": {"a": {"factors": {"label_type": "hard", "family": "none"}, "augment": ["flip"]}}}
    return G._validate(raw, "g")


@pytest.mark.parametrize("classes", ["canonical", "swapped"])
def test_corruptions_stage_checks_the_official_files_before_any_training(tmp_path, monkeypatch, classes):
    monkeypatch.chdir(tmp_path)
    names = CIFAR10_CLASSES if classes == "canonical" else ("automobile", "airplane", *CIFAR10_CLASSES[2:])
    images, labels = _write_fake_cifar10(tmp_path / "src", classes=names)
    _write_fake_release(tmp_path / "data" / "cifar10-c", images, labels, monkeypatch)
    monkeypatch.setenv("SOFTBENCH_DATA", str(tmp_path / "data"))
    grid = _official_grid("cifar10", str(tmp_path / "src"))
    if classes == "canonical":
        stages.stage_corruptions(grid, progress=False)
        assert not list(tmp_path.rglob("corrupted_*.npz"))  # nothing generated: the release is what is scored
        monkeypatch.setitem(official._PER_FILE_MD5["cifar10"], "zoom_blur", "0" * 32)  # every file is checked
        official._VERIFIED.clear()
        with pytest.raises(official.ChecksumMismatchError, match="zoom_blur.npy"):
            stages.stage_corruptions(grid, progress=False)
    else:
        with pytest.raises(ValueError, match="classes differ at label 0"):
            stages.stage_corruptions(grid, progress=False)


def test_official_source_is_refused_at_the_grid_for_datasets_whose_files_are_not_scored():
    for dataset in ("tinyimagenet", "mnist5k"):
        with pytest.raises(ConfigError, match=rf"evaluation.corruption_source.*'generated' for dataset '{dataset}'"):
            _official_grid(dataset, None)
    assert _official_grid("cifar100", None).corruption_source == "official"
