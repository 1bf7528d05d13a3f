"""The DVC pipeline's stages (``softbench stage NAME``), each reading the active grid (``params.yaml``).

==============  ===============================================================  ==============================
stage           does                                                             writes
==============  ===============================================================  ==============================
prepare         convert the grid's dataset once                                  datasets/prepared/<dataset>/
corruptions     corrupt the class-stratified evaluation subset (19 x severities)  datasets/corrupted/
proxy_accuracy  train a proxy without TrivialAugment; its accuracy per op x bin  runs/proxy/<dataset>/,
                becomes the ``proxy`` mapping set                                datasets/fitted/<dataset>/proxy/
fit_mappings    fit the human-vision (``hvs``) mapping set (other ops: fallback)  datasets/fitted/<dataset>/hvs/
train           one arm x seed (no evaluation); resumes an interrupted run       runs/train/<arm>/s<seed>/
evaluate        clean, corruption, calibration and per-op metrics of every seed  runs/eval/<arm>/s<seed>/
                of one arm (one process per arm: start-up dominates small runs)
results         every grid cell into the long results table                      reports/results.csv
stats           comparisons, Holm, ANOVA, TOST, power, McNemar, verdicts         reports/stats/
report          Markdown + self-contained HTML report with figures                reports/report.{md,html}, ...
==============  ===============================================================  ==============================

A run that fails (non-finite loss) is recorded as ``failed`` and the stage exits 0, so the sweep
goes on and the report lists the failure; any other error exits non-zero and stops ``dvc repro``.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import yaml

import mappings
from harness.analysis import analyze, load_results
from harness.config import ConfigError, TrainConfig, load_config
from harness.corruptions import corrupted_test_set
from harness.corruptions.official import fetch_official_corruptions
from harness.datasets import load_dataset, prepare_dataset
from harness.evaluate import EvaluationFailed, corruption_subset, evaluate_run
from harness.fit_mappings import fit_mappings
from harness.io import FileFormatError, atomic_write_text, provenance, read_json
from harness.report import write_report
from harness.results import account_for_grid, collect_results, write_results
from harness.runs import clear_run_dir, load_torch, read_status, remove_run_dir, run_lock, write_status
from harness.trainer import TrainingFailed, check_buildable, train
from harness.grid import (
    CORRUPTED_ROOT,
    FITTED_ROOT,
    RUNS_ROOT,
    Grid,
    arm_config,
    eval_dir,
    fitted_mapping_path,
    load_grid,
    run_id,
    train_dir,
)
from harness.paths import code_root

__all__ = ["STAGES", "run_stage", "RUNS_ROOT", "CORRUPTED_ROOT", "REPORTS_ROOT", "train_dir", "eval_dir"]

REPORTS_ROOT = Path("reports")
#: DVC metrics (with reports/metrics.json): the per-hypothesis summary written by the report stage
HYPOTHESES_METRICS = "hypotheses.json"
STAGES = ("prepare", "corruptions", "proxy_accuracy", "fit_mappings", "train", "evaluate", "results", "stats",
          "report")


def _log(msg: str) -> None:
    print(f"[softbench stage] {msg}", file=sys.stderr, flush=True)


def _grid_eval_config(grid: Grid) -> TrainConfig:
    """A config carrying the grid's current evaluation settings (they are the same for every arm)."""
    return arm_config(grid, grid.run_arms[0], grid.seeds[0], resolve_fitted=False)


def _eval_config(grid: Grid, config: TrainConfig) -> TrainConfig:
    """``config`` with the grid's current evaluation settings (evaluation never changes training)."""
    ev = _grid_eval_config(grid)
    return replace(config, corruption_n=ev.corruption_n, corruption_severities=ev.corruption_severities,
                   op_eval_bins=ev.op_eval_bins, corruptions=ev.corruptions, eval_batch_size=ev.eval_batch_size,
                   corruption_cache=ev.corruption_cache)


def stage_prepare(grid: Grid, **_) -> None:
    """Convert the grid's dataset; with ``download: auto`` (default) a missing one is fetched and verified first."""
    _log(f"prepared: {prepare_dataset(grid.dataset, source=grid.data_source, download=grid.download == 'auto')}")


