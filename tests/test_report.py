"""Report stage (harness/report.py): fixture files that follow docs/pipeline.md, written in tmp_path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mappings
from harness.report import REFERENCE_COLUMNS, REFERENCE_LABEL, load_reference, write_report
from harness.schema import STATS_COLUMNS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parent.parent
CORRUPTIONS = ["gaussian_noise", "fog", "contrast"]
OPS = ["Rotate", "Contrast"]

ARMS = {
    "baseline": {"factors": {"label_type": "hard", "family": "none"}},
    "re_hard": {"factors": {"label_type": "hard", "family": "random_erasing", "re_p": 0.75, "re_smax": 0.2}},
    "re_soft": {"factors": {"label_type": "soft", "family": "random_erasing", "re_p": 0.75, "re_smax": 0.2}},
    "ta_hard": {"factors": {"label_type": "hard", "family": "trivial_augment"},
                "reference": "RC hard + TA hard"},
    "ta_soft": {"factors": {"label_type": "soft", "family": "trivial_augment"},
                "reference": "RC hard + TA soft"},
}
# per-arm clean accuracy (fraction); other metrics derive from it
MEANS = {"baseline": 0.912345, "re_hard": 0.905, "re_soft": 0.9151, "ta_hard": 0.93, "ta_soft": 0.925}
HYPOTHESES = [
    {"id": "F1", "statement": "Soft labels help RE more at high intensity", "kind": "interaction",
     "metric": "accuracy", "arms": ["re_soft", "re_hard", "ta_soft", "ta_hard"], "direction": "increasing",
     "mde": 0.01, "verdict": "supported", "verdict_text": "supported", "alternative": "greater", "null": 0.0,
     "estimate": 0.021, "ci_low": 0.008, "ci_high": 0.034, "bound": 0.0105, "bound_level": 1 - 0.05 / 3,
     "p": 0.0012, "p_holm": 0.0036, "n_seeds": 3,
     "power": 0.42, "power_conservative": 0.11, "evidence": "difference of differences = +2.1 pp"},
    {"id": "F2", "statement": "Soft TA is not better than hard TA by 1 pp or more", "kind": "non_superiority",
     "metric": "accuracy", "arms": ["ta_soft", "ta_hard"], "direction": "not better", "mde": 0.01,
     "verdict": "not shown", "verdict_text": "not shown (power 23 % for 1 pp)", "alternative": "less",
     "null": 0.01, "estimate": -0.005, "ci_low": -0.02, "ci_high": 0.01, "bound": 0.0132,
     "bound_level": 1 - 0.05 / 3, "p": 0.21, "p_holm": 0.42,
     "n_seeds": 3, "power": 0.23, "power_conservative": 0.05, "evidence": "difference = -0.5 pp"},
    {"id": "F3", "statement": "Soft crop lowers corruption accuracy", "kind": "directional",
     "metric": "corruption_accuracy_mean19", "arms": ["baseline", "re_hard"], "direction": "lower", "mde": 0.01,
     "verdict": "inconclusive", "verdict_text": "inconclusive", "p": None, "p_holm": None, "n_seeds": 0,
     "evidence": "fewer than 3 seeds: no p-value"},
]
GAPS = ([{"id": "F1", "panel": "gap", "level": lv, "label": lab, "seed": s, "value": v + 0.001 * s}
         for lv, lab, v in ((0.1, "ta_soft - ta_hard", -0.005), (0.8, "re_soft - re_hard", 0.016))
         for s in range(3)]
        + [{"id": "F1", "panel": "contrast", "level": np.nan, "label": "difference of differences", "seed": s,
            "value": 0.021 + 0.002 * (s - 1)} for s in range(3)]
        + [{"id": "F2", "panel": "difference", "level": np.nan, "label": "ta_soft - ta_hard", "seed": s,
            "value": -0.005 + 0.004 * (s - 1)} for s in range(3)])
PLAN = [["F1", "accuracy", "paired t on per-seed contrasts", 3, 0.012, 0.05, 0.01, 0.0167, 0.8, 0.42, 0.11,
         14, 210, ""],
        ["F2", "accuracy", "paired t on per-seed contrasts", 3, 0.008, 0.04, 0.01, 0.0167, 0.8, 0.23, 0.05,
         8, 120, ""],
        ["F3", "corruption_accuracy_mean19", "", 0, np.nan, np.nan, 0.01, 0.0167, 0.8, np.nan, np.nan, np.nan,
         np.nan, "no pilot estimate: fewer than 3 seeds"]]


def _metric_value(arm: str, metric: str, means: dict = MEANS) -> float:
    acc = means[arm]
    return {"accuracy": acc, "ece": 0.03 + (1 - acc) / 10, "corruption_accuracy_mean15": acc - 0.2,
            "corruption_accuracy_mean19": acc - 0.25, "nll": 0.3}[metric]


def _params(dataset="cifar10", comparable=False, arms=None) -> dict:
    arms = ARMS if arms is None else arms
    return {"grid": "unit", "dataset": dataset, "seeds": [0, 1, 2], "run_arms": list(arms), "base": {},
            "arms": arms, "reference_comparable": comparable,
            "stats": {"alpha": 0.05, "power": 0.8, "metrics": ["accuracy", "corruption_accuracy_mean15",
                                                             "corruption_accuracy_mean19", "ece"]}}


def _write_runs(root: Path, arms: dict, seeds, *, op_rows=True, predictions=True, failed=("ta_soft", 3),
                means: dict = MEANS):
    """results.csv rows (long format) and each run's predictions.npz; returns the results DataFrame."""
    rng = np.random.default_rng(0)
    rows = []
    factor_names = sorted({k for a in arms.values() for k in a["factors"]})
    for arm, spec in arms.items():
        for seed in seeds:
            run_dir = f"runs/{arm}-s{seed}/eval"
            base = {"run_id": f"{arm}-s{seed}", "grid": "unit", "dataset": "cifar10", "arm": arm,
                    **{f: spec["factors"].get(f, "") for f in factor_names}, "seed": seed,
                    "status": "complete", "run_dir": run_dir}
            for m in ("accuracy", "ece", "nll", "corruption_accuracy_mean15", "corruption_accuracy_mean19"):
                rows.append({**base, "metric": m, "corruption": "", "severity": "",
                             "value": _metric_value(arm, m, means) + 0.001 * (seed - 1)})
            for c in CORRUPTIONS:
                for sev in (1, 3):
                    rows.append({**base, "metric": "accuracy", "corruption": c, "severity": sev,
                                 "value": means[arm] - 0.05 * sev})
            if op_rows and spec["factors"]["family"] == "trivial_augment":
                for op in OPS:
                    for b in (10, 20):
                        rows.append({**base, "metric": "op_accuracy", "corruption": op, "severity": b,
                                     "value": means[arm] - b / 200})
            if predictions:
                n = 400
                labels = rng.integers(0, 10, n)
                conf = rng.uniform(0.1, 1.0, n).astype(np.float32)
                correct = rng.uniform(size=n) < conf
                clean = np.where(correct, labels, (labels + 1) % 10).astype(np.int16)
                d = root / run_dir
                d.mkdir(parents=True)
                np.savez(d / "predictions.npz", labels=labels.astype(np.int64), clean=clean,
                         clean_confidence=conf, **{"fog/1": clean[:50]}, corruption_labels=labels[:50])
    if failed:
        arm, seed = failed
        rows.append({"run_id": f"{arm}-s{seed}", "grid": "unit", "dataset": "cifar10", "arm": arm,
                     **{f: arms[arm]["factors"].get(f, "") for f in factor_names}, "seed": seed, "metric": "",
                     "corruption": "", "severity": "", "value": np.nan, "status": "failed",
                     "run_dir": f"runs/{arm}-s{seed}/eval"})
    cols = ["run_id", "grid", "dataset", "arm", *factor_names, "seed", "metric", "corruption", "severity",
            "value", "status", "run_dir"]
    df = pd.DataFrame(rows)[cols]
    df.to_csv(root / "results.csv", index=False)
    return df


