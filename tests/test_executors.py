"""Executors (harness.executors): serial, local process pool, Ray (a local instance started and stopped here)
and Slurm through submitit's local executor give bit-identical runs; a killed worker is retried from the
run's checkpoint; a worker lost too often is recorded failed; a cell that raises fails the stage after the
others finished; kept runs are left byte for byte; the execution section is validated at the edge."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from harness.config import ConfigError
from harness.execution import Execution, RayOptions, SlurmOptions, parse_execution
from harness.executors import DispatchError, _init_local_worker, cell_tasks, dispatch
from harness.grid import load_grid, train_dir, use_grid
from harness.runs import lock_holder, read_status, run_lock
from conftest import micro_executor_grid, prepared_working_copy

MICRO = micro_executor_grid("micro-exec", epochs=3)


@pytest.fixture(scope="module")
def base_copy(tmp_path_factory):
    """A working copy with the micro grid, its prepared data and corrupted set (no runs)."""
    return prepared_working_copy(tmp_path_factory.mktemp("exec-base"), MICRO, ("prepare", "corruptions"))


def _fresh(base: Path, tmp_path: Path, name: str, **params) -> Path:
    dst = tmp_path / name
    shutil.copytree(base, dst)
    if params:
        raw = yaml.safe_load((dst / "params.yaml").read_text())
        raw.update(params)
        (dst / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return dst


def _run(root: Path, stage: str, ex: Execution, monkeypatch=None):
    here = os.getcwd()
    os.chdir(root)
    try:
        grid = load_grid("params.yaml")
        tasks = cell_tasks(grid, stage, root=root, params=root / "params.yaml", threads=ex.threads_per_run)
        return dispatch(tasks, ex, progress=False, label=stage)
    finally:
        os.chdir(here)


def _weights(run_dir: Path) -> str:
    sd = torch.load(run_dir / "model.pt", weights_only=True)
    return hashlib.sha256(b"".join(sd[k].numpy().tobytes() for k in sorted(sd))).hexdigest()


def _fingerprint(root: Path) -> dict:
    """Per run: the trained weights' hash, the epoch log's losses and the evaluation's metric rows."""
    out = {}
    for arm in MICRO["run_arms"]:
        for seed in MICRO["seeds"]:
            t, e = root / "runs/train" / arm / f"s{seed}", root / "runs/eval" / arm / f"s{seed}"
            losses = [line.split(",")[1] for line in (t / "epochs.csv").read_text().splitlines()[1:]]
            rows = json.loads((e / "metrics.json").read_text())["rows"] if (e / "metrics.json").is_file() else None
            out[f"{arm}-s{seed}"] = (_weights(t), losses, rows)
    return out


@pytest.fixture(scope="module")
def serial_copy(base_copy, tmp_path_factory):
    root = _fresh(base_copy, tmp_path_factory.mktemp("exec-serial"), "serial")
    outcomes = _run(root, "train", Execution(executor="serial"))
    assert [o.action for o in outcomes] == ["trained"] * 4
    _run(root, "evaluate", Execution(executor="serial"))
    return root


# ------------------------------------------------------------------------------------------ identity
def test_local_pool_runs_are_bit_identical_to_serial(serial_copy, base_copy, tmp_path):
    root = _fresh(base_copy, tmp_path, "local")
    outcomes = _run(root, "train", Execution(executor="local", workers=2))
    assert sorted(o.action for o in outcomes) == ["trained"] * 4
    assert len({o.pid for o in outcomes}) == 2  # two warm workers, each training two runs
    assert all(o.pid != os.getpid() for o in outcomes)
    _run(root, "evaluate", Execution(executor="local", workers=2))
    assert _fingerprint(root) == _fingerprint(serial_copy)


def test_ray_runs_are_bit_identical_to_serial(serial_copy, base_copy, tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'softbench[ray]'; make test does)")
    root = _fresh(base_copy, tmp_path, "ray")
    ex = Execution(executor="ray", workers=2, ray=RayOptions(address="local", num_cpus=1))
    outcomes = _run(root, "train", ex)  # starts a local Ray instance (2 CPUs, no dashboard) and stops it
    assert sorted(o.action for o in outcomes) == ["trained"] * 4
    _run(root, "evaluate", ex)
    assert _fingerprint(root) == _fingerprint(serial_copy)
    import ray

    assert not ray.is_initialized()


