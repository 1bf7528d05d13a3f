"""``softbench`` command-line interface.

Subcommands:
  train    train one run from a config and a seed into a run directory, then evaluate it
  evaluate (re-)evaluate a trained run directory
  fit-mappings       fit a TrivialAugment mapping set (HVS, SSIM or proxy accuracy) and plot it
  prepare  prepare a dataset (convert once, optionally download)
  corruptions make   generate and cache a corrupted test set (CIFAR-C style)
  demo     apply every soft augmentation to real images; write an example grid PNG and a
           confidence summary
  stage    run one stage of the DVC pipeline on the active grid (params.yaml); used by dvc.yaml
  grid     list, show or activate an experiment grid (grids/<name>.yaml -> params.yaml)
  plan     seeds needed per pre-declared hypothesis for the target power at its mde, from a pilot
  presets  print the confidence of every TrivialAugment op x bin under the mapping presets
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mappings
from harness.analysis import format_plan, load_results, plan
from harness.config import PRECISIONS, ConfigError, load_config
from harness.corruptions import corrupted_test_set
from harness.datasets import load_dataset, prepare_dataset
from harness.demo import run_demo, ta_confidence_table
from harness.corruptions.sources import CORRUPTION_SOURCES
from harness.evaluate import EvaluationFailed, corruption_subset, evaluate_run
from harness.fit_mappings import fit_mappings
from harness.execution import EXECUTORS
from harness.executors import DispatchError, torch_threads
from harness.grid import FITTED_ROOT, list_grids, load_grid, use_grid
from harness.io import atomic_write_text
from harness.runs import RunBusyError
from harness.stages import STAGES, grid_summary, run_stage
from harness.trainer import TrainingFailed, check_buildable
from harness.workflow import train_and_evaluate

__all__ = ["main", "build_parser"]


THREADS_HELP = ("torch CPU threads (default 1, as every pipeline run: execution.threads_per_run). A CPU run's "
                "numbers depend on it (a convolution's sums split over threads), so a run by hand matches the "
                "pipeline's only at the same count; recorded in provenance.json")


def _add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=_positive_int("--threads", 1), default=1, metavar="N", help=THREADS_HELP)


def _positive_int(name: str, minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= {minimum}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="softbench",
        description="Benchmark harness for adaptive label smoothing (soft augmentation). The main job is "
                    "the DVC pipeline: `dvc repro` runs the active grid (params.yaml; see `softbench grid`).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="apply each soft augmentation to real images; write a grid PNG and confidence tables",
        description=(
            "Apply every TrivialAugment op (bins 0/10/20/30, both signs), Random Erasing, patch noise and "
            "soft crop to real images (scikit-image's bundled photos, or a CIFAR-style npz) and write "
            "augmentation_grid.png, ta_confidence_table.csv, stage_confidence_summary.csv, summary.md "
            "and metrics.json into --out."
        ),
    )
    demo.add_argument("--out", required=True, help="output folder (created if missing)")
    demo.add_argument("--num-classes", type=_positive_int("--num-classes", 2), default=10,
                      help="number of classes K; confidences are floored at 1/K (default: 10)")
    demo.add_argument("--seed", type=_positive_int("--seed", 0), default=0, help="random seed (default: 0)")
    demo.add_argument("--mapping", choices=mappings.PRESETS, default="polynomial_chance",
                      help="TrivialAugment mapping preset shown in the grid (default: polynomial_chance)")
    demo.add_argument("--images-npz", default=None,
                      help="optional npz with 'images' uint8 [N,H,W,3] (e.g. ../shared/data/cifar10/test.npz)")
    demo.add_argument("--size", type=_positive_int("--size", 8), default=64,
                      help="side in px of the bundled demo photos (default: 64; ignored with --images-npz)")

    tr = sub.add_parser(
        "train",
        help="train one run (config + seed) into a run directory, then evaluate it",
        description=(
            "Train a model from a YAML config (fields of harness.config.TrainConfig; omitted fields take "
            "their defaults) with optional --set overrides, then evaluate clean, corruption and calibration "
            "metrics. Writes config.yaml, provenance.json, epochs.csv, checkpoint.pt, model.pt, metrics.json, "
            "predictions.npz and status.json into --out."
        ),
    )
    tr.add_argument("--config", default=None, help="YAML config file (default: built-in defaults)")
    tr.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config field, dotted keys allowed (e.g. --set epochs=5 "
                         "--set augment.2.soft=true); repeatable")
    tr.add_argument("--seed", type=_positive_int("--seed", 0), default=None,
                    help="random seed (overrides the config's seed)")
    tr.add_argument("--out", required=True, help="run directory")
    tr.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    _add_threads_option(tr)
    tr.add_argument("--no-progress", action="store_true", help="hide progress bars")

    ev = sub.add_parser("evaluate", help="(re-)evaluate a trained run directory",
                        description="Evaluate RUN_DIR/model.pt and rewrite metrics.json, predictions.npz, status.json.")
    ev.add_argument("run_dir", help="run directory written by 'softbench train'")
    ev.add_argument("--corruption-source", choices=CORRUPTION_SOURCES, default="generated",
                    help="corrupted images to score: generated (softbench's reimplementation of the test subset, cached; "
                         "default) or official (the released CIFAR-10-C / CIFAR-100-C files: the same stratified rule "
                         "on the release's own labels, scored against them; the test set's class names must be the "
                         "canonical ones)")
    ev.add_argument("--official-root", default=None, metavar="DIR",
                    help="with --corruption-source official: the folder holding CIFAR-10-C/ (default: searched in "
                         "datasets/raw/<dataset>-c, ../shared/data/<dataset>-c, $SOFTBENCH_DATA)")
    _add_threads_option(ev)
    ev.add_argument("--no-progress", action="store_true", help="hide progress bars")

    pr = sub.add_parser("prepare", help="prepare a dataset into datasets/prepared/<name>/ (optionally downloading it)",
                        description="Convert a dataset once into datasets/prepared/<name>/{train,test}.npz. "
                                    "Sources are auto-discovered (datasets/raw/<name>/, ../shared/data/<name>/, "
                                    "$SOFTBENCH_DATA) unless --source is given; --download uses torchvision.")
    pr.add_argument("--dataset", required=True, help="dataset name (see harness.datasets.DATASETS)")
    pr.add_argument("--source", default=None, help="folder or npz holding the raw dataset")
    pr.add_argument("--download", action="store_true", help="download with torchvision (needs internet)")
    pr.add_argument("--force", action="store_true", help="rebuild even if a prepared copy exists")

    co = sub.add_parser("corruptions", help="corruption benchmark data")
    co_sub = co.add_subparsers(dest="corruptions_command", required=True, metavar="ACTION")
    mk = co_sub.add_parser("make", help="generate and cache the corrupted test set of a dataset",
                           description="Generate the 19 corruptions x severities of a dataset's test set "
                                       "(seeded) and cache them under datasets/prepared/<dataset>/.")
    mk.add_argument("--dataset", required=True, help="dataset name (see harness.datasets.DATASETS)")
    mk.add_argument("--data-source", default=None, help="where the raw dataset lives (default: auto-discover)")
    mk.add_argument("--n", type=_positive_int("--n", 1), default=None, help="a class-stratified subset of N test images, the one evaluation uses with corruption_n=N "
                         "(default: all)")
    mk.add_argument("--severities", type=int, nargs="+", default=[1, 2, 3, 4, 5], help="severities (1..5)")
    mk.add_argument("--seed", type=_positive_int("--seed", 0), default=0, help="random seed (default: 0)")

    fm = sub.add_parser(
        "fit-mappings",
        help="fit a TrivialAugment mapping set (human trials, SSIM or proxy accuracy) for a dataset",
        description="Measure per op x signed bin on held-out test images and write "
                    "<out>/<name>.json (mappings.from_dict-loadable, with per-op sources), <name>_table.csv "
                    "and one PNG per op (points with 95% intervals, fitted curve, polynomial presets).",
    )
    fm.add_argument("--dataset", required=True, help="dataset name (see harness.datasets.DATASETS)")
    fm.add_argument("--source", required=True, choices=("ssim", "proxy", "hvs"),
                    help="what the confidence is fitted to: SSIM, proxy-model accuracy, or human trials (hvs)")
    fm.add_argument("--fallback", default="per-op", choices=("per-op", "polynomial", "ssim", "proxy"),
                    help="with --source hvs: source for ops without human data (default: per-op, the "
                         "defaults of mappings.conversion.FALLBACK_OPS)")
    fm.add_argument("--n-boot", type=_positive_int("--n-boot", 10), default=200,
                    help="bootstrap refits for the 95%% bands of --source hvs (default: 200)")
    fm.add_argument("--out", default=None, help="output folder (default: datasets/fitted/<dataset>/<name or source>)")
    fm.add_argument("--name", default=None, help="mapping-set name and file stem (default: the source)")
    fm.add_argument("--n-images", type=_positive_int("--n-images", 1), default=500,
                    help="held-out test images measured (default: 500)")
    fm.add_argument("--seed", type=_positive_int("--seed", 0), default=0, help="random seed (default: 0)")
    fm.add_argument("--proxy-epochs", type=_positive_int("--proxy-epochs", 1), default=10,
                    help="epochs of the proxy model trained without TrivialAugment (default: 10)")
    fm.add_argument("--proxy-run", default=None,
                    help="proxy run directory to reuse or create (default: runs/proxy_<dataset>_seed<seed>)")
    fm.add_argument("--proxy-n-per-class", type=_positive_int("--proxy-n-per-class", 1), default=None,
                    help="train the proxy on a per-class subset (default: all)")
    fm.add_argument("--measure-on", default="test", choices=("test", "train-heldout"),
                    help="images measured: held-out test images (default), or training images outside the "
                         "proxy's --proxy-n-per-class subset (use this when the mapping will train models "
                         "that are evaluated on the test set; the pipeline does)")
    fm.add_argument("--proxy-precision", default=None, choices=PRECISIONS,
                    help="precision of the proxy model (default: the config default, auto = bf16 autocast on CUDA, fp32 "
                         "on the CPU; bf16 on a CPU without native bf16, e.g. AVX2 only, is emulated at ~3x the "
                         "cost of fp32)")
    _add_threads_option(fm)
    fm.add_argument("--no-progress", action="store_true", help="hide progress bars")

    st = sub.add_parser(
        "stage", help="run one DVC pipeline stage on the active grid (what dvc.yaml calls)",
        description="Run one stage of the experiment pipeline on the grid in --params (default params.yaml). "
                    "Normally called by `dvc repro`; stages: " + ", ".join(STAGES) + ". train and evaluate run every "
                    "run of the grid through its executor (params execution.executor: serial | local | ray | "
                    "slurm; env SOFTBENCH_EXECUTOR / SOFTBENCH_WORKERS override it) with one progress bar; "
                    "each run's messages go to its run directory (train.log / evaluate.log). --arm limits them "
                    "to one arm, --arm with --seed runs one run in this process.")
    st.add_argument("name", choices=STAGES, help="stage name")
    st.add_argument("--params", default="params.yaml", help="grid file (default: params.yaml)")
    st.add_argument("--arm", default=None, help="only this arm (train, evaluate)")
    st.add_argument("--seed", type=_positive_int("--seed", 0), default=None,
                    help="with --arm: only this run, in this process (train, evaluate)")
    st.add_argument("--no-progress", action="store_true", help="hide progress bars")

    gr = sub.add_parser("grid", help="list, show or activate an experiment grid",
                        description="Experiment grids live in grids/<name>.yaml; params.yaml is the active one "
                                    "that `dvc repro` runs. `softbench grid use NAME` validates a grid and copies "
                                    "it to params.yaml.")
    gr_sub = gr.add_subparsers(dest="grid_command", required=True, metavar="ACTION")
    gr_sub.add_parser("list", help="list the grids in grids/")
    gs = gr_sub.add_parser("show", help="show a grid's arms and run count (default: the active params.yaml)")
    gs.add_argument("name", nargs="?", default=None, help="grid name (default: the active params.yaml)")
    gu = gr_sub.add_parser("use", help="make grids/NAME.yaml the active params.yaml")
    gu.add_argument("name", help="grid name (see `softbench grid list`)")
    gu.add_argument("--dataset", default=None, help="override the grid's dataset (e.g. paper: cifar100)")
    gu.add_argument("--executor", choices=EXECUTORS, default=None,
                    help="where the runs execute on this machine (written to params.yaml's execution section; "
                         "never changes a result): serial, local (default: warm worker processes), ray, slurm")
    gu.add_argument("--workers", type=_positive_int("--workers", 1), default=None,
                    help="local executor: worker processes (default: CPU count, or GPUs x runs_per_gpu)")

    pl = sub.add_parser(
        "plan", help="seeds needed per pre-declared hypothesis for the target power at its mde",
        description="Power planning before the runs: from a pilot's results (the per-seed paired contrasts of "
                    "each hypothesis in the grid's stats spec), the number of seeds per arm that gives the "
                    "spec's target power (stats.power) at each hypothesis' declared smallest effect of interest "
                    "(mde), with the pilot SD and, conservatively, its upper confidence bound; one-sided tests "
                    "at alpha/m (m = declared hypotheses). Prints the table and writes it as CSV.")
    pl.add_argument("--results", default="reports/results.csv",
                    help="pilot results table (default: reports/results.csv, written by `dvc repro`)")
    pl.add_argument("--params", default="params.yaml",
                    help="grid whose stats.hypotheses are planned (default: params.yaml)")
    pl.add_argument("--mde", type=float, default=None,
                    help="override every hypothesis' mde, in the metric's unit (accuracy is a fraction: "
                         "0.01 = 1 percentage point)")
    pl.add_argument("--out", default="reports/stats/plan.csv", help="CSV written (default: reports/stats/plan.csv)")

    pre = sub.add_parser("presets", help="print every op x bin confidence under the mapping presets (CSV)")
    pre.add_argument("--num-classes", type=_positive_int("--num-classes", 2), default=10,
                     help="number of classes K (default: 10)")
    pre.add_argument("--image-size", type=_positive_int("--image-size", 2), default=32,
                     help="image side in px, used for Translate severities (default: 32)")
    return parser


#: errors reported as one line naming the field or file, without a traceback (exit status 2): bad config
#: or input (ValueError: ConfigError, FileFormatError, ...), a missing or unreadable file (OSError), a run
#: directory locked by another writer (RunBusyError)
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RunBusyError)
#: a run that started and failed (non-finite loss or metric): exit status 3, the run is marked failed on disk
RUN_FAILURES: tuple[type[BaseException], ...] = (TrainingFailed, EvaluationFailed, DispatchError)


def _train(args) -> None:
    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    config = load_config(args.config, overrides)
    try:  # stages and model_kwargs that do not build: an error naming the config file
        check_buildable(config)
    except ConfigError as exc:
        raise ConfigError(f"config file {args.config}: {exc}" if args.config else str(exc)) from None
    with torch_threads(args.threads):
        result = train_and_evaluate(config, args.out, resume=args.resume, progress=not args.no_progress)
    print(f"run {result.status}: {result.run_dir}")


def _evaluate(args) -> None:
    with torch_threads(args.threads):
        rows = evaluate_run(args.run_dir, progress=not args.no_progress, corruption_source=args.corruption_source,
                            official_root=args.official_root)
    for r in rows:
        if r["corruption"] is None:
            print(f"{r['metric']:>28}: {r['value']:.4f}")


def _corruptions_make(args) -> None:
    bad = [s for s in args.severities if not 1 <= s <= 5]
    if bad:
        raise ValueError(f"--severities must be in 1..5, got {bad}")
    _train_set, test = load_dataset(args.dataset, source=args.data_source)
    subset, _idx = corruption_subset(test, args.n)
    with corrupted_test_set(subset, n=len(subset), severities=tuple(args.severities), seed=args.seed,
                            progress=True) as corr:
        print(f"corrupted set: {corr.path}")


def _prepare(args) -> None:
    path = prepare_dataset(args.dataset, source=args.source, download=args.download, force=args.force)
    print(f"prepared: {path}")


def _fit_mappings(args) -> None:
    out = args.out or str(FITTED_ROOT / args.dataset / (args.name or args.source))
    overrides = {} if args.proxy_precision is None else {"precision": args.proxy_precision}
    with torch_threads(args.threads):
        files = fit_mappings(args.dataset, args.source, out, name=args.name, n_images=args.n_images,
                             seed=args.seed, proxy_epochs=args.proxy_epochs, proxy_run=args.proxy_run,
                             proxy_n_per_class=args.proxy_n_per_class, fallback=args.fallback,
                             n_boot=args.n_boot, progress=not args.no_progress, measure_on=args.measure_on,
                             proxy_overrides=overrides or None)
    print(f"mapping set: {files['mapping_set']}\ntable: {files['table']}\nplots: {len(files['plots'])} PNGs in {out}")


def _stage(args) -> None:
    run_stage(args.name, params=args.params, arm=args.arm, seed=args.seed, progress=not args.no_progress)


def _grid(args) -> None:
    if args.grid_command == "list":
        for name in list_grids():
            print(name)
    elif args.grid_command == "show":
        path = "params.yaml" if args.name is None else f"grids/{args.name}.yaml"
        print(grid_summary(load_grid(path)))
    else:
        execution = {k: v for k, v in (("executor", args.executor), ("workers", args.workers)) if v is not None}
        grid = use_grid(args.name, dataset=args.dataset, execution=execution or None)
        print(f"params.yaml now holds grid {grid.name!r} ({grid.dataset}); run `dvc repro`")
        print(grid_summary(grid))


def _plan(args) -> None:
    """``softbench plan``: seeds per hypothesis from a pilot (harness.analysis.plan)."""
    grid = load_grid(args.params)
    table = plan(load_results(args.results), grid.stats, mde=args.mde)
    print(format_plan(table))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, table.to_csv(index=False))
    print(f"written: {out}")


def _demo(args) -> None:
    files = run_demo(args.out, num_classes=args.num_classes, seed=args.seed, mapping=args.mapping,
                     images_npz=args.images_npz, size=args.size)
    for label, path in files.items():
        print(f"{label:>8}: {path}")


def _presets(args) -> None:
    table = ta_confidence_table(args.num_classes, args.image_size, args.image_size)
    sys.stdout.write(table.to_csv(index=False, float_format="%.6g"))


_COMMANDS = {"train": _train, "evaluate": _evaluate, "corruptions": _corruptions_make, "prepare": _prepare,
             "fit-mappings": _fit_mappings, "stage": _stage, "grid": _grid, "plan": _plan, "demo": _demo,
             "presets": _presets}


def _label(args) -> str:
    """``softbench stage train`` / ``softbench corruptions make`` / ``softbench grid`` ..."""
    if args.command == "stage":
        return f"softbench stage {args.name}"
    if args.command == "corruptions":
        return "softbench corruptions make"
    return f"softbench {args.command}"


def main(argv: list[str] | None = None) -> int:
    """Run one command; the one error boundary: a user error is one line on stderr and exit status 2, a
    failed run one line and exit status 3, success 0. No traceback reaches the user for those."""
    args = build_parser().parse_args(argv)
    try:
        _COMMANDS[args.command](args)
    except RUN_FAILURES as exc:
        print(f"{_label(args)}: run failed: {exc}", file=sys.stderr)
        return 3
    except USER_ERRORS as exc:
        print(f"{_label(args)}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