def _write_stats(stats: Path, arms: dict, *, failed=("ta_soft", 3), empty_tests=False, means: dict = MEANS):
    stats.mkdir(parents=True)
    rows = []
    for arm in arms:
        for m in ("accuracy", "corruption_accuracy_mean15", "corruption_accuracy_mean19", "ece"):
            mu = _metric_value(arm, m, means)
            rows.append({"arm": arm, "metric": m, "corruption": "", "n": 3, "mean": mu, "std": 0.002,
                         "ci_low": mu - 0.005, "ci_high": mu + 0.005, "seeds": "0;1;2"})
        for c in CORRUPTIONS:
            mu = means[arm] - 0.1
            rows.append({"arm": arm, "metric": "corruption_accuracy", "corruption": c, "n": 3, "mean": mu,
                         "std": 0.01, "ci_low": mu - 0.02, "ci_high": mu + 0.02, "seeds": "0;1;2"})
    pd.DataFrame(rows).to_csv(stats / "summary.csv", index=False)
    comp_cols = STATS_COLUMNS["comparisons"]
    comps = [] if empty_tests else [
        ["random_erasing", "re_soft", "re_hard", "accuracy", 3, 3, 3, True, "", "paired t", 0.9151, 0.905,
         0.0101, 0.004, 0.016, 5.1, 2, 0.036, 0.072, False, 0.25, 2.9, 0.8, 5.0, np.nan, np.nan, np.nan,
         np.nan, np.nan, ""],
        ["trivial_augment", "ta_soft", "ta_hard", "accuracy", 2, 3, 0, False, "", "Welch t", 0.925, 0.93, -0.005,
         -0.01, 0.0, np.nan, np.nan, np.nan, np.nan, False, np.nan, np.nan, np.nan, np.nan, -1.1, -2.9, 0.6,
         np.nan, np.nan, "fewer than 3 seeds"],
    ]
    pd.DataFrame(comps, columns=comp_cols).to_csv(stats / "comparisons.csv", index=False)
    mcn = [] if empty_tests else [
        ["random_erasing", "re_soft", "re_hard", s, 400, 30, 10 + s, 1.0, p, "exact"]
        for s, p in zip(range(3), (0.01, 0.2, 0.03))]
    pd.DataFrame(mcn, columns=STATS_COLUMNS["mcnemar"]).to_csv(stats / "mcnemar.csv", index=False)
    anova = [] if empty_tests else [
        ["label_x_family", "accuracy", t, f, 1, 2, p, 3, ""]
        for t, f, p in (("label_type", 3.2, 0.11), ("family", 15.0, 0.004), ("label_type:family", 6.1, 0.038))]
    pd.DataFrame(anova, columns=STATS_COLUMNS["anova"]).to_csv(stats / "anova.csv", index=False)
    tost = [] if empty_tests else [
        ["ta_soft_vs_hard", "ta_soft", "ta_hard", "accuracy", 0.01, -0.005, 0.09, 0.01, 0.09, False, False, 0,
         ""]]
    pd.DataFrame(tost, columns=STATS_COLUMNS["tost"]).to_csv(stats / "tost.csv", index=False)
    pd.DataFrame([] if empty_tests else GAPS, columns=STATS_COLUMNS["hypothesis_gaps"]).to_csv(
        stats / "hypothesis_gaps.csv", index=False)
    pd.DataFrame([] if empty_tests else PLAN, columns=STATS_COLUMNS["plan"]).to_csv(stats / "plan.csv",
                                                                                   index=False)
    status_cols = ["run_id", "arm", "seed", "status", "reason"]
    status = [] if not failed else [[f"{failed[0]}-s{failed[1]}", failed[0], failed[1], "failed",
                                     "RuntimeError: CUDA out of memory"]]
    pd.DataFrame(status, columns=status_cols).to_csv(stats / "runs_status.csv", index=False)
    (stats / "hypotheses.json").write_text(json.dumps(HYPOTHESES))
    guards = [] if empty_tests else ["ta_soft: fewer than 3 seeds: no p-values"]
    (stats / "stats.json").write_text(json.dumps({"alpha": 0.05, "confidence": 0.95, "n_boot": 2000,
                                                  "power": 0.8, "min_seeds": 3, "holm_family": ["F1", "F2"],
                                                  "guards": guards, "counts": {"runs": 16, "complete": 15}}))


