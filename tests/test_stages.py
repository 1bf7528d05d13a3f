"""Pipeline stages: train keeps a finished run and resumes an interrupted one only when its config,
training code and data are unchanged; evaluate records runs that did not train as failed instead of
skipping them; results lists them."""

from __future__ import annotations

import json

import pytest
import yaml

from harness import cell, stages
from harness.grid import _validate, arm_config
from harness.runs import read_status

GRID = {
    "grid": "micro", "dataset": "mnist5k", "data_source": None, "seeds": [0, 1], "run_arms": ["hard"],
    "base": {"n_per_class": 10, "model": "smallnet", "model_kwargs": {"widths": [8, 8, 8]}, "epochs": 2,
             "batch_size": 16, "lr": 0.05},
    "evaluation": {"corruptions": False, "op_bins": []},
    "arms": {"hard": {"factors": {"label_type": "hard", "family": "none"}, "augment": ["flip"]}},
}


@pytest.fixture()
def grid(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTBENCH_EXECUTOR", "serial")  # in this process (the executors have their own tests)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(GRID))
    return _validate(GRID, "micro")


def _epochs(run_dir) -> int:
    return len((run_dir / "epochs.csv").read_text().strip().splitlines()) - 1


def test_train_then_evaluate_then_results(grid, capsys):
    stages.stage_train(grid, "hard", 0, progress=False)
    run = stages.train_dir("hard", 0)
    assert (run / "model.pt").is_file() and _epochs(run) == 2
    stamp = json.loads((run / cell.STAMP_FILE).read_text())
    assert stamp["code"] == cell.code_hash() and stamp["training_hash"] == arm_config(grid, "hard", 0).training_hash()
    stages.stage_evaluate(grid, "hard", progress=False)  # seed 1 never trained
    assert read_status(stages.eval_dir("hard", 0))["status"] == "complete"
    missing = read_status(stages.eval_dir("hard", 1))
    assert missing["status"] == "failed" and "status 'missing'" in missing["reason"]
    stages.stage_results(grid)
    import pandas as pd

    df = pd.read_csv("reports/results.csv")
    st = df.drop_duplicates("run_id").set_index("run_id")["status"]
    assert st["hard-s0"] == "complete" and st["hard-s1"] == "failed"


def test_finished_run_is_kept_unless_its_stamp_changed(grid, capsys):
    stages.stage_train(grid, "hard", 0, progress=False)
    run = stages.train_dir("hard", 0)
    first = (run / "provenance.json").read_text()
    capsys.readouterr()
    stages.stage_train(grid, "hard", 0, progress=False)  # DVC reran it (e.g. the arm's factors changed)
    assert "kept" in capsys.readouterr().err and (run / "provenance.json").read_text() == first
    stamp = json.loads((run / cell.STAMP_FILE).read_text())
    (run / cell.STAMP_FILE).write_text(json.dumps({**stamp, "code": "0" * 16}))  # training code changed
    stages.stage_train(grid, "hard", 0, progress=False)
    err = capsys.readouterr().err
    assert "kept" not in err and "resuming" not in err
    assert _epochs(run) == 2 and (run / "provenance.json").read_text() != first


def test_training_code_list_matches_dvc_yaml():
    """The code hash covers exactly the train stage's code dependencies in dvc.yaml."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    deps = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["train"]["deps"]
    code = {d for d in deps if d.startswith(("harness", "mappings"))}
    assert code == set(cell.TRAIN_CODE)


def test_interrupted_run_resumes_only_with_same_code(grid, capsys):
    from harness.trainer import train

    run = stages.train_dir("hard", 0)
    config = arm_config(grid, "hard", 0)
    run.mkdir(parents=True)
    (run / cell.STAMP_FILE).write_text(json.dumps(cell.train_stamp(grid, config)))
    train(config, run, progress=False, stop_after_epochs=1)
    assert read_status(run)["status"] == "running" and _epochs(run) == 1
    stages.stage_train(grid, "hard", 0, progress=False)
    assert "resuming" in capsys.readouterr().err and _epochs(run) == 2

    # same interruption, but the code changed since: start afresh
    import shutil

    shutil.rmtree(run)
    run.mkdir(parents=True)
    (run / cell.STAMP_FILE).write_text(json.dumps({**cell.train_stamp(grid, config), "code": "0" * 16}))
    train(config, run, progress=False, stop_after_epochs=1)
    stages.stage_train(grid, "hard", 0, progress=False)
    assert "resuming" not in capsys.readouterr().err and _epochs(run) == 2
    assert json.loads((run / "status.json").read_text())["status"] == "running"  # trained, evaluation pending


def test_failed_run_does_not_stop_the_sweep(grid, monkeypatch, capsys):
    real = cell.train  # the cell module's own reference (imported at its top)
    monkeypatch.setattr(cell, "train", lambda *a, **k: real(*a, **k, nan_at_step=1))
    stages.stage_train(grid, "hard", 1, progress=False)  # returns normally
    assert "FAILED" in capsys.readouterr().err
    assert read_status(stages.train_dir("hard", 1))["status"] == "failed"
    stages.stage_evaluate(grid, "hard", progress=False)
    ev = read_status(stages.eval_dir("hard", 1))
    assert ev["status"] == "failed" and "non-finite loss" in ev["reason"]


def test_training_and_evaluation_code_lists_match_dvc_yaml():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    stages_yaml = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    code = {d for d in stages_yaml["evaluate"]["deps"] if d.startswith(("harness", "mappings"))}
    assert code == set(cell.EVAL_CODE)
    for stage in ("proxy_accuracy", "fit_mappings", "train", "evaluate"):  # the executor never changes a result;
        params = stages_yaml[stage]["params"]                               # the CPU thread count does
        assert "execution.threads_per_run" in params and "execution" not in params, stage


def test_a_changed_thread_count_retrains_and_re_evaluates(grid, capsys):
    """threads_per_run is part of a CPU run's numbers: a run trained or evaluated at another count is redone,
    never kept beside runs at the new count."""
    stages.stage_train(grid, "hard", 0, progress=False)
    stages.stage_evaluate(grid, "hard", 0, progress=False)
    assert cell.train_is_current(grid, "hard", 0) and cell.evaluation_is_current(grid, "hard", 0)
    two = _validate({**GRID, "execution": {"threads_per_run": 2}}, "micro")
    assert not cell.train_is_current(two, "hard", 0) and not cell.evaluation_is_current(two, "hard", 0)
    capsys.readouterr()
    stages.stage_train(two, "hard", 0, progress=False)
    err = capsys.readouterr().err
    assert "training afresh" in err and "kept" not in err
    assert json.loads((stages.train_dir("hard", 0) / cell.STAMP_FILE).read_text())["threads"] == 2
    assert cell.train_is_current(two, "hard", 0) and not cell.train_is_current(grid, "hard", 0)
    stages.stage_evaluate(two, "hard", 0, progress=False)
    assert json.loads((stages.eval_dir("hard", 0) / cell.EVAL_STAMP_FILE).read_text())["threads"] == 2
    assert cell.evaluation_is_current(two, "hard", 0)


def test_evaluation_is_kept_until_the_model_or_the_settings_change(grid, capsys):
    stages.stage_train(grid, "hard", 0, progress=False)
    stages.stage_evaluate(grid, "hard", 0, progress=False)
    ev = stages.eval_dir("hard", 0)
    first = (ev / "metrics.json").read_text()
    assert cell.evaluation_is_current(grid, "hard", 0)
    capsys.readouterr()
    stages.stage_evaluate(grid, "hard", 0, progress=False)
    assert "hard-s0: kept" in capsys.readouterr().err and (ev / "metrics.json").read_text() == first
    changed = _validate({**GRID, "evaluation": {**GRID["evaluation"], "eval_batch_size": 7}}, "micro")
    assert not cell.evaluation_is_current(changed, "hard", 0)
    stages.stage_evaluate(changed, "hard", 0, progress=False)
    assert "hard-s0: evaluated" in capsys.readouterr().err
    stamp = json.loads((ev / cell.EVAL_STAMP_FILE).read_text())
    assert stamp["settings"]["eval_batch_size"] == 7
    (stages.train_dir("hard", 0) / "model.pt").write_bytes(b"not a model")  # retrained or damaged weights
    assert not cell.evaluation_is_current(changed, "hard", 0)
    stages.stage_evaluate(changed, "hard", 0, progress=False)
    assert read_status(ev)["status"] == "failed" and "model.pt" in read_status(ev)["reason"]


def test_stage_evaluate_removes_evaluations_of_arms_and_seeds_left_out(grid):
    for seed in (0, 1):
        stages.stage_train(grid, "hard", seed, progress=False)
    stages.stage_evaluate(grid, progress=False)
    stale_arm = stages.RUNS_ROOT / "eval" / "gone" / "s0"
    stale_arm.mkdir(parents=True)
    smaller = _validate({**GRID, "seeds": [0]}, "micro")
    stages.stage_evaluate(smaller, progress=False)
    assert stages.eval_dir("hard", 0).is_dir() and not stages.eval_dir("hard", 1).exists()
    assert not (stages.RUNS_ROOT / "eval" / "gone").exists()


def test_a_damaged_evaluation_is_redone_although_its_stamp_matches(grid, capsys):
    stages.stage_train(grid, "hard", 0, progress=False)
    stages.stage_evaluate(grid, "hard", 0, progress=False)
    ev = stages.eval_dir("hard", 0)
    good = (ev / "metrics.json").read_text()
    (ev / "metrics.json").write_text('{"rows": []}')  # status still complete, stamp unchanged
    assert not cell.evaluation_is_current(grid, "hard", 0)
    capsys.readouterr()
    stages.stage_evaluate(grid, "hard", 0, progress=False)
    assert "hard-s0: evaluated" in capsys.readouterr().err
    assert json.loads((ev / "metrics.json").read_text())["rows"] == json.loads(good)["rows"]
