"""Tests for harness.verdicts: the rule table, decide() and the power phrase."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.verdicts import RULES, VERDICTS, Decision, decide, power_phrase

KINDS = ("interaction", "directional", "non_superiority")


def test_rule_table_covers_every_kind_in_check_order():
    assert set(RULES) == set(KINDS)
    for kind in KINDS:
        assert [v for v, _ in RULES[kind]] == ["supported", "contradicted", "not supported", "not shown"]
        assert all(isinstance(c, str) and c for _, c in RULES[kind])
    assert set(VERDICTS) == {"supported", "contradicted", "not supported", "not shown", "inconclusive",
                             "not tested"}
    assert "secondary" in dict(RULES["directional"])["contradicted"]
    assert "margin" in dict(RULES["non_superiority"])["contradicted"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("p_holm, secondary, power, expected", [
    (0.01, False, 0.9, "supported"),
    (0.01, True, 0.1, "supported"),          # the primary test decides first
    (0.049999, False, 0.0, "supported"),
    (0.05, False, 0.9, "not supported"),     # p_holm == alpha does not reject
    (0.30, True, 0.9, "contradicted"),
    (0.30, True, 0.1, "contradicted"),
    (0.30, False, 0.8, "not supported"),     # power exactly at the target is enough
    (0.30, False, 0.799, "not shown"),
    (0.30, False, math.nan, "not shown"),    # unknown power is never enough
    (1.0, False, 0.1, "not shown"),
])
def test_decide_table(kind, p_holm, secondary, power, expected):
    d = decide(kind, p_holm=p_holm, alpha=0.05, secondary=secondary, power=power, power_target=0.8)
    assert isinstance(d, Decision)
    assert d.verdict == expected
    assert d.rule == dict(RULES[kind])[expected]


def test_decide_validates_arguments():
    with pytest.raises(ValueError, match="kind must be one of .*directional.*; got .not_better."):
        decide("not_better", p_holm=0.1, alpha=0.05, secondary=False, power=0.5, power_target=0.8)
    with pytest.raises(ValueError, match="alpha and power_target"):
        decide("directional", p_holm=0.1, alpha=0.0, secondary=False, power=0.5, power_target=0.8)
    with pytest.raises(ValueError, match="alpha and power_target"):
        decide("directional", p_holm=0.1, alpha=0.05, secondary=False, power=0.5, power_target=1.0)
    with pytest.raises(ValueError, match="p_holm must be in"):
        decide("directional", p_holm=math.nan, alpha=0.05, secondary=False, power=0.5, power_target=0.8)
    with pytest.raises(ValueError, match="p_holm must be in"):
        decide("directional", p_holm=1.5, alpha=0.05, secondary=False, power=0.5, power_target=0.8)


def test_power_phrase():
    assert power_phrase(0.2349, "1 pp") == "power 23 % for 1 pp"
    assert power_phrase(1.0, "0.5 nats") == "power 100 % for 0.5 nats"
    assert power_phrase(math.nan, "1 pp") == "power unknown for 1 pp"


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(KINDS), p_holm=st.floats(0, 1), alpha=st.floats(0.001, 0.5),
       secondary=st.booleans(), power=st.one_of(st.floats(0, 1), st.just(math.nan)),
       target=st.floats(0.01, 0.99))
def test_property_decide(kind, p_holm, alpha, secondary, power, target):
    v = decide(kind, p_holm=p_holm, alpha=alpha, secondary=secondary, power=power, power_target=target).verdict
    assert v in VERDICTS
    # supported exactly when the Holm-adjusted primary p is below alpha
    assert (v == "supported") == (p_holm < alpha)
    # contradicted only from the secondary check, never when the primary rejects
    if v == "contradicted":
        assert secondary and p_holm >= alpha
    # "not supported" claims evidence of absence: only with enough power
    if not (power >= target):
        assert v != "not supported"
    if v in ("not supported", "not shown"):
        assert not secondary and p_holm >= alpha
        assert (v == "not supported") == (power >= target)
    # the guards' verdicts are never produced by decide (they need no test)
    assert v not in ("inconclusive", "not tested")