def _write_fit_dir(d: Path) -> None:
    d.mkdir(parents=True)
    ms = mappings.preset("polynomial_chance", 10)
    (d / "hvs.json").write_text(json.dumps(ms.to_dict()))
    sev = np.linspace(0.1, 0.9, 5)
    rows = []
    for op, sign, src in (("Rotate", "+", "hvs:rotation"), ("Rotate", "-", "hvs:rotation"),
                          ("Contrast", "-", "hvs:contrast(geirhos2018)"), ("Solarize", "", "polynomial")):
        for s in sev:
            pt = 1 - 0.8 * s**2
            rows.append({"op": op, "sign": sign, "severity": s, "accuracy": pt, "source": src, "point": pt,
                         "low": pt - 0.05, "high": min(1.0, pt + 0.05)})
    pd.DataFrame(rows).to_csv(d / "hvs_table.csv", index=False)


@pytest.fixture
def fixture_dir(tmp_path):
    _write_runs(tmp_path, ARMS, range(3))
    _write_stats(tmp_path / "stats", ARMS)
    _write_fit_dir(tmp_path / "fits" / "hvs")
    return tmp_path


def _run(root: Path, out: str = "out", **kw) -> dict:
    kw.setdefault("params", _params())
    return write_report(root / out, results_csv=root / "results.csv", stats_dir=root / "stats",
                        runs_root=root, **kw)