def test_slurm_through_submitit_local_executor_is_bit_identical_to_serial(serial_copy, base_copy, tmp_path):
    pytest.importorskip("submitit", reason="the slurm extra is not installed (pip install 'softbench[slurm]')")
    root = _fresh(base_copy, tmp_path, "slurm")
    ex = Execution(executor="slurm", slurm=SlurmOptions(cluster="local", runs_per_job=2, gpus_per_job=0,
                                                          cpus_per_job=1, time_min=10))
    outcomes = _run(root, "train", ex)
    assert sorted(o.action for o in outcomes) == ["trained"] * 4
    _run(root, "evaluate", ex)
    assert _fingerprint(root) == _fingerprint(serial_copy)
    assert list((root / "runs/slurm").iterdir()), "submitit's job folders (logs, pickles) are under runs/slurm"


# ------------------------------------------------------------------------------------------ faults
def _kill_first_worker_after_a_checkpoint(root: Path, killed: list, stop: threading.Event) -> None:
    """Watch the runs' lock files; SIGKILL the first worker (not this process) that holds a run with a checkpoint."""
    while not stop.is_set() and not killed:
        for run in sorted((root / "runs/train").glob("*/s*")):
            holder = lock_holder(run)
            if holder and holder["pid"] != os.getpid() and (run / "checkpoint.pt").is_file():
                try:
                    if int(read_status(run).get("epoch") or 0) < 1:
                        continue
                except Exception:  # noqa: BLE001 - a status being replaced; look again
                    continue
                os.kill(holder["pid"], signal.SIGKILL)
                killed.append(run)
                return
        time.sleep(0.02)


def _with_killer(root: Path, fn):
    killed: list = []
    stop = threading.Event()
    (root / "runs/train").mkdir(parents=True, exist_ok=True)
    watcher = threading.Thread(target=_kill_first_worker_after_a_checkpoint, args=(root, killed, stop), daemon=True)
    watcher.start()
    try:
        result = fn()
    finally:
        stop.set()
        watcher.join()
    return result, killed


def test_a_killed_worker_is_retried_from_the_checkpoint_and_the_sweep_completes(serial_copy, base_copy, tmp_path):
    root = _fresh(base_copy, tmp_path, "killed")
    outcomes, killed = _with_killer(root, lambda: _run(root, "train", Execution(executor="local", workers=2,
                                                                                 max_retries=2)))
    assert killed, "no worker was killed (the runs finished before one held a checkpoint)"
    run = killed[0]
    by_run = {o.task.run_dir: o for o in outcomes}
    assert by_run[run].action == "resumed"  # its second attempt resumed from the checkpoint
    assert all(o.action in ("trained", "resumed") for o in outcomes)
    log = (run / "train.log").read_text()
    assert "training afresh" in log and "resuming from its checkpoint" in log
    assert not list(run.glob(".*.tmp"))
    for arm in MICRO["run_arms"]:  # resume reaches the uninterrupted result, bit for bit
        for seed in MICRO["seeds"]:
            assert _weights(train_dir(arm, seed, root / "runs")) == _weights(train_dir(arm, seed, serial_copy / "runs"))


def test_a_worker_lost_more_than_max_retries_is_recorded_failed_and_the_sweep_goes_on(base_copy, tmp_path):
    root = _fresh(base_copy, tmp_path, "lost")
    outcomes, killed = _with_killer(root, lambda: _run(root, "train", Execution(executor="local", workers=2,
                                                                                 max_retries=0)))
    assert killed
    lost = [o for o in outcomes if o.action == "lost"]
    assert killed[0] in {o.task.run_dir for o in lost}
    status = read_status(killed[0])
    assert status["status"] == "failed" and "worker process died" in status["reason"]
    assert "max_retries" in status["reason"]
    assert all(o.action in ("trained", "lost") for o in outcomes)
    assert sum(o.action == "trained" for o in outcomes) >= 4 - 2  # at most the two cells in flight were charged