def stage_corruptions(grid: Grid, progress: bool = True, **_) -> None:
    cfg = _grid_eval_config(grid)
    if not cfg.corruptions:
        CORRUPTED_ROOT.mkdir(parents=True, exist_ok=True)
        _log("corruptions disabled in evaluation settings; nothing to build")
        return
    if grid.corruption_source == "official":  # the released files: found locally, or fetched and verified

        root = fetch_official_corruptions(grid.dataset, download=grid.download == "auto")
        _log(f"official corruption files: {root} (archive checksums verified when downloaded)")
        _log("note: the evaluate stage still scores the generated corruptions built below; scoring the "
             "official files is not wired into harness/evaluate.py yet")
    _train, test = load_dataset(grid.dataset, source=grid.data_source)
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
    files = fit_mappings(grid.dataset, "hvs", out, fallback=grid.fit.get("fallback", "per-op"), progress=progress,
                         fallback_sets=reuse, **_fit_kwargs(grid))
    _log(f"hvs mapping set: {files['mapping_set']}")


#: the code a training run depends on (also the ``train`` stage's code deps in dvc.yaml)
TRAIN_CODE = ("harness/augment", "harness/config.py", "harness/datasets.py", "harness/grid.py", "harness/inference.py",
              "harness/loss.py", "harness/models.py", "harness/pipeline_builder.py", "harness/run_model.py",
              "harness/targets.py", "harness/trainer.py", "mappings")
STAMP_FILE = "train_stamp.json"