PROVENANCE = {"git_sha": "abc123", "versions": {"python": "3.11.9", "numpy": "1.26"},
              "platform": "Linux-x86_64", "created_utc": "2025-01-02T03:04:05+00:00"}


def test_full_report(fixture_dir):
    paths = _run(fixture_dir, fit_dirs={"hvs": fixture_dir / "fits" / "hvs"}, provenance=PROVENANCE)
    md = paths["markdown"].read_text()
    page = paths["html"].read_text()
    assert paths["markdown"] == fixture_dir / "out" / "report.md" and paths["html"].is_file()

    # verdict summary: every hypothesis id and its verdict, in the same table row
    section = md.split("## Pre-declared hypotheses")[1].split("\n## ")[0]
    for h in HYPOTHESES:
        assert re.search(rf"\|\s*{h['id']}\s*\|.*\|\s*{re.escape(h['verdict_text'])}\s*\|", section), h["id"]
    assert "0.0036" in section  # Holm p of F1
    # power statements: F2 not shown with its power; estimates in pp with the one-sided simultaneous bound in the
    # tested direction (F1 "greater": a lower bound; F2 "less": an upper bound); the plan next to them
    assert "not shown (power 23 % for 1 pp)" in section
    assert re.search(r"\|\s*F1\s*\|.*\|\s*\+2\.10, ≥ \+1\.05 pp \(98\.3 %\)\s*\|\s*1 pp\s*\|", section)
    assert re.search(r"\|\s*F2\s*\|.*\|\s*-0\.50, ≤ \+1\.32 pp \(98\.3 %\)\s*\|\s*1 pp\s*\|", section)
    assert "[+0.80, +3.40]" not in section  # the two-sided unadjusted CI is not what a verdict is read with
    assert "42 % (11 %)" in section
    plan = section.split("### Seeds needed (plan)")[1]
    assert re.search(r"\|\s*F1\s*\|.*\|\s*14 \(210\)\s*\|", plan)
    assert "no pilot estimate" in plan
    assert "(figures/gap_F1.png)" in section and "(figures/gap_F2.png)" in section

    # mean ± CI in percent, 2 decimals, from summary.csv (baseline clean 0.912345, CI ± 0.005)
    clean = md.split("### Clean accuracy")[1].split("\n### ")[0]
    assert re.search(r"\|\s*baseline\s*\|.*\|\s*3\s*\|\s*91\.23 ± 0\.50\s*\|\s*\[90\.73, 91\.73\]", clean)
    ece = md.split("### Expected calibration error")[1].split("\n### ")[0]
    assert "3.88 ± 0.50" in ece  # 0.03 + (1 - 0.912345) / 10 = 0.0387655
    # no reference column: the grid is not comparable with the paper
    assert REFERENCE_LABEL not in md and "not comparable" in md

    # comparisons in percentage points, McNemar summary, ANOVA, TOST
    comp = md.split("## Comparisons (exploratory)")[1].split("\n## ")[0]
    assert "+1.01 [+0.40, +1.60]" in comp and "re_soft vs re_hard" in comp
    # d_z and Hedges' g in separate columns: the paired row has d_z only, the Welch row g only
    assert re.search(r"re_soft vs re_hard.*\|\s*\+2\.90 \[0\.80, 5\.00\]\s*\|\s*–\s*\|", comp)
    assert re.search(r"ta_soft vs ta_hard.*\|\s*–\s*\|\s*-1\.10 \[-2\.90, 0\.60\]\s*\|", comp)
    assert "accuracy (higher is better)" in comp
    # McNemar: 3 seeds tested, 2 with p < 0.05, median p 0.03
    assert re.search(r"re_soft vs re_hard\s*\|\s*3\s*\|\s*2\s*\|\s*0\.0300", md)
    assert "label_type:family" in md and "ta_soft_vs_hard" in md and "±1.00" in md
    # a TOST that does not reject: equivalence "not shown", never "equivalent: False" (read as "different")
    assert re.search(r"ta_soft_vs_hard.*\|\s*0\.09\d*\s*\|\s*not shown\s*\|", md)

    # failed runs and guards
    runs = md.split("## Failed and missing runs")[1].split("\n## ")[0]
    assert "ta_soft-s3" in runs and "CUDA out of memory" in runs
    assert "fewer than 3 seeds: no p-values" in runs

    # figures: all present, valid PNGs, referenced from the markdown, embedded in the html
    figs = {k: v for k, v in paths.items() if k.startswith("figures/")}
    assert set(figs) == {"figures/mapping_hvs_hvs", "figures/re_sweep", "figures/ta_ops", "figures/gap_F1",
                         "figures/gap_F2", "figures/corruption_heatmap", "figures/reliability"}
    for key, p in figs.items():
        assert p.read_bytes()[:8] == PNG_MAGIC
        assert f"({key}.png)" in md
    assert page.count('src="data:image/png;base64,iVBORw0KGgo') == len(figs)
    # each metric table says which direction is better
    assert "### Clean accuracy (%, higher is better)" in md
    assert "### Expected calibration error, 15 bins (%, lower is better)" in md

    # self-contained html
    assert "http://" not in page and "https://" not in page and "<script" not in page and "<link" not in page
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', page))
    assert "<table" in page and "91.23 ± 0.50" in page

    # provenance and date
    assert "abc123" in md and "versions.python" in md and "2025-01-02T03:04:05+00:00" in md

    metrics = json.loads(paths["metrics"].read_text())
    summary = pd.read_csv(fixture_dir / "stats" / "summary.csv")
    summary = summary[summary["corruption"].isna()]
    assert set(metrics["arms"]) == set(ARMS)
    for row in summary.itertuples():
        assert metrics["arms"][row.arm][row.metric] == pytest.approx(row.mean)
    assert metrics["verdicts"] == {h["id"]: h["verdict"] for h in HYPOTHESES}


