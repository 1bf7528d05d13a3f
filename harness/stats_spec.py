"""Validation of the ``stats:`` spec of a grid (``params.yaml``), done once at the edge.

Kept apart from :mod:`harness.analysis` so that loading a grid (every DVC stage does) does not
import scipy/statsmodels. The rules are documented in :func:`validate_stats_spec`.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Mapping

import numpy as np

from harness.schema import DEFAULT_METRICS, SCALAR_METRICS, is_fraction

__all__ = ["validate_stats_spec", "SCALAR_METRICS", "DEFAULT_METRICS", "HYPOTHESIS_KINDS", "DIRECTIONS"]

HYPOTHESIS_KINDS = ("interaction", "directional", "non_superiority")
#: allowed ``direction`` per hypothesis kind (non_superiority's direction follows the metric)
DIRECTIONS = {"interaction": ("increasing", "decreasing"), "directional": ("higher", "lower")}
#: largest mde / margin accepted for a fraction metric: a bigger one is almost surely a unit mix-up
#: (percentage points written where the fraction is meant)
_MAX_FRACTION_EFFECT = 0.5


# =====================================================================================
# the stats spec
# =====================================================================================
_TOP_KEYS = ("alpha", "n_boot", "bootstrap_seed", "power", "metrics", "comparisons", "anova",
             "equivalence", "hypotheses")
_ENTRY_KEYS = {  # section -> (required, optional)
    "comparisons": (("family", "arm", "reference"), ()),
    "anova": (("name", "metric", "arms", "factors"), ()),
    "equivalence": (("name", "arm", "reference", "metric", "margin"), ()),
}
_HYP_KEYS = {
    "interaction": (("id", "statement", "kind", "metric", "pairs", "direction", "mde"), ("levels",)),
    "directional": (("id", "statement", "kind", "arm", "reference", "metric", "direction", "mde"), ()),
    "non_superiority": (("id", "statement", "kind", "arm", "reference", "metric", "mde"), ()),
}


def _fail(path: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{path}: got {value!r}; {allowed}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _check_keys(entry: Any, path: str, required: tuple, optional: tuple) -> None:
    if not isinstance(entry, Mapping):
        raise _fail(path, entry, "expected a mapping")
    allowed = required + optional
    for k in entry:
        if k not in allowed:
            raise ValueError(f"{path}.{k}: unknown key {k!r}; allowed keys: {', '.join(allowed)}")
    for k in required:
        if k not in entry:
            raise ValueError(f"{path}.{k}: missing; required keys: {', '.join(required)}")


def _text(v: Any, path: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _fail(path, v, "expected a non-empty string")
    return v


def _metric(v: Any, path: str) -> str:
    if not isinstance(v, str) or v not in SCALAR_METRICS:
        raise _fail(path, v, f"allowed metrics: {', '.join(SCALAR_METRICS)}")
    return v


def _effect(v: Any, path: str, metric: str) -> float:
    """An effect size in the metric's unit (mde, margin): finite, > 0; <= 0.5 for fraction metrics."""
    if not (_is_number(v) and math.isfinite(float(v)) and float(v) > 0):
        raise _fail(path, v, "expected a finite number > 0 in the metric's unit "
                    "(fractions for accuracies and ECE: 0.01 = 1 percentage point)")
    if is_fraction(metric) and float(v) > _MAX_FRACTION_EFFECT:
        raise _fail(path, v, f"{metric} is a fraction in [0, 1]: expected at most {_MAX_FRACTION_EFFECT} "
                    "(write 1 percentage point as 0.01)")
    return float(v)


def _arm_name(v: Any, path: str, arms: Mapping | None) -> str:
    _text(v, path)
    if arms is not None and v not in arms:
        names = sorted(arms)
        shown = ", ".join(names[:25]) + (" ..." if len(names) > 25 else "")
        raise _fail(path, v, f"not an arm of params.yaml `arms` (declared: {shown})")
    return v


def _list(v: Any, path: str) -> list:
    if v is None:
        return []
    if not isinstance(v, (list, tuple)):
        raise _fail(path, v, "expected a list")
    return list(v)