def code_hash(paths=TRAIN_CODE) -> str:
    """SHA-256 over the Python sources under ``paths`` (relative to the working copy, ``harness.paths.code_root``;
    path and content, sorted). A run is resumed or kept only while the code that trains it is unchanged."""

    h = hashlib.sha256()
    here = code_root(tuple(paths))
    for rel in paths:
        p = here / rel
        for path in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            h.update(str(path.relative_to(here)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _train_stamp(grid: Grid, config: TrainConfig) -> dict:


    meta = prepare_dataset(grid.dataset, source=grid.data_source) / "meta.json"
    return {"training_hash": config.training_hash(), "code": code_hash(),
            "data": hashlib.sha256(meta.read_bytes()).hexdigest()[:16]}


def stage_train(grid: Grid, arm: str, seed: int, progress: bool = True, **_) -> None:
    """Train one run (no evaluation). DVC keeps this output between runs (``persist``) and reruns the
    stage whenever one of its declared dependencies changed; the stage then decides, holding the run's
    lock (another process writing it: :class:`~harness.runs.RunBusyError`), from the run's stamp
    (training config hash, training code hash, dataset hash):

    * same stamp, run finished   -> kept as it is (e.g. only the arm's factors or docs changed);
    * same stamp, run interrupted -> resumed from its checkpoint (also a finished run whose model.pt
      is unreadable: the final checkpoint rewrites it);
    * anything else               -> cleared and trained afresh (also a run killed before its first
      checkpoint, or one whose stamp, status or checkpoint cannot be read).

    The config is checked in full (augmentation stages, fitted mappings, model_kwargs) before anything
    is written.
    """

    _check_cell(grid, arm, seed)
    config = arm_config(grid, arm, seed)
    check_buildable(config)
    run_dir = train_dir(arm, seed)
    stamp = _train_stamp(grid, config)
    with run_lock(run_dir, command=f"softbench stage train --arm {arm} --seed {seed}"):
        action = _train_action(run_dir, config, stamp)
        if action == "keep":
            _log(f"{run_dir}: finished run with the same config, code and data: kept")
            return
        if action == "fresh":
            clear_run_dir(run_dir)
        else:
            _log(f"resuming {run_dir} from its checkpoint")
        try:
            train(config, run_dir, resume=action == "resume", progress=progress,
                  extra_files={STAMP_FILE: json.dumps(stamp) + "\n"})
        except TrainingFailed as exc:
            _log(f"run FAILED and is recorded as failed: {exc}")


def _train_action(run_dir: Path, config: TrainConfig, stamp: dict) -> str:
    """``keep``, ``resume`` or ``fresh`` for the run in ``run_dir`` (see :func:`stage_train`; under its lock)."""
    ckpt, stamp_path = run_dir / "checkpoint.pt", run_dir / STAMP_FILE
    if not (ckpt.is_file() and stamp_path.is_file()):
        return "fresh"
    try:
        if read_json(stamp_path, "the run's training stamp") != stamp:
            return "fresh"
    except FileFormatError as exc:
        _log(f"{exc}: training afresh")
        return "fresh"
    try:  # status.json records the epoch of the last checkpoint (written right after it)
        st = read_status(run_dir)
    except FileFormatError as exc:
        _log(f"{exc}: resuming from the checkpoint, which holds the run's state")
        return "resume"
    status, epoch = st["status"], int(st.get("epoch") or 0)
    if status == "failed":
        return "fresh"
    if epoch >= config.epochs and (run_dir / "model.pt").is_file():
        try:
            load_torch(run_dir / "model.pt", "trained model weights")
        except FileFormatError as exc:
            _log(f"{exc}: rewriting it from the final checkpoint")
            return "resume"
        return "keep"
    return "resume" if status == "running" else "fresh"


def stage_evaluate(grid: Grid, arm: str, progress: bool = True, **_) -> None:
    """Evaluate every seed of ``arm`` (a run that did not train, or whose trained files cannot be read, is
    recorded as failed with the reason, not skipped). Each run's training and evaluation directories are
    locked while it is evaluated."""

    _check_arm(grid, arm)
    arm_root = RUNS_ROOT / "eval" / arm
    wanted = {eval_dir(arm, seed).name for seed in grid.seeds}
    if arm_root.is_dir():  # evaluations of seeds no longer in the grid
        for old in arm_root.iterdir():
            if old.name not in wanted:
                remove_run_dir(old, command=f"softbench stage evaluate --arm {arm}")
    for seed in grid.seeds:
        rid, tdir, out_dir = run_id(arm, seed), train_dir(arm, seed), eval_dir(arm, seed)
        with run_lock(out_dir, command=f"softbench stage evaluate --arm {arm}"):
            clear_run_dir(out_dir)
            try:
                if not (tdir / "model.pt").is_file():
                    status = read_status(tdir)
                    reason = status.get("reason") or f"training did not finish (status {status['status']!r})"
                    write_status(out_dir, "failed", reason=reason, epoch=status.get("epoch"))
                    _log(f"{rid}: not evaluated: {reason}")
                    continue
                config = _eval_config(grid, load_config(tdir / "config.yaml"))
                evaluate_run(tdir, progress=progress, config=config, out_dir=out_dir)
            except EvaluationFailed as exc:  # non-finite metric, recorded as failed; other errors stop the stage
                _log(f"{rid}: evaluation FAILED and is recorded as failed: {exc}")
            except (FileFormatError, ConfigError) as exc:  # a trained file that cannot be read: listed, not lost
                write_status(out_dir, "failed", reason=str(exc))
                _log(f"{rid}: not evaluated: {exc}")
            else:
                _log(f"{rid}: evaluated")


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


def _check_arm(grid: Grid, arm: str | None) -> None:
    if arm is None:
        raise ConfigError("this stage needs --arm")
    if arm not in grid.run_arms:
        raise ConfigError(f"--arm {arm!r} is not in params run_arms {list(grid.run_arms)}")


def _check_cell(grid: Grid, arm: str | None, seed: int | None) -> None:
    if arm is None or seed is None:
        raise ConfigError("this stage needs --arm and --seed")
    _check_arm(grid, arm)
    if seed not in grid.seeds:
        raise ConfigError(f"--seed {seed} is not in params seeds {list(grid.seeds)}")


_FUNCS = {"prepare": stage_prepare, "corruptions": stage_corruptions, "proxy_accuracy": stage_proxy_accuracy,
          "fit_mappings": stage_fit_mappings, "train": stage_train, "evaluate": stage_evaluate,
          "results": stage_results, "stats": stage_stats, "report": stage_report}


def run_stage(name: str, *, params: str | Path = "params.yaml", arm: str | None = None, seed: int | None = None,
              progress: bool = True) -> None:
    """Run pipeline stage ``name`` on the grid in ``params``."""
    if name not in _FUNCS:
        raise ConfigError(f"unknown stage {name!r}; stages: {list(STAGES)}")
    grid = load_grid(params)
    _FUNCS[name](grid, arm=arm, seed=seed, progress=progress)


def grid_summary(grid: Grid) -> str:
    """A human-readable listing of a grid (``softbench grid show``)."""
    lines = [f"grid {grid.name}: dataset {grid.dataset}, seeds {list(grid.seeds)}, "
             f"{len(grid.run_arms)} arms x {len(grid.seeds)} seeds = {len(grid.run_arms) * len(grid.seeds)} runs"]
    for arm in grid.run_arms:
        spec = grid.arms[arm]
        lines.append(f"  {arm:<22} {yaml.safe_dump(spec['factors'], default_flow_style=True).strip()}")
    return "\n".join(lines)
