"""The DVC pipeline's stages (``softbench stage NAME``), each reading the active grid (``params.yaml``).

==============  ===============================================================  ==============================
stage           does                                                             writes
==============  ===============================================================  ==============================
prepare         convert the grid's dataset once                                  datasets/prepared/<dataset>/
corruptions     corrupt the class-stratified evaluation subset (19 x severities)  datasets/corrupted/
proxy_accuracy  train a proxy without TrivialAugment; its accuracy per op x bin  runs/proxy/<dataset>/,
                becomes the ``proxy`` mapping set                                datasets/fitted/<dataset>/proxy/
fit_mappings    fit the human-vision (``hvs``) mapping set (other ops: fallback)  datasets/fitted/<dataset>/hvs/
train           every arm x seed (no evaluation), dispatched through the grid's  runs/train/<arm>/s<seed>/
                executor; keeps finished runs, resumes interrupted ones
evaluate        clean, corruption, calibration and per-op metrics of every run,  runs/eval/<arm>/s<seed>/
                dispatched likewise; keeps evaluations whose inputs are unchanged
results         every grid cell into the long results table                      reports/results.csv
stats           comparisons, Holm, ANOVA, TOST, power, McNemar, verdicts         reports/stats/
report          Markdown + self-contained HTML report with figures                reports/report.{md,html}, ...
==============  ===============================================================  ==============================

Train and evaluate run the grid's cells (``harness.cell``) through its executor (``harness.executors``:
serial, local process pool, Ray, Slurm via submitit); ``--arm`` / ``--seed`` run one cell in this process.
A run that fails (non-finite loss, a worker lost more than ``max_retries`` times) is recorded as ``failed``
and the stage exits 0, so the sweep goes on and the report lists the failure; any other error exits
non-zero (after the other cells finished) and stops ``dvc repro``.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import yaml

import mappings
from harness.analysis import analyze, load_results
from harness.cell import check_arm, check_cell, evaluate_cell, grid_eval_config, train_cell
from harness.corruptions import corrupted_test_set
from harness.corruptions.official import fetch_official_corruptions
from harness.corruptions.sources import OfficialCorruptions
from harness.datasets import load_dataset, prepare_dataset
from harness.evaluate import corruption_subset, subset_rows
from harness.executors import cell_tasks, dispatch, torch_threads
from harness.fit_mappings import fit_mappings
from harness.io import atomic_write_text, provenance, read_json
from harness.report import write_report
from harness.results import account_for_grid, collect_results, write_results
from harness.runs import remove_run_dir
from harness.config import ConfigError
from harness.grid import (
    CORRUPTED_ROOT,
    FITTED_ROOT,
    RUNS_ROOT,
    Grid,
    eval_dir,
    fitted_mapping_path,
    load_grid,
    run_id,
    train_dir,
)

__all__ = ["STAGES", "run_stage", "RUNS_ROOT", "CORRUPTED_ROOT", "REPORTS_ROOT", "train_dir", "eval_dir"]

REPORTS_ROOT = Path("reports")
#: DVC metrics (with reports/metrics.json): the per-hypothesis summary written by the report stage
HYPOTHESES_METRICS = "hypotheses.json"
STAGES = ("prepare", "corruptions", "proxy_accuracy", "fit_mappings", "train", "evaluate", "results", "stats",
          "report")


def _log(msg: str) -> None:
    print(f"[softbench stage] {msg}", file=sys.stderr, flush=True)


def stage_prepare(grid: Grid, **_) -> None:
    """Convert the grid's dataset; with ``download: auto`` (default) a missing one is fetched and verified first."""
    _log(f"prepared: {prepare_dataset(grid.dataset, source=grid.data_source, download=grid.download == 'auto')}")


def stage_corruptions(grid: Grid, progress: bool = True, **_) -> None:
    cfg = grid_eval_config(grid)
    if not cfg.corruptions:
        CORRUPTED_ROOT.mkdir(parents=True, exist_ok=True)
        _log("corruptions disabled in evaluation settings; nothing to build")
        return
    _train, test = load_dataset(grid.dataset, source=grid.data_source)
    if grid.corruption_source == "official":  # the released files: found locally, or fetched and verified
        root = fetch_official_corruptions(grid.dataset, download=grid.download == "auto")
        # checked here, before any training: the test set's classes mean the release's labels, every file's MD5
        with OfficialCorruptions(root, grid.dataset, test.classes, cfg.corruption_severities,
                                 select=lambda labels: subset_rows(labels, cfg.corruption_n)) as corr:
            corr.verify_all()
            _log(f"official corruption files: {corr.describe()}")
        CORRUPTED_ROOT.mkdir(parents=True, exist_ok=True)
        return
    sub_set, _idx = corruption_subset(test, cfg.corruption_n)
    with corrupted_test_set(sub_set, n=len(sub_set), severities=cfg.corruption_severities, seed=0,
                            root=cfg.corruption_cache, progress=progress) as corr:
        _log(f"corrupted set: {corr.path}")


