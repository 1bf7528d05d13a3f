"""Evaluation metrics (harness/metrics.py; METHOD.md §4.5, §4.6; shared/data/README.md §1.3)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.metrics import (
    ALL_CORRUPTIONS,
    BENCHMARK_CORRUPTIONS,
    CORRUPTION_FAMILIES,
    DEFAULT_CIFAR10H_PATH,
    EXTRA_CORRUPTIONS,
    SEVERITIES,
    accuracy,
    brier,
    classification_metrics,
    expected_calibration_error,
    human_agreement,
    load_cifar10h,
    nll,
    reliability_diagram_data,
    softmax_probs,
    summarize_corruptions,
)

SETTINGS = settings(max_examples=80, deadline=None)


@st.composite
def probs_and_labels(draw, max_k: int = 12, max_n: int = 40, scale: float = 20.0):
    k = draw(st.integers(2, max_k))
    n = draw(st.integers(1, max_n))
    logits = draw(
        st.lists(st.floats(-scale, scale, allow_nan=False), min_size=n * k, max_size=n * k)
    )
    labels = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    probs = softmax_probs(np.array(logits, dtype=np.float64).reshape(n, k))
    return probs, np.array(labels, dtype=np.int64)


def _naive_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    """Loop reference: bins (lo, hi] on linspace edges, first bin closed at 0."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    total = 0.0
    for m in range(n_bins):
        lo, hi = edges[m], edges[m + 1]
        in_bin = (conf > lo) & (conf <= hi) if m > 0 else (conf >= lo) & (conf <= hi)
        if in_bin.any():
            total += in_bin.sum() / len(conf) * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return total


# ---------------------------------------------------------------- softmax_probs
def test_softmax_probs_numpy_and_torch():
    z = np.array([[0.0, 1.0, 2.0], [1000.0, 0.0, -1000.0]])
    p = softmax_probs(z)
    assert isinstance(p, np.ndarray) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0], np.exp([0, 1, 2]) / np.exp([0, 1, 2]).sum())
    assert p[1, 0] == 1.0
    t = softmax_probs(torch.tensor(z, dtype=torch.float32))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
    np.testing.assert_allclose(t.numpy(), p, atol=1e-6)
    with pytest.raises(ValueError, match="logits"):
        softmax_probs(np.zeros(3))
    with pytest.raises(ValueError, match="logits"):
        softmax_probs(torch.tensor([[0.0, float("nan")]]))


# ---------------------------------------------------------------- accuracy / NLL / Brier properties
@SETTINGS
@given(probs_and_labels())
def test_accuracy_matches_argmax(data):
    p, y = data
    expected = (torch.from_numpy(p).argmax(dim=1) == torch.from_numpy(y)).double().mean().item()
    assert accuracy(p, y) == pytest.approx(expected, abs=1e-15)
    p32 = torch.from_numpy(p).float()  # the cast can create ties; both sides then pick the lowest index
    expected32 = (p32.argmax(dim=1) == torch.from_numpy(y)).double().mean().item()
    assert accuracy(p32, torch.from_numpy(y)) == pytest.approx(expected32, abs=1e-15)


@SETTINGS
@given(probs_and_labels())
def test_nll_nonnegative_and_equals_cross_entropy_on_log_probs(data):
    p, y = data
    value = nll(p, y, eps=0.0)
    assert value >= 0.0
    assert nll(p, y) <= value + 1e-15  # the default clamp at 1e-12 can only lower it
    log_p = torch.log(torch.from_numpy(p))
    ref = F.cross_entropy(log_p, torch.from_numpy(y)).item()
    assert value == pytest.approx(ref, rel=1e-9, abs=1e-9)
    assert value == pytest.approx(F.nll_loss(log_p, torch.from_numpy(y)).item(), rel=1e-12, abs=1e-12)