def test_deterministic_and_stale_figures_removed(fixture_dir):
    a = _run(fixture_dir, "a", provenance=PROVENANCE)
    (fixture_dir / "b" / "figures").mkdir(parents=True)
    (fixture_dir / "b" / "figures" / "old.png").write_bytes(PNG_MAGIC)
    b = _run(fixture_dir, "b", provenance=PROVENANCE)
    for key in ("markdown", "html", "metrics", "figures/reliability"):
        assert a[key].read_bytes() == b[key].read_bytes(), key
    assert not (fixture_dir / "b" / "figures" / "old.png").exists()


@pytest.mark.parametrize("dataset, shown", [("cifar10", True), ("mnist5k", False)])
def test_reference_column(fixture_dir, dataset, shown):
    paths = _run(fixture_dir, params=_params(dataset=dataset, comparable=True))
    md = paths["markdown"].read_text()
    clean = md.split("### Clean accuracy")[1].split("\n### ")[0]
    if shown:
        assert REFERENCE_LABEL in clean
        assert "96.65 ± 0.16 (sd, n=6; RC hard + TA hard)" in clean  # CIFAR-10 clean accuracy
        assert "96.42 ± 0.15" in clean  # RC hard + TA soft
        corr = md.split("### Corruption accuracy, mean over 19")[1].split("\n### ")[0]
        assert "87.16 ± 0.39" in corr and REFERENCE_LABEL in corr
        mean15 = md.split("### Corruption accuracy, mean over 15")[1].split("\n### ")[0]
        assert REFERENCE_LABEL + " (" not in mean15  # the paper has no mean15 numbers
        assert "96.65" in paths["html"].read_text()
    else:
        assert REFERENCE_LABEL not in md
        assert "not found for dataset `mnist5k`" in md
        assert "No reference (paper) column" in clean


