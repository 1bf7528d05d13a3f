"""The verdict rules of pre-declared hypotheses, as a table (pure functions, no I/O).

Every hypothesis has one **primary test**: one-sided, in its declared direction, on seed-paired data,
Holm-adjusted over the primary tests of all tested hypotheses (one family). What the verdict says
when that test does not reject depends on a **secondary check** (never adjusted, always labelled)
and on the **power** the design had for the declared smallest effect of interest (``mde``):

============  ======================================================  ===================================
verdict       directional / interaction                               non_superiority (margin = mde)
============  ======================================================  ===================================
supported     primary p_holm < alpha                                  primary p_holm < alpha: the gain is
                                                                      below +margin
contradicted  the opposite one-sided test has p < alpha (secondary)   the CI lies entirely above +margin
not supported neither, and power at mde >= the target power           neither, power >= target
not shown     neither, and power at mde < the target power: absence   neither, power < target
              of evidence, not evidence of absence
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
        ("contradicted", "secondary: the one-sided test in the opposite direction has p < alpha"),
        ("not supported", "no rejection, and the design had >= the target power at the mde"),
        ("not shown", "no rejection, and the design had < the target power at the mde"),
    ),
    "non_superiority": (
        ("supported", "primary one-sided test of 'gain < +margin' rejects after Holm (p_holm < alpha)"),
        ("contradicted", "secondary: the whole (1 - alpha) CI of the gain lies above +margin"),
        ("not supported", "no rejection, and the design had >= the target power at the margin"),
        ("not shown", "no rejection, and the design had < the target power at the margin"),
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

    ``p_holm``: the primary test's Holm-adjusted p. ``secondary``: whether the secondary check
    holds (directional / interaction: the opposite one-sided test has p < alpha; non_superiority:
    the CI of the gain lies entirely beyond the margin). ``power``: of the primary test at the
    mde, in [0, 1]; NaN (unknown) counts as below the target.
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
