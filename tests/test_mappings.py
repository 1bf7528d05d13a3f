"""Tests of the single mappings (Polynomial, Table, Psychometric) and of the shared Mapping behaviour."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit

import mappings
from mappings import Mapping, Polynomial, Psychometric, Table, from_dict

SETTINGS = settings(max_examples=60, deadline=None)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# ----------------------------------------------------------------------------- strategies
unit = st.floats(0.0, 1.0)


@st.composite
def polynomials(draw):
    return Polynomial(
        p_min=draw(unit),
        k=draw(st.floats(0.05, 20.0)),
        s_max=draw(st.floats(0.01, 1.0)),
    )


@st.composite
def tables(draw, monotone=None):
    sev = sorted(draw(st.lists(unit, min_size=2, max_size=12, unique=True)))
    conf = draw(st.lists(unit, min_size=len(sev), max_size=len(sev)))
    if monotone is True:
        conf = sorted(conf, reverse=True)
    return Table(sev, conf)


@st.composite
def psychometrics(draw, family=None, lapse=None):
    family = family or draw(st.sampled_from(["logistic", "weibull"]))
    alpha = draw(st.floats(-0.5, 1.5) if family == "logistic" else st.floats(0.02, 1.5))
    return Psychometric(
        family,
        {"alpha": alpha, "beta": draw(st.floats(0.2, 10.0))},
        guess=draw(st.floats(0.0, 0.5)),
        lapse=draw(st.floats(0.0, 0.4)) if lapse is None else lapse,
    )


any_mapping = st.one_of(polynomials(), tables(), psychometrics())
severity_arrays = st.lists(unit, min_size=1, max_size=40).map(lambda v: np.array(v, dtype=np.float64))


def value_bounds(m: Mapping) -> tuple[float, float]:
    """The range each family promises on [0, 1] (from its docstring), not computed by the mapping."""
    if isinstance(m, Polynomial):
        return m.p_min, 1.0
    if isinstance(m, Table):
        return min(m.confidences), max(m.confidences)
    return m.guess, 1.0 - m.lapse


# ----------------------------------------------------------------------------- generic properties
@SETTINGS
@given(any_mapping, severity_arrays)
def test_confidence_lies_in_the_promised_range(m, s):
    lo, hi = value_bounds(m)
    c = m(s)
    assert np.all(c >= lo - 1e-12) and np.all(c <= hi + 1e-12)
    assert np.all((c >= 0.0) & (c <= 1.0))


@SETTINGS
@given(st.one_of(polynomials(), tables(monotone=True), psychometrics()), severity_arrays)
def test_monotone_families_are_non_increasing(m, s):
    assert m.is_monotone
    c = m(np.sort(s))
    assert np.all(np.diff(c) <= 1e-12)


@SETTINGS
@given(polynomials())
def test_polynomial_starts_at_one_and_reaches_p_min_at_s_max(m):
    assert m(0.0) == 1.0
    assert m(m.s_max) == pytest.approx(m.p_min, abs=1e-12)
    assert m(1.0) == pytest.approx(m.p_min, abs=1e-12)  # flat beyond s_max


@SETTINGS
@given(psychometrics(family="weibull", lapse=0.0))
def test_weibull_without_lapse_starts_at_one(m):
    assert m(0.0) == 1.0


@SETTINGS
@given(psychometrics(family="weibull"))
def test_weibull_starts_at_one_minus_lapse(m):
    assert m(0.0) == pytest.approx(1.0 - m.lapse, abs=1e-12)


def test_logistic_starts_below_one_minus_lapse():
    m = Psychometric("logistic", {"alpha": 0.5, "beta": 10.0}, guess=0.1, lapse=0.02)
    assert m(0.0) == pytest.approx(0.98 - 0.88 * expit(-5.0), abs=1e-12)
    assert m(0.0) < 0.98 - 1e-3


@SETTINGS
@given(any_mapping, severity_arrays)
def test_numpy_and_torch_agree_float64(m, s):
    c_np = m(s)
    c_t = m(torch.from_numpy(s))
    np.testing.assert_allclose(c_t.numpy(), c_np, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(any_mapping, severity_arrays)
def test_numpy_and_torch_agree_float32(m, s):
    s32 = s.astype(np.float32)
    c_np = m(s32)
    c_t = m(torch.from_numpy(s32))
    assert c_np.dtype == np.float32 and c_t.dtype == torch.float32
    np.testing.assert_allclose(c_t.numpy(), c_np, rtol=0, atol=1e-6)


@SETTINGS
@given(any_mapping, unit)
def test_scalar_agrees_with_arrays(m, s):
    c = m(s)
    assert type(c) is float
    assert c == pytest.approx(float(m(np.array([s]))[0]), abs=1e-15)
    assert c == pytest.approx(float(m(torch.tensor([s], dtype=torch.float64))[0]), abs=1e-12)


@pytest.mark.parametrize("m", [Polynomial(0.1, 2), Table([0, 0.5, 1], [1, 0.6, 0.2]),
                               Psychometric("weibull", {"alpha": 0.4, "beta": 3}, guess=0.1)])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numpy_type_and_dtype_are_preserved(m, dtype):
    arr = np.linspace(0, 1, 7, dtype=dtype).reshape(7, 1)
    out = m(arr)
    assert isinstance(out, np.ndarray) and out.dtype == dtype and out.shape == (7, 1)
    scalar = m(dtype(0.5))
    assert type(scalar) is dtype
    assert float(scalar) == pytest.approx(m(0.5), abs=2e-3 if dtype == np.float16 else 1e-6)


@pytest.mark.parametrize("m", [Polynomial(0.1, 2), Table([0, 0.5, 1], [1, 0.6, 0.2]),
                               Psychometric("logistic", {"alpha": 0.4, "beta": 8}, lapse=0.01)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES)
def test_torch_dtype_and_device_are_preserved(m, dtype, device):
    s = torch.linspace(0, 1, 11, dtype=dtype, device=device)
    out = m(s)
    assert out.dtype == dtype and out.device == s.device and out.shape == s.shape
    ref = m(s.double().cpu().numpy())
    tol = 1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-6
    np.testing.assert_allclose(out.double().cpu().numpy(), ref, atol=tol)
    # 0-d tensors work too
    assert m(torch.tensor(0.25, dtype=dtype, device=device)).shape == ()


def test_python_int_severity_gives_float():
    assert Polynomial(0.2, 1)(1) == pytest.approx(0.2)
    assert type(Polynomial(0.2, 1)(0)) is float


@SETTINGS
@given(any_mapping)
def test_to_dict_round_trip_through_json(m):
    d = m.to_dict()
    assert isinstance(d["type"], str)
    back = from_dict(json.loads(json.dumps(d)))
    assert back == m and hash(back) == hash(m) and type(back) is type(m)
    assert back.to_dict() == d


def test_from_dict_rejects_unknown_type_and_bad_keys():
    with pytest.raises(ValueError, match="known types.*polynomial.*table"):
        from_dict({"type": "spline", "knots": []})
    with pytest.raises(ValueError, match="known types"):
        from_dict({"p_min": 0.5, "k": 2})
    with pytest.raises(ValueError, match="unexpected: \\['q'\\]"):
        from_dict({"type": "polynomial", "p_min": 0.5, "k": 2, "q": 1})
    with pytest.raises(ValueError, match="missing: \\['k'\\]"):
        from_dict({"type": "polynomial", "p_min": 0.5})
    with pytest.raises(TypeError):
        from_dict([("type", "polynomial")])


def test_mappings_are_immutable_and_hashable():
    m = Polynomial(0.5, 2)
    with pytest.raises(AttributeError):
        m.k = 3  # type: ignore[misc]
    assert len({m, Polynomial(0.5, 2.0), Polynomial(0.5, 3)}) == 2
    t = Table([0, 1], [1, 0])
    assert hash(t) == hash(Table((0.0, 1.0), (1.0, 0.0)))
    p = Psychometric("weibull", {"beta": 2, "alpha": 0.5})  # key order does not matter
    assert p == Psychometric("weibull", (("alpha", 0.5), ("beta", 2.0)))
    assert hash(p) == hash(Psychometric("weibull", {"alpha": 0.5, "beta": 2}))


# ----------------------------------------------------------------------------- severity validation
out_of_range = st.one_of(
    st.floats(max_value=-1e-9, allow_infinity=True, allow_nan=False),
    st.floats(min_value=1.0 + 1e-9, allow_infinity=True, allow_nan=False),
    st.just(math.nan),
)


@SETTINGS
@given(any_mapping, out_of_range, st.sampled_from(["float", "numpy", "torch"]))
def test_severity_outside_unit_interval_raises(m, bad, kind):
    values = [0.5, bad, 0.1]
    arg = {"float": bad, "numpy": np.array(values), "torch": torch.tensor(values, dtype=torch.float64)}[kind]
    with pytest.raises(ValueError, match=r"^severity must be in \[0, 1\]") as info:
        m(arg)
    reported = float(str(info.value).rsplit("got ", 1)[1])  # the offending value is named
    assert (math.isnan(bad) and math.isnan(reported)) or reported == bad


@pytest.mark.parametrize(
    "arg",
    [np.array([0, 1]), np.array([True, False]), torch.tensor([0, 1]), torch.tensor([True]),
     True, "0.5", [0.5], None, np.int64(0)],
    ids=["np-int", "np-bool", "torch-int", "torch-bool", "bool", "str", "list", "None", "np-int-scalar"],
)
def test_non_float_severity_raises_type_error(arg):
    with pytest.raises(TypeError, match="severity"):
        Polynomial(0.5, 2)(arg)


# ----------------------------------------------------------------------------- Polynomial
def test_polynomial_known_values():
    # METHOD §1.5: c = 1 - (1 - p_min) x^k
    assert Polynomial(0.1, 2)(0.5) == pytest.approx(1 - 0.9 * 0.25)
    assert Polynomial(0.01, 1)(0.2) == pytest.approx(0.802)  # soft RE, K = 100, a = 0.2 (§3.6)
    assert Polynomial(0.86, 10, s_max=0.75)(0.5) == pytest.approx(1 - 0.14 * (0.5 / 0.75) ** 10)
    assert Polynomial(0.3, 0.5)(0.25) == pytest.approx(1 - 0.7 * 0.5)


@pytest.mark.parametrize(
    "kwargs, param",
    [
        (dict(p_min=1.5, k=2), "p_min"),
        (dict(p_min=-0.1, k=2), "p_min"),
        (dict(p_min=math.nan, k=2), "p_min"),
        (dict(p_min=0.5, k=0), "k"),
        (dict(p_min=0.5, k=-1), "k"),
        (dict(p_min=0.5, k=math.inf), "k"),
        (dict(p_min=0.5, k=math.nan), "k"),
        (dict(p_min=0.5, k=2, s_max=0.0), "s_max"),
        (dict(p_min=0.5, k=2, s_max=1.01), "s_max"),
    ],
)
def test_polynomial_invalid_parameters(kwargs, param):
    with pytest.raises(ValueError, match=rf"^{param} must .*got") as info:
        Polynomial(**kwargs)
    assert repr(kwargs[param]) in str(info.value)


def test_polynomial_message_names_value_and_range():
    with pytest.raises(ValueError, match=r"^p_min must be in \[0, 1\], got 1.5$"):
        Polynomial(p_min=1.5, k=2)


@SETTINGS
@given(st.one_of(st.floats(max_value=-1e-12), st.floats(min_value=1 + 1e-12)))
def test_polynomial_p_min_outside_unit_interval_raises(p):
    with pytest.raises(ValueError, match="p_min"):
        Polynomial(p_min=p, k=2)


@pytest.mark.parametrize("value", ["0.5", None, True])
def test_polynomial_non_numeric_parameters_raise_type_error(value):
    with pytest.raises(TypeError, match="k"):
        Polynomial(0.5, value)


# ----------------------------------------------------------------------------- Table
@SETTINGS
@given(tables(), st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_table_torch_matches_np_interp(t, s):
    s = np.array(s)
    got = t(torch.from_numpy(s)).numpy()
    np.testing.assert_allclose(got, np.interp(s, t.severities, t.confidences), rtol=0, atol=1e-12)


@SETTINGS
@given(tables())
def test_table_hits_knots_and_clamps_at_the_ends(t):
    knots = torch.tensor(t.severities, dtype=torch.float64)
    np.testing.assert_allclose(t(knots).numpy(), t.confidences, rtol=0, atol=1e-12)
    assert t(0.0) == pytest.approx(t.confidences[0], abs=1e-12)
    assert t(1.0) == pytest.approx(t.confidences[-1], abs=1e-12)
    assert float(t(torch.tensor([0.0, 1.0], dtype=torch.float64))[1]) == pytest.approx(t.confidences[-1])


def test_table_interpolates_linearly_between_knots():
    t = Table([0.2, 0.6], [0.9, 0.5])
    for s, c in [(0.0, 0.9), (0.2, 0.9), (0.3, 0.8), (0.5, 0.6), (0.6, 0.5), (1.0, 0.5)]:
        assert t(s) == pytest.approx(c)
        assert float(t(torch.tensor(s, dtype=torch.float64))) == pytest.approx(c)


def test_table_knots_closer_than_float32_resolution_follow_np_interp():
    t = Table([0.0, 1e-12, 1.0], [0.0, 1.0, 0.0])  # the first two knots coincide in float32
    assert float(t(torch.tensor([0.0]))[0]) == 0.0
    assert float(t(torch.tensor([0.5]))[0]) == pytest.approx(np.interp(0.5, t.severities, t.confidences))


def test_table_stores_float_tuples_and_reports_monotonicity():
    t = Table(np.array([0, 0.5, 1]), torch.tensor([1.0, 0.7, 0.7]))
    assert t.severities == (0.0, 0.5, 1.0) and all(type(v) is float for v in t.severities + t.confidences)
    assert t.is_monotone
    bumpy = Table([0, 0.5, 1], [1.0, 0.6, 0.8])  # like the HVS rotation curve
    assert not bumpy.is_monotone
    assert bumpy(1.0) > bumpy(0.5)


@pytest.mark.parametrize(
    "sev, conf, param",
    [
        ([0.0, 0.5, 0.5], [1, 0.9, 0.8], "severities"),  # not strictly increasing
        ([0.5, 0.2], [1, 0.9], "severities"),
        ([-0.1, 0.5], [1, 0.9], "severities"),
        ([0.0, 1.5], [1, 0.9], "severities"),
        ([0.0, math.nan], [1, 0.9], "severities"),
        ([0.5], [1.0], "severities"),  # fewer than 2 knots
        ([0.0, 1.0], [1.0], "confidences"),  # length mismatch
        ([0.0, 1.0], [1.0, 1.2], "confidences"),
        ([0.0, 1.0], [1.0, -0.2], "confidences"),
        ([0.0, 1.0], [1.0, math.inf], "confidences"),
        ([0.0, 1.0], [1.0, math.nan], "confidences"),
    ],
)
def test_table_invalid_parameters(sev, conf, param):
    with pytest.raises(ValueError, match=f"^{param}"):
        Table(sev, conf)


@pytest.mark.parametrize("sev", ["ab", [[0, 1]], [0.0, "x"], [True, False]])
def test_table_non_numeric_parameters_raise_type_error(sev):
    with pytest.raises(TypeError, match="severities"):
        Table(sev, [1.0, 0.5])


# ----------------------------------------------------------------------------- Psychometric
def test_psychometric_formula():
    lg = Psychometric("logistic", {"alpha": 0.3, "beta": 12.0}, guess=0.1, lapse=0.05)
    assert lg(0.3) == pytest.approx(0.1 + 0.85 * 0.5)  # F(alpha) = 1/2
    assert lg(0.8) == pytest.approx(0.1 + 0.85 * (1 - 1 / (1 + math.exp(-12 * 0.5))))
    wb = Psychometric("weibull", {"alpha": 0.4, "beta": 3.0}, guess=0.2)
    assert wb(0.4) == pytest.approx(0.2 + 0.8 * math.exp(-1))  # F(alpha) = 1 - 1/e
    assert wb(1.0) == pytest.approx(0.2 + 0.8 * math.exp(-((1 / 0.4) ** 3)))
    assert (wb.alpha, wb.beta) == (0.4, 3.0)


def test_psychometric_extreme_parameters_stay_finite():
    steep = Psychometric("weibull", {"alpha": 1e-3, "beta": 200.0}, guess=0.25)  # (s/alpha)**beta overflows
    assert steep(1.0) == pytest.approx(0.25) and steep(0.0) == 1.0
    assert float(steep(torch.tensor(1.0))) == pytest.approx(0.25)
    logistic = Psychometric("logistic", {"alpha": 0.5, "beta": 1e4})
    assert logistic(0.0) == pytest.approx(1.0) and logistic(1.0) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "args, kwargs, param",
    [
        (("gaussian", {"alpha": 0.5, "beta": 2}), {}, "family"),
        (("weibull", {"alpha": 0.5}), {}, "params"),
        (("weibull", {"alpha": 0.5, "beta": 2, "gamma": 1}), {}, "params"),
        (("weibull", 0.5), {}, "params"),
        (("weibull", {"alpha": 0.0, "beta": 2}), {}, "alpha"),
        (("weibull", {"alpha": -0.5, "beta": 2}), {}, "alpha"),
        (("logistic", {"alpha": math.inf, "beta": 2}), {}, "alpha"),
        (("logistic", {"alpha": 0.5, "beta": 0.0}), {}, "beta"),
        (("logistic", {"alpha": 0.5, "beta": math.nan}), {}, "beta"),
        (("logistic", {"alpha": 0.5, "beta": 2}), {"guess": 1.0}, "guess"),
        (("logistic", {"alpha": 0.5, "beta": 2}), {"guess": -0.1}, "guess"),
        (("logistic", {"alpha": 0.5, "beta": 2}), {"lapse": 1.0}, "lapse"),
        (("logistic", {"alpha": 0.5, "beta": 2}), {"guess": 0.6, "lapse": 0.4}, "guess \\+ lapse"),
    ],
)
def test_psychometric_invalid_parameters(args, kwargs, param):
    with pytest.raises(ValueError, match=f"^{param}"):
        Psychometric(*args, **kwargs)


def test_logistic_accepts_negative_alpha():
    m = Psychometric("logistic", {"alpha": -0.2, "beta": 5.0})
    assert m(0.0) < 0.5  # already past the midpoint at zero severity


# ----------------------------------------------------------------------------- package surface
def test_public_api():
    expected = {"Mapping", "Polynomial", "Table", "Psychometric", "MappingSet", "preset", "PRESETS",
                "from_dict", "erasing_mapping", "crop_mapping", "noise_mapping", "Normalized",
                "human_to_confidence"}
    assert set(mappings.__all__) == expected
    assert all(hasattr(mappings, name) for name in expected)
    assert all(issubclass(c, Mapping) for c in (Polynomial, Table, Psychometric))