def test_reference_column_withheld_when_the_protocol_departs(fixture_dir):
    params = {**_params(dataset="cifar10", comparable=True), "reference_mismatch": ["epochs = 1 (paper: 300)"]}
    md = _run(fixture_dir, params=params)["markdown"].read_text()
    assert REFERENCE_LABEL + " (" not in md and "96.65" not in md
    assert "departs from the paper's protocol: epochs = 1 (paper: 300)" in md


def test_missing_optional_data_is_skipped_with_a_sentence(tmp_path):
    arms = {k: ARMS[k] for k in ("baseline", "ta_hard")}
    _write_runs(tmp_path, arms, range(2), op_rows=False, predictions=False, failed=None)
    _write_stats(tmp_path / "stats", arms, failed=None, empty_tests=True)
    # a corruption-free summary: drop the per-corruption rows
    summary = pd.read_csv(tmp_path / "stats" / "summary.csv")
    summary = summary[summary["metric"] != "corruption_accuracy"]
    summary.to_csv(tmp_path / "stats" / "summary.csv", index=False)
    (tmp_path / "stats" / "mcnemar.csv").write_text("")  # zero-byte file = empty table
    paths = _run(tmp_path, params=_params(arms=arms), fit_dirs=None, provenance=None)
    md = paths["markdown"].read_text()
    assert "Failed or missing runs: none" in md
    assert "No mapping-fit directory was given" in md
    assert "no `op_accuracy` rows" in md
    assert "RE sweep figure is skipped" in md
    assert "corruption heatmap is skipped" in md
    assert "reliability diagrams are skipped" in md
    assert "No comparisons were computed" in md and "No McNemar tests" in md and "No ANOVA" in md
    assert "Guards: none." in md and "No provenance was recorded" in md
    assert not [k for k in paths if k.startswith("figures/")]
    assert "data:image/png" not in paths["html"].read_text()
    assert json.loads(paths["metrics"].read_text())["verdicts"]["F1"] == "supported"
    assert "figures/gap_F1" not in paths  # no gap rows: no gap figure


def test_fit_dir_without_hvs_rows_is_skipped(fixture_dir):
    d = fixture_dir / "fits" / "ssim"
    d.mkdir()
    pd.DataFrame({"op": ["Rotate"], "sign": ["+"], "severity": [0.5], "source": ["ssim"], "point": [0.5],
                  "low": [0.4], "high": [0.6]}).to_csv(d / "ssim_table.csv", index=False)
    paths = _run(fixture_dir, fit_dirs={"ssim": d})
    assert "holds no `*_table.csv` with `hvs` rows" in paths["markdown"].read_text()
    assert "figures/mapping_ssim_ssim" not in paths


def test_clear_errors_for_missing_inputs(fixture_dir):
    (fixture_dir / "stats" / "tost.csv").unlink()
    with pytest.raises(FileNotFoundError, match="tost.csv"):
        _run(fixture_dir)
    pd.DataFrame({"arm": ["a"]}).to_csv(fixture_dir / "stats" / "tost.csv", index=False)
    with pytest.raises(ValueError, match="tost.csv: missing column.*'margin'"):
        _run(fixture_dir)
    (fixture_dir / "stats" / "tost.csv").unlink()
    _write_stats(fixture_dir / "stats2", ARMS)
    (fixture_dir / "stats2" / "tost.csv").rename(fixture_dir / "stats" / "tost.csv")
    with pytest.raises(FileNotFoundError, match="mapping-fit directory 'nope'"):
        _run(fixture_dir, fit_dirs={"nope": fixture_dir / "nope"})


