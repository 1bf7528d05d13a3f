"""Stats + report over N synthetic runs (default 1,000): the `stats` and `report` stages' cost.

Run by hand:  python benchmarks/stats_report.py [--arms 20] [--seeds 50] [--n-boot 2000]

Builds a realistic results table in a temp folder -- per run: clean metrics, 19 corruptions x 5
severities, per-op accuracy, a predictions.npz of 1,000 test images -- for `arms` x `seeds` runs, with
one comparison per soft/hard arm pair, Holm families, two ANOVAs, a TOST and three hypotheses. Times:
  * softbench: load_results + analyze (incl. McNemar from every predictions.npz) + write + write_report;
  * baseline (same run): the bare statistical calls on the same numbers -- scipy ttest_rel and
    wilcoxon (plus a BCa bootstrap from 20 seeds up), statsmodels multipletests, mcnemar, AnovaRM,
    ttost_paired, one-sided ttest_1samp per hypothesis and TTestPower -- with no validation, guards,
    tables or figures.
Target: softbench stats + report <= 30 s for 1,000 runs.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis import analyze, load_results
from harness.augment.space import TA_OPS
from harness.corruptions import CORRUPTIONS
from harness.report import write_report

METRICS = ("accuracy", "nll", "ece", "brier", "corruption_accuracy_mean15", "corruption_accuracy_mean19")


def synthetic(root: Path, n_arms: int, seeds: list[int], n_test: int = 1000) -> tuple[dict, pd.DataFrame]:
    rng = np.random.default_rng(0)
    arms = {}
    for i in range(n_arms):
        fam = ("random_erasing", "trivial_augment")[(i // 2) % 2]
        arms[f"arm{i:03d}"] = {"factors": {"label_type": ("hard", "soft")[i % 2], "family": fam,
                                           "intensity": ("low", "high")[(i // 4) % 2], "re_p": 1.0,
                                           "re_smax": (0.2, 0.8)[(i // 4) % 2]}}
    labels = rng.integers(0, 10, n_test)
    frames = []
    for i, arm in enumerate(arms):
        base = 0.85 + 0.002 * i
        for s in seeds:
            run_dir = root / "runs" / "eval" / arm / f"s{s}"
            run_dir.mkdir(parents=True)
            acc = base + rng.normal(0, 0.01)
            pred = np.where(rng.random(n_test) < acc, labels, (labels + 1) % 10)
            np.savez_compressed(run_dir / "predictions.npz", labels=labels, clean=pred.astype(np.int16),
                                clean_confidence=rng.random(n_test).astype(np.float32))
            rows = [(m, "", np.nan, acc if m == "accuracy" else rng.random()) for m in METRICS]
            rows += [("accuracy", c, sev, acc - 0.03 * sev) for c in CORRUPTIONS for sev in range(1, 6)]
            rows += [("op_accuracy", op, 30, acc - 0.1) for op in TA_OPS]
            df = pd.DataFrame(rows, columns=["metric", "corruption", "severity", "value"])
            head = {"run_id": f"{arm}-s{s}", "grid": "bench", "dataset": "cifar10", "arm": arm,
                    **arms[arm]["factors"], "seed": s}
            for k, v in reversed(head.items()):
                df.insert(0, k, v)
            df["status"] = "complete"
            df["run_dir"] = str(run_dir.relative_to(root))
            frames.append(df)
    results = pd.concat(frames, ignore_index=True)
    names = list(arms)
    spec = {
        "n_boot": 2000,
        "comparisons": [{"family": arms[names[i]]["factors"]["family"], "arm": names[i], "reference": names[i - 1]}
                        for i in range(1, n_arms, 2)],
        "anova": [{"name": "label_x_family", "metric": "accuracy", "arms": names[:4],
                   "factors": ["label_type", "family"]},
                  {"name": "label_x_intensity", "metric": "accuracy", "arms": [names[j] for j in (0, 1, 4, 5)],
                   "factors": ["label_type", "intensity"]}],
        "equivalence": [{"name": "eq", "arm": names[3], "reference": names[2], "metric": "accuracy",
                         "margin": 0.01}],
        "hypotheses": [
            {"id": "F1", "statement": "interaction", "kind": "interaction", "metric": "accuracy",
             "direction": "increasing", "mde": 0.01, "levels": [0.2, 0.8],
             "pairs": [[names[1], names[0]], [names[5], names[4]]]},
            {"id": "F2", "statement": "not better", "kind": "non_superiority", "arm": names[3],
             "reference": names[2], "metric": "accuracy", "mde": 0.01},
            {"id": "F3", "statement": "lower", "kind": "directional", "direction": "lower", "arm": names[1],
             "reference": names[0], "metric": "corruption_accuracy_mean19", "mde": 0.01}],
    }
    params = {"grid": "bench", "dataset": "cifar10", "seeds": seeds, "run_arms": names, "arms": arms,
              "reference_comparable": False, "stats": spec}
    return params, results


def baseline(results: pd.DataFrame, params: dict, root: Path, n_boot: int) -> None:
    """The bare library calls behind the same analysis."""
    from scipy import stats as sps
    from statsmodels.stats.anova import AnovaRM
    from statsmodels.stats.power import TTestPower
    from statsmodels.stats.contingency_tables import mcnemar
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.weightstats import ttost_paired

    scalar = results[results["corruption"] == ""].pivot_table(index=["arm", "seed"], columns="metric", values="value")
    spec = params["stats"]
    rng = np.random.default_rng(0)
    for metric in ("accuracy", "corruption_accuracy_mean15", "corruption_accuracy_mean19", "ece"):
        ps = []
        for c in spec["comparisons"]:
            a, b = scalar.loc[c["reference"], metric].to_numpy(), scalar.loc[c["arm"], metric].to_numpy()
            ps.append(sps.ttest_rel(b, a).pvalue)
            sps.wilcoxon(b, a)
            if len(a) >= 10:
                sps.bootstrap((b - a,), np.mean, n_resamples=n_boot, method="BCa", rng=rng)
        multipletests(ps, method="holm")
    for c in spec["comparisons"]:
        for s in params["seeds"]:
            za = np.load(root / "runs/eval" / c["reference"] / f"s{s}" / "predictions.npz")
            zb = np.load(root / "runs/eval" / c["arm"] / f"s{s}" / "predictions.npz")
            ca, cb = za["clean"] == za["labels"], zb["clean"] == zb["labels"]
            mcnemar([[np.sum(ca & cb), np.sum(ca & ~cb)], [np.sum(~ca & cb), np.sum(~ca & ~cb)]], exact=False)
    for an in spec["anova"]:
        d = scalar.loc[an["arms"], "accuracy"].reset_index()
        for f in an["factors"]:
            d[f] = d["arm"].map(lambda a, f=f: params["arms"][a]["factors"][f])
        AnovaRM(d.astype({f: str for f in an["factors"]}), depvar="accuracy", subject="seed",
                within=an["factors"]).fit()
    e = spec["equivalence"][0]
    ttost_paired(scalar.loc[e["arm"], "accuracy"].to_numpy(), scalar.loc[e["reference"], "accuracy"].to_numpy(),
                 -e["margin"], e["margin"])
    for h in spec["hypotheses"]:
        pairs = h["pairs"] if h["kind"] == "interaction" else [[h["arm"], h["reference"]]]
        gaps = [scalar.loc[a, h["metric"]].to_numpy() - scalar.loc[r, h["metric"]].to_numpy() for a, r in pairs]
        d = gaps[-1] - gaps[0] if len(gaps) == 2 else gaps[0]
        sps.ttest_1samp(d, 0.0, alternative="greater")
        TTestPower().power(0.01 / d.std(ddof=1), len(d), 0.05 / 3, alternative="larger")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arms", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--n-boot", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        params, results = synthetic(root, args.arms, list(range(args.seeds)))
        params["stats"]["n_boot"] = args.n_boot
        (root / "reports").mkdir()
        results.to_csv(root / "reports/results.csv", index=False)
        import os

        cwd = os.getcwd()
        os.chdir(root)  # run_dir paths are relative to the repo root, as in the pipeline
        try:
            t0 = time.perf_counter()
            res = load_results("reports/results.csv")
            t1 = time.perf_counter()
            analysis = analyze(res, params["stats"])
            analysis.write("reports/stats")
            t2 = time.perf_counter()
            write_report("reports", results_csv="reports/results.csv", stats_dir="reports/stats", params=params,
                         runs_root=".", reference_csv=Path(cwd) / "datasets/reference/siedel2025.csv",
                         provenance={"note": "benchmark"}, date="benchmark")
            t3 = time.perf_counter()
            baseline(results, params, root, args.n_boot)
            t4 = time.perf_counter()
        finally:
            os.chdir(cwd)
    n_runs = args.arms * args.seeds
    print(f"date {date.today()}  machine {platform.machine()} {platform.processor() or ''}".strip())
    print(f"{n_runs} runs ({args.arms} arms x {args.seeds} seeds), {len(results):,} result rows, "
          f"{len(params['stats']['comparisons'])} comparisons x 4 metrics, n_boot {args.n_boot}")
    print(f"load results.csv          : {t1 - t0:6.2f} s")
    print(f"analyze + write stats     : {t2 - t1:6.2f} s")
    print(f"report (md, html, figures): {t3 - t2:6.2f} s")
    print(f"softbench stats + report  : {t3 - t0:6.2f} s   (target <= 30 s)")
    print(f"baseline: bare scipy/statsmodels calls: {t4 - t3:6.2f} s   ratio {(t3 - t0) / (t4 - t3):.2f}x")


if __name__ == "__main__":
    main()