def validate_stats_spec(spec: Mapping | None, arms: Mapping | None = None) -> dict:
    """Validate the ``stats:`` spec of params.yaml once, at the edge; return it with defaults.

    Defaults: ``alpha`` 0.05 (in (0, 1)), ``n_boot`` 2000 (int >= 100 bootstrap resamples),
    ``bootstrap_seed`` 0 (int >= 0), ``power`` 0.8 (in (0, 1)), ``metrics`` [accuracy,
    corruption_accuracy_mean15, corruption_accuracy_mean19, ece], and empty ``comparisons``,
    ``anova``, ``equivalence``, ``hypotheses``. Equivalence margins and hypothesis ``mde`` are in
    the metric's unit (> 0; at most 0.5 for fraction metrics, where 0.01 = 1 percentage point).
    When ``arms`` (the ``arms:`` mapping of params.yaml) is given, every arm named must exist in
    it, and ANOVA arms must declare both factors and cross them fully.

    Hypotheses (pre-declared, each decided by one directional seed-paired test; see
    :mod:`harness.verdicts`):

    * ``interaction``: ``pairs`` ``[[arm, reference], ...]`` ordered by level (>= 2; optional
      numeric ``levels``, default 0, 1, ...), ``direction`` ``increasing`` / ``decreasing`` (of the
      gap arm - reference with the level), ``mde``: the smallest change of that gap from the lowest
      to the highest level that matters.
    * ``directional``: ``arm``, ``reference``, ``direction`` ``higher`` / ``lower``, ``mde``.
    * ``non_superiority``: ``arm``, ``reference``, ``mde`` = the margin: "arm is not better than
      reference by ``mde`` or more" (better = the metric's better direction).

    Every error is a ``ValueError`` whose message starts with the field path (for example
    ``stats.comparisons[2].reference``) and names the value and what is allowed. Unknown keys
    are errors. The input is not modified.
    """
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise _fail("stats", spec, "expected a mapping (the `stats:` section of params.yaml)")
    if arms is not None and not isinstance(arms, Mapping):
        raise _fail("arms", arms, "expected a mapping of arm name -> arm config")
    for k in spec:
        if k not in _TOP_KEYS:
            raise ValueError(f"stats.{k}: unknown key {k!r}; allowed keys: {', '.join(_TOP_KEYS)}")
    out: dict[str, Any] = {}

    alpha = spec.get("alpha", 0.05)
    if not (_is_number(alpha) and 0 < float(alpha) < 1):
        raise _fail("stats.alpha", alpha, "expected a number in (0, 1)")
    out["alpha"] = float(alpha)
    n_boot = spec.get("n_boot", 2000)
    if not (isinstance(n_boot, (int, np.integer)) and not isinstance(n_boot, bool) and n_boot >= 100):
        raise _fail("stats.n_boot", n_boot, "expected an integer >= 100 (bootstrap resamples)")
    out["n_boot"] = int(n_boot)
    bseed = spec.get("bootstrap_seed", 0)
    if not (isinstance(bseed, (int, np.integer)) and not isinstance(bseed, bool) and bseed >= 0):
        raise _fail("stats.bootstrap_seed", bseed, "expected an integer >= 0")
    out["bootstrap_seed"] = int(bseed)
    power = spec.get("power", 0.8)
    if not (_is_number(power) and 0 < float(power) < 1):
        raise _fail("stats.power", power, "expected a number in (0, 1)")
    out["power"] = float(power)

    metrics = _list(spec.get("metrics", list(DEFAULT_METRICS)), "stats.metrics")
    if not metrics:
        raise _fail("stats.metrics", metrics, "expected a non-empty list of metric names")
    for i, m in enumerate(metrics):
        _metric(m, f"stats.metrics[{i}]")
        if m in metrics[:i]:
            raise _fail(f"stats.metrics[{i}]", m, "metrics must be unique")
    out["metrics"] = list(metrics)

    def _factors_of(arm: str) -> Mapping:
        cfg = arms.get(arm) if arms is not None else None
        f = cfg.get("factors") if isinstance(cfg, Mapping) else None
        return f if isinstance(f, Mapping) else {}

    comps = []
    seen_comp = set()
    for i, e in enumerate(_list(spec.get("comparisons"), "stats.comparisons")):
        p = f"stats.comparisons[{i}]"
        _check_keys(e, p, *_ENTRY_KEYS["comparisons"])
        fam = _text(e["family"], f"{p}.family")
        arm = _arm_name(e["arm"], f"{p}.arm", arms)
        ref = _arm_name(e["reference"], f"{p}.reference", arms)
        if ref == arm:
            raise _fail(f"{p}.reference", ref, "the reference must differ from the arm")
        if (fam, arm, ref) in seen_comp:
            raise _fail(p, dict(e), "each (family, arm, reference) may be declared once")
        seen_comp.add((fam, arm, ref))
        comps.append({"family": fam, "arm": arm, "reference": ref})
    out["comparisons"] = comps

    anovas = []
    for i, e in enumerate(_list(spec.get("anova"), "stats.anova")):
        p = f"stats.anova[{i}]"
        _check_keys(e, p, *_ENTRY_KEYS["anova"])
        name = _text(e["name"], f"{p}.name")
        if any(a["name"] == name for a in anovas):
            raise _fail(f"{p}.name", name, "ANOVA names must be unique")
        metric = _metric(e["metric"], f"{p}.metric")
        a_arms = _list(e["arms"], f"{p}.arms")
        if len(a_arms) < 2:
            raise _fail(f"{p}.arms", e["arms"], "expected a list of at least 2 arms")
        for j, a in enumerate(a_arms):
            _arm_name(a, f"{p}.arms[{j}]", arms)
            if a in a_arms[:j]:
                raise _fail(f"{p}.arms[{j}]", a, "arms must be unique")
        factors = _list(e["factors"], f"{p}.factors")
        if len(factors) != 2 or not all(isinstance(f, str) and f for f in factors) \
                or factors[0] == factors[1]:
            raise _fail(f"{p}.factors", e["factors"], "expected exactly 2 distinct factor names")
        if arms is not None:
            cells = set()
            for j, a in enumerate(a_arms):
                fa = _factors_of(a)
                for f in factors:
                    if f not in fa:
                        raise _fail(f"{p}.arms[{j}]", a, f"arm declares no factor {f!r} "
                                    f"(its factors: {', '.join(map(str, fa)) or 'none'})")
                cells.add((str(fa[factors[0]]), str(fa[factors[1]])))
            la = {c[0] for c in cells}
            lb = {c[1] for c in cells}
            if len(la) < 2 or len(lb) < 2 or len(cells) != len(la) * len(lb):
                raise _fail(f"{p}.arms", a_arms, f"the arms must cross {factors[0]} x {factors[1]} "
                            f"fully with >= 2 levels each; cells present: {sorted(cells)}")
        anovas.append({"name": name, "metric": metric, "arms": list(a_arms), "factors": list(factors)})
    out["anova"] = anovas

    equivs = []
    for i, e in enumerate(_list(spec.get("equivalence"), "stats.equivalence")):
        p = f"stats.equivalence[{i}]"
        _check_keys(e, p, *_ENTRY_KEYS["equivalence"])
        name = _text(e["name"], f"{p}.name")
        if any(q["name"] == name for q in equivs):
            raise _fail(f"{p}.name", name, "equivalence names must be unique")
        arm = _arm_name(e["arm"], f"{p}.arm", arms)
        ref = _arm_name(e["reference"], f"{p}.reference", arms)
        if ref == arm:
            raise _fail(f"{p}.reference", ref, "the reference must differ from the arm")
        metric = _metric(e["metric"], f"{p}.metric")
        equivs.append({"name": name, "arm": arm, "reference": ref, "metric": metric,
                       "margin": _effect(e["margin"], f"{p}.margin", metric)})
    out["equivalence"] = equivs

    hyps = []
    for i, e in enumerate(_list(spec.get("hypotheses"), "stats.hypotheses")):
        p = f"stats.hypotheses[{i}]"
        if not isinstance(e, Mapping):
            raise _fail(p, e, "expected a mapping")
        kind = e.get("kind")
        if kind not in HYPOTHESIS_KINDS:
            raise _fail(f"{p}.kind", kind, f"allowed kinds: {', '.join(HYPOTHESIS_KINDS)}")
        _check_keys(e, p, *_HYP_KEYS[kind])
        hid = _text(e["id"], f"{p}.id")
        if any(h["id"] == hid for h in hyps):
            raise _fail(f"{p}.id", hid, "hypothesis ids must be unique")
        metric = _metric(e["metric"], f"{p}.metric")
        h = {"id": hid, "statement": _text(e["statement"], f"{p}.statement"), "kind": kind,
             "metric": metric, "mde": _effect(e["mde"], f"{p}.mde", metric)}
        if kind in DIRECTIONS:
            if e["direction"] not in DIRECTIONS[kind]:
                raise _fail(f"{p}.direction", e["direction"],
                            f"allowed for kind {kind}: {', '.join(DIRECTIONS[kind])}")
            h["direction"] = e["direction"]
        if kind == "interaction":
            pairs = _list(e["pairs"], f"{p}.pairs")
            if len(pairs) < 2:
                raise _fail(f"{p}.pairs", e["pairs"], "expected a list of >= 2 [arm, reference] pairs, "
                            "ordered from the lowest to the highest level")
            h["pairs"], seen = [], set()
            for j, pair in enumerate(pairs):
                pj = f"{p}.pairs[{j}]"
                if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                    raise _fail(pj, pair, "expected [arm, reference]")
                arm = _arm_name(pair[0], f"{pj}[0]", arms)
                ref = _arm_name(pair[1], f"{pj}[1]", arms)
                if arm == ref:
                    raise _fail(f"{pj}[1]", ref, "the reference must differ from the arm")
                for k, a in ((0, arm), (1, ref)):
                    if a in seen:
                        raise _fail(f"{pj}[{k}]", a, "each arm may appear in one pair only")
                    seen.add(a)
                h["pairs"].append([arm, ref])
            levels = e.get("levels")
            if levels is None:
                h["levels"] = [float(j) for j in range(len(pairs))]
            else:
                lv = _list(levels, f"{p}.levels")
                if len(lv) != len(pairs) or not all(_is_number(x) and math.isfinite(float(x)) for x in lv) \
                        or any(float(b) <= float(a) for a, b in zip(lv, lv[1:])):
                    raise _fail(f"{p}.levels", levels, f"expected {len(pairs)} finite, strictly increasing "
                                "numbers (one per pair, in the pairs' order)")
                h["levels"] = [float(x) for x in lv]
        else:
            h["arm"] = _arm_name(e["arm"], f"{p}.arm", arms)
            h["reference"] = _arm_name(e["reference"], f"{p}.reference", arms)
            if h["reference"] == h["arm"]:
                raise _fail(f"{p}.reference", h["reference"], "the reference must differ from the arm")
        hyps.append(h)
    out["hypotheses"] = hyps
    return copy.deepcopy(out)


# =====================================================================================
# predictions
