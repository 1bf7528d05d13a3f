"""End to end: a micro grid (2 arms x 3 seeds x 1 epoch, tiny data) through `dvc repro` in a temp copy
of the repo (the default executor: local worker processes, 2 here), then DVC's caching: a second repro
reruns nothing, and changing one arm's parameters retrains only that arm's runs and reruns the stages
downstream, which `dvc metrics diff` against the committed first results then reports. The same grid
through `dvc repro` with the serial, ray (a local instance) and slurm (submitit's local executor)
executors gives the same reports/results.csv."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.verdicts import VERDICTS

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COPY = ["harness", "mappings", "grids", "datasets/hvs", "datasets/reference", "dvc.yaml", ".dvc/config",
        ".dvcignore", "pyproject.toml"]

MICRO = {
    "grid": "micro",
    "dataset": "mnist5k",
    "data_source": None,
    "seeds": [0, 1, 2],
    "run_arms": ["re_hard", "re_soft"],
    "base": {"n_per_class": 40, "model": "smallnet", "model_kwargs": {"widths": [8, 16, 16]}, "epochs": 1,
             "batch_size": 16, "lr": 0.05},
    "evaluation": {"corruption_n": 30, "corruption_severities": [1, 3], "op_bins": [30]},
    "fit": {"fallback": "polynomial", "n_boot": 10, "n_images": 30, "proxy_epochs": 6, "proxy_n_per_class": 60},
    "reference_comparable": False,
    "execution": {"threads_per_run": 1},  # a DVC parameter (dvc.yaml): params.yaml must name it
    "arms": {
        "re_hard": {"factors": {"label_type": "hard", "family": "random_erasing", "re_p": 1.0, "re_smax": 0.8},
                    "augment": ["flip", {"kind": "random_erasing", "soft": False, "params": {"p": 1.0}}]},
        "re_soft": {"factors": {"label_type": "soft", "family": "random_erasing", "re_p": 1.0, "re_smax": 0.8},
                    "augment": ["flip", {"kind": "random_erasing", "soft": True, "params": {"p": 1.0}}]},
    },
    "stats": {
        "n_boot": 200,
        "comparisons": [{"family": "random_erasing", "arm": "re_soft", "reference": "re_hard"}],
        "equivalence": [{"name": "soft_vs_hard", "arm": "re_soft", "reference": "re_hard", "metric": "accuracy",
                         "margin": 0.5}],
        "hypotheses": [{"id": "F2", "statement": "soft is not better than hard by 0.5 or more",
                        "kind": "non_superiority", "arm": "re_soft", "reference": "re_hard", "metric": "accuracy",
                        "mde": 0.5}],
    },
}


def _repro(cwd: Path, *args: str, executor: str | None = None) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(cwd),
           "SOFTBENCH_DATA": "/nonexistent", "SOFTBENCH_EXECUTOR": executor or "local", "SOFTBENCH_WORKERS": "2"}
    proc = subprocess.run([str(BIN / "dvc"), "repro", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f"dvc repro failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=softbench test", "-c", "user.email=test@localhost", *args], cwd=cwd,
                   check=True, capture_output=True)


def _dvc(cwd: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([str(BIN / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


def _ran(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", log))


def _cells(log: str, stage: str, action: str) -> set[str]:
    """The runs the dispatcher reports as ``action`` (trained, evaluated, ...) in a repro's log."""
    return set(re.findall(rf"\[softbench {stage}\] (\S+): {action}\b", log))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    if shutil.which("dvc", path=str(BIN)) is None:
        pytest.skip("dvc is not installed in this environment (make test installs it)")
    dst = tmp_path_factory.mktemp("repo")
    for rel in COPY:
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, dst / rel, ignore=shutil.ignore_patterns("__pycache__", "fitted"))
        else:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst / rel)
    (dst / "params.yaml").write_text(yaml.safe_dump(MICRO, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    first = _repro(dst)
    return dst, first


def test_micro_grid_reproduces_to_a_report(repo):
    dst, first = repo
    assert {"prepare", "corruptions", "proxy_accuracy", "fit_mappings", "results", "stats", "report"} <= _ran(first)
    assert {"train", "evaluate"} <= _ran(first)
    every = {f"{a}-s{s}" for a in ("re_hard", "re_soft") for s in range(3)}
    assert _cells(first, "train", "trained") == every and _cells(first, "evaluate", "evaluated") == every
    assert "6 cells" in first and "on local" in first
    assert (dst / "runs/train/re_hard/s0/train.log").is_file()

    results = pd.read_csv(dst / "reports/results.csv")
    assert set(results["run_id"]) == {f"{a}-s{s}" for a in ("re_hard", "re_soft") for s in range(3)}
    assert (results["status"] == "complete").all()
    assert {"accuracy", "corruption_accuracy_mean19", "op_accuracy", "ece"} <= set(results["metric"])

    comparisons = pd.read_csv(dst / "reports/stats/comparisons.csv")
    acc = comparisons[comparisons["metric"] == "accuracy"].iloc[0]
    assert acc["paired"] and acc["n_arm"] == 3 and 0 <= acc["p"] <= 1
    hyps = json.loads((dst / "reports/stats/hypotheses.json").read_text())
    assert hyps[0]["id"] == "F2" and hyps[0]["verdict"] in VERDICTS and hyps[0]["verdict"] != "not tested"

    md = (dst / "reports/report.md").read_text()
    for heading in ("F2", "re_soft", "re_hard", "±"):
        assert heading in md
    assert re.search(r"\|\s*random_erasing\s*\|", md), "comparisons table missing"
    html = (dst / "reports/report.html").read_text()
    assert "data:image/png;base64," in html and "https://" not in html and "<script src" not in html
    metrics = json.loads((dst / "reports/metrics.json").read_text())
    assert set(metrics["arms"]) == {"re_hard", "re_soft"}
    summary = json.loads((dst / "reports/hypotheses.json").read_text())  # the per-hypothesis DVC metric
    assert list(summary) == ["F2"] and set(summary["F2"]) == {"verdict", "p", "p_holm", "metric"}
    assert summary["F2"]["verdict"] == hyps[0]["verdict"] and summary["F2"]["metric"] == "accuracy"

    shown = json.loads(_dvc(dst, "metrics", "show", "--json"))
    files = next(iter(shown.values()))["data"]
    assert {"reports/metrics.json", "reports/hypotheses.json"} <= set(files)
    assert "re_soft" in files["reports/metrics.json"]["data"]["arms"]


def test_second_repro_reruns_nothing(repo):
    dst, _ = repo
    assert _ran(_repro(dst)) == set()


def test_changing_one_arm_reruns_only_that_arm_and_metrics_diff_shows_it(repo):
    dst, _ = repo
    # the first results as a commit (what the repository holds for the default grid)
    _git(dst, "add", "dvc.yaml", "dvc.lock", "params.yaml", "reports/metrics.json", "reports/hypotheses.json")
    _git(dst, "commit", "-q", "-m", "micro grid results")
    params = yaml.safe_load((dst / "params.yaml").read_text())
    params["arms"]["re_soft"]["set"] = {"lr": 0.02}
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = _repro(dst)
    assert _ran(log) == {"train", "evaluate", "results", "stats", "report"}
    assert _cells(log, "train", "trained") == {"re_soft-s0", "re_soft-s1", "re_soft-s2"}  # re_hard kept
    assert _cells(log, "evaluate", "evaluated") == {"re_soft-s0", "re_soft-s1", "re_soft-s2"}

    diff = json.loads(_dvc(dst, "metrics", "diff", "--json"))  # workspace against the committed results
    changed = diff["reports/metrics.json"]
    assert any(k.startswith("arms.re_soft.") for k in changed), diff
    assert not any(k.startswith("arms.re_hard.") for k in changed), diff  # the unchanged arm: same numbers
    row = changed[next(k for k in changed if k.startswith("arms.re_soft."))]
    assert row["old"] != row["new"] and row["diff"] == pytest.approx(row["new"] - row["old"])


@pytest.mark.parametrize("executor", ["serial", "ray", "slurm"])
def test_every_executor_gives_the_same_results_through_dvc(repo, executor, tmp_path):
    if executor == "ray":
        pytest.importorskip("ray", reason="the ray extra is not installed (make test installs it)")
    if executor == "slurm":
        pytest.importorskip("submitit", reason="the slurm extra is not installed (make test installs it)")
    dst, _ = repo
    first = pd.read_csv(dst / "reports/results.csv")
    other = tmp_path / executor
    shutil.copytree(dst, other, ignore=shutil.ignore_patterns("train", "eval"))  # every run trained again
    params = yaml.safe_load((other / "params.yaml").read_text())
    if executor == "slurm":  # submitit's LocalExecutor stands in for the cluster; never a DVC parameter
        params["execution"] = {"threads_per_run": 1, "slurm": {"cluster": "local", "runs_per_job": 3, "gpus_per_job": 0, "cpus_per_job": 1}}
        (other / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = _repro(other, "--no-run-cache", executor=executor)
    assert {"train", "evaluate", "results"} <= _ran(log) and f"on {executor}" in log
    every = {f"{a}-s{s}" for a in ("re_hard", "re_soft") for s in range(3)}
    assert _cells(log, "train", "trained") == every
    pd.testing.assert_frame_equal(pd.read_csv(other / "reports/results.csv"), first)
