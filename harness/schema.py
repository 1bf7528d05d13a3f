"""Metric names, units and direction ("higher is better"), in one place.

Used by the stats spec validation, the analysis and the report, so that a metric's display unit
and its better direction cannot drift between them. Values in ``reports/results.csv`` keep the
unit of :attr:`MetricInfo.unit`; the report shows fractions in percent (differences in
percentage points).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MetricInfo", "METRICS", "metric_info", "is_fraction", "display_scale", "display_unit",
           "SCALAR_METRICS", "DEFAULT_METRICS", "better_word", "STATS_COLUMNS",
           "RESULTS_BASE_COLUMNS", "RESULTS_TAIL_COLUMNS", "RESULTS_COLUMNS", "METRIC_ROW_COLUMNS", "RUN_STATUSES"]


@dataclass(frozen=True)
class MetricInfo:
    """One metric: ``unit`` is ``fraction`` (in [0, 1], shown in %), ``nats`` or ``score``."""

    name: str
    label: str
    unit: str
    higher_is_better: bool


#: every metric name of results.csv (``cifar10h_*`` names are listed in full)
METRICS: dict[str, MetricInfo] = {m.name: m for m in (
    MetricInfo("accuracy", "clean accuracy", "fraction", True),
    MetricInfo("nll", "negative log-likelihood", "nats", False),
    MetricInfo("ece", "expected calibration error", "fraction", False),
    MetricInfo("brier", "Brier score", "score", False),
    MetricInfo("corruption_accuracy_mean15", "corruption accuracy, 15-corruption mean", "fraction", True),
    MetricInfo("corruption_accuracy_mean19", "corruption accuracy, 19-corruption mean", "fraction", True),
    MetricInfo("corruption_accuracy", "corruption accuracy (one corruption)", "fraction", True),
    MetricInfo("corruption_accuracy_family", "corruption accuracy, family mean", "fraction", True),
    MetricInfo("op_accuracy", "accuracy on op-transformed images", "fraction", True),
    MetricInfo("cifar10h_majority_accuracy", "agreement with the CIFAR-10H human majority", "fraction", True),
    MetricInfo("cifar10h_cross_entropy", "cross-entropy to CIFAR-10H labels", "nats", False),
    MetricInfo("cifar10h_kl", "KL(human || model) on CIFAR-10H", "nats", False),
    MetricInfo("cifar10h_human_entropy", "entropy of the CIFAR-10H labels", "nats", False),
)}

#: scalar (corruption-free) metrics a stats spec may name
SCALAR_METRICS = ("accuracy", "nll", "ece", "brier", "corruption_accuracy_mean15",
                  "corruption_accuracy_mean19", "cifar10h_majority_accuracy", "cifar10h_cross_entropy",
                  "cifar10h_kl")
DEFAULT_METRICS = ("accuracy", "corruption_accuracy_mean15", "corruption_accuracy_mean19", "ece")


def metric_info(name: str) -> MetricInfo:
    """The :class:`MetricInfo` of ``name``; ``KeyError`` naming the known metrics otherwise."""
    try:
        return METRICS[str(name)]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}") from None


def is_fraction(name: str) -> bool:
    """Whether ``name`` is a fraction in [0, 1] (shown in percent); unknown names are not."""
    m = METRICS.get(str(name))
    return m is not None and m.unit == "fraction"


def display_scale(name: str) -> float:
    """Factor from the results unit to the display unit: 100 for fractions, else 1."""
    return 100.0 if is_fraction(name) else 1.0


def display_unit(name: str, difference: bool = False) -> str:
    """``%`` (``pp`` for a difference) for fractions, else the unit name."""
    if is_fraction(name):
        return "pp" if difference else "%"
    m = METRICS.get(str(name))
    return m.unit if m is not None else ""


def better_word(name: str) -> str:
    """``higher is better`` / ``lower is better`` for a known metric, else ``''``."""
    m = METRICS.get(str(name))
    if m is None:
        return ""
    return "higher is better" if m.higher_is_better else "lower is better"


#: reports/results.csv (docs/pipeline.md): these columns, with the factor columns between
#: RESULTS_BASE_COLUMNS and RESULTS_TAIL_COLUMNS and an optional ``reason`` column last
RESULTS_BASE_COLUMNS: tuple[str, ...] = ("run_id", "grid", "dataset", "arm")
RESULTS_TAIL_COLUMNS: tuple[str, ...] = ("seed", "metric", "corruption", "severity", "value", "status", "run_dir")
RESULTS_COLUMNS: tuple[str, ...] = RESULTS_BASE_COLUMNS + RESULTS_TAIL_COLUMNS
#: the per-run metric rows of metrics.json / results.csv
METRIC_ROW_COLUMNS: tuple[str, ...] = ("metric", "corruption", "severity", "value")
#: a run's status in results.csv: complete, failed (non-finite loss or metric), corrupt (result files
#: unreadable), running (interrupted) or missing (never ran)
RUN_STATUSES: tuple[str, ...] = ("complete", "failed", "corrupt", "running", "missing")

#: columns of each CSV the stats stage writes under ``reports/stats/`` (docs/pipeline.md);
#: ``summary.csv`` is followed by the factor columns
STATS_COLUMNS: dict[str, list[str]] = {
    "summary": ["arm", "metric", "corruption", "n", "mean", "std", "ci_low", "ci_high", "seeds"],
    "comparisons": ["family", "arm", "reference", "metric", "n_arm", "n_ref", "n_pairs", "paired",
                    "seeds_dropped", "test", "mean_arm", "mean_ref", "diff", "ci_low", "ci_high",
                    "statistic", "df", "p", "p_holm", "reject_holm", "wilcoxon_p", "d_z", "d_z_ci_low",
                    "d_z_ci_high", "hedges_g", "g_ci_low", "g_ci_high", "boot_ci_low", "boot_ci_high",
                    "note"],
    "mcnemar": ["family", "arm", "reference", "seed", "n", "b", "c", "statistic", "p", "method"],
    "anova": ["name", "metric", "term", "F", "df_num", "df_den", "p", "n_seeds", "note"],
    "tost": ["name", "arm", "reference", "metric", "margin", "diff", "p", "p_lower", "p_upper",
             "equivalent", "paired", "n_pairs", "note"],
    "runs_status": ["run_id", "arm", "seed", "status", "reason"],
    "hypothesis_gaps": ["id", "panel", "level", "label", "seed", "value"],
    "plan": ["id", "metric", "design", "n_pilot", "sd", "sd_upper", "mde", "alpha_test", "power_target",
             "power_pilot", "power_pilot_conservative", "seeds_needed", "seeds_needed_conservative", "note"],
}