def test_a_cell_that_raises_fails_the_stage_after_the_others_finished(base_copy, tmp_path):
    root = _fresh(base_copy, tmp_path, "busy")
    busy = root / "runs/train/soft/s1"
    with run_lock(busy, command="test holder"):  # another writer: the cell raises RunBusyError
        with pytest.raises(DispatchError, match=r"1 of 4 cells raised an error.*soft-s1: RunBusyError"):
            _run(root, "train", Execution(executor="local", workers=2))
    for arm, seed in (("hard", 0), ("hard", 1), ("soft", 0)):
        assert read_status(root / "runs/train" / arm / f"s{seed}")["epoch"] == 3


def test_a_second_dispatch_keeps_every_run_byte_for_byte(serial_copy, tmp_path):
    root = tmp_path / "again"
    shutil.copytree(serial_copy, root)

    def snapshot() -> dict:
        # content of every file; modification time too, except the lock files (truncated when a lock is released)
        return {str(p.relative_to(root)): (p.read_bytes(), None if p.name == ".lock" else p.stat().st_mtime_ns)
                for p in sorted((root / "runs").rglob("*")) if p.is_file()}

    before = snapshot()
    for stage in ("train", "evaluate"):
        outcomes = _run(root, stage, Execution(executor="local", workers=2))
        assert {o.action for o in outcomes} == {"kept"}
    assert snapshot() == before


def test_changing_one_arm_retrains_only_that_arm(serial_copy, tmp_path):
    root = tmp_path / "one-arm"
    shutil.copytree(serial_copy, root)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["arms"]["soft"]["set"] = {"lr": 0.02}
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    outcomes = _run(root, "train", Execution(executor="serial"))
    assert {o.task.run_id: o.action for o in outcomes} == {"hard-s0": "kept", "hard-s1": "kept",
                                                           "soft-s0": "trained", "soft-s1": "trained"}
    outcomes = _run(root, "evaluate", Execution(executor="serial"))
    assert {o.task.run_id: o.action for o in outcomes} == {"hard-s0": "kept", "hard-s1": "kept",
                                                           "soft-s0": "evaluated", "soft-s1": "evaluated"}


def test_where_each_run_ran_is_in_its_provenance_and_its_log_in_its_directory(serial_copy):
    run = serial_copy / "runs/train/hard/s0"
    placement = json.loads((run / "provenance.json").read_text())["placements"][-1]
    assert placement["host"] and placement["pid"] == os.getpid() and placement["device"] == "cpu"
    assert placement["threads"] == 1 and placement["action"] == "trained"
    assert "trained" in (run / "train.log").read_text()
    ev = serial_copy / "runs/eval/hard/s0"
    assert json.loads((ev / "provenance.json").read_text())["placement"]["action"] == "evaluated"
    assert "evaluated" in (ev / "evaluate.log").read_text()


# ------------------------------------------------------------------------------------------ pinning
@pytest.mark.parametrize("slot, n_gpus, runs_per_gpu, gpu", [(0, 2, 1, "0"), (1, 2, 1, "1"), (3, 2, 2, "1"),
                                                              (2, 2, 2, "1"), (1, 1, 4, "0"), (5, 2, 1, "1")])
def test_local_workers_are_pinned_to_their_gpu_and_threads(monkeypatch, slot, n_gpus, runs_per_gpu, gpu):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "0")
    threads = torch.get_num_threads()
    q = queue.Queue()
    q.put(slot)
    try:
        _init_local_worker(q, 1, n_gpus, runs_per_gpu)
        assert os.environ["CUDA_VISIBLE_DEVICES"] == gpu and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_local_worker_count_defaults():
    assert Execution().local_workers(n_gpus=0, n_cpus=8) == 8
    assert Execution(threads_per_run=4).local_workers(n_gpus=0, n_cpus=8) == 2
    assert Execution(runs_per_gpu=4).local_workers(n_gpus=2, n_cpus=8) == 8
    assert Execution(workers=3).local_workers(n_gpus=2, n_cpus=8) == 3
    assert Execution(runs_per_gpu=4).ray_gpus_per_run(n_gpus=1) == 0.25
    assert Execution().ray_gpus_per_run(n_gpus=0) == 0.0