def _fit_kwargs(grid: Grid) -> dict:
    fit = grid.fit
    overrides = {k: grid.base[k] for k in ("model_kwargs", "batch_size", "lr", "weight_decay", "device",
                                           "precision") if k in grid.base}
    # measured on training images the proxy did not see: the fitted mappings label the training of
    # arms that are scored on the test set, so the test set must not inform them
    return dict(proxy_model=grid.base.get("model", "smallnet"), proxy_overrides=overrides, measure_on="train-heldout",
                n_images=int(fit.get("n_images", 500)), n_boot=int(fit.get("n_boot", 200)),
                proxy_epochs=int(fit.get("proxy_epochs", 10)), proxy_n_per_class=fit.get("proxy_n_per_class"),
                data_source=grid.data_source, proxy_run=RUNS_ROOT / "proxy" / grid.dataset, seed=0)


def stage_proxy_accuracy(grid: Grid, progress: bool = True, **_) -> None:
    out = FITTED_ROOT / grid.dataset / "proxy"
    with torch_threads(grid.execution.threads_per_run):  # the proxy's numbers, like every run's, depend on it
        files = fit_mappings(grid.dataset, "proxy", out, progress=progress, **_fit_kwargs(grid))
    _log(f"proxy mapping set: {files['mapping_set']}")


def stage_fit_mappings(grid: Grid, progress: bool = True, **_) -> None:
    # ops without human data fall back to the proxy stage's mapping set (same proxy, same images),
    # loaded rather than measured a second time
    proxy_json = fitted_mapping_path(grid.dataset, "proxy")
    reuse = ({"proxy": mappings.from_dict(read_json(proxy_json, "the proxy stage's mapping set (mappings.to_dict JSON)",
                                                    hint="rerun it: dvc repro -f proxy_accuracy"))}
             if proxy_json.is_file() else None)
    out = FITTED_ROOT / grid.dataset / "hvs"
    with torch_threads(grid.execution.threads_per_run):
        files = fit_mappings(grid.dataset, "hvs", out, fallback=grid.fit.get("fallback", "per-op"), progress=progress,
                             fallback_sets=reuse, **_fit_kwargs(grid))
    _log(f"hvs mapping set: {files['mapping_set']}")


def _dispatch(grid: Grid, stage: str, arm: str | None, seed: int | None, progress: bool, params: str | Path) -> None:
    """One cell (``--arm`` and ``--seed``: in this process, messages on the terminal) or every cell of the grid
    (or of ``--arm``), dispatched through the grid's executor (``execution:``; env ``SOFTBENCH_EXECUTOR``)."""
    if seed is not None and arm is None:
        raise ConfigError("--seed needs --arm (one run is --arm ARM --seed SEED; without both, every run)")
    if arm is not None and seed is not None:
        check_cell(grid, arm, seed)
        with torch_threads(grid.execution.threads_per_run):  # as on every executor: part of a CPU run's numbers
            action = (train_cell if stage == "train" else evaluate_cell)(grid, arm, seed, progress=progress)
        _log(f"{run_id(arm, seed)}: {action}")
        return
    if arm is not None:
        check_arm(grid, arm)
    tasks = cell_tasks(grid, stage, root=Path.cwd(), params=params, threads=grid.execution.threads_per_run)
    tasks = [t for t in tasks if arm is None or t.arm == arm]
    dispatch(tasks, grid.execution, progress=progress, label=stage)


def stage_train(grid: Grid, arm: str | None = None, seed: int | None = None, progress: bool = True,
                params: str | Path = "params.yaml", **_) -> None:
    """Train every run of the grid (or one: ``--arm --seed``): each is kept, resumed or trained afresh from
    its stamp (``harness.cell``); a run with a non-finite loss is recorded failed and the sweep goes on."""
    _dispatch(grid, "train", arm, seed, progress, params)


def stage_evaluate(grid: Grid, arm: str | None = None, seed: int | None = None, progress: bool = True,
                   params: str | Path = "params.yaml", **_) -> None:
    """Evaluate every run of the grid (or of ``--arm``, or one): a complete evaluation with the same stamp is
    kept; a run that did not train is recorded failed with the reason. Evaluations of arms or seeds no longer
    in the grid are removed."""
    if arm is None and seed is None:
        _remove_stale_evaluations(grid)
    _dispatch(grid, "evaluate", arm, seed, progress, params)