def test_reliability_bins_match_metrics_module():
    """The report's (lo, hi] bins agree with harness.metrics (edges included) and give the same ECE."""
    from harness.metrics import confidence_bin_sums as _reliability_sums  # what the report pools with
    from harness.metrics import expected_calibration_error, reliability_diagram_data

    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(4, 0.3), size=500)
    # confidences 1/4, 1 and 2/5 = 6/15 lie on bin edges
    probs[:4] = [[0.25] * 4, [1.0, 0, 0, 0], [0.4, 0.2, 0.2, 0.2], [0.2, 0.2, 0.2, 0.4]]
    labels = rng.integers(0, 4, 500)
    count, conf_sum, acc_sum = _reliability_sums(probs.max(1), probs.argmax(1) == labels, 15)
    ref = reliability_diagram_data(probs, labels, 15)
    np.testing.assert_array_equal(count, ref["count"])
    np.testing.assert_allclose(acc_sum[count > 0] / count[count > 0], ref["accuracy"][ref["count"] > 0])
    ece = np.abs(acc_sum - conf_sum).sum() / 500
    assert ece == pytest.approx(expected_calibration_error(probs, labels, 15))


def test_reliability_pools_runs_and_checks_keys(tmp_path):
    """A predictions.npz without clean_confidence is an error naming it; a missing one is left out, noted."""
    arms = {"baseline": ARMS["baseline"]}
    _write_runs(tmp_path, arms, range(3), predictions=True, failed=None)
    _write_stats(tmp_path / "stats", arms, failed=None)
    run = tmp_path / "runs" / "baseline-s0" / "eval" / "predictions.npz"
    np.savez(run, labels=np.zeros(3, np.int64), clean=np.zeros(3, np.int16),
             clean_confidence=np.array([0.0, 1 / 15, 1.0], np.float32))
    bad = tmp_path / "runs" / "baseline-s1" / "eval" / "predictions.npz"
    np.savez(bad, labels=np.zeros(3, np.int64), clean=np.zeros(3, np.int16))
    with pytest.raises(ValueError, match="missing array.*clean_confidence"):
        _run(tmp_path, params=_params(arms=arms))
    bad.unlink()
    paths = _run(tmp_path, params=_params(arms=arms))
    assert paths["figures/reliability"].read_bytes()[:8] == PNG_MAGIC
    assert "1 complete run(s) had no predictions.npz" in paths["markdown"].read_text()


def test_reference_csv():
    ref = load_reference(REPO / "datasets" / "reference" / "siedel2025.csv")
    assert tuple(ref.columns) == REFERENCE_COLUMNS
    assert not ref.duplicated(["setting", "dataset", "metric"]).any()
    assert set(ref["dataset"]) == {"cifar10", "cifar100", "tinyimagenet"}
    assert set(ref["metric"]) == {"clean_accuracy", "corruption_accuracy_mean19"}
    assert ref["mean"].between(15, 100).all() and (ref["std"] >= 0).all()
    row = ref[(ref["setting"] == "RC hard + TA hard") & (ref["dataset"] == "cifar10")
              & (ref["metric"] == "clean_accuracy")].iloc[0]
    assert (row["mean"], row["std"], row["std_ddof"], row["n_runs"]) == (96.65, 0.16, 1, 6)
    assert row["source"].startswith("METHOD §5.3 B")
    # §5.3: 21 + 26 + 8 settings on 3 datasets x 2 metrics, plus the two CIFAR-100-only `other` settings
    main = ref[ref["source"].str.startswith("METHOD §5.3")]
    assert len(main) == (21 + 26 + 8) * 6 + 2 * 2
    assert set(main["source"].str[len("METHOD §5.3 "):][lambda s: s.str.len() > 0].str[0]) == {"A", "B", "C"}
    # §5.1 RE sweep: 4 p x 5 s_max x hard/soft, CIFAR-100 clean, population std
    sweep = ref[ref["source"].str.startswith("METHOD §5.1")]
    assert len(sweep) == 40 and (sweep["std_ddof"] == 0).all() and set(sweep["dataset"]) == {"cifar100"}
    best = sweep[sweep["setting"] == "RE-sweep soft p=0.75, max=0.2"].iloc[0]
    assert (best["mean"], best["std"]) == (76.21, 0.25)