# ------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("raw, field", [
    ({"executor": "dask"}, "execution.executor"),
    ({"workers": 0}, "execution.workers"),
    ({"workers": "many"}, "execution.workers"),
    ({"runs_per_gpu": 0}, "execution.runs_per_gpu"),
    ({"threads_per_run": 1.5}, "execution.threads_per_run"),
    ({"max_retries": -1}, "execution.max_retries"),
    ({"max_retries": True}, "execution.max_retries"),
    ({"retries": 2}, "execution.retries"),
    ({"ray": {"address": "cluster"}}, "execution.ray.address"),
    ({"ray": {"num_gpus": -0.5}}, "execution.ray.num_gpus"),
    ({"ray": {"gpus": 1}}, "execution.ray.gpus"),
    ({"ray": []}, "execution.ray"),
    ({"slurm": {"cluster": "pbs"}}, "execution.slurm.cluster"),
    ({"slurm": {"runs_per_job": 0}}, "execution.slurm.runs_per_job"),
    ({"slurm": {"time_min": "1h"}}, "execution.slurm.time_min"),
    ({"slurm": {"partition": ""}}, "execution.slurm.partition"),
    ({"slurm": {"sbatch": ["--qos=x"]}}, "execution.slurm.sbatch"),
    ("local", "execution"),
])
def test_a_bad_execution_section_names_the_field_and_what_is_allowed(raw, field):
    with pytest.raises(ConfigError) as err:
        parse_execution(raw, env={})
    msg = str(err.value)
    assert repr(field) in msg and "must be" in msg


def test_execution_defaults_and_environment_overrides():
    assert parse_execution(None, env={}) == Execution()
    ex = parse_execution({"executor": "serial", "workers": 3}, env={"SOFTBENCH_EXECUTOR": "ray",
                                                                     "SOFTBENCH_WORKERS": "5"})
    assert ex.executor == "ray" and ex.workers == 5
    with pytest.raises(ConfigError, match="SOFTBENCH_EXECUTOR"):
        parse_execution(None, env={"SOFTBENCH_EXECUTOR": "dask"})
    ex = parse_execution({"ray": {"address": "ray://head:10001", "num_gpus": 0.25},
                          "slurm": {"partition": "gpu", "sbatch": {"account": "lab"}}}, env={})
    assert ex.ray == RayOptions(address="ray://head:10001", num_cpus=1.0, num_gpus=0.25)
    assert ex.slurm.partition == "gpu" and ex.slurm.sbatch == {"account": "lab"}


def test_grid_use_sets_the_executor_without_editing_the_grid(tmp_path, monkeypatch):
    monkeypatch.delenv("SOFTBENCH_EXECUTOR", raising=False)
    monkeypatch.delenv("SOFTBENCH_WORKERS", raising=False)
    grids = tmp_path / "grids"
    grids.mkdir()
    text = yaml.safe_dump({**MICRO, "execution": {"executor": "serial", "max_retries": 1}}, sort_keys=False)
    (grids / "micro.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    grid = use_grid("micro", root=grids, execution={"executor": "local", "workers": 2})
    assert grid.execution.executor == "local" and grid.execution.workers == 2 and grid.execution.max_retries == 1
    assert (grids / "micro.yaml").read_text() == text
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["execution"]["executor"] == "local"
    (grids / "plain.yaml").write_text(yaml.safe_dump(MICRO, sort_keys=False))
    assert use_grid("plain", root=grids, execution={"executor": "ray"}).execution.executor == "ray"


def test_a_missing_extra_names_it(base_copy, tmp_path, monkeypatch):
    root = _fresh(base_copy, tmp_path, "no-extra")
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r"softbench\[ray\]"):
        _run(root, "train", Execution(executor="ray"))
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(ConfigError, match=r"softbench\[slurm\]"):
        _run(root, "train", Execution(executor="slurm", slurm=SlurmOptions(cluster="local")))


def test_in_process_runs_leave_the_callers_thread_count_as_it_was(base_copy, tmp_path):
    root = _fresh(base_copy, tmp_path, "threads", seeds=[0])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _run(root, "train", Execution(executor="serial", threads_per_run=1))
        assert torch.get_num_threads() == 2
        placement = json.loads((root / "runs/train/hard/s0/provenance.json").read_text())["placements"][-1]
        assert placement["threads"] == 1 and json.loads((root / "runs/train/hard/s0/provenance.json").read_text())[
            "threads"] == 1
    finally:
        torch.set_num_threads(before)
