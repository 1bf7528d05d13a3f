"""The verdict rules of pre-declared hypotheses, as a table (pure functions, no I/O).

Every hypothesis has one **primary test**: one-sided, in its declared direction, on seed-paired data,
Holm-adjusted over the primary tests of all m *declared* hypotheses (one family; an untested one counts
as p = 1). What the verdict says when that test does not reject depends on a **secondary test** (the
one-sided test the other way, Holm-adjusted over the m secondary tests: a second family) and on the
**power** the design had for the declared smallest effect (``mde``), computed conservatively (from the
SD's upper confidence bound), at alpha / m:

============  ======================================================  ===================================
verdict       directional / interaction                               non_superiority (margin = mde)
============  ======================================================  ===================================
supported     primary p_holm < alpha                                  primary p_holm < alpha: the gain is
                                                                      below +margin
contradicted  the opposite one-sided test rejects after Holm          the test that the gain exceeds
                                                                      +margin rejects after Holm
not supported neither, and conservative power at mde >= the target    neither, conservative power >= target
not shown     neither, and conservative power at mde < the target:    neither, conservative power < target
              absence of evidence, not evidence of absence
inconclusive  fewer than 3 seeds (paired: common seeds) -- no test
not tested    an arm has no complete value for the metric
============  ======================================================  ===================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["VERDICTS", "RULES", "Decision", "decide", "power_phrase"]

VERDICTS = ("supported", "contradicted", "not supported", "not shown", "inconclusive", "not tested")

#: (verdict, condition) in the order they are checked, per kind of hypothesis
RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "directional": (
        ("supported", "primary one-sided test rejects after Holm (p_holm < alpha)"),
        ("contradicted", "secondary: the one-sided test in the opposite direction rejects after Holm over the "
                         "secondary tests (p_holm < alpha)"),
        ("not supported", "no rejection, and the design had >= the target power at the mde, computed with the "
                          "SD's upper confidence bound"),
        ("not shown", "no rejection, and the design had < the target power at the mde (with the SD's upper "
                      "confidence bound)"),
    ),
    "non_superiority": (
        ("supported", "primary one-sided test of 'gain < +margin' rejects after Holm (p_holm < alpha)"),
        ("contradicted", "secondary: the one-sided test that the gain exceeds +margin rejects after Holm over "
                         "the secondary tests (p_holm < alpha)"),
        ("not supported", "no rejection, and the design had >= the target power at the margin, computed with "
                          "the SD's upper confidence bound"),
        ("not shown", "no rejection, and the design had < the target power at the margin (with the SD's upper "
                      "confidence bound)"),
    ),
}
RULES["interaction"] = RULES["directional"]


@dataclass(frozen=True)
class Decision:
    """A verdict and the rule (row of :data:`RULES`) that produced it."""

    verdict: str
    rule: str


def decide(kind: str, *, p_holm: float, alpha: float, secondary: bool, power: float,
           power_target: float) -> Decision:
    """The verdict of one tested hypothesis of ``kind`` (the rows of :data:`RULES`, in order).

    ``p_holm``: the primary test's Holm-adjusted p. ``secondary``: whether the secondary test
    rejects after its own Holm adjustment (directional / interaction: the opposite one-sided test;
    non_superiority: the test that the gain exceeds the margin). ``power``: of the primary test at
    the mde, in [0, 1], as the caller computed it (:mod:`harness.analysis` passes the conservative
    power, from the SD's upper confidence bound); NaN (unknown) counts as below the target.
    """
    if kind not in RULES:
        raise ValueError(f"kind must be one of {', '.join(RULES)}; got {kind!r}")
    if not (0 < alpha < 1 and 0 < power_target < 1):
        raise ValueError(f"alpha and power_target must be in (0, 1); got {alpha!r}, {power_target!r}")
    if not (0 <= p_holm <= 1):
        raise ValueError(f"p_holm must be in [0, 1]; got {p_holm!r}")
    rules = dict(RULES[kind])
    if p_holm < alpha:
        verdict = "supported"
    elif secondary:
        verdict = "contradicted"
    elif power >= power_target:  # NaN compares False: unknown power is never "enough"
        verdict = "not supported"
    else:
        verdict = "not shown"
    return Decision(verdict, rules[verdict])


def power_phrase(power: float, mde_text: str) -> str:
    """``power 23 % for 1 pp`` (``power unknown`` when NaN)."""
    if not math.isfinite(power):
        return f"power unknown for {mde_text}"
    return f"power {100 * power:.0f} % for {mde_text}"