def test_nll_eps_clamp():
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    y = np.array([1, 0])
    assert nll(p, y) == pytest.approx((-math.log(1e-12) + math.log(2)) / 2)
    assert nll(p, y, eps=0.0) == math.inf
    with pytest.raises(ValueError, match="eps"):
        nll(p, y, eps=-1.0)


@SETTINGS
@given(probs_and_labels())
def test_brier_range_and_definition(data):
    p, y = data
    value = brier(p, y)
    assert 0.0 <= value <= 2.0
    onehot = np.eye(p.shape[1])[y]
    assert value == pytest.approx(np.mean(np.sum((p - onehot) ** 2, axis=1)), abs=1e-12)


def test_brier_extremes():
    y = np.array([0, 1])
    assert brier(np.eye(2)[y], y) == 0.0
    assert brier(np.eye(2)[1 - y], y) == 2.0
    assert brier(np.full((2, 4), 0.25), y) == pytest.approx(0.75**2 + 3 * 0.25**2)


# ---------------------------------------------------------------- ECE
@SETTINGS
@given(probs_and_labels(), st.integers(1, 30))
def test_ece_in_unit_interval_and_matches_loop_reference(data, n_bins):
    p, y = data
    value = expected_calibration_error(p, y, n_bins=n_bins)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(_naive_ece(p, y, n_bins), abs=1e-12)


@SETTINGS
@given(
    st.integers(2, 10),
    st.lists(st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 4)), min_size=1, max_size=8),
    st.integers(1, 20),
)
def test_ece_zero_for_perfectly_calibrated_construction(k, groups, n_bins):
    """Groups of b*r samples with confidence a/b (> 1/K), a*r of them correct: calibrated at every level."""
    rows, labels = [], []
    for a, b, r in groups:
        if b < a:
            a, b = b, a
        c = a / b
        if c <= 1.0 / k:
            continue
        for j in range(b * r):
            pred = j % k
            row = np.full(k, (1.0 - c) / (k - 1))
            row[pred] = c
            rows.append(row)
            labels.append(pred if j < a * r else (pred + 1) % k)
    if not rows:
        return
    p, y = np.array(rows), np.array(labels)
    assert expected_calibration_error(p, y, n_bins=n_bins) == pytest.approx(0.0, abs=1e-12)


@SETTINGS
@given(st.integers(2, 20), st.lists(st.integers(0, 19), min_size=1, max_size=50), st.integers(1, 30))
def test_ece_zero_for_one_hot_correct(k, raw_labels, n_bins):
    y = np.array([v % k for v in raw_labels])
    p = np.eye(k)[y]
    assert expected_calibration_error(p, y, n_bins=n_bins) == 0.0
    assert accuracy(p, y) == 1.0 and brier(p, y) == 0.0 and nll(p, y) == 0.0


def test_ece_one_hot_wrong_is_one():
    y = np.array([0, 1, 2])
    assert expected_calibration_error(np.eye(3)[(y + 1) % 3], y) == pytest.approx(1.0)


