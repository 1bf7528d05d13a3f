"""Validation of the ``stats:`` spec of a grid (``params.yaml``), done once at the edge.

Kept apart from :mod:`harness.analysis` so that loading a grid (every DVC stage does) does not
import scipy/statsmodels. The rules are documented in :func:`validate_stats_spec`.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Mapping

import numpy as np

__all__ = ["validate_stats_spec", "SCALAR_METRICS", "DEFAULT_METRICS", "HYPOTHESIS_KINDS"]

#: scalar (corruption-free) metrics a stats spec may name; plus any ``cifar10h_*`` metric
SCALAR_METRICS = ("accuracy", "nll", "ece", "brier", "corruption_accuracy_mean15",
                  "corruption_accuracy_mean19")
_METRIC_PREFIXES = ("cifar10h_",)
DEFAULT_METRICS = ("accuracy", "corruption_accuracy_mean15", "corruption_accuracy_mean19", "ece")
HYPOTHESIS_KINDS = ("interaction", "not_better", "lower", "higher")


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
    "interaction": (("id", "statement", "kind", "anova"), ()),
    "not_better": (("id", "statement", "kind", "arm", "reference", "metric"), ("equivalence",)),
    "lower": (("id", "statement", "kind", "arm", "reference", "metric"), ()),
    "higher": (("id", "statement", "kind", "arm", "reference", "metric"), ()),
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
    if not isinstance(v, str) or not (v in SCALAR_METRICS or (v.startswith(_METRIC_PREFIXES)
                                                               and len(v) > len("cifar10h_"))):
        raise _fail(path, v, f"allowed metrics: {', '.join(SCALAR_METRICS)} or cifar10h_*")
    return v


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
    ``anova``, ``equivalence``, ``hypotheses``. Equivalence margins are in the metric's unit
    (> 0). When ``arms`` (the ``arms:`` mapping of params.yaml) is given, every arm named must
    exist in it, and ANOVA arms must declare both factors and cross them fully.

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
        margin = e["margin"]
        if not (_is_number(margin) and math.isfinite(float(margin)) and float(margin) > 0):
            raise _fail(f"{p}.margin", margin, "expected a finite number > 0 in the metric's unit")
        equivs.append({"name": name, "arm": arm, "reference": ref, "metric": metric,
                       "margin": float(margin)})
    out["equivalence"] = equivs

    hyps = []
    anova_by = {a["name"]: a for a in anovas}
    equiv_by = {q["name"]: q for q in equivs}
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
        h = {"id": hid, "statement": _text(e["statement"], f"{p}.statement"), "kind": kind}
        if kind == "interaction":
            if e["anova"] not in anova_by:
                raise _fail(f"{p}.anova", e["anova"],
                            f"not a name of stats.anova (names: {', '.join(anova_by) or 'none declared'})")
            h["anova"] = e["anova"]
        else:
            h["arm"] = _arm_name(e["arm"], f"{p}.arm", arms)
            h["reference"] = _arm_name(e["reference"], f"{p}.reference", arms)
            if h["reference"] == h["arm"]:
                raise _fail(f"{p}.reference", h["reference"], "the reference must differ from the arm")
            h["metric"] = _metric(e["metric"], f"{p}.metric")
            if "equivalence" in e and e["equivalence"] is not None:
                q = equiv_by.get(e["equivalence"])
                if q is None:
                    raise _fail(f"{p}.equivalence", e["equivalence"],
                                f"not a name of stats.equivalence (names: "
                                f"{', '.join(equiv_by) or 'none declared'})")
                if (q["arm"], q["reference"], q["metric"]) != (h["arm"], h["reference"], h["metric"]):
                    raise _fail(f"{p}.equivalence", e["equivalence"],
                                f"it compares {q['arm']} vs {q['reference']} on {q['metric']}; it must "
                                f"compare the hypothesis' arm, reference and metric ({h['arm']} vs "
                                f"{h['reference']} on {h['metric']})")
                h["equivalence"] = e["equivalence"]
        hyps.append(h)
    out["hypotheses"] = hyps
    return copy.deepcopy(out)


# =====================================================================================
# predictions