def _remove_stale_evaluations(grid: Grid) -> None:
    root = RUNS_ROOT / "eval"
    if not root.is_dir():
        return
    for arm_root in root.iterdir():
        if not arm_root.is_dir():
            continue
        wanted = {eval_dir(arm_root.name, s).name for s in grid.seeds} if arm_root.name in grid.run_arms else set()
        for old in arm_root.iterdir():
            if old.is_dir() and old.name not in wanted:
                remove_run_dir(old, command="softbench stage evaluate")
        if not any(arm_root.iterdir()):
            arm_root.rmdir()


def stage_results(grid: Grid, **_) -> None:
    """Every arm x seed of the grid into ``reports/results.csv``; runs that are not complete are listed
    (status and reason, naming the file) on stderr and in the table, never dropped."""

    df = collect_results(grid, RUNS_ROOT)
    path = write_results(df, REPORTS_ROOT / "results.csv")
    bad = df[df["status"] != "complete"].drop_duplicates("run_id")
    _log(f"results: {path} ({df['run_id'].nunique()} runs, {len(bad)} not complete)")
    for rid, status, reason in zip(bad["run_id"], bad["status"], bad["reason"]):
        _log(f"  {rid}: {status}: {reason}")


def stage_stats(grid: Grid, **_) -> None:
    # a grid run without any row (e.g. deleted from results.csv by hand) enters as `missing`, never dropped
    results = account_for_grid(load_results(REPORTS_ROOT / "results.csv"), grid)
    analysis = analyze(results, grid.stats)
    analysis.write(REPORTS_ROOT / "stats")
    _log(f"statistics: {REPORTS_ROOT / 'stats'}")


def stage_report(grid: Grid, **_) -> None:
    hvs_dir = FITTED_ROOT / grid.dataset / "hvs"  # the human-data fit: mapping curves over the trials
    fit_dirs = {"hvs": hvs_dir} if hvs_dir.is_dir() else {}
    prov = provenance(config=None)
    prov.pop("config", None)
    prov.pop("seed", None)  # per run: in each run's provenance.json
    prov["params_sha256"] = _params_hash()
    params = {**grid.raw, "reference_mismatch": grid.reference_mismatch()}
    files = write_report(REPORTS_ROOT, results_csv=REPORTS_ROOT / "results.csv", stats_dir=REPORTS_ROOT / "stats",
                         params=params, fit_dirs=fit_dirs, runs_root=".", provenance=prov)
    write_hypothesis_metrics(REPORTS_ROOT / "stats", REPORTS_ROOT / HYPOTHESES_METRICS)
    _log(f"report: {files.get('html', REPORTS_ROOT / 'report.html')}")


def write_hypothesis_metrics(stats_dir: str | Path, out: str | Path) -> Path:
    """The per-hypothesis DVC metrics file: ``{id: {verdict, p, p_holm, metric}}`` from ``stats_dir/hypotheses.json``
    (p-values not computed are null). Small and committed for the default grid, so that ``dvc metrics diff``
    shows what a change did to the verdicts."""
    text = (Path(stats_dir) / "hypotheses.json").read_text(encoding="utf-8")
    hyps = json.loads(text or "[]")

    def number(v):
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None

    summary = {str(h["id"]): {"verdict": h.get("verdict"), "p": number(h.get("p")), "p_holm": number(h.get("p_holm")),
                              "metric": h.get("metric")} for h in hyps}
    atomic_write_text(out, json.dumps(summary, indent=2) + "\n")
    return Path(out)


def _params_hash(path: str | Path = "params.yaml") -> str | None:
    p = Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest()[:16] if p.is_file() else None


_FUNCS = {"prepare": stage_prepare, "corruptions": stage_corruptions, "proxy_accuracy": stage_proxy_accuracy,
          "fit_mappings": stage_fit_mappings, "train": stage_train, "evaluate": stage_evaluate,
          "results": stage_results, "stats": stage_stats, "report": stage_report}


def run_stage(name: str, *, params: str | Path = "params.yaml", arm: str | None = None, seed: int | None = None,
              progress: bool = True) -> None:
    """Run pipeline stage ``name`` on the grid in ``params``."""
    if name not in _FUNCS:
        raise ConfigError(f"unknown stage {name!r}; stages: {list(STAGES)}")
    grid = load_grid(params)
    _FUNCS[name](grid, arm=arm, seed=seed, progress=progress, params=params)


def grid_summary(grid: Grid) -> str:
    """A human-readable listing of a grid (``softbench grid show``)."""
    lines = [f"grid {grid.name}: dataset {grid.dataset}, seeds {list(grid.seeds)}, "
             f"{len(grid.run_arms)} arms x {len(grid.seeds)} seeds = {len(grid.run_arms) * len(grid.seeds)} runs"]
    for arm in grid.run_arms:
        spec = grid.arms[arm]
        lines.append(f"  {arm:<22} {yaml.safe_dump(spec['factors'], default_flow_style=True).strip()}")
    return "\n".join(lines)
