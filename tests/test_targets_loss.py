"""Soft targets, confidence combination and the soft cross-entropy (METHOD.md §1)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.loss import (
    label_smoothing_targets_other,
    label_smoothing_targets_uniform,
    soft_cross_entropy,
)
from harness.targets import combine_confidences, soft_targets

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def labels_and_confidences(draw, min_conf: float = 0.0):
    k = draw(st.integers(2, 120))
    n = draw(st.integers(1, 40))
    labels = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    conf = draw(
        st.lists(st.floats(min_conf, 1.0, allow_nan=False), min_size=n, max_size=n)
    )
    return k, torch.tensor(labels), torch.tensor(conf, dtype=torch.float64)


# ---------------------------------------------------------------- soft_targets
@SETTINGS
@given(labels_and_confidences())
def test_soft_target_rows_are_distributions_with_c_on_true_class(data):
    k, labels, conf = data
    t = soft_targets(labels, conf, k)
    assert t.shape == (labels.numel(), k)
    assert t.dtype == torch.float64
    assert torch.all(t >= 0)
    torch.testing.assert_close(t.sum(1), torch.ones(labels.numel(), dtype=torch.float64))
    torch.testing.assert_close(t[torch.arange(labels.numel()), labels], conf)
    # every wrong class gets (1 - c) / (K - 1)
    mask = torch.ones_like(t, dtype=torch.bool)
    mask[torch.arange(labels.numel()), labels] = False
    expected_off = ((1 - conf) / (k - 1)).unsqueeze(1).expand_as(t)
    torch.testing.assert_close(t[mask], expected_off[mask])


@SETTINGS
@given(st.data())
def test_argmax_stays_on_true_class_above_chance(data):
    k = data.draw(st.integers(2, 100))
    n = data.draw(st.integers(1, 30))
    labels = torch.tensor(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    # strictly above chance (leave a margin so that float32 rounding cannot tie)
    conf = torch.tensor(
        data.draw(st.lists(st.floats(1.0 / k + 1e-4, 1.0), min_size=n, max_size=n)), dtype=torch.float32
    )
    t = soft_targets(labels, conf, k)
    assert torch.equal(t.argmax(1), labels)


def test_soft_targets_worked_example_cifar10():
    t = soft_targets(torch.tensor([3]), torch.tensor([0.8]), 10)
    assert t[0, 3].item() == pytest.approx(0.8)
    assert t[0, 0].item() == pytest.approx(0.2 / 9)


def test_soft_targets_scalar_confidence_and_one_hot():
    labels = torch.tensor([0, 2, 1])
    torch.testing.assert_close(soft_targets(labels, 1.0, 3), F.one_hot(labels, 3).float())


@pytest.mark.parametrize(
    "labels, conf, k, exc, words",
    [
        (torch.tensor([0, 5]), torch.tensor([0.5, 0.5]), 5, ValueError, ["labels", "[0, 4]"]),
        (torch.tensor([-1]), torch.tensor([0.5]), 5, ValueError, ["labels"]),
        (torch.tensor([0]), torch.tensor([0.5]), 1, ValueError, ["num_classes", ">= 2"]),
        (torch.tensor([0]), torch.tensor([0.5]), 2.0, TypeError, ["num_classes"]),
        (torch.tensor([0.0]), torch.tensor([0.5]), 3, TypeError, ["labels", "integer"]),
        (torch.tensor([[0]]), torch.tensor([0.5]), 3, ValueError, ["labels", "[N]"]),
        (torch.tensor([0]), torch.tensor([1.5]), 3, ValueError, ["confidence", "[0, 1]"]),
        (torch.tensor([0]), torch.tensor([math.nan]), 3, ValueError, ["confidence"]),
        (torch.tensor([0, 1]), torch.tensor([0.5]), 3, ValueError, ["confidence", "shape"]),
    ],
)
def test_soft_targets_bad_input(labels, conf, k, exc, words):
    with pytest.raises(exc) as info:
        soft_targets(labels, conf, k)
    for w in words:
        assert w in str(info.value)


# ---------------------------------------------------------- combine_confidences
@st.composite
def stage_confidences(draw):
    k = draw(st.integers(2, 200))
    s = draw(st.integers(1, 5))
    n = draw(st.integers(1, 20))
    vals = draw(st.lists(st.floats(0.0, 1.0), min_size=s * n, max_size=s * n))
    return k, torch.tensor(vals, dtype=torch.float64).reshape(s, n)


@SETTINGS
@given(stage_confidences())
def test_product_rule_is_floored_product(data):
    k, c = data
    out = combine_confidences(list(c), k, rule="product")
    assert torch.all(out >= 1.0 / k)
    assert torch.all(out <= 1.0)
    smallest = c.min(0).values
    raw = c.prod(0)
    # <= the smallest input, unless the floor lifted it
    assert torch.all((out <= smallest + 1e-12) | (out == 1.0 / k))
    torch.testing.assert_close(out, torch.maximum(raw, torch.full_like(raw, 1.0 / k)))


@SETTINGS
@given(stage_confidences())
def test_min_rule_is_floored_min(data):
    k, c = data
    out = combine_confidences(c, k, rule="min")
    torch.testing.assert_close(out, c.min(0).values.clamp(min=1.0 / k))


def test_product_floor_fixes_reference_pitfall():
    # METHOD §1.4: c_TA = 0.1, c_RC = 0.5 on CIFAR-10 gives 0.05 < 1/K in the reference code.
    out = combine_confidences([torch.tensor([0.1]), torch.tensor([0.5])], 10)
    assert out.item() == pytest.approx(0.1)
    t = soft_targets(torch.tensor([0]), out, 10)
    assert t[0, 0] >= t[0, 1:].max() - 1e-7


def test_stage_that_did_not_fire_is_neutral():
    c = torch.tensor([0.3, 0.9, 0.7])
    torch.testing.assert_close(combine_confidences([c, torch.ones(3)], 2), c.clamp(min=0.5))


@pytest.mark.parametrize(
    "args, exc, word",
    [
        (([torch.tensor([0.5])], 10, "sum"), ValueError, "rule"),
        (([], 10), ValueError, "confidences"),
        (([torch.tensor([0.5]), torch.tensor([0.5, 0.2])], 10), ValueError, "shape"),
        (([torch.tensor([1.2])], 10), ValueError, "[0, 1]"),
        (([torch.tensor([0.5])], 1), ValueError, "num_classes"),
    ],
)
def test_combine_bad_input(args, exc, word):
    with pytest.raises(exc, match=None) as info:
        combine_confidences(*args)
    assert word in str(info.value)


# ------------------------------------------------------------- soft_cross_entropy
@SETTINGS
@given(st.integers(2, 30), st.integers(1, 16), st.integers(0, 2**31 - 1))
def test_soft_ce_equals_cross_entropy_for_one_hot(k, n, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, k, (n,), generator=g)
    got = soft_cross_entropy(logits, F.one_hot(labels, k).double())
    torch.testing.assert_close(got, F.cross_entropy(logits.float(), labels), rtol=1e-5, atol=1e-6)


@SETTINGS
@given(st.integers(2, 30), st.integers(1, 16), st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_uniform_smoothing_matches_torch_label_smoothing(k, n, eps, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g)
    labels = torch.randint(0, k, (n,), generator=g)
    got = soft_cross_entropy(logits, label_smoothing_targets_uniform(labels, eps, k))
    ref = F.cross_entropy(logits, labels, label_smoothing=eps)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(st.integers(3, 30), st.floats(0.01, 0.99))
def test_other_smoothing_differs_from_uniform_convention(k, eps):
    labels = torch.tensor([0])
    other = label_smoothing_targets_other(labels, eps, k)
    uniform = label_smoothing_targets_uniform(labels, eps, k)
    # float32 targets: compare to a float32-level tolerance
    assert other[0, 0].item() == pytest.approx(1 - eps, rel=1e-5, abs=1e-7)
    assert other[0, 1].item() == pytest.approx(eps / (k - 1), rel=1e-5, abs=1e-7)
    assert uniform[0, 1].item() == pytest.approx(eps / k, rel=1e-5, abs=1e-7)
    assert other[0, 0] < uniform[0, 0]


@SETTINGS
@given(st.integers(2, 20), st.integers(1, 16), st.integers(0, 2**31 - 1))
def test_weighted_loss_with_and_without_renormalisation(k, n, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g, dtype=torch.float64)
    labels = torch.randint(0, k, (n,), generator=g)
    c = torch.rand(n, generator=g, dtype=torch.float64) * 0.9 + 0.1
    t = soft_targets(labels, c, k)
    per = -(t * torch.log_softmax(logits, 1)).sum(1)
    torch.testing.assert_close(
        soft_cross_entropy(logits, t, weights=c).double(), (c * per).mean(), rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(
        soft_cross_entropy(logits, t, weights=c, normalize_weights=True).double(),
        (c * per).sum() / c.sum(),
        rtol=1e-5,
        atol=1e-6,
    )
    # renormalised loss with constant weights equals the unweighted loss
    torch.testing.assert_close(
        soft_cross_entropy(logits, t, weights=torch.full((n,), 0.3, dtype=torch.float64), normalize_weights=True),
        soft_cross_entropy(logits, t),
    )


def test_soft_ce_gradient_equals_kl_gradient():
    torch.manual_seed(0)
    logits = torch.randn(8, 10, requires_grad=True)
    t = soft_targets(torch.randint(0, 10, (8,)), torch.rand(8) * 0.9 + 0.1, 10)
    (g1,) = torch.autograd.grad(soft_cross_entropy(logits, t), logits)
    kl = F.kl_div(torch.log_softmax(logits, 1), t, reduction="batchmean")
    (g2,) = torch.autograd.grad(kl, logits)
    torch.testing.assert_close(g1, g2)


def test_soft_ce_bad_input():
    with pytest.raises(ValueError, match="targets"):
        soft_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="weights"):
        soft_cross_entropy(torch.zeros(2, 3), torch.full((2, 3), 1 / 3), weights=torch.tensor([-1.0, 1.0]))
    with pytest.raises(ValueError, match="weights"):
        soft_cross_entropy(torch.zeros(2, 3), torch.full((2, 3), 1 / 3), weights=torch.ones(3))
    with pytest.raises(ValueError, match="eps"):
        label_smoothing_targets_other(torch.tensor([0]), 1.5, 3)


@settings(deadline=None, max_examples=40)
@given(st.integers(2, 12), st.integers(0, 30), st.integers(0, 2**31 - 1))
def test_unvalidated_hot_path_gives_the_same_targets(k, n, seed):
    """validate=False (the trainer's per-step call: no device read-back) changes nothing for valid input."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g)
    conf = torch.rand(n, generator=g)
    torch.testing.assert_close(soft_targets(labels, conf, k, validate=False), soft_targets(labels, conf, k),
                               rtol=0, atol=0)
    stages = torch.rand(3, n, generator=g)
    for rule in ("product", "min"):
        torch.testing.assert_close(combine_confidences(stages, k, rule, validate=False),
                                   combine_confidences(stages, k, rule), rtol=0, atol=0)


def test_validation_is_what_validate_switches():
    labels = torch.tensor([0, 3])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        soft_targets(labels, torch.tensor([0.9, 0.9]), 3)
    with pytest.raises(ValueError, match=r"confidence must lie in \[0, 1\]"):
        soft_targets(torch.tensor([0, 1]), torch.tensor([0.9, 1.5]), 3)
    # shape and dtype are still checked without validation (no device read needed)
    with pytest.raises(TypeError, match="floating-point"):
        soft_targets(torch.tensor([0, 1]), torch.tensor([1, 1]), 3, validate=False)
    with pytest.raises(ValueError, match="same shape"):
        soft_targets(torch.tensor([0, 1]), torch.tensor([0.5]), 3, validate=False)
