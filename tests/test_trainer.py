"""Trainer on tiny data: determinism, pinned numbers, resume, NaN guard, run record and bad input."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from harness.cli import main
from harness.config import ConfigError, TrainConfig
from harness.runs import read_status
from harness.trainer import TrainingFailed, train
from harness.workflow import train_and_evaluate
from conftest import require_machine

TINY = {
    "dataset": "mnist5k",
    "n_per_class": 6,
    "model": "smallnet",
    "epochs": 2,
    "batch_size": 16,
    "lr": 0.05,
    "corruptions": False,
    "augment": ["flip", {"kind": "crop", "params": {"padding": 2}},
                {"kind": "trivial_augment", "soft": True, "mapping": "polynomial_chance"}],
}


def _cfg(**over) -> TrainConfig:
    d = dict(TINY)
    d.update(over)
    return TrainConfig.from_dict(d)


def _values(run_dir):
    rows = json.loads((run_dir / "metrics.json").read_text())["rows"]
    return {(r["metric"], r["corruption"], r["severity"]): r["value"] for r in rows}


def test_same_seed_gives_bit_identical_metrics_on_cpu(tmp_path):
    a = train_and_evaluate(_cfg(), tmp_path / "a", progress=False)
    b = train_and_evaluate(_cfg(), tmp_path / "b", progress=False)
    assert a.status == b.status == "complete"
    assert _values(tmp_path / "a") == _values(tmp_path / "b")
    la = pd.read_csv(tmp_path / "a" / "epochs.csv")
    lb = pd.read_csv(tmp_path / "b" / "epochs.csv")
    assert la["loss"].tolist() == lb["loss"].tolist()
    c = train_and_evaluate(_cfg(seed=1), tmp_path / "c", progress=False)
    assert c.status == "complete"
    assert pd.read_csv(tmp_path / "c" / "epochs.csv")["loss"].tolist() != la["loss"].tolist()


# ------------------------------------------------------------------------------------------ pinned numbers
#: A tiny run whose epoch log, metrics (clean and per-op) and weights are pinned bit for bit. The numbers
#: were computed with the trainer and evaluation as they stood before the issue-10 restructuring (commit
#: 4b93918) on the 2-core development machine (CPU, bf16 autocast, the venv's torch). They pin that a
#: refactoring changes no number; a CPU with other vectorised kernels may legitimately differ in a last
#: bit -- then regenerate them from a commit known to be good, never from the code under test.
PINNED_CONFIG = {
    "dataset": "mnist5k", "n_per_class": 20, "model": "smallnet", "model_kwargs": {"widths": [8, 8, 16]},
    "epochs": 3, "batch_size": 20, "lr": 0.2, "corruptions": False, "corruption_n": 40, "op_eval_bins": [10],
    "precision": "bf16",  # what "auto" meant on the CPU when the pins were computed (now fp32 there)
    "augment": ["flip", {"kind": "crop", "params": {"padding": 2}},
                {"kind": "trivial_augment", "soft": True, "mapping": "polynomial_chance"},
                {"kind": "random_erasing", "soft": True, "params": {"p": 0.5}}],
}
PINNED_LOG = {
    'epoch': [1, 2, 3],
    'loss': [2.3141775846481325, 2.2887948989868163, 2.239897608757019],
    'train_acc': [0.07, 0.135, 0.225],
    'mean_confidence': [0.6957960038259625, 0.7036316902935504, 0.7028219879046083],
    'lr': [0.2, 0.15000000000000002, 0.05000000000000003],
}
PINNED_METRICS = {
    'accuracy/None/None': 0.222,
    'nll/None/None': 2.1217007235723,
    'ece/None/None': 0.05506267780810595,
    'brier/None/None': 0.8646864689628658,
    'op_accuracy/Identity/10': 0.275,
    'op_accuracy/ShearX/10': 0.25,
    'op_accuracy/ShearY/10': 0.225,
    'op_accuracy/TranslateX/10': 0.3,
    'op_accuracy/TranslateY/10': 0.275,
    'op_accuracy/Rotate/10': 0.05,
    'op_accuracy/Brightness/10': 0.225,
    'op_accuracy/Color/10': 0.275,
    'op_accuracy/Contrast/10': 0.225,
    'op_accuracy/Sharpness/10': 0.275,
    'op_accuracy/Posterize/10': 0.275,
    'op_accuracy/Solarize/10': 0.1,
    'op_accuracy/AutoContrast/10': 0.275,
    'op_accuracy/Equalize/10': 0.2,
}
PINNED_WEIGHTS = '48795e61e56a049a4306953d'  # sha256 (first 24 hex digits) of model.pt's tensors, sorted by name
#: the machine the pins were computed on (tests/conftest.py machine_fingerprint); elsewhere the test skips
PINNED_ON = "AuthenticAMD | avx2 fma | torch 2.14.1+cu130"


def _weights_digest(path) -> str:
    state = torch.load(path, weights_only=True)
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:24]


def test_pinned_run_gives_the_same_log_metrics_and_weights(tmp_path):
    require_machine(PINNED_ON)
    # the pins were computed with 2 torch threads; a convolution's reductions split over threads, so the thread
    # count is part of the numbers (harness/execution.py): fix it, whatever OMP_NUM_THREADS says
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    run = tmp_path / "pinned"
    try:
        assert train_and_evaluate(TrainConfig.from_dict(PINNED_CONFIG), run, progress=False).status == "complete"
    finally:
        torch.set_num_threads(threads)
    log = pd.read_csv(run / "epochs.csv").drop(columns="time_s")
    assert log.to_dict(orient="list") == PINNED_LOG
    rows = json.loads((run / "metrics.json").read_text())["rows"]
    assert {f"{r['metric']}/{r['corruption']}/{r['severity']}": r["value"] for r in rows} == PINNED_METRICS
    assert _weights_digest(run / "model.pt") == PINNED_WEIGHTS


def test_random_erasing_normal_fill_trains_on_the_unclamped_float_batch(tmp_path):
    """RE "normal" turns the resident uint8 batch into float32 in [0, 1] with the reference's unclamped N(0, 1)
    fill (METHOD §2.3); the trainer feeds that batch to the model as it is (model_input takes floats as [0, 1])."""
    cfg = _cfg(epochs=1, augment=["flip", {"kind": "random_erasing", "soft": True,
                                           "params": {"p": 1.0, "scale": [0.1, 0.5], "value": "normal"}}])
    run = tmp_path / "re_normal"
    train(cfg, run, progress=False)
    log = pd.read_csv(run / "epochs.csv")
    assert read_status(run)["status"] == "running" and np.isfinite(log["loss"]).all()  # trained; evaluation pending
    assert (log["mean_confidence"] < 1).all()  # every sample erased: soft targets below 1


def test_run_record_is_complete(tmp_path):
    run = tmp_path / "run"
    train_and_evaluate(_cfg(), run, progress=False)
    assert read_status(run)["status"] == "complete"
    for name in ("config.yaml", "provenance.json", "epochs.csv", "checkpoint.pt", "model.pt",
                 "metrics.json", "predictions.npz"):
        assert (run / name).is_file(), name
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["seed"] == 0 and "git_sha" in prov and prov["versions"]["torch"]
    assert prov["device"] == "cpu" and prov["precision"] == "fp32"  # precision auto on the CPU
    assert yaml.safe_load((run / "config.yaml").read_text())["n_per_class"] == 6
    log = pd.read_csv(run / "epochs.csv")
    assert list(log.columns) == ["epoch", "loss", "train_acc", "mean_confidence", "lr", "time_s"]
    assert (log["mean_confidence"] < 1).all()  # soft TA lowers confidences
    vals = _values(run)
    for metric in ("accuracy", "nll", "ece", "brier"):
        assert (metric, None, None) in vals
    with np.load(run / "predictions.npz") as z:
        assert z["clean"].shape == z["labels"].shape == (1000,)
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))


def test_interrupted_then_resumed_run_equals_uninterrupted(tmp_path):
    cfg = _cfg(epochs=3)
    train_and_evaluate(cfg, tmp_path / "full", progress=False)
    part = train_and_evaluate(cfg, tmp_path / "part", progress=False, stop_after_epochs=1)
    assert part.status == "running" and read_status(tmp_path / "part")["status"] == "running"
    assert not (tmp_path / "part" / "metrics.json").exists()
    done = train_and_evaluate(cfg, tmp_path / "part", resume=True, progress=False)
    assert done.status == "complete"
    assert _values(tmp_path / "part") == _values(tmp_path / "full")
    full_log = pd.read_csv(tmp_path / "full" / "epochs.csv").drop(columns="time_s")
    part_log = pd.read_csv(tmp_path / "part" / "epochs.csv").drop(columns="time_s")
    pd.testing.assert_frame_equal(full_log, part_log)


def test_nan_loss_marks_run_failed_and_writes_no_metrics(tmp_path):
    run = tmp_path / "nan"
    with pytest.raises(TrainingFailed, match="non-finite"):
        train_and_evaluate(_cfg(), run, progress=False, nan_at_step=2)
    status = read_status(run)
    assert status["status"] == "failed" and status["step"] == 2 and status["epoch"] == 1
    assert not (run / "metrics.json").exists() and not (run / "model.pt").exists()


def test_resume_with_a_different_config_is_refused_and_writes_nothing(tmp_path):
    run = tmp_path / "r"
    train_and_evaluate(_cfg(epochs=3), run, progress=False, stop_after_epochs=1)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(ConfigError, match="differs"):
        train_and_evaluate(_cfg(epochs=3, lr=0.01), run, resume=True, progress=False)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_existing_run_directory_is_not_overwritten(tmp_path):
    run = tmp_path / "r"
    train_and_evaluate(_cfg(epochs=1), run, progress=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        train_and_evaluate(_cfg(epochs=1), run, progress=False)
    with pytest.raises(ConfigError, match="no checkpoint"):
        train_and_evaluate(_cfg(), tmp_path / "empty", resume=True, progress=False)


def test_cli_train_with_corruptions_and_evaluate(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "epochs": 1, "corruptions": True, "corruption_n": 16,
                                   "corruption_severities": [1, 5]}))
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--seed", "3", "--out", str(out), "--no-progress"]) == 0
    vals = _values(out)
    assert 0.0 <= vals[("corruption_accuracy_mean15", None, None)] <= 1.0
    assert 0.0 <= vals[("corruption_accuracy_mean19", None, None)] <= 1.0
    assert sum(1 for key in vals if key[0] == "accuracy" and key[1] is not None) == 19 * 2
    with np.load(out / "predictions.npz") as z:
        assert z["fog/5"].shape == (16,)
    assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == 3
    assert main(["evaluate", str(out), "--no-progress"]) == 0
    assert _values(out) == vals


def test_cli_train_reports_bad_config(tmp_path, capsys):
    assert main(["train", "--set", "epochs=0", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "epochs" in err and ">= 1" in err
    assert not (tmp_path / "x").exists()


def test_cli_prepare_and_corruptions_make(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", "--dataset", "mnist5k"]) == 0
    assert (tmp_path / "datasets/prepared/mnist5k/train.npz").is_file()
    assert main(["corruptions", "make", "--dataset", "mnist5k", "--n", "20", "--severities", "1", "3"]) == 0
    # the class-stratified subset that evaluation with corruption_n=20 uses (2 images per class)
    made = list((tmp_path / "datasets/prepared/mnist5k_strat20").glob("corrupted_*.npz"))
    assert [p.name for p in made] == ["corrupted_cifar_n20_s13_seed0.npz"]
    import numpy as np

    with np.load(made[0]) as z:
        labels = next(z[k] for k in z.files if "label" in k)
    assert np.bincount(labels, minlength=10).tolist() == [2] * 10
    assert main(["corruptions", "make", "--dataset", "mnist5k", "--severities", "7"]) == 2
    assert "--severities" in capsys.readouterr().err
    assert main(["prepare", "--dataset", "imagenet"]) == 2
    assert "imagenet" in capsys.readouterr().err


def test_cli_runs_at_the_pipelines_thread_count_and_restores_the_callers(tmp_path, capsys):
    """`softbench train` / `evaluate` run at --threads (default 1, the pipeline's execution.threads_per_run),
    record it, and leave the caller's torch thread count as it was."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "epochs": 1}))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "a"), "--no-progress"]) == 0
        assert torch.get_num_threads() == 2
        assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "b"), "--threads", "2",
                     "--no-progress"]) == 0
        assert main(["evaluate", str(tmp_path / "a"), "--threads", "2", "--no-progress"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    threads = {d: json.loads((tmp_path / d / "provenance.json").read_text())["threads"] for d in ("a", "b")}
    assert threads == {"a": 1, "b": 2}
    with pytest.raises(SystemExit) as exc:
        main(["train", "--config", str(cfg), "--out", str(tmp_path / "c"), "--threads", "0"])
    assert exc.value.code == 2 and "--threads must be an integer >= 1, got 0" in capsys.readouterr().err
