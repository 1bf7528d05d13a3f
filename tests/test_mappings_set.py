"""Tests of MappingSet: per-op (and per-sign) dispatch, the 1/K floor, vectorised vs scalar, round trip."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mappings as M
from mappings import PRESETS, MappingSet, Polynomial, Psychometric, Table, from_dict, preset
from mappings.ops import TRIVIAL_AUGMENT_WIDE, OpVocabulary

TA_OPS = TRIVIAL_AUGMENT_WIDE.names
SIGNED_OPS = TRIVIAL_AUGMENT_WIDE.signed

SETTINGS = settings(max_examples=50, deadline=None)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
OP = {name: i for i, name in enumerate(TA_OPS)}

A = Polynomial(0.2, 1)  # c = 1 - 0.8 s
B = Polynomial(0.6, 1)  # c = 1 - 0.4 s
MIXED = MappingSet(
    {
        "Rotate": A,
        "Brightness+": A,
        "Brightness-": B,
        "Color-": Table([0, 1], [1, 0.5]),
        "Solarize": Psychometric("weibull", {"alpha": 0.5, "beta": 2}),
    },
    num_classes=10,
    name="mixed",
)


def batch(rows, dtype=torch.float32):
    ops, mags, sevs = zip(*rows)
    op_ids = torch.tensor([OP[o] for o in ops])
    return op_ids, torch.tensor(mags, dtype=dtype), torch.tensor(sevs, dtype=dtype)


# ----------------------------------------------------------------------------- dispatch
def test_sign_specific_keys_and_zero_magnitude_counts_as_plus():
    assert MIXED.confidence("Brightness", 0.5, 0.5) == pytest.approx(0.6)  # A
    assert MIXED.confidence("Brightness", -0.5, 0.5) == pytest.approx(0.8)  # B
    assert MIXED.confidence("Brightness", 0.0, 0.5) == pytest.approx(0.6)  # 0 -> "+"
    assert MIXED.confidence("Brightness", -0.0, 0.5) == pytest.approx(0.6)
    assert MIXED.confidence("Color", -0.5, 0.5) == pytest.approx(0.75)
    assert MIXED.confidence("Color", 0.5, 0.5) == 1.0  # no "Color+" key -> hard label
    # An unsigned key covers both signs.
    rotate_minus = MIXED.confidence("Rotate", -90.0, 2 / 3)
    assert rotate_minus == MIXED.confidence("Rotate", 90.0, 2 / 3) == pytest.approx(1 - 0.8 * 2 / 3)
    out = MIXED(*batch([("Brightness", 0.5, 0.5), ("Brightness", -0.5, 0.5), ("Brightness", 0.0, 0.5),
                        ("Color", 0.5, 0.5), ("Color", -0.5, 0.5)]))
    np.testing.assert_allclose(out.numpy(), [0.6, 0.8, 0.6, 1.0, 0.75], atol=1e-6)


def test_unlisted_ops_keep_hard_labels():
    rows = [(op, 1.0, 0.9) for op in TA_OPS if op not in ("Rotate", "Brightness", "Color", "Solarize")]
    assert torch.equal(MIXED(*batch(rows)), torch.ones(len(rows)))
    assert all(MIXED.confidence(op, 1.0, 0.9) == 1.0 for op, _, _ in rows)
    assert MIXED.mapping_for("ShearX", 0.3) is None
    assert MIXED.mapping_for("Brightness", -0.1) is B and MIXED.mapping_for("Brightness", 0.1) is A


@SETTINGS
@given(st.integers(2, 1000), st.floats(0.0, 1.0))
def test_confidence_is_floored_at_chance(k, s):
    ms = MappingSet({op: Polynomial(0.0, 1) for op in TA_OPS}, num_classes=k)
    assert ms.floor == 1.0 / k
    c = ms.confidence("Rotate", 1.0, s)
    assert c == pytest.approx(max(1.0 / k, 1.0 - s), abs=1e-12)
    assert c >= ms.floor
    out = ms(torch.arange(14), torch.ones(14), torch.full((14,), s, dtype=torch.float64))
    assert out.min().item() >= np.float32(1.0 / k)
    assert ms.confidence("Solarize", 0.0, 1.0) == 1.0 / k  # p_min = 0 reaches 0 -> floored


@SETTINGS
@given(st.integers(2, 200))
def test_floor_does_not_lift_values_above_chance(k):
    ms = MappingSet({"Rotate": Polynomial(0.5, 1)}, num_classes=k)
    expected = max(0.75, 1.0 / k)
    assert ms.confidence("Rotate", 67.5, 0.5) == pytest.approx(expected)


# ----------------------------------------------------------------------------- vectorised == scalar
samples = st.lists(
    st.tuples(
        st.sampled_from(TA_OPS),
        st.one_of(st.just(0.0), st.floats(-1.0, 1.0), st.floats(-135.0, 135.0)),
        st.floats(0.0, 1.0),
    ),
    min_size=1,
    max_size=50,
)


@SETTINGS
@given(st.sampled_from(PRESETS + ("mixed",)), st.sampled_from([10, 100, 200]), samples,
       st.sampled_from([torch.float32, torch.float64]))
def test_vectorised_call_equals_scalar_confidence(name, k, rows, dtype):
    ms = MIXED if name == "mixed" else preset(name, k)
    ops, mags, sevs = batch(rows, dtype=dtype)
    out = ms(ops, mags, sevs)
    assert out.dtype == torch.float32 and out.shape == (len(rows),)
    # the scalar reference sees exactly the same (dtype-rounded) inputs
    expected = [ms.confidence(TA_OPS[int(o)], float(m), float(s)) for o, m, s in zip(ops, mags, sevs)]
    np.testing.assert_allclose(out.numpy(), np.array(expected, dtype=np.float32), rtol=0, atol=1e-6)
    # numpy in -> numpy float32 out, same values
    out_np = ms(ops.numpy(), mags.numpy(), sevs.numpy())
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32
    np.testing.assert_array_equal(out_np, out.numpy())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_call_returns_float32_on_the_severities_device(device, dtype):
    ops, mags, sevs = batch([("Rotate", 45.0, 1 / 3), ("Brightness", -0.66, 0.66), ("Identity", 0.0, 0.0)])
    out = MIXED(ops.to(device), mags.to(device), sevs.to(device=device, dtype=dtype))
    assert out.dtype == torch.float32 and out.device.type == device
    np.testing.assert_allclose(out.cpu().numpy(), [1 - 0.8 / 3, 1 - 0.4 * 0.66, 1.0], atol=2e-3)


def test_empty_batch():
    out = MIXED(torch.zeros(0, dtype=torch.int64), torch.zeros(0), torch.zeros(0))
    assert out.shape == (0,) and out.dtype == torch.float32


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "mappings, match",
    [
        ({"Rotation": A}, "allowed ops: \\['Identity', 'ShearX'"),
        ({"rotate": A}, "allowed ops"),
        ({"Rotate*": A}, "allowed ops"),
        ({"+": A}, "allowed ops"),
        ({"": A}, "allowed ops"),
        ({"Posterize-": A}, "no signed magnitude"),
        ({"Rotate": A, "Rotate-": B}, "both cover Rotate"),
    ],
)
def test_invalid_keys_raise_value_error(mappings, match):
    with pytest.raises(ValueError, match=match):
        MappingSet(mappings, num_classes=10)


def test_signed_ops_accept_signed_keys():
    for op in SIGNED_OPS:
        ms = MappingSet({op + "+": A, op + "-": B}, 10)
        assert ms.mapping_for(op, 1.0) is A and ms.mapping_for(op, -1.0) is B


@pytest.mark.parametrize(
    "args, exc, match",
    [
        (({"Rotate": 0.5}, 10), TypeError, "mappings\\['Rotate'\\] must be a Mapping"),
        (({1: A}, 10), TypeError, "keys must be str"),
        (([("Rotate", A)], 10), TypeError, "mappings must be a dict"),
        (({"Rotate": A}, 1), ValueError, "num_classes"),
        (({"Rotate": A}, 0), ValueError, "num_classes"),
        (({"Rotate": A}, 10.0), TypeError, "num_classes"),
        (({"Rotate": A}, True), TypeError, "num_classes"),
        (({"Rotate": A}, 10, ""), ValueError, "name"),
    ],
)
def test_invalid_constructor_arguments(args, exc, match):
    with pytest.raises(exc, match=match):
        MappingSet(*args)


@pytest.mark.parametrize(
    "ops, mags, sevs, exc, match",
    [
        ([5], [1.0], [1.5], ValueError, "severity must be in \\[0, 1\\].*got 1.5"),
        ([5], [1.0], [math.nan], ValueError, "severity"),
        ([14], [1.0], [0.5], ValueError, "op_ids must lie in \\[0, 13\\]"),
        ([-1], [1.0], [0.5], ValueError, "op_ids"),
        ([5], [math.nan], [0.5], ValueError, "magnitudes must not be NaN"),
        ([5, 6], [1.0], [0.5], ValueError, "1-D of equal length"),
        ([5.0], [1.0], [0.5], TypeError, "op_ids must be an integer"),
        ([5], [1.0], [1], TypeError, "severity must be a floating"),
    ],
)
def test_invalid_batches(ops, mags, sevs, exc, match):
    with pytest.raises(exc, match=match):
        MIXED(torch.tensor(ops), torch.tensor(mags), torch.tensor(sevs))


def test_mixed_array_types_and_scalar_validation():
    with pytest.raises(TypeError, match="magnitudes must be a torch.Tensor"):
        MIXED(torch.tensor([5]), np.array([1.0]), torch.tensor([0.5]))
    with pytest.raises(TypeError, match="severity must be a floating-point numpy array"):
        MIXED(np.array([5]), np.array([1.0]), np.array([1]))
    with pytest.raises(ValueError, match="op must be one of"):
        MIXED.confidence("Rotation", 1.0, 0.5)
    with pytest.raises(ValueError, match="severity"):
        MIXED.confidence("Identity", 0.0, 2.0)  # checked even for ops without a mapping
    with pytest.raises(ValueError, match="magnitude"):
        MIXED.confidence("Rotate", math.nan, 0.5)
    with pytest.raises(TypeError, match="severity"):
        MIXED.confidence("Rotate", 1.0, np.array([0.5, 0.5]))


# ----------------------------------------------------------------------------- value semantics
@pytest.mark.parametrize("ms", [MIXED] + [preset(n, 100) for n in PRESETS], ids=lambda m: m.name)
def test_round_trip_through_json(ms):
    d = json.loads(json.dumps(ms.to_dict()))
    assert d["type"] == "mapping_set"
    back = from_dict(d)
    assert isinstance(back, MappingSet)
    assert back == ms and hash(back) == hash(ms) and back.to_dict() == ms.to_dict()
    assert back.floor == ms.floor and back.name == ms.name


def test_equality_is_by_value_and_order_independent():
    a = MappingSet({"Rotate": A, "Brightness-": B}, 10)
    b = MappingSet({"Brightness-": Polynomial(0.6, 1.0), "Rotate": Polynomial(0.2, 1.0)}, 10)
    assert a == b and hash(a) == hash(b) and list(a.mappings) == list(b.mappings) == ["Rotate", "Brightness-"]
    assert MappingSet(a.mappings, 10) == a  # the read-only view is accepted back
    assert a != MappingSet({"Rotate": A, "Brightness-": B}, 100)
    assert a != MappingSet({"Rotate": A, "Brightness+": B}, 10)
    assert a != MappingSet({"Rotate": A, "Brightness-": B}, 10, name="other")


def test_immutable():
    with pytest.raises(AttributeError):
        MIXED.num_classes = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        MIXED.mappings["ShearX"] = A  # type: ignore[index]
    with pytest.raises(ValueError, match="mapping_set"):
        from_dict({"type": "mapping_set", "name": "x", "num_classes": 10})


def test_sources_round_trip_and_validation():
    ms = M.MappingSet({"Rotate": M.Polynomial(0.5, 2)}, 10, name="fitted",
                      sources={"Rotate": "hvs:rotation", "ShearX": "proxy"})
    assert ms.sources == {"Rotate": "hvs:rotation", "ShearX": "proxy"}
    again = M.from_dict(json.loads(json.dumps(ms.to_dict())))
    assert again == ms and again.sources == ms.sources
    assert M.MappingSet({"Rotate": M.Polynomial(0.5, 2)}, 10, name="fitted") != ms
    with pytest.raises(ValueError, match="sources"):
        M.MappingSet({}, 10, sources={"Rotate": ""})
    with pytest.raises(ValueError):
        M.MappingSet({}, 10, sources={"Invert": "x"})


# ------------------------------------------------------------------------------------------ op vocabulary
def test_trivial_augment_wide_vocabulary():
    v = TRIVIAL_AUGMENT_WIDE
    assert v.names[0] == "Identity" and v.names[-1] == "Equalize" and len(v) == 14
    assert v.op_id("Rotate") == 5 and [v.op_id(n) for n in v.names] == list(range(14))
    assert v.magnitude_free == {"Identity", "AutoContrast", "Equalize"}
    assert "Posterize" not in v.signed and "Solarize" not in v.signed and len(v.signed) == 9
    with pytest.raises(ValueError, match="op must be one of .*'Identity'.*got 'Invert'"):
        v.op_id("Invert")
    with pytest.raises(ValueError, match="op must be one of"):
        v.op_id(None)  # type: ignore[arg-type]
    assert hash(v) == hash(OpVocabulary(v.names, v.signed, v.magnitude_free))


@pytest.mark.parametrize(
    "names, signed, free, match",
    [
        ((), (), (), "non-empty"),
        (("A", "A"), (), (), "unique"),
        (("A", ""), (), (), "non-empty strings"),
        (("A",), ("B",), (), r"signed names \['B'\]"),
        (("A",), (), ("B",), r"magnitude_free names \['B'\]"),
        (("A",), ("A",), ("A",), "both signed and magnitude_free"),
    ],
)
def test_vocabulary_validation(names, signed, free, match):
    with pytest.raises(ValueError, match=match):
        OpVocabulary(names, frozenset(signed), frozenset(free))


def test_mapping_set_with_its_own_vocabulary():
    """MappingSet takes the op names as data: keys, op ids and the JSON follow the vocabulary."""
    ops = OpVocabulary(("Keep", "Blur", "Shift"), signed=frozenset({"Shift"}), magnitude_free=frozenset({"Keep"}))
    ms = MappingSet({"Blur": A, "Shift-": B}, 4, name="own", ops=ops)
    assert ms.ops is ops and list(ms.mappings) == ["Blur", "Shift-"]
    assert ms.confidence("Shift", -1.0, 0.5) == pytest.approx(0.8) and ms.confidence("Shift", 1.0, 0.5) == 1.0
    c = ms(torch.tensor([0, 1, 2]), torch.tensor([0.0, 1.0, -1.0]), torch.tensor([0.5, 0.5, 0.5]))
    torch.testing.assert_close(c, torch.tensor([1.0, 0.6, 0.8]))
    d = json.loads(json.dumps(ms.to_dict()))
    assert d["ops"] == {"names": ["Keep", "Blur", "Shift"], "signed": ["Shift"], "magnitude_free": ["Keep"]}
    assert from_dict(d) == ms and from_dict(d).ops == ops
    assert ms != MappingSet({"Blur": A}, 4, name="own", ops=ops)
    assert "ops=" in repr(ms) and "ops=" not in repr(MIXED)
    with pytest.raises(ValueError, match=r"allowed ops: \['Keep', 'Blur', 'Shift'\]"):
        MappingSet({"Rotate": A}, 4, ops=ops)
    with pytest.raises(ValueError, match="Blur has no signed magnitude"):
        MappingSet({"Blur+": A}, 4, ops=ops)
    with pytest.raises(ValueError, match=r"op_ids must lie in \[0, 2\]"):
        ms(torch.tensor([3]), torch.tensor([1.0]), torch.tensor([0.5]))
    with pytest.raises(TypeError, match="OpVocabulary"):
        MappingSet({}, 4, ops=("Keep",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'ops'"):
        from_dict({**d, "ops": {"names": ["Keep"]}})


def test_trivial_augment_json_has_no_ops_key():
    """Sets over TrivialAugmentWide serialise as before the vocabulary became data (old files load)."""
    d = preset("smoothened", 10).to_dict()
    assert set(d) == {"type", "name", "num_classes", "mappings"}
    old = {"type": "mapping_set", "name": "x", "num_classes": 10, "sources": {"Rotate": "proxy"},
           "mappings": {"Rotate": {"type": "polynomial", "p_min": 0.5, "k": 2.0, "s_max": 1.0}}}
    ms = from_dict(old)
    assert ms.ops is TRIVIAL_AUGMENT_WIDE and ms.to_dict() == old


def test_mappings_imports_nothing_from_harness():
    """mappings is a leaf: importing every mappings module loads no harness module."""
    code = ("import sys, pkgutil, importlib, mappings\n"
            "for m in pkgutil.iter_modules(mappings.__path__): importlib.import_module('mappings.' + m.name)\n"
            "print(sorted(n for n in sys.modules if n == 'harness' or n.startswith('harness.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout

