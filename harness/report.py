"""Report stage: turn ``reports/results.csv`` and ``reports/stats/`` into ``report.md`` and ``report.html``.

Reads only the files fixed by ``docs/pipeline.md`` (never the stats code) and writes into ``out_dir``:

* ``report.md``   - Markdown; tables via ``pandas.DataFrame.to_markdown``, figures referenced as
  ``figures/<name>.png``;
* ``report.html`` - one self-contained file: inline CSS, figures embedded as ``data:image/png;base64``,
  no scripts and no external URLs;
* ``figures/*.png`` - matplotlib (Agg canvas, 110 dpi); PNGs left over from an earlier report in
  ``figures/`` are removed;
* ``metrics.json`` - DVC metrics ``{"arms": {arm: {metric: mean}}, "verdicts": {id: verdict}}``, means in
  the unit of ``results.csv`` (accuracies and ECE as fractions in [0, 1]), NaN written as ``null``.

Units in the report: accuracies, ECE and their differences are shown in percent (percentage points for
differences) with 2 decimals; NLL (nats) and Brier are shown as they are. The reference numbers of
``datasets/reference/siedel2025.csv`` are already in percent.

The output depends only on the inputs: the date comes from the ``date`` argument or the provenance's
``created_utc``, never from the clock.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import mappings
from harness.augment.space import SIGNED_OPS, TA_OPS, op_id
from harness.io import atomic_write_bytes, atomic_write_text
from harness.metrics import confidence_bin_sums
from harness.schema import RESULTS_COLUMNS, STATS_COLUMNS, better_word, display_scale, display_unit, is_fraction
from harness.stats import t_ci_mean
from harness.paths import repo_root

__all__ = ["REFERENCE_LABEL", "load_reference", "write_report"]

#: Label of the reference column (the numbers are aggregates of the authors' logs, METHOD §5.0).
REFERENCE_LABEL = "reference, Siedel et al. 2025 authors' logs"

_REPO = repo_root()  # the working copy (harness.paths), never the install location
DPI = 110
RELIABILITY_BINS = 15

REFERENCE_COLUMNS = ("setting", "dataset", "metric", "mean", "std", "std_ddof", "n_runs", "source")
_STATS_FILES: dict[str, tuple[str, ...]] = {f"{name}.csv": tuple(cols) for name, cols in STATS_COLUMNS.items()}

#: (summary metric, table title, metric of the reference CSV or None when the paper reports none)
_TABLE_METRICS: tuple[tuple[str, str, str | None], ...] = (
    ("accuracy", "Clean accuracy", "clean_accuracy"),
    ("corruption_accuracy_mean15", "Corruption accuracy, mean over 15 corruptions", None),
    ("corruption_accuracy_mean19", "Corruption accuracy, mean over 19 corruptions",
     "corruption_accuracy_mean19"),
    ("ece", f"Expected calibration error, {RELIABILITY_BINS} bins", None),
)


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------
def _is_percent(metric: str) -> bool:
    """Whether ``metric`` is a fraction in [0, 1] shown in percent (:mod:`harness.schema`)."""
    return is_fraction(str(metric))


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _fmt(x: Any, nd: int = 2, scale: float = 1.0, signed: bool = False) -> str:
    v = _float(x)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return f"{v * scale:+.{nd}f}" if signed else f"{v * scale:.{nd}f}"


def _fmt_p(p: Any) -> str:
    v = _float(p)
    if math.isnan(v):
        return "–"
    return f"{v:.1e}" if v < 1e-4 else f"{v:.4f}"


def _fmt_int(x: Any) -> str:
    v = _float(x)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞"
    return str(int(round(v)))


def _text(x: Any) -> str:
    """A cell as text: NaN/None -> '', dicts as ``k: v; ...``, lists joined by '; '."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, Mapping):
        return "; ".join(f"{k}: {_text(v)}" for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return "; ".join(_text(v) for v in x)
    return str(x)


def _nan_to_none(x: Any) -> float | None:
    v = _float(x)
    return v if math.isfinite(v) else None


# ------------------------------------------------------------------------------------------------
# document model rendered to Markdown and HTML
# ------------------------------------------------------------------------------------------------
@dataclass
class _Doc:
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: Iterable[str]) -> None:
        self.blocks.append(("ul", list(items)))

    def table(self, df: pd.DataFrame) -> None:
        cells = df.astype(str).reset_index(drop=True)
        self.blocks.append(("table", cells.apply(lambda col: col.str.replace("\n", " ", regex=False))))

    def figure(self, name: str, png: bytes, caption: str) -> None:
        self.blocks.append(("img", (name, png, caption)))

    def markdown(self) -> str:
        out = []
        for kind, body in self.blocks:
            if kind == "h":
                out.append("#" * body[0] + " " + body[1])
            elif kind == "p":
                out.append(body)
            elif kind == "ul":
                out.append("\n".join(f"- {item}" for item in body))
            elif kind == "table":
                cells = body.apply(lambda col: col.str.replace("|", "\\|", regex=False))
                cells.columns = [str(c).replace("|", "\\|") for c in body.columns]
                out.append(cells.to_markdown(index=False, disable_numparse=True))
            elif kind == "img":
                name, _png, caption = body
                out.append(f"![{caption}](figures/{name}.png)\n\n*{caption}*")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        e = html.escape
        out = [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{e(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
        ]
        for kind, body in self.blocks:
            if kind == "h":
                out.append(f"<h{body[0]}>{e(body[1])}</h{body[0]}>")
            elif kind == "p":
                out.append(f"<p>{_inline_html(body)}</p>")
            elif kind == "ul":
                out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in body) + "</ul>")
            elif kind == "table":
                out.append(body.to_html(index=False, escape=True, border=0, na_rep="–"))
            elif kind == "img":
                name, png, caption = body
                data = base64.b64encode(png).decode("ascii")
                out.append(f'<figure><img alt="{e(name)}" src="data:image/png;base64,{data}">'
                           f"<figcaption>{e(caption)}</figcaption></figure>")
        out += ["</body>", "</html>"]
        return "\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    """Escape ``text`` and turn Markdown ``**bold**`` and ```code``` spans into tags."""
    parts = html.escape(text).split("`")
    if len(parts) % 2 == 1:  # balanced backticks
        for i in range(1, len(parts), 2):
            parts[i] = f"<code>{parts[i]}</code>"
        joined = "".join(parts)
    else:
        joined = "`".join(parts)
    bold = joined.split("**")
    if len(bold) % 2 == 1:
        joined = "".join(f"<strong>{b}</strong>" if i % 2 else b for i, b in enumerate(bold))
    return joined


_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:72rem;margin:2rem auto;"
    "padding:0 1rem;color:#222;line-height:1.45}"
    "h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #bbb;margin-top:2rem}"
    "table{border-collapse:collapse;margin:0.6rem 0;font-size:0.88rem}"
    "th,td{border:1px solid #ccc;padding:0.2rem 0.5rem;text-align:left;vertical-align:top}"
    "th{background:#f0f0f0}tr:nth-child(even) td{background:#fafafa}"
    "figure{margin:1rem 0}img{max-width:100%;height:auto}figcaption{font-size:0.85rem;color:#555}"
    "code{background:#f3f3f3;padding:0 0.2rem}"
)


# ------------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------------
def _read_csv(path: Path, required: Iterable[str], what: str) -> pd.DataFrame:
    """Read ``path``; a zero-byte file is an empty table; raise naming the file or missing columns."""
    required = list(required)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} (see docs/pipeline.md)")
    try:
        df = pd.read_csv(path, low_memory=False)
    except pd.errors.EmptyDataError:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in required})
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; {what} needs {required} (docs/pipeline.md)")
    return df


def _as_str(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    """Empty cells of ``cols`` as '' and every value as str (e.g. the empty ``corruption`` of clean rows)."""
    for c in cols:
        if c in df.columns:
            df[c] = df[c].astype(object).where(df[c].notna(), "").astype(str)
    return df


def load_reference(path: str | Path = "datasets/reference/siedel2025.csv") -> pd.DataFrame:
    """The reference table (columns :data:`REFERENCE_COLUMNS`; ``mean`` and ``std`` in percent).

    A relative ``path`` that does not exist from the working directory is looked up from the repository root.
    """
    p = Path(path)
    if not p.is_file() and not p.is_absolute() and (_REPO / p).is_file():
        p = _REPO / p
    df = _read_csv(p, REFERENCE_COLUMNS, "reference table")
    return _as_str(df, "setting", "dataset", "metric", "source")


def _factors(params: Mapping, arm: str, summary: pd.DataFrame) -> dict:
    """Factors of ``arm`` from ``params['arms']``, else from the summary's factor columns."""
    spec = (params.get("arms") or {}).get(arm) or {}
    if spec.get("factors"):
        return dict(spec["factors"])
    rows = summary[summary["arm"] == arm]
    fixed = set(_STATS_FILES["summary.csv"])
    if rows.empty:
        return {}
    first = rows.iloc[0]
    return {c: first[c] for c in summary.columns if c not in fixed and pd.notna(first[c]) and first[c] != ""}


def _arm_order(params: Mapping, *frames: pd.DataFrame) -> list[str]:
    """``run_arms`` order first, then further arms of ``params['arms']``, then any arm seen in ``frames``."""
    order: list[str] = []
    for arm in list(params.get("run_arms") or []) + list((params.get("arms") or {}).keys()):
        if arm not in order:
            order.append(str(arm))
    seen = set()
    for df in frames:
        if "arm" in df.columns:
            seen.update(df["arm"].dropna().astype(str))
    present = [a for a in order if a in seen]
    return present + sorted(seen - set(present))


# ------------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------------
def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = max(1, min(max_cols, n))
    return int(math.ceil(n / cols)), cols


_Figure = tuple[str, bytes, str]  # (name, PNG bytes, caption)


def _mapping_figures(fit_dirs: Mapping[str, str | Path] | None) -> tuple[list[_Figure], list[str]]:
    """One figure per fit directory and ``*_table.csv`` with ``hvs`` rows: per op, the normalised human points
    with 95 % intervals, the fitted mapping and the ``polynomial_chance`` / ``polynomial_custom`` presets."""
    if not fit_dirs:
        return [], ["No mapping-fit directory was given (`fit_dirs`), so the human-data mapping curves are "
                    "not shown."]
    figs, notes = [], []
    grid = np.linspace(0.0, 1.0, 101)
    for label in sorted(fit_dirs):
        d = Path(fit_dirs[label])
        if not d.is_dir():
            raise FileNotFoundError(f"mapping-fit directory {label!r} not found: {d}")
        found = False
        for table_path in sorted(d.glob("*_table.csv")):
            cols = ("op", "sign", "severity", "source", "point", "low", "high")
            table = _as_str(_read_csv(table_path, cols, "mapping-fit table"), "op", "sign", "source")
            hv = table[table["source"].str.startswith("hvs")]
            if hv.empty:
                continue
            found = True
            stem = table_path.name[: -len("_table.csv")]
            json_path = d / f"{stem}.json"
            if not json_path.is_file():
                raise FileNotFoundError(f"mapping set {json_path} not found (it belongs to {table_path})")
            ms = mappings.from_dict(json.loads(json_path.read_text(encoding="utf-8")))
            if not isinstance(ms, mappings.MappingSet):
                raise ValueError(f"{json_path}: expected a mapping_set, got {type(ms).__name__}")
            k = ms.num_classes
            chance = mappings.preset("polynomial_chance", k)
            custom = mappings.preset("polynomial_custom", k)
            ops = [op for op in TA_OPS if op in set(hv["op"])]
            rows, cols = _grid(len(ops))
            fig = _new_figure(3.3 * cols, 2.7 * rows)
            axes = fig.subplots(rows, cols, squeeze=False)
            for ax in axes.flat[len(ops):]:
                ax.set_visible(False)
            for ax, op in zip(axes.flat, ops):
                ids = np.full(grid.shape, op_id(op), dtype=np.int64)
                part_op = hv[hv["op"] == op]
                signs = ("+", "-") if op in SIGNED_OPS else ("",)
                for sign, colour, marker in zip(signs, ("tab:blue", "tab:orange"), ("o", "s")):
                    part = part_op[part_op["sign"] == sign]
                    if not part.empty:
                        y = part["point"].to_numpy(float)
                        yerr = np.vstack([y - part["low"].to_numpy(float), part["high"].to_numpy(float) - y])
                        ax.errorbar(part["severity"].to_numpy(float), y, yerr=np.clip(yerr, 0, None),
                                    fmt=marker, ms=3, color=colour, alpha=0.7, capsize=1.5,
                                    label=f"human {sign}".strip())
                    mag = np.full(grid.shape, -1.0 if sign == "-" else 1.0)
                    ax.plot(grid, ms(ids, mag, grid), color=colour, lw=1.6, label=f"fitted {sign}".strip())
                ones = np.ones_like(grid)
                ax.plot(grid, chance(ids, ones, grid), "k--", lw=0.9, label="polynomial_chance")
                ax.plot(grid, custom(ids, ones, grid), "k:", lw=0.9, label="polynomial_custom")
                src = sorted({v for key, v in ms.sources.items() if key.rstrip("+-") == op})
                ax.set_title(op + (f"\n{', '.join(src)}" if src else ""), fontsize=8)
                ax.set_ylim(0, 1.05)
                ax.set_xlabel("severity", fontsize=8)
                ax.set_ylabel("confidence", fontsize=8)
                ax.tick_params(labelsize=7)
                ax.legend(fontsize=6, loc="lower left")
            fig.suptitle(f"Mapping '{ms.name}' ({label}, K={k}) over normalised human accuracy", fontsize=10)
            fig.tight_layout()
            name = _safe_name(f"mapping_{label}_{stem}")
            figs.append((name, _png(fig),
                         f"Fitted mapping '{ms.name}' of fit '{label}' ({table_path.name}): human accuracy "
                         "normalised to confidence (points with 95 % intervals), the fitted curve per sign, "
                         "and the polynomial_chance (dashed) / polynomial_custom (dotted) presets."))
        if not found:
            notes.append(f"Fit directory '{label}' ({d}) holds no `*_table.csv` with `hvs` rows, "
                         "so it has no human-data mapping figure.")
    return figs, notes


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def _errbars(mean: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    err = np.vstack([mean - lo, hi - mean])
    return np.where(np.isfinite(err), np.clip(err, 0, None), 0.0)


def _re_sweep_figure(comp: pd.DataFrame, arm_factors: dict[str, dict], confidence: float):
    """Paired soft - hard gap in clean accuracy (pp) per RE intensity p·s_max, from comparisons.csv."""
    lvl = f"{100 * confidence:g} %"
    pts = []
    rows = comp[(comp["metric"].astype(str) == "accuracy")] if not comp.empty else comp
    for _, r in rows.iterrows():
        fa, fr = arm_factors.get(str(r["arm"]), {}), arm_factors.get(str(r["reference"]), {})
        if not (fa.get("family") == fr.get("family") == "random_erasing"
                and fa.get("label_type") == "soft" and fr.get("label_type") == "hard"):
            continue
        p, s = _float(fa.get("re_p")), _float(fa.get("re_smax"))
        if math.isnan(p) or math.isnan(s) or (_float(fr.get("re_p")), _float(fr.get("re_smax"))) != (p, s):
            continue
        pts.append({"x": p * s, "tag": f"{p:g}/{s:g}", "diff": _float(r["diff"]) * 100,
                    "lo": _float(r["ci_low"]) * 100, "hi": _float(r["ci_high"]) * 100,
                    "paired": str(r.get("paired", "")) == "True"})
    pts = [q for q in pts if math.isfinite(q["diff"])]
    if not pts:
        return None, ("No comparison pairs a soft and a hard random-erasing arm with the same numeric `re_p` and "
                      "`re_smax` factors on clean accuracy, so the RE sweep figure is skipped.")
    df = pd.DataFrame(pts).sort_values("x")
    fig = _new_figure(5.5, 3.8)
    ax = fig.subplots()
    m = df["diff"].to_numpy(float)
    err = _errbars(m, df["lo"].to_numpy(float), df["hi"].to_numpy(float))
    ax.errorbar(df["x"], m, yerr=err, marker="o", ms=5, capsize=3, color="tab:blue", label="soft − hard")
    for xi, yi, tag in zip(df["x"], m, df["tag"]):
        ax.annotate(tag, (xi, yi), textcoords="offset points", xytext=(5, 3), fontsize=6, color="0.35")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("RE intensity p · s_max (points labelled p/s_max)")
    ax.set_ylabel("clean accuracy, soft − hard (pp)")
    ax.set_title(f"Random Erasing: paired soft − hard gap (mean, {lvl} t CI)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    unpaired = int((~df["paired"]).sum())
    caption = (f"Clean-accuracy gap soft − hard (percentage points) of each random-erasing pair against RE "
               f"intensity p · s_max: mean of the per-seed paired differences with its {lvl} t interval "
               "(comparisons.csv); above 0, soft labels help."
               + (f" {unpaired} pair(s) shared no seeds and are unpaired (Welch)." if unpaired else ""))
    return ("re_sweep", _png(fig), caption), None


def _ta_ops_figure(results: pd.DataFrame, arm_factors: dict[str, dict], confidence: float):
    """Mean ``op_accuracy`` (%) per TrivialAugment op and arm with a t interval over seeds; bars from 0."""
    lvl = f"{100 * confidence:g} %"
    ta_arms = [a for a, f in arm_factors.items() if f.get("family") == "trivial_augment"]
    rows = results[(results["metric"] == "op_accuracy") & results["arm"].isin(ta_arms)
                   & (results["status"] == "complete")]
    rows = rows[np.isfinite(rows["value"].astype(float))]
    if rows.empty:
        return None, ("results.csv has no `op_accuracy` rows for arms of family `trivial_augment`, so the "
                      "per-op TrivialAugment figure is skipped.")
    per_run = rows.groupby(["arm", "seed", "corruption"], sort=False)["value"].mean() * 100
    agg = per_run.groupby(level=["arm", "corruption"]).agg(["mean", "std", "size"])
    lo, hi = t_ci_mean(agg["mean"].to_numpy(), agg["std"].to_numpy(), agg["size"].to_numpy(), confidence)
    agg["lo"], agg["hi"] = lo, hi
    present = set(agg.index.get_level_values("corruption"))
    ops = [op for op in TA_OPS if op in present] + sorted(present - set(TA_OPS))
    arms = [a for a in ta_arms if a in set(agg.index.get_level_values("arm"))]
    width = 0.8 / len(arms)
    fig = _new_figure(max(6.0, 0.55 * len(ops) * max(1, len(arms)) ** 0.5 + 2),
                      4.2 + 0.2 * math.ceil(len(arms) / 4))
    ax = fig.subplots()
    x = np.arange(len(ops))
    for i, arm in enumerate(arms):
        part = agg.loc[arm].reindex(ops)
        m = part["mean"].to_numpy(float)
        err = _errbars(m, part["lo"].to_numpy(float), part["hi"].to_numpy(float))
        ax.bar(x + (i - (len(arms) - 1) / 2) * width, np.nan_to_num(m), width, yerr=err, capsize=1.5,
               error_kw={"lw": 0.7}, label=arm)
    ax.set_ylim(0, 100)
    ax.set_xticks(x)
    ax.set_xticklabels(ops, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("accuracy on op-transformed\ntest images (%)")
    ax.set_title(f"TrivialAugment hard vs soft, per op (mean over seeds, {lvl} t CI)", fontsize=10)
    ax.legend(fontsize=7, ncol=min(4, len(arms)), loc="upper center", bbox_to_anchor=(0.5, -0.25))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    caption = (f"Accuracy (%) on test images transformed by each TrivialAugment op (per run: mean over magnitude "
               f"bins), mean over seeds with the {lvl} t interval, per trivial_augment arm; axis from 0.")
    return ("ta_ops", _png(fig), caption), None


def _gap_figures(gaps: pd.DataFrame, hypotheses: list[dict], confidence: float) -> list[_Figure]:
    """Per hypothesis: per-seed paired differences (dots), the primary estimate with its one-sided
    simultaneous bound (the interval that goes with the verdict), zero and mde/margin lines;
    interactions also show the gap per level with each seed's line."""
    lvl = f"{100 * confidence:g} %"
    figs = []
    for h in hypotheses:
        hid = str(h.get("id"))
        part = gaps[gaps["id"].astype(str) == hid] if not gaps.empty else gaps
        if part.empty:
            continue
        metric = str(h.get("metric", ""))
        scale = display_scale(metric)
        unit = display_unit(metric, difference=True)
        est, bound = (_float(h.get(k)) * scale for k in ("estimate", "bound"))
        blvl = f"{100 * _float(h.get('bound_level')):.3g} %"
        lower_bound = str(h.get("alternative")) == "greater"  # the bound lies below the estimate
        mde = _float(h.get("mde")) * scale
        null = _float(h.get("null")) * scale
        kind = str(h.get("kind"))
        level_rows = part[part["panel"] == "gap"]
        contrast = part[part["panel"].isin(["contrast", "difference"])]
        ncols = 2 if not level_rows.empty else 1
        fig = _new_figure(3.6 * ncols + 0.6, 3.6)
        axes = fig.subplots(1, ncols, squeeze=False)[0]
        if not level_rows.empty:
            ax = axes[0]
            wide = level_rows.pivot_table(index="seed", columns="level", values="value", aggfunc="first") * scale
            xs = wide.columns.to_numpy(float)
            for _, row in wide.iterrows():
                ax.plot(xs, row.to_numpy(float), color="0.7", lw=0.8, marker="o", ms=3)
            mean, sd, n = wide.mean().to_numpy(), wide.std(ddof=1).to_numpy(), wide.count().to_numpy()
            clo, chi = t_ci_mean(mean, sd, n, confidence)
            ax.errorbar(xs, mean, yerr=_errbars(mean, clo, chi), color="tab:blue", marker="s", ms=5, capsize=3,
                        lw=1.5, label=f"mean, {lvl} t CI")
            ax.axhline(0, color="k", lw=0.8)
            ax.set_xticks(xs)
            ax.set_xlabel("level")
            ax.set_ylabel(f"gap arm − reference ({unit})")
            ax.set_title("gap per level (grey: one seed)", fontsize=9)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        ax = axes[-1]
        vals = contrast["value"].to_numpy(float) * scale
        jitter = np.linspace(-0.12, 0.12, len(vals)) if len(vals) > 1 else np.zeros(len(vals))
        ax.scatter(jitter, vals, color="0.45", s=18, zorder=3, label="one seed")
        if math.isfinite(est):
            lo, hi = (bound, est) if lower_bound else (est, bound)
            ax.errorbar([0.35], [est], yerr=_errbars(np.array([est]), np.array([lo]), np.array([hi])),
                        color="tab:red", marker="D", ms=6, capsize=4, lw=1.5,
                        label=f"estimate, one-sided {blvl} bound")
        ax.axhline(0, color="k", lw=0.8)
        if kind == "non_superiority" and math.isfinite(null):
            ax.axhline(null, color="tab:orange", ls="--", lw=1, label=f"margin {null:+.3g} {unit}")
        elif math.isfinite(mde):
            sign = -1.0 if str(h.get("alternative")) == "less" else 1.0
            ax.axhline(sign * mde, color="tab:green", ls="--", lw=1, label=f"mde {sign * mde:+.3g} {unit}")
        ax.set_xlim(-0.5, 0.7)
        ax.set_xticks([])
        label = str(contrast["label"].iloc[0]) if not contrast.empty else "contrast"
        ax.set_ylabel(f"{label} ({unit})" if len(label) < 40 else f"contrast ({unit})")
        ax.set_title(textwrap.fill(f"{hid}: {h.get('verdict_text') or h.get('verdict')}", 48), fontsize=9)
        ax.legend(fontsize=6.5, loc="best")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        caption = (f"{hid} ({metric}): per-seed paired {label} (dots) with the primary estimate and its one-sided "
                   f"{blvl} confidence bound in the tested direction (simultaneous over the declared hypotheses: "
                   "beyond the null only when the hypothesis is supported), the zero line and the "
                   + ("non-superiority margin" if kind == "non_superiority" else "declared smallest effect of "
                      "interest (mde)") + (". Left: the gap arm − reference at each level, one grey line per seed."
                                           if not level_rows.empty else "."))
        figs.append((f"gap_{_safe_name(hid)}", _png(fig), caption))
    return figs


def _heatmap_figure(summary: pd.DataFrame, arms: list[str]):
    """Arms × corruptions heatmap of ``corruption_accuracy`` (%), annotated."""
    rows = summary[summary["metric"] == "corruption_accuracy"]
    if rows.empty:
        return None, "summary.csv has no `corruption_accuracy` rows, so the corruption heatmap is skipped."
    corr = list(pd.unique(rows["corruption"]))
    table = rows.pivot_table(index="arm", columns="corruption", values="mean", aggfunc="first")
    order = [a for a in arms if a in table.index] + sorted(set(table.index) - set(arms))
    values = table.reindex(index=order, columns=corr).to_numpy(float) * 100
    fig = _new_figure(min(24.0, max(6.5, 2.5 + 0.62 * len(corr))),
                      min(30.0, max(3.5, 2.0 + 0.36 * len(order))))
    ax = fig.subplots()
    im = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="viridis")
    ax.set_xticks(np.arange(len(corr)))
    ax.set_xticklabels(corr, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(np.arange(len(order)))
    ax.set_yticklabels(order, fontsize=7)
    finite = values[np.isfinite(values)]
    mid = float(np.mean([finite.min(), finite.max()])) if finite.size else 0.0
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=5.5,
                    color="black" if v > mid else "white")
    fig.colorbar(im, ax=ax, label="accuracy (%)")
    ax.set_title("Corruption accuracy per arm (mean over severities, then seeds)", fontsize=10)
    fig.tight_layout()
    caption = ("Accuracy (%) per arm and corruption: mean over severities per run, then over seeds "
               "(summary.csv, metric corruption_accuracy).")
    return ("corruption_heatmap", _png(fig), caption), None


def _reliability_figure(results: pd.DataFrame, arms: list[str], runs_root: Path):
    """Per arm, pooled over its complete runs' ``predictions.npz``: accuracy per confidence bin vs the
    diagonal."""
    runs = results.loc[results["status"] == "complete", ["arm", "seed", "run_dir"]]
    runs = runs[runs["run_dir"] != ""].drop_duplicates()
    edges = np.linspace(0.0, 1.0, RELIABILITY_BINS + 1)
    stats: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int, int]] = {}
    missing = 0
    for arm, part in runs.groupby("arm", sort=False):
        count = np.zeros(RELIABILITY_BINS)
        conf_sum = np.zeros(RELIABILITY_BINS)
        acc_sum = np.zeros(RELIABILITY_BINS)
        n_runs = 0
        for run_dir in sorted(set(part["run_dir"])):
            path = runs_root / run_dir / "predictions.npz"
            if not path.is_file():
                missing += 1
                continue
            with np.load(path) as z:
                absent = [k for k in ("labels", "clean", "clean_confidence") if k not in z.files]
                if absent:
                    raise ValueError(f"{path}: missing array(s) {absent} (docs/pipeline.md)")
                labels, pred, conf = z["labels"], z["clean"], z["clean_confidence"].astype(np.float64)
            if not (labels.shape == pred.shape == conf.shape):
                raise ValueError(f"{path}: labels {labels.shape}, clean {pred.shape} and clean_confidence "
                                 f"{conf.shape} differ in shape")
            c, cs, a = confidence_bin_sums(conf, pred.astype(np.int64) == labels, RELIABILITY_BINS)
            count += c
            conf_sum += cs
            acc_sum += a
            n_runs += 1
        if n_runs:
            stats[str(arm)] = (count, conf_sum, acc_sum, n_runs, int(count.sum()))
    note = (f" {missing} complete run(s) had no predictions.npz under {runs_root} and were left out."
            if missing else "")
    if not stats:
        return None, ("No complete run has a predictions.npz (looked under "
                      f"`{runs_root}/<run_dir>/predictions.npz`), so the reliability diagrams are skipped.")
    order = [a for a in arms if a in stats] + sorted(set(stats) - set(arms))
    rows, cols = _grid(len(order), 5)
    fig = _new_figure(2.6 * cols, 2.6 * rows + 0.3)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(order):]:
        ax.set_visible(False)
    centres = (edges[:-1] + edges[1:]) / 2
    for ax, arm in zip(axes.flat, order):
        count, conf_sum, acc_sum, n_runs, n = stats[arm]
        safe = np.maximum(count, 1)
        acc = np.where(count > 0, acc_sum / safe, np.nan)
        ece = float(np.abs(acc_sum - conf_sum).sum() / n) if n else math.nan
        ax.bar(centres, np.nan_to_num(acc), width=1 / RELIABILITY_BINS, edgecolor="k", lw=0.4,
               color="tab:blue", alpha=0.8)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{arm}\nECE {100 * ece:.2f} % ({n_runs} run{'s' if n_runs != 1 else ''})", fontsize=7.5)
        ax.tick_params(labelsize=6)
        ax.set_xlabel("confidence", fontsize=7)
        ax.set_ylabel("accuracy", fontsize=7)
    fig.tight_layout()
    caption = ("Reliability diagrams on the clean test set, predictions pooled over each arm's complete "
               f"runs: accuracy per confidence bin ({RELIABILITY_BINS} equal-width bins (lo, hi]) against "
               f"the diagonal; the title gives the pooled ECE.{note}")
    return ("reliability", _png(fig), caption), None


# ------------------------------------------------------------------------------------------------
# sections
# ------------------------------------------------------------------------------------------------
def _verdicts(doc: _Doc, hypotheses: list[dict], plan: pd.DataFrame, stats_json: Mapping,
              figures: list[_Figure]) -> None:
    doc.heading(2, "Pre-declared hypotheses (primary, confirmatory)")
    if not hypotheses:
        doc.para("No hypotheses were declared (hypotheses.json is empty).")
        return
    confidence = _float(stats_json.get("confidence", 0.95))
    lvl = f"{100 * confidence:g} %"
    verdicts = [str(h.get("verdict", "")) for h in hypotheses]
    counts = pd.Series(verdicts).value_counts(sort=False)
    family = stats_json.get("holm_family") or []
    doc.para("Verdicts: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ". Each hypothesis is decided "
             "by one one-sided, seed-paired primary test in its declared direction; the primary p-values of "
             f"the declared hypotheses ({', '.join(map(str, family)) or 'none'}) form one Holm family. "
             "Effects in percentage points (pp) for accuracies and ECE.")

    def _eff(h: Mapping, key: str) -> str:
        return _fmt(h.get(key), scale=display_scale(str(h.get("metric", ""))), signed=True)

    def _pw(h: Mapping) -> str:
        p, pc = _float(h.get("power")), _float(h.get("power_conservative"))
        if math.isnan(p):
            return "–"
        return f"{100 * p:.0f} %" + (f" ({100 * pc:.0f} %)" if math.isfinite(pc) else "")

    doc.table(pd.DataFrame({
        "id": [str(h.get("id", "")) for h in hypotheses],
        "statement": [_text(h.get("statement")) for h in hypotheses],
        "verdict": [str(h.get("verdict_text") or h.get("verdict", "")) for h in hypotheses],
        "estimate, one-sided bound": [
            f"{_eff(h, 'estimate')}, {'≥' if h.get('alternative') == 'greater' else '≤'} {_eff(h, 'bound')} "
            f"{display_unit(str(h.get('metric', '')), difference=True)} "
            f"({100 * _float(h.get('bound_level')):.3g} %)"
            if math.isfinite(_float(h.get("estimate"))) else "–" for h in hypotheses],
        "mde": [f"{_float(h.get('mde')) * display_scale(str(h.get('metric', ''))):g} "
                f"{display_unit(str(h.get('metric', '')), difference=True)}" for h in hypotheses],
        "seeds": [_fmt_int(h.get("n_seeds")) for h in hypotheses],
        "p (one-sided)": [_fmt_p(h.get("p")) for h in hypotheses],
        "p (Holm)": [_fmt_p(h.get("p_holm")) for h in hypotheses],
        "power at mde (conservative)": [_pw(h) for h in hypotheses],
    }))
    doc.para("How to read a verdict: **supported** -- the primary test rejects after Holm; **contradicted** -- "
             "the secondary test points the other way (the opposite one-sided test, or for a non-superiority "
             "hypothesis the test that the gain exceeds the margin), Holm-adjusted over the declared hypotheses' "
             "secondary tests; **not supported** -- no rejection although the design had at least the target "
             "power at the declared smallest effect (mde), even with the SD's upper confidence bound; "
             "**not shown** -- no rejection with less power than that: absence of evidence, not evidence of "
             "absence; **inconclusive** -- fewer than 3 (common) seeds; **not tested** -- an arm has no "
             "results (it stays in the Holm family with p = 1). Power is that of the primary test at the mde "
             f"with the observed SD of the per-seed contrast (in brackets, and what the verdict uses: with its "
             f"upper {lvl} confidence bound), at alpha/m (Holm's first step). The bound is the one-sided "
             "confidence bound of the estimate in the tested direction at 1 - alpha/m, simultaneous over the "
             "declared hypotheses (Bonferroni): it lies beyond the null only for a supported hypothesis. "
             "hypotheses.json also keeps the two-sided, unadjusted t interval (ci_low, ci_high) as a "
             "description.")
    doc.bullets(f"**{h.get('id')}** ({h.get('kind')}, {h.get('metric')}): {_text(h.get('evidence'))}"
                for h in hypotheses)
    doc.heading(3, "Seeds needed (plan)")
    if plan.empty:
        doc.para("No plan was computed (plan.csv is empty).")
    else:
        doc.para("Seeds per arm for the target power at each hypothesis' mde, from this grid's paired SDs taken "
                 "as a pilot (conservative: the SD's upper confidence bound), tests at alpha/m. "
                 "`softbench plan` prints the same table for another pilot or mde.")
        doc.table(pd.DataFrame({
            "id": plan["id"].astype(str),
            "design": plan["design"].map(_text),
            "pilot seeds": plan["n_pilot"].map(_fmt_int),
            "mde": [f"{_float(v) * display_scale(m):g} {display_unit(m, difference=True)}"
                    for v, m in zip(plan["mde"], plan["metric"].astype(str))],
            "SD (upper bound)": [f"{_fmt(s, scale=display_scale(m))} ({_fmt(u, scale=display_scale(m))}) "
                                 f"{display_unit(m, difference=True)}"
                                 for s, u, m in zip(plan["sd"], plan["sd_upper"], plan["metric"].astype(str))],
            "power now (conservative)": [f"{_fmt(p, scale=100, nd=0)} % ({_fmt(c, scale=100, nd=0)} %)"
                                         for p, c in zip(plan["power_pilot"], plan["power_pilot_conservative"])],
            "seeds needed (conservative)": [f"{_fmt_int(a)} ({_fmt_int(b)})" for a, b in
                                            zip(plan["seeds_needed"], plan["seeds_needed_conservative"])],
            "note": plan["note"].map(_text),
        }))
    if figures:
        doc.heading(3, "Gap figures")
        for fig in figures:
            doc.figure(*fig)


def _arms_table(doc: _Doc, arms: list[str], arm_factors: dict[str, dict], params: Mapping,
                summary: pd.DataFrame) -> None:
    doc.heading(2, "Arms")
    n_seeds = summary[summary["metric"] == "accuracy"].groupby("arm")["n"].first()
    specs = params.get("arms") or {}
    doc.table(pd.DataFrame({
        "arm": arms,
        "factors": ["; ".join(f"{k}={v}" for k, v in sorted(arm_factors.get(a, {}).items())) for a in arms],
        "paper setting": [str((specs.get(a) or {}).get("reference") or "") for a in arms],
        "seeds (clean accuracy)": [_fmt_int(n_seeds.get(a)) for a in arms],
    }))


def _metric_tables(doc: _Doc, summary: pd.DataFrame, arms: list[str], arm_factors: dict[str, dict],
                   params: Mapping, reference_csv: str | Path, confidence: float = 0.95) -> None:
    lvl = f"{100 * confidence:g} %"
    doc.heading(2, f"Results per arm (mean ± {lvl} CI over seeds)")
    doc.para(f"Means over seeds with the t-based {lvl} confidence interval of the mean (summary.csv), in "
             "percent; “n” is the number of seeds. No CI is given for fewer than 2 seeds. Each table says "
             "whether higher or lower is better.")
    dataset = str(params.get("dataset", ""))
    comparable = bool(params.get("reference_comparable", False))
    specs = params.get("arms") or {}
    wanted = {a: str(specs[a]["reference"]) for a in arms if (specs.get(a) or {}).get("reference")}
    ref = load_reference(reference_csv) if comparable and wanted else None
    mismatch = params.get("reference_mismatch") or []
    if comparable and mismatch:
        comparable = False
        doc.para("No reference (paper) column: params.yaml says `reference_comparable: true`, but this grid "
                 "departs from the paper's protocol: " + "; ".join(map(str, mismatch)) + ".")
    elif not comparable:
        doc.para(f"No reference (paper) column: this grid (dataset `{dataset}`) is not comparable with "
                 "Siedel et al. 2025 (`reference_comparable: false` in params.yaml: dataset, model or "
                 "schedule do not match the paper's).")
    elif not wanted:
        doc.para("No reference (paper) column: no arm names a paper `reference` setting in params.yaml.")
    else:
        known = set(ref.loc[ref["dataset"] == dataset, "setting"])
        unknown = {a: s for a, s in wanted.items() if s not in known}
        if unknown:
            doc.para(f"Reference setting(s) not found for dataset `{dataset}` in {Path(reference_csv).name}: "
                     + "; ".join(f"`{a}` → “{s}”" for a, s in unknown.items()) + ".")
    for metric, title, ref_metric in _TABLE_METRICS:
        doc.heading(3, f"{title} ({'%, ' if _is_percent(metric) else ''}{better_word(metric)})")
        rows = summary[(summary["metric"] == metric) & (summary["corruption"] == "")]
        rows = rows.drop_duplicates("arm").set_index("arm")
        present = [a for a in arms if a in rows.index]
        if not present:
            doc.para(f"summary.csv has no rows for metric `{metric}`.")
            continue
        r = rows.loc[present]
        scale = 100.0 if _is_percent(metric) else 1.0
        mean, lo, hi = (r[c].astype(float).to_numpy() for c in ("mean", "ci_low", "ci_high"))
        half = (hi - lo) / 2
        cells = [f"{_fmt(m, scale=scale)} ± {_fmt(h, scale=scale)}" if np.isfinite(h)
                 else _fmt(m, scale=scale) for m, h in zip(mean, half)]
        table = pd.DataFrame({
            "arm": present,
            "label type": [str(arm_factors.get(a, {}).get("label_type", "")) for a in present],
            "family": [str(arm_factors.get(a, {}).get("family", "")) for a in present],
            "n": [_fmt_int(v) for v in r["n"]],
            f"mean ± {lvl} CI": cells,
            f"{lvl} CI": [f"[{_fmt(a, scale=scale)}, {_fmt(b, scale=scale)}]"
                        if np.isfinite(a) and np.isfinite(b) else "n < 2: no CI" for a, b in zip(lo, hi)],
        })
        if comparable and wanted:
            if ref_metric is None:
                doc.para(f"The paper's logs report no `{metric}`, so this table has no reference column.")
            else:
                sel = ref[(ref["dataset"] == dataset) & (ref["metric"] == ref_metric)]
                sel = sel.drop_duplicates("setting").set_index("setting")
                vals = []
                for a in present:
                    s = wanted.get(a)
                    if s is not None and s in sel.index:
                        row = sel.loc[s]
                        sd = "sd" if int(row["std_ddof"]) == 1 else "population sd"
                        vals.append(f"{_fmt(row['mean'])} ± {_fmt(row['std'])} "
                                    f"({sd}, n={_fmt_int(row['n_runs'])}; {s})")
                    else:
                        vals.append("")
                if any(vals):
                    table[f"{REFERENCE_LABEL} (mean ± sd, %)"] = vals
                    doc.para(f"Reference column: {REFERENCE_LABEL} (datasets/reference/siedel2025.csv): "
                             "mean ± standard deviation over the authors' runs (sample sd, or population "
                             "sd for the RE-sweep figure's rows, as marked), not a CI and not the paper's "
                             "own tables."
                             + (" The paper's corruption accuracy is on the released CIFAR-C / "
                                "Tiny-ImageNet-C files; this harness regenerates the corruptions with the "
                                "same algorithms and parameters but other random draws, and may use a "
                                "stratified subset of the test set (evaluation.corruption_n)."
                                if ref_metric.startswith("corruption") else ""))
                else:
                    doc.para("No reference (paper) column: no arm's `reference` setting is found for "
                             f"dataset `{dataset}` and metric `{ref_metric}` in the reference table.")
        doc.table(table)


def _comparisons(doc: _Doc, comp: pd.DataFrame, mcn: pd.DataFrame, anova: pd.DataFrame, tost: pd.DataFrame,
                 alpha: float) -> None:
    lvl = f"{100 * (1 - alpha):g} %"
    doc.heading(2, "Comparisons (exploratory)")
    doc.para("Each declared arm against its reference arm, two-sided and outside the pre-declared hypotheses: "
             "exploratory. `diff` = arm − reference (percentage points for accuracies and ECE; for ECE, NLL and "
             f"Brier lower is better) with its {lvl} t interval, paired on the seeds both arms share (the dropped "
             "seeds are named; Welch only when they share none); p of the paired t test, Holm-adjusted over the "
             "whole table of each metric. Effect sizes: d_z (paired: mean over SD of the per-seed "
             "differences) and Hedges' g (unpaired, pooled SD) are on different scales and have separate "
             f"columns. A BCa bootstrap interval is shown from 20 pairs up (below that it undercovers).")
    if comp.empty:
        doc.para("No comparisons were computed (comparisons.csv is empty).")
    else:
        scale = np.where(comp["metric"].astype(str).map(_is_percent), 100.0, 1.0)
        d, lo, hi, bl, bh = (comp[c].astype(float).to_numpy() * scale
                             for c in ("diff", "ci_low", "ci_high", "boot_ci_low", "boot_ci_high"))

        def _es(v, a, b):
            return "–" if math.isnan(_float(v)) else f"{_fmt(v, signed=True)} [{_fmt(a)}, {_fmt(b)}]"

        doc.table(pd.DataFrame({
            "family": comp["family"].fillna("").astype(str),
            "arm vs reference": comp["arm"].astype(str) + " vs " + comp["reference"].astype(str),
            "metric": [f"{m} ({better_word(m)})" for m in comp["metric"].astype(str)],
            "n (arm/ref/pairs)": [f"{_fmt_int(a)}/{_fmt_int(b)}/{_fmt_int(c)}"
                                  for a, b, c in zip(comp["n_arm"], comp["n_ref"], comp["n_pairs"])],
            "test": comp["test"].fillna("").astype(str),
            f"diff [{lvl} CI]": [f"{_fmt(x, signed=True)} [{_fmt(y, signed=True)}, {_fmt(z, signed=True)}]"
                                 for x, y, z in zip(d, lo, hi)],
            f"BCa [{lvl}]": ["–" if math.isnan(y) else f"[{_fmt(y, signed=True)}, {_fmt(z, signed=True)}]"
                             for y, z in zip(bl, bh)],
            "d_z [CI]": [_es(*t) for t in zip(comp["d_z"], comp["d_z_ci_low"], comp["d_z_ci_high"])],
            "Hedges g [CI]": [_es(*t) for t in zip(comp["hedges_g"], comp["g_ci_low"], comp["g_ci_high"])],
            "p": comp["p"].map(_fmt_p),
            "p (Holm, metric)": comp["p_holm"].map(_fmt_p),
            "note": comp["note"].map(_text),
        }))
    doc.heading(3, "McNemar tests (secondary; clean test set, same seed)")
    if mcn.empty:
        doc.para("No McNemar tests were computed (mcnemar.csv is empty).")
    else:
        m = mcn.assign(p=mcn["p"].astype(float), family=mcn["family"].fillna("").astype(str))
        m = m.assign(sig=m["p"] < alpha, tested=np.isfinite(m["p"]))
        g = m.groupby(["family", "arm", "reference"], sort=False).agg(
            seeds=("tested", "sum"), sig=("sig", "sum"), median_p=("p", "median")).reset_index()
        doc.table(pd.DataFrame({
            "family": g["family"],
            "arm vs reference": g["arm"].astype(str) + " vs " + g["reference"].astype(str),
            "seeds tested": g["seeds"].astype(int).astype(str),
            f"p < {alpha:g}": g["sig"].astype(int).astype(str),
            "median p": g["median_p"].map(_fmt_p),
        }))
    doc.heading(3, "Repeated-measures ANOVA (secondary, descriptive)")
    if anova.empty:
        doc.para("No ANOVA was computed (anova.csv is empty).")
    else:
        doc.para("Two-way repeated-measures ANOVA with seed as subject (statsmodels AnovaRM) on the seeds common "
                 "to all its arms; descriptive only, no verdict rests on it.")
        for (name, metric), part in anova.groupby(["name", "metric"], sort=False):
            doc.para(f"**{name}** (metric `{metric}`, {_fmt_int(part['n_seeds'].iloc[0])} seeds):")
            doc.table(pd.DataFrame({
                "term": part["term"].map(_text),
                "F": part["F"].map(lambda v: _fmt(v, 3)),
                "df": [f"{_fmt(a, 0)}, {_fmt(b, 0)}" for a, b in zip(part["df_num"], part["df_den"])],
                "p": part["p"].map(_fmt_p),
                "note": part["note"].map(_text),
            }))
    doc.heading(3, "Equivalence tests (TOST, secondary)")
    if tost.empty:
        doc.para("No equivalence tests were computed (tost.csv is empty).")
    else:
        scale = np.where(tost["metric"].astype(str).map(_is_percent), 100.0, 1.0)
        doc.para("Margin and difference in percentage points for accuracies and ECE; equivalence is shown when "
                 f"both one-sided tests reject at α = {alpha:g} (otherwise it is not shown, which says nothing "
                 "about a difference); paired on common seeds.")
        doc.table(pd.DataFrame({
            "name": tost["name"].astype(str),
            "arm vs reference": tost["arm"].astype(str) + " vs " + tost["reference"].astype(str),
            "metric": tost["metric"].astype(str),
            "margin": [f"±{_fmt(v)}" for v in tost["margin"].astype(float) * scale],
            "diff": [_fmt(v, signed=True) for v in tost["diff"].astype(float) * scale],
            "p (TOST)": tost["p"].map(_fmt_p),
            "equivalence": tost["equivalent"].map(_equivalence_word),
            "pairs": tost["n_pairs"].map(_fmt_int),
            "note": tost["note"].map(_text),
        }))


def _equivalence_word(value: Any) -> str:
    """A TOST outcome as the report says it: ``shown``, ``not shown`` (no rejection is never evidence of a
    difference, nor of equivalence) or ``–`` (not computed)."""
    text = str(value).strip().lower()
    return {"true": "shown", "false": "not shown"}.get(text, "–")


def _runs_section(doc: _Doc, status: pd.DataFrame, stats_json: Mapping) -> None:
    doc.heading(2, "Failed and missing runs")
    if status.empty:
        doc.para("Failed or missing runs: none (every run of the grid completed).")
    else:
        counts = status["status"].astype(str).value_counts(sort=False)
        doc.para(f"{len(status)} run(s) did not complete: "
                 + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".")
        doc.table(pd.DataFrame({
            "run_id": status["run_id"].astype(str),
            "arm": status["arm"].astype(str),
            "seed": status["seed"].map(_fmt_int),
            "status": status["status"].astype(str),
            "reason": status["reason"].map(_text),
        }))
    doc.heading(3, "Statistical guards")
    guards = stats_json.get("guards") or []
    if guards:
        doc.bullets(_text(g) if not isinstance(g, Mapping) else json.dumps(g, sort_keys=True, default=str)
                    for g in guards)
    else:
        doc.para("Guards: none.")
    settings = {k: stats_json.get(k) for k in ("alpha", "n_boot", "power", "min_seeds") if k in stats_json}
    counts = stats_json.get("counts") or {}
    if settings or counts:
        doc.table(pd.DataFrame({
            "setting": list(settings) + [f"counts.{k}" for k in counts],
            "value": [_text(v) for v in settings.values()] + [_text(v) for v in counts.values()],
        }))


def _flatten(d: Mapping, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out += _flatten(v, key + ".")
        else:
            out.append((key, v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)))
    return out


def _params_hash(params: Mapping) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _provenance(doc: _Doc, provenance: Mapping | None, params: Mapping) -> None:
    doc.heading(2, "Environment and provenance")
    rows = _flatten(provenance or {})
    if not rows:
        doc.para("No provenance was recorded for this report.")
    rows.append(("params_sha256 (parsed params.yaml, computed by the report)", _params_hash(params)))
    doc.table(pd.DataFrame(rows, columns=["field", "value"]))


# ------------------------------------------------------------------------------------------------
# entry point
# ------------------------------------------------------------------------------------------------
def _load_stats(stats_dir: Path) -> dict[str, Any]:
    if not stats_dir.is_dir():
        raise FileNotFoundError(f"stats directory not found: {stats_dir} (run the stats stage first)")
    out: dict[str, Any] = {}
    for name, cols in _STATS_FILES.items():
        out[name] = _read_csv(stats_dir / name, cols, f"stats file {name}")
    out["summary.csv"] = _as_str(out["summary.csv"], "arm", "metric", "corruption")
    for name in ("comparisons.csv", "mcnemar.csv", "anova.csv", "tost.csv", "runs_status.csv", "plan.csv"):
        out[name] = _as_str(out[name], "arm", "reference", "name", "metric", "id", "note", "seeds_dropped")
    out["hypothesis_gaps.csv"] = _as_str(out["hypothesis_gaps.csv"], "id", "panel", "label")
    for name in ("hypotheses.json", "stats.json"):
        path = stats_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"stats file {name} not found: {path} (see docs/pipeline.md)")
        text = path.read_text(encoding="utf-8").strip()
        out[name] = json.loads(text or ("[]" if name == "hypotheses.json" else "{}"))
    if not isinstance(out["hypotheses.json"], list):
        raise ValueError(f"{stats_dir / 'hypotheses.json'}: expected a JSON list of hypotheses")
    if not isinstance(out["stats.json"], dict):
        raise ValueError(f"{stats_dir / 'stats.json'}: expected a JSON object")
    return out


