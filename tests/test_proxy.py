"""Proxy-model accuracy mappings: normalisation, isotonic smoothing, tables, storage, end-to-end pipeline."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.datasets import load_dataset
from harness.measure import (
    load_proxy,
    load_proxy_table,
    measure_proxy_accuracy,
    op_bin_grid,
    proxy_config,
    save_proxy_table,
    train_proxy,
)
from mappings import MappingSet, from_dict
from mappings.ops import TRIVIAL_AUGMENT_WIDE
from mappings.proxy import (
    ACCURACY_COLUMNS,
    clean_accuracy,
    isotonic_smooth,
    normalise_accuracy,
    proxy_confidence_table,
    proxy_mapping_set,
)

SIGNED_OPS = TRIVIAL_AUGMENT_WIDE.signed

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def k_and_clean(draw):
    k = draw(st.integers(2, 1000))
    clean = draw(st.floats(1.0 / k, 1.0, exclude_min=True))
    return k, clean


# ------------------------------------------------------------------------------------------ normalise
@SETTINGS
@given(k_and_clean(), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20))
def test_normalise_properties(kc, accs):
    k, clean = kc
    chance = 1.0 / k
    assert normalise_accuracy(chance, clean, k) == pytest.approx(chance)
    assert normalise_accuracy(clean, clean, k) == pytest.approx(1.0)
    assert normalise_accuracy(0.0, clean, k) == pytest.approx(chance)
    out = normalise_accuracy(np.array(accs), clean, k)
    assert out.shape == (len(accs),) and out.dtype == np.float64
    assert np.all((out >= chance - 1e-12) & (out <= 1.0 + 1e-12))
    order = np.argsort(accs, kind="stable")
    assert np.all(np.diff(out[order]) >= -1e-12)  # monotone non-decreasing in acc
    assert isinstance(normalise_accuracy(accs[0], clean, k), float)
    assert out[0] == pytest.approx(normalise_accuracy(accs[0], clean, k))


def test_normalise_values_and_bad_inputs():
    assert normalise_accuracy(0.55, 0.9, 10) == pytest.approx(0.1 + 0.9 * 0.45 / 0.8)
    assert normalise_accuracy(0.95, 0.9, 10) == 1.0  # above clean -> 1
    np.testing.assert_allclose(normalise_accuracy(torch.tensor([0.1, 0.9]), 0.9, 10), [0.1, 1.0])
    with pytest.raises(ValueError, match="clean_acc"):
        normalise_accuracy(0.5, 0.1, 10)  # clean at chance: nothing to rescale
    with pytest.raises(ValueError, match="clean_acc"):
        normalise_accuracy(0.5, 1.2, 10)
    with pytest.raises(TypeError, match="clean_acc"):
        normalise_accuracy(0.5, "0.9", 10)
    with pytest.raises(ValueError, match="acc must lie in"):
        normalise_accuracy([0.5, 1.5], 0.9, 10)
    with pytest.raises(ValueError, match="acc must lie in"):
        normalise_accuracy(float("nan"), 0.9, 10)
    with pytest.raises((TypeError, ValueError), match="num_classes"):
        normalise_accuracy(0.5, 0.9, 1)


# ------------------------------------------------------------------------------------------ isotonic
def _synthetic_table(values: np.ndarray, n: np.ndarray, num_bins: int = 5) -> pd.DataFrame:
    grid = op_bin_grid(num_bins)
    grid["accuracy"] = values[: len(grid)]
    grid["n"] = n[: len(grid)]
    return grid[list(ACCURACY_COLUMNS)]


ROWS_5 = len(op_bin_grid(5))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=ROWS_5, max_size=ROWS_5),
       st.lists(st.integers(1, 500), min_size=ROWS_5, max_size=ROWS_5))
def test_isotonic_monotone_per_op_and_sign(values, ns):
    df = _synthetic_table(np.array(values), np.array(ns))
    out = isotonic_smooth(df)
    pd.testing.assert_frame_equal(out[df.columns], df)  # raw columns kept untouched
    for (op, sign), g in out.groupby(["op", "sign"]):
        g = g.sort_values("severity", kind="stable")
        iso = g["accuracy_iso"].to_numpy()
        assert np.all(np.diff(iso) <= 1e-9), (op, sign)
        # PAVA preserves the n-weighted mean of each group
        assert np.average(iso, weights=g["n"]) == pytest.approx(np.average(g["accuracy"], weights=g["n"]))


def test_isotonic_bad_inputs():
    df = _synthetic_table(np.linspace(1, 0, ROWS_5), np.full(ROWS_5, 10))
    with pytest.raises(ValueError, match="accuracy"):
        isotonic_smooth(df.drop(columns=["accuracy"]))
    with pytest.raises(ValueError, match="'n'"):
        isotonic_smooth(df.assign(n=0))
    with pytest.raises(TypeError, match="table"):
        isotonic_smooth(df.to_numpy())


# ------------------------------------------------------------------------------------------ mapping set
def _decreasing_table(num_bins: int = 7, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    grid = op_bin_grid(num_bins)
    acc = 0.95 - 0.8 * grid["severity"].to_numpy() + rng.normal(0, 0.03, len(grid))
    acc[grid["op"].to_numpy() == "Identity"] = 0.95
    acc[grid["op"].to_numpy() == "AutoContrast"] = 0.80  # measured lower than clean
    acc[grid["op"].to_numpy() == "Equalize"] = 0.97  # not lower: hard labels
    grid["accuracy"] = np.clip(acc, 0, 1)
    grid["n"] = 200
    return grid[list(ACCURACY_COLUMNS)]


def test_proxy_mapping_set_synthetic():
    k = 10
    table = _decreasing_table()
    conf = proxy_confidence_table(table, k)
    assert {"accuracy", "accuracy_iso", "confidence_raw", "confidence"} <= set(conf.columns)
    assert clean_accuracy(table) == pytest.approx(0.95)
    ms = proxy_mapping_set(table, k)
    assert isinstance(ms, MappingSet) and ms.name == "proxy_accuracy"
    assert "Identity" not in ms.mappings and "Equalize" not in ms.mappings
    auto = ms.mappings["AutoContrast"]
    expected = normalise_accuracy(0.80, 0.95, k)
    assert auto.severities == (0.0, 1.0) and auto.confidences == pytest.approx((expected, expected))
    assert ms.confidence("AutoContrast", 0.0, 0.0) == pytest.approx(expected)
    for op in SIGNED_OPS:
        assert {op + "+", op + "-"} <= set(ms.mappings)
    for key, t in ms.mappings.items():
        assert t.is_monotone, key
        assert min(t.confidences) >= 1 / k - 1e-12 and max(t.confidences) <= 1.0
    # the derived columns of a previous run are recomputed, not trusted
    assert proxy_mapping_set(conf.assign(confidence=0.5), k) == ms
    assert from_dict(json.loads(json.dumps(ms.to_dict()))) == ms


def test_proxy_mapping_set_bad_inputs():
    table = _decreasing_table()
    with pytest.raises(ValueError, match="Identity"):
        proxy_mapping_set(table[table["op"] != "Identity"], 10)
    with pytest.raises(ValueError, match="clean_acc"):
        proxy_mapping_set(table.assign(accuracy=0.05), 10)
    with pytest.raises(ValueError, match="accuracy"):
        proxy_mapping_set(table.drop(columns=["accuracy"]), 10)
    bad = table.copy()
    bad.loc[bad["op"] == "Rotate", "sign"] = ""
    with pytest.raises(ValueError, match="sign"):
        proxy_mapping_set(bad, 10)


def test_save_load_table(tmp_path):
    table = proxy_confidence_table(_decreasing_table(), 10)
    path = save_proxy_table(table, tmp_path / "sub" / "proxy.csv")
    assert path.is_file() and not list(path.parent.glob(".*.tmp"))
    back = load_proxy_table(path)
    assert (back["sign"] == table["sign"]).all()  # "" for unsigned ops survives the CSV
    pd.testing.assert_frame_equal(back, table, check_exact=False, rtol=1e-12)
    with pytest.raises(FileNotFoundError, match="proxy table"):
        load_proxy_table(tmp_path / "missing.csv")
    with pytest.raises(TypeError, match="df"):
        save_proxy_table(table.to_dict(), tmp_path / "x.csv")


# ------------------------------------------------------------------------------------------ end to end
TINY = {"device": "cpu", "batch_size": 10, "lr": 0.1, "model_kwargs": {"widths": [8, 16, 16]}}


def test_proxy_config_rejects_trivial_augment():
    cfg = proxy_config("mnist5k", epochs=1)
    assert [s.kind for s in cfg.augment] == ["flip", "crop"] and cfg.corruptions is False
    with pytest.raises(ValueError, match="trivial_augment"):
        proxy_config("mnist5k", epochs=1, overrides={"augment": ["flip", {"kind": "trivial_augment"}]})
    with pytest.raises(ValueError, match="epochs"):
        train_proxy("mnist5k", run_dir="unused", epochs=0)


def test_proxy_pipeline_end_to_end(tmp_path):
    k = 10
    run = train_proxy("mnist5k", run_dir=tmp_path / "proxy", epochs=1, n_per_class=10, seed=0,
                      progress=False, overrides=TINY)
    assert (run / "model.pt").is_file()
    mtime = (run / "model.pt").stat().st_mtime_ns
    # a complete run with the same config is reused, not retrained
    assert train_proxy("mnist5k", run_dir=run, epochs=1, n_per_class=10, seed=0, progress=False,
                       overrides=TINY) == run
    assert (run / "model.pt").stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="different training config"):
        train_proxy("mnist5k", run_dir=run, epochs=2, n_per_class=10, progress=False, overrides=TINY)

    model = load_proxy(run, "cpu")
    _train, test = load_dataset("mnist5k")
    images, labels = test.subset(5, seed=0).to_tensors()  # 50 held-out test images
    acc = measure_proxy_accuracy(model, images, labels, num_bins=3, batch_size=500)
    assert tuple(acc.columns) == ACCURACY_COLUMNS
    assert len(acc) == len(op_bin_grid(3)) and (acc["n"] == 50).all()
    assert acc["accuracy"].between(0, 1).all()
    assert not model.training
    # bin 0 of every signed op is the clean image: same accuracy as Identity
    clean = clean_accuracy(acc)
    bin0 = acc[(acc["bin"] == 0) & acc["op"].isin(SIGNED_OPS)]
    np.testing.assert_allclose(bin0["accuracy"], clean)
    if clean <= 1 / k:
        # A 1-epoch proxy may sit at chance (then normalisation is undefined and refuses); keep the
        # measured op accuracies but put the clean reference at 1 to exercise the rest of the path.
        with pytest.raises(ValueError, match="clean_acc"):
            proxy_mapping_set(acc, k)
        acc.loc[acc["op"] == "Identity", "accuracy"] = 1.0
    ms = proxy_mapping_set(acc, k)
    rebuilt = from_dict(ms.to_dict())
    assert rebuilt == ms
    ops = torch.tensor([0, 1, 5, 6, 10, 11, 12, 13] * 4)
    mags = torch.tensor([0.0, 0.5, -90.0, -0.5, 4.0, 0.5, 0.0, 0.0] * 4)
    sev = torch.linspace(0, 1, len(ops))
    c = rebuilt(ops, mags, sev)
    assert bool(((c >= 1 / k - 1e-7) & (c <= 1)).all())
    for t in ms.mappings.values():
        assert min(t.confidences) >= 1 / k - 1e-12 and max(t.confidences) <= 1
    save_proxy_table(proxy_confidence_table(acc, k), tmp_path / "proxy.csv")
    assert proxy_mapping_set(load_proxy_table(tmp_path / "proxy.csv"), k) == ms


def test_measure_bad_inputs():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    x = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    y = torch.zeros(4, dtype=torch.int64)
    with pytest.raises(TypeError, match="test_images_uint8"):
        measure_proxy_accuracy(model, x.float(), y)
    with pytest.raises(ValueError, match="labels"):
        measure_proxy_accuracy(model, x, y[:3])
    with pytest.raises(TypeError, match="labels"):
        measure_proxy_accuracy(model, x, y.float())
    with pytest.raises(TypeError, match="model"):
        measure_proxy_accuracy(lambda t: t, x, y)
    with pytest.raises(ValueError, match="num_bins"):
        measure_proxy_accuracy(model, x, y, num_bins=1)
    with pytest.raises(ValueError, match="precision"):
        measure_proxy_accuracy(model, x, y, precision="fp16")
    out = measure_proxy_accuracy(model, x, y, num_bins=2, batch_size=7)
    assert len(out) == len(op_bin_grid(2)) and (out["n"] == 4).all()