def test_ece_hand_computed_example():
    # binary, 5 bins of width 0.2; confidences and correctness:
    #  0.55 ok           -> bin (0.4, 0.6]: |1 - 0.55|        = 0.45
    #  0.65 wrong, 0.70 ok -> bin (0.6, 0.8]: |1 - 1.35|     = 0.35
    #  0.90 ok, 0.95 wrong, 1.0 ok -> bin (0.8, 1.0]: |2 - 2.85| = 0.85
    # ECE = (0.45 + 0.35 + 0.85) / 6 = 0.275
    conf = np.array([0.55, 0.65, 0.70, 0.90, 0.95, 1.0])
    correct = np.array([1, 0, 1, 1, 0, 1], dtype=bool)
    p = np.stack([conf, 1.0 - conf], axis=1)
    y = np.where(correct, 0, 1)
    assert expected_calibration_error(p, y, n_bins=5) == pytest.approx(0.275, abs=1e-12)
    d = reliability_diagram_data(p, y, n_bins=5)
    np.testing.assert_array_equal(d["count"], [0, 0, 1, 2, 3])
    np.testing.assert_allclose(d["confidence"][2:], [0.55, 0.675, 0.95])
    np.testing.assert_allclose(d["accuracy"][2:], [1.0, 0.5, 2 / 3])
    assert np.isnan(d["confidence"][:2]).all() and np.isnan(d["accuracy"][:2]).all()
    np.testing.assert_allclose(d["bin_lower"], [0.0, 0.2, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(d["bin_upper"], [0.2, 0.4, 0.6, 0.8, 1.0])
    # 15 bins (default): 0.55 -> (8/15, 9/15]; 0.65, 0.70 -> (9/15, 10/15] and (10/15, 11/15]; ...
    d15 = reliability_diagram_data(p, y)
    assert d15["count"].sum() == 6 and len(d15["count"]) == 15
    assert d15["count"][14] == 2  # 0.95 and 1.0 in (14/15, 1]
    assert d15["count"][13] == 1  # 0.90 in (13/15, 14/15]


def test_ece_bins_are_right_closed():
    # confidence exactly 0.4 with 5 bins lands in (0.2, 0.4], not (0.4, 0.6]; confidence 1 in the last bin
    p = np.array([[0.4, 0.3, 0.3], [1.0, 0.0, 0.0]])
    y = np.array([0, 0])
    d = reliability_diagram_data(p, y, n_bins=5)
    np.testing.assert_array_equal(d["count"], [0, 1, 0, 0, 1])
    assert expected_calibration_error(p, y, n_bins=5) == pytest.approx(0.6 / 2)
    # one bin: ECE = |accuracy - mean confidence|
    assert expected_calibration_error(p, y, n_bins=1) == pytest.approx(abs(1.0 - 0.7))


def test_classification_metrics_dict_and_torch_input():
    torch.manual_seed(0)
    logits = torch.randn(50, 4)
    y = torch.randint(0, 4, (50,))
    p = softmax_probs(logits)
    out = classification_metrics(p, y)
    assert set(out) == {"accuracy", "nll", "ece", "brier"}
    assert all(isinstance(v, float) for v in out.values())
    assert out["nll"] == pytest.approx(F.cross_entropy(logits.double(), y).item(), rel=1e-9)
    assert out["ece"] == pytest.approx(expected_calibration_error(p.numpy(), y.numpy()))
    assert out["accuracy"] == pytest.approx((logits.argmax(1) == y).double().mean().item())
    # float32 probabilities are accepted too
    assert classification_metrics(p.float(), y)["brier"] == pytest.approx(out["brier"], abs=1e-6)


# ---------------------------------------------------------------- validation
def test_bad_inputs_name_the_argument():
    p = np.full((3, 4), 0.25)
    y = np.array([0, 1, 3])
    with pytest.raises(ValueError, match="probs rows must sum to 1"):
        accuracy(np.full((3, 4), 0.3), y)
    with pytest.raises(ValueError, match="probs.*logits"):
        nll(np.array([[2.0, -1.0], [0.0, 1.0]]), np.array([0, 1]))
    with pytest.raises(ValueError, match="labels must lie in"):
        brier(p, np.array([0, 1, 4]))
    with pytest.raises(ValueError, match="labels must lie in"):
        brier(p, np.array([0, -1, 2]))
    with pytest.raises(ValueError, match="labels has 2 entries"):
        expected_calibration_error(p, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"probs must have shape \[N, K\]"):
        accuracy(np.full(4, 0.25), np.array([0]))
    with pytest.raises(ValueError, match=r"labels must have shape \[N\]"):
        accuracy(p, y.reshape(3, 1))
    with pytest.raises(TypeError, match="labels must be an integer"):
        accuracy(p, y.astype(float))
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(p, y, n_bins=0)
    with pytest.raises(ValueError, match="n_bins"):
        reliability_diagram_data(p, y, n_bins=-3)
    with pytest.raises(TypeError, match="n_bins"):
        expected_calibration_error(p, y, n_bins=2.5)
    with pytest.raises(ValueError, match="probs must be finite"):
        accuracy(np.array([[np.nan, 1.0]]), np.array([0]))
    with pytest.raises(ValueError, match="at least one row"):
        accuracy(np.zeros((0, 3)), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match="human_probs rows must sum to 1"):
        human_agreement(p, np.full((3, 4), 0.5))
    with pytest.raises(ValueError, match="same shape"):
        human_agreement(p, np.full((3, 2), 0.5))


# ---------------------------------------------------------------- human agreement
@st.composite
def two_distributions(draw):
    k = draw(st.integers(2, 10))
    n = draw(st.integers(1, 20))
    a = draw(st.lists(st.floats(-15, 15, allow_nan=False), min_size=n * k, max_size=n * k))
    b = draw(st.lists(st.floats(-15, 15, allow_nan=False), min_size=n * k, max_size=n * k))
    zero_mask = draw(st.lists(st.booleans(), min_size=n * k, max_size=n * k))
    h = softmax_probs(np.array(b).reshape(n, k))
    # put exact zeros into h (human distributions are sparse), keeping each row's max entry
    mask = np.array(zero_mask).reshape(n, k)
    mask[np.arange(n), h.argmax(axis=1)] = False
    h = np.where(mask, 0.0, h)
    h /= h.sum(axis=1, keepdims=True)
    return softmax_probs(np.array(a).reshape(n, k)), h


@SETTINGS
@given(two_distributions())
def test_human_cross_entropy_at_least_entropy(data):
    p, h = data
    out = human_agreement(p, h)
    assert out["cross_entropy"] >= out["human_entropy"] - 1e-12
    assert out["kl"] >= 0.0
    assert out["cross_entropy"] == pytest.approx(out["human_entropy"] + out["kl"], abs=1e-9)
    assert 0.0 <= out["majority_accuracy"] <= 1.0
    # the model equal to the humans: CE == H(h), KL == 0, majority accuracy 1
    same = human_agreement(h, h)
    assert same["cross_entropy"] == pytest.approx(same["human_entropy"], abs=1e-12)
    assert same["kl"] == pytest.approx(0.0, abs=1e-12)
    assert same["majority_accuracy"] == 1.0


def test_human_agreement_hand_example():
    h = np.array([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])
    p = np.array([[0.25, 0.5, 0.25], [0.2, 0.6, 0.2]])
    out = human_agreement(p, h)
    ce = (-(0.5 * math.log(0.25) + 0.5 * math.log(0.5)) - math.log(0.6)) / 2
    ent = math.log(2) / 2
    assert out["cross_entropy"] == pytest.approx(ce)
    assert out["human_entropy"] == pytest.approx(ent)
    assert out["kl"] == pytest.approx(ce - ent)
    assert out["majority_accuracy"] == 1.0  # row 0: tie 0/1, prediction 1 is a majority class
    out2 = human_agreement(np.array([[0.1, 0.1, 0.8], [0.2, 0.6, 0.2]]), h)
    assert out2["majority_accuracy"] == 0.5


def test_load_cifar10h_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="CIFAR-10H"):
        load_cifar10h(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="order"):
        load_cifar10h(tmp_path / "nope.npz", order="sorted")


@pytest.mark.skipif(
    not DEFAULT_CIFAR10H_PATH.is_file(), reason=f"CIFAR-10H not available at {DEFAULT_CIFAR10H_PATH}"
)
def test_load_cifar10h_real_file():
    h = load_cifar10h()
    assert h.shape == (10000, 10) and h.dtype == np.float64
    np.testing.assert_allclose(h.sum(axis=1), 1.0, atol=1e-12)
    orig = load_cifar10h(order="original")
    with np.load(DEFAULT_CIFAR10H_PATH) as z:
        idx = z["test_npz_orig_index"]
        labels_test_order = z["orig_labels"][idx]
    np.testing.assert_array_equal(h, orig[idx])
    # humans agree with the CIFAR-10 label on 99.21 % of the images (shared/data/README.md §1.3)
    assert accuracy(h, labels_test_order) == pytest.approx(0.9921, abs=1e-4)
    self_agreement = human_agreement(h, h)
    assert self_agreement["kl"] == pytest.approx(0.0, abs=1e-12)
    assert self_agreement["majority_accuracy"] == 1.0
    uniform = human_agreement(np.full((10000, 10), 0.1), h)
    assert uniform["cross_entropy"] == pytest.approx(math.log(10))


# ---------------------------------------------------------------- corruptions
def test_corruption_constants_come_from_corruptions_package():
    import harness.corruptions as corruptions

    assert BENCHMARK_CORRUPTIONS is corruptions.BENCHMARK_CORRUPTIONS
    assert EXTRA_CORRUPTIONS is corruptions.EXTRA_CORRUPTIONS
    assert ALL_CORRUPTIONS == tuple(corruptions.CORRUPTIONS)
    for fam, members in CORRUPTION_FAMILIES.items():
        assert all(corruptions.FAMILIES[c] == fam for c in members)


def test_corruption_constants():
    assert len(BENCHMARK_CORRUPTIONS) == 15 and len(EXTRA_CORRUPTIONS) == 4
    assert EXTRA_CORRUPTIONS == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    assert ALL_CORRUPTIONS == BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS
    assert len(set(ALL_CORRUPTIONS)) == 19
    members = [c for fam in CORRUPTION_FAMILIES.values() for c in fam]
    assert sorted(members) == sorted(BENCHMARK_CORRUPTIONS)
    assert set(CORRUPTION_FAMILIES) == {"noise", "blur", "weather", "digital"}
    assert CORRUPTION_FAMILIES["noise"] == ("gaussian_noise", "shot_noise", "impulse_noise")
    assert CORRUPTION_FAMILIES["digital"] == ("contrast", "elastic_transform", "pixelate", "jpeg_compression")
    assert SEVERITIES == (1, 2, 3, 4, 5)


def _table(corruptions=ALL_CORRUPTIONS, severities=(1, 2, 3, 4, 5)):
    # accuracy(c_i, s) = 0.5 + 0.01 i - 0.02 s  ->  per-corruption mean 0.44 + 0.01 i
    rows = [
        {"corruption": c, "severity": s, "seed": 0,
         "accuracy": 0.5 + 0.01 * ALL_CORRUPTIONS.index(c) - 0.02 * s}
        for c in corruptions
        for s in severities
    ]
    return pd.DataFrame(rows)


def test_summarize_corruptions_hand_table():
    out = summarize_corruptions(_table().sample(frac=1.0, random_state=0))  # row order must not matter
    assert out["per_corruption"]["gaussian_noise"] == pytest.approx(0.44, abs=1e-12)
    assert out["per_corruption"]["saturate"] == pytest.approx(0.62, abs=1e-12)
    assert list(out["per_corruption"]) == list(ALL_CORRUPTIONS)
    assert out["mean15"] == pytest.approx(0.51, abs=1e-12)  # 0.44 + 0.01 * mean(0..14)
    assert out["mean19"] == pytest.approx(0.53, abs=1e-12)  # 0.44 + 0.01 * mean(0..18)
    assert out["families"] == pytest.approx(
        {"noise": 0.45, "blur": 0.485, "weather": 0.525, "digital": 0.565}, abs=1e-12
    )
    assert out["per_severity"] == pytest.approx({s: 0.57 - 0.02 * s for s in range(1, 6)}, abs=1e-12)
    assert out["severities"] == (1, 2, 3, 4, 5)


def test_summarize_corruptions_severity_subsets():
    t = _table(severities=(1, 5))
    with pytest.raises(ValueError, match="severities"):
        summarize_corruptions(t, severities=SEVERITIES)  # demand the full benchmark
    out = summarize_corruptions(t)  # default: inferred, reported
    assert out["severities"] == (1, 5)
    assert out["mean19"] == pytest.approx(0.53, abs=1e-12)  # mean of s=1 and s=5 equals mean over 1..5 here
    assert summarize_corruptions(t, severities=(5, 1))["mean15"] == pytest.approx(0.51, abs=1e-12)
    uneven = t[~((t["corruption"] == "snow") & (t["severity"] == 5))]
    with pytest.raises(ValueError, match="same severities.*snow"):
        summarize_corruptions(uneven, severities=None)


def test_summarize_corruptions_unequal_severity_values_not_pooled():
    # a per-corruption mean is the mean over its 5 severities; 19-mean is the unweighted mean of the 19
    t = _table()
    t.loc[t["corruption"] == "spatter", "accuracy"] = [0.0, 0.0, 0.0, 0.0, 1.0]
    out = summarize_corruptions(t)
    assert out["per_corruption"]["spatter"] == pytest.approx(0.2)
    expected_all = (sum(0.44 + 0.01 * i for i in range(19)) - (0.44 + 0.17) + 0.2) / 19
    assert out["mean19"] == pytest.approx(expected_all, abs=1e-12)
    assert out["mean15"] == pytest.approx(0.51, abs=1e-12)


def test_summarize_corruptions_missing_raises_naming_them():
    t = _table(corruptions=BENCHMARK_CORRUPTIONS)
    with pytest.raises(ValueError, match=r"'mean19'.*speckle_noise.*saturate"):
        summarize_corruptions(t)
    out = summarize_corruptions(t, means=("mean15",))
    assert out["mean15"] == pytest.approx(0.51) and "mean19" not in out
    t14 = _table(corruptions=[c for c in BENCHMARK_CORRUPTIONS if c != "fog"])
    with pytest.raises(ValueError, match=r"'mean15'.*\['fog'\]"):
        summarize_corruptions(t14, means="mean15")


def test_summarize_corruptions_table_errors():
    t = _table()
    for sev in (None, SEVERITIES):  # uneven sets are always an error; a missing level under SEVERITIES too
        with pytest.raises(ValueError, match="severities"):
            summarize_corruptions(t[~((t["corruption"] == "fog") & (t["severity"] == 3))], severities=sev)
    with pytest.raises(ValueError, match="duplicate"):
        summarize_corruptions(pd.concat([t, t.iloc[:1]]))
    bad = t.copy()
    bad["accuracy"] *= 100
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        summarize_corruptions(bad)
    bad = t.copy()
    bad.loc[0, "corruption"] = "gausian_noise"
    with pytest.raises(ValueError, match="unknown corruption"):
        summarize_corruptions(bad)
    with pytest.raises(ValueError, match="accuracy"):
        summarize_corruptions(t.drop(columns="accuracy"))
    bad = t.copy()
    bad.loc[3, "accuracy"] = np.nan
    with pytest.raises(ValueError, match="finite"):
        summarize_corruptions(bad)
    with pytest.raises(ValueError, match="means"):
        summarize_corruptions(t, means=("mce",))
    with pytest.raises(ValueError, match="empty"):
        summarize_corruptions(t.iloc[:0])
    with pytest.raises(TypeError, match="DataFrame"):
        summarize_corruptions(t.to_dict())


@SETTINGS
@given(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=19 * 5, max_size=19 * 5))
def test_summarize_corruptions_matches_direct_means(values):
    acc = np.array(values).reshape(19, 5)
    t = pd.DataFrame(
        [{"corruption": c, "severity": s + 1, "accuracy": acc[i, s]} for i, c in enumerate(ALL_CORRUPTIONS)
         for s in range(5)]
    )
    out = summarize_corruptions(t)
    assert out["mean19"] == pytest.approx(acc.mean(), abs=1e-12)
    assert out["mean15"] == pytest.approx(acc[:15].mean(), abs=1e-12)
    assert 0.0 <= out["mean15"] <= 1.0