def write_report(out_dir: str | Path, *, results_csv: str | Path, stats_dir: str | Path, params: dict,
                 fit_dirs: Mapping[str, str | Path] | None = None, runs_root: str | Path = ".",
                 reference_csv: str | Path = "datasets/reference/siedel2025.csv",
                 provenance: Mapping | None = None, date: str | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, ``figures/*.png`` and ``metrics.json`` into ``out_dir``.

    Args:
        out_dir: output folder (created).
        results_csv: ``reports/results.csv`` (long format, docs/pipeline.md).
        stats_dir: folder with the stats stage's files (summary.csv, comparisons.csv, mcnemar.csv, anova.csv,
            tost.csv, runs_status.csv, hypothesis_gaps.csv, plan.csv, hypotheses.json, stats.json); all must
            exist, header-only is fine.
        params: the parsed params.yaml (``grid``, ``dataset``, ``run_arms``, ``arms``,
            ``reference_comparable``, ``stats``, ...).
        fit_dirs: name -> mapping-fit directory (``<name>.json`` + ``<name>_table.csv``, see
            harness.fit_mappings); those with ``hvs`` rows get a mapping-curve figure.
        runs_root: folder that the ``run_dir`` column of results.csv is relative to.
        reference_csv: the paper's reference table (percent); read only when ``reference_comparable`` is true.
        provenance: shown as a table (git SHA, versions, platform, created time, ...).
        date: date shown under the title; default ``provenance['created_utc']``.

    Returns:
        ``{"markdown", "html", "metrics", "figures/<name>"...}`` -> path written.
    """
    out = Path(out_dir)
    runs_root = Path(runs_root)
    stats = _load_stats(Path(stats_dir))
    results = _read_csv(Path(results_csv), RESULTS_COLUMNS, "results table")
    results = _as_str(results, "arm", "metric", "corruption", "status", "run_dir")
    results["value"] = pd.to_numeric(results["value"], errors="coerce")
    summary = stats["summary.csv"]
    summary["mean"] = pd.to_numeric(summary["mean"], errors="coerce")

    arms = _arm_order(params, summary, results)
    arm_factors = {a: _factors(params, a, summary) for a in arms}
    stats_json = stats["stats.json"]
    stats_params = params.get("stats") or {}
    alpha = _float(stats_json.get("alpha", stats_params.get("alpha", 0.05)))
    confidence = 1 - alpha
    hypotheses = stats["hypotheses.json"]
    grid = str(params.get("grid", "?"))
    dataset = str(params.get("dataset", "?"))
    prov = provenance or {}
    when = date or prov.get("created_utc") or prov.get("created") or "not recorded"

    doc = _Doc()
    title = f"softbench report: grid {grid}"
    doc.heading(1, title)
    seeds = params.get("seeds")
    doc.para(f"Grid `{grid}`, dataset `{dataset}`, {len(arms)} arm(s)"
             + (f", seeds {', '.join(map(str, seeds))}" if seeds else "") + f". Date: {when}.")
    gap_figs = _gap_figures(stats["hypothesis_gaps.csv"], hypotheses, confidence)
    _verdicts(doc, hypotheses, stats["plan.csv"], stats_json, gap_figs)
    _arms_table(doc, arms, arm_factors, params, summary)
    _metric_tables(doc, summary, arms, arm_factors, params, reference_csv, confidence)
    _comparisons(doc, stats["comparisons.csv"], stats["mcnemar.csv"], stats["anova.csv"], stats["tost.csv"],
                 alpha)
    _runs_section(doc, stats["runs_status.csv"], stats_json)

    doc.heading(2, "Figures")
    figures: list[_Figure] = list(gap_figs)
    doc.heading(3, "Mapping curves over the human data")
    mfigs, notes = _mapping_figures(fit_dirs)
    for note in notes:
        doc.para(note)
    for fig in mfigs:
        doc.figure(*fig)
    figures += mfigs
    for heading, (fig, reason) in (
        ("Random Erasing sweep: paired soft − hard gap", _re_sweep_figure(stats["comparisons.csv"], arm_factors,
                                                                           confidence)),
        ("TrivialAugment hard vs soft per op", _ta_ops_figure(results, arm_factors, confidence)),
        ("Corruption accuracy heatmap", _heatmap_figure(summary, arms)),
        ("Reliability diagrams", _reliability_figure(results, arms, runs_root)),
    ):
        doc.heading(3, heading)
        if fig is None:
            doc.para(reason)
        else:
            doc.figure(*fig)
            figures.append(fig)
    _provenance(doc, provenance, params)

    paths: dict[str, Path] = {}
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    written = {f"{name}.png" for name, _, _ in figures}
    for old in sorted(fig_dir.glob("*.png")):
        if old.name not in written:
            old.unlink()
    for name, png, _ in figures:
        path = fig_dir / f"{name}.png"
        atomic_write_bytes(path, png)
        paths[f"figures/{name}"] = path

    metrics = {"arms": {}, "verdicts": {str(h.get("id")): h.get("verdict") for h in hypotheses}}
    clean_rows = summary[summary["corruption"] == ""]
    for arm in arms:
        part = clean_rows[clean_rows["arm"] == arm].drop_duplicates("metric")
        if not part.empty:
            metrics["arms"][arm] = {m: _nan_to_none(v) for m, v in zip(part["metric"], part["mean"])}
    paths["markdown"] = out / "report.md"
    paths["html"] = out / "report.html"
    paths["metrics"] = out / "metrics.json"
    atomic_write_text(paths["markdown"], doc.markdown())
    atomic_write_text(paths["html"], doc.html(title))
    atomic_write_text(paths["metrics"], json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    return paths
