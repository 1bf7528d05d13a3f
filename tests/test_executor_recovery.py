"""Recovery paths of the executors (harness.executors) that tests/test_executors.py does not reach.

* Ray: a task whose worker process is SIGKILLed mid-run is retried by Ray (``max_retries`` from
  ``execution.max_retries``) in a fresh worker, resumes from the run's checkpoint and reaches the uninterrupted
  result bit for bit; with ``max_retries: 0`` the cell is recorded ``failed`` (reason in its status.json) and
  the other cells finish.
* submitit / Slurm: ``_SlurmChunk.checkpoint`` returns a ``DelayedSubmission`` that, run again (in-process,
  after a pickle round trip as submitit does), keeps the chunk's finished cells byte for byte and resumes the
  unfinished one; a job preempted (the user signal submitit listens to) is requeued through that checkpoint and
  completes; a job that is killed is resubmitted by the dispatcher (``max_retries``), or recorded ``failed``
  through ``_lost`` once the retries are used up, without touching the cells the job had already finished.

Faults are injected as in tests/test_executors.py: a watcher thread signals the process that holds a run's
lock (``harness.runs.lock_holder``) once that run has a checkpoint, which is a Ray worker, a submitit job
process or a plain child process here. Only training is dispatched (evaluation is covered elsewhere)."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from harness.execution import Execution, RayOptions, SlurmOptions
from harness.executors import RunTask, _SlurmChunk, cell_tasks, dispatch
from harness.grid import load_grid
from harness.runs import lock_holder, read_status
from conftest import micro_executor_grid, prepared_working_copy

EPOCHS = 5  # a few more than test_executors' micro grid: a wider window for a fault between two checkpoints
RUN_ARMS, SEEDS = ["hard", "soft"], [0, 1]
MICRO = micro_executor_grid("micro-recovery", epochs=EPOCHS)
assert (MICRO["run_arms"], MICRO["seeds"]) == (RUN_ARMS, SEEDS)
SLURM = dict(cluster="local", runs_per_job=2, gpus_per_job=0, cpus_per_job=1, time_min=10)


# ------------------------------------------------------------------------------------------ set-up
@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A working copy with the micro grid and its prepared data (no runs)."""
    return prepared_working_copy(tmp_path_factory.mktemp("recovery-base"), MICRO, ("prepare",))


@pytest.fixture(scope="module")
def reference(base, tmp_path_factory):
    """Every cell trained without interruption, in this process: the fingerprint recovery must reach."""
    root = _fresh(base, tmp_path_factory.mktemp("recovery-serial"), "serial")
    outcomes = _train(root, Execution(executor="serial"))
    assert [o.action for o in outcomes] == ["trained"] * 4
    return _fingerprint(root)


def _fresh(base: Path, tmp_path: Path, name: str) -> Path:
    dst = tmp_path / name
    shutil.copytree(base, dst)
    return dst


def _tasks(root: Path, ex: Execution) -> list[RunTask]:
    here = os.getcwd()
    os.chdir(root)
    try:
        grid = load_grid("params.yaml")
    finally:
        os.chdir(here)
    return cell_tasks(grid, "train", root=root, params=root / "params.yaml", threads=ex.threads_per_run)


def _train(root: Path, ex: Execution):
    here = os.getcwd()
    os.chdir(root)
    try:
        return dispatch(_tasks(root, ex), ex, progress=False, label="train")
    finally:
        os.chdir(here)


def _run(root: Path, arm: str, seed: int) -> Path:
    return root / "runs/train" / arm / f"s{seed}"


def _weights(run_dir: Path) -> str:
    sd = torch.load(run_dir / "model.pt", weights_only=True)
    return hashlib.sha256(b"".join(sd[k].numpy().tobytes() for k in sorted(sd))).hexdigest()


def _run_fingerprint(run_dir: Path) -> tuple:
    """The trained weights' hash and the epoch log's rows (epoch and loss)."""
    rows = [tuple(line.split(",")[:2]) for line in (run_dir / "epochs.csv").read_text().splitlines()[1:]]
    return _weights(run_dir), rows


def _fingerprint(root: Path) -> dict:
    return {f"{arm}-s{seed}": _run_fingerprint(_run(root, arm, seed)) for arm in RUN_ARMS for seed in SEEDS}


def _snapshot(run_dir: Path) -> dict:
    """Every file's bytes and modification time (the lock file's time aside: a lock taken and released
    truncates it)."""
    return {str(p.relative_to(run_dir)): (p.read_bytes(), None if p.name == ".lock" else p.stat().st_mtime_ns)
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ fault injection
def _signal_holder_mid_run(root: Path, sig: int, hit: list, stop: threading.Event, target: str | None) -> None:
    """Send ``sig`` once to the process (never this one) holding the lock of a training run that has a
    checkpoint of epoch 1 .. EPOCHS-1, i.e. in the middle of its training; ``target`` ('hard/s1') restricts
    it to that run. Appends (run_dir, pid) to ``hit``."""
    pattern = target or "*/s*"
    while not stop.is_set() and not hit:
        for run in sorted((root / "runs/train").glob(pattern)):
            holder = lock_holder(run)
            if not holder or holder["pid"] == os.getpid() or not (run / "checkpoint.pt").is_file():
                continue
            try:
                epoch = int(read_status(run).get("epoch") or 0)
            except Exception:  # noqa: BLE001 - a status being replaced; look again
                continue
            if 1 <= epoch < EPOCHS:
                os.kill(holder["pid"], sig)
                hit.append((run, holder["pid"]))
                return
        time.sleep(0.01)


def _with_fault(root: Path, fn, *, sig: int = signal.SIGKILL, target: str | None = None):
    hit: list = []
    stop = threading.Event()
    (root / "runs/train").mkdir(parents=True, exist_ok=True)
    watcher = threading.Thread(target=_signal_holder_mid_run, args=(root, sig, hit, stop, target), daemon=True)
    watcher.start()
    try:
        result = fn()
    finally:
        stop.set()
        watcher.join()
    assert hit, "no fault was injected (the runs finished before one held a mid-run checkpoint)"
    return result, hit[0]


# ------------------------------------------------------------------------------------------ Ray
def _ray_execution(max_retries: int) -> Execution:
    # workers=2 x num_cpus=1: the executor starts a local Ray instance with 2 CPUs and stops it at the end
    return Execution(executor="ray", workers=2, max_retries=max_retries, ray=RayOptions(address="local", num_cpus=1))


def test_ray_retries_a_task_whose_worker_was_killed_and_it_resumes_to_the_uninterrupted_result(
        base, reference, tmp_path):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'softbench[ray]')")
    root = _fresh(base, tmp_path, "ray-killed")
    outcomes, (run, pid) = _with_fault(root, lambda: _train(root, _ray_execution(max_retries=2)))
    assert not ray.is_initialized()
    by_run = {o.task.run_dir: o for o in outcomes}
    assert by_run[run].action == "resumed", by_run[run]  # Ray reran the task; the cell resumed from its checkpoint
    assert by_run[run].pid not in (pid, os.getpid())  # in a fresh Ray worker, not the dead one
    assert sorted(o.action for o in outcomes) == ["resumed", "trained", "trained", "trained"]
    log = (run / "train.log").read_text()
    assert "training afresh" in log and "resuming from its checkpoint" in log
    assert read_status(run)["epoch"] == EPOCHS and not list(run.glob(".*.tmp"))
    assert _fingerprint(root) == reference  # bit for bit the uninterrupted runs


def test_ray_with_max_retries_0_records_the_killed_cell_failed_and_finishes_the_others(base, reference, tmp_path):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'softbench[ray]')")
    root = _fresh(base, tmp_path, "ray-lost")
    outcomes, (run, _) = _with_fault(root, lambda: _train(root, _ray_execution(max_retries=0)))
    assert not ray.is_initialized()
    by_run = {o.task.run_dir: o for o in outcomes}
    lost = by_run[run]
    assert lost.action == "lost"
    status = read_status(run)
    assert status["status"] == "failed" and status["reason"] == lost.error
    assert "Worker" in status["reason"]  # Ray's error (WorkerCrashedError: the worker died ...)
    assert "gave up after 1 attempts (execution.max_retries)" in status["reason"]
    assert 1 <= int(status["epoch"]) < EPOCHS  # the epoch of the checkpoint the dead worker left
    # Ray charges only the task whose worker died: every other cell is trained, to the uninterrupted result
    others = [o for o in outcomes if o.task.run_dir != run]
    assert [o.action for o in others] == ["trained"] * 3
    assert _fingerprint_without(root, lost.task.run_id) == {k: v for k, v in reference.items()
                                                            if k != lost.task.run_id}


# ------------------------------------------------------------------------------------------ submitit / Slurm
_CHUNK_SCRIPT = """
import sys
from harness.executors import RunTask, _SlurmChunk
root = sys.argv[1]
_SlurmChunk()([RunTask("train", "hard", s, root, root + "/params.yaml") for s in (0, 1)])
"""


def _partly_done_chunk(base: Path, tmp_path: Path, name: str) -> tuple[Path, list[RunTask]]:
    """A working copy where the chunk [hard-s0, hard-s1] ran in a job process that was SIGKILLed in the middle of
    hard-s1: hard-s0 finished, hard-s1 left at a mid-run checkpoint (status 'running')."""
    root = _fresh(base, tmp_path, name)
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def job() -> int:
        return subprocess.run([sys.executable, "-c", _CHUNK_SCRIPT, str(root)], cwd=root, env=env,
                              capture_output=True).returncode

    rc, (run, _) = _with_fault(root, job, target="hard/s1")
    assert rc == -signal.SIGKILL and run == _run(root, "hard", 1)
    tasks = [t for t in _tasks(root, Execution(executor="slurm")) if t.arm == "hard"]
    assert [t.run_dir for t in tasks] == [_run(root, "hard", 0), _run(root, "hard", 1)]
    return root, tasks


def test_slurm_chunk_checkpoint_resumes_only_the_unfinished_cells(base, reference, tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit", reason="the slurm extra is not installed (pip install 'softbench[slurm]')")
    root, tasks = _partly_done_chunk(base, tmp_path, "checkpoint")
    done, partial = tasks[0].run_dir, tasks[1].run_dir
    assert _run_fingerprint(done) == reference["hard-s0"]
    assert read_status(partial)["status"] == "running" and 1 <= read_status(partial)["epoch"] < EPOCHS
    assert not (partial / "model.pt").exists()
    before = _snapshot(done)

    chunk = _SlurmChunk()
    delayed = chunk.checkpoint(tasks)  # what submitit calls on preemption / timeout
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert isinstance(delayed.function, _SlurmChunk) and list(delayed.args) == [tasks] and not delayed.kwargs
    delayed = pickle.loads(pickle.dumps(delayed))  # submitit dumps it to the job's pickle and requeues the job
    monkeypatch.chdir(root)  # the cells chdir into the working copy; restored after the test
    outcomes = delayed.function(*delayed.args, **delayed.kwargs)

    assert [o.task for o in outcomes] == tasks
    assert [o.action for o in outcomes] == ["kept", "resumed"]  # the finished cell is not retrained
    assert _snapshot(done) == before  # byte for byte, not even rewritten
    assert "resuming from its checkpoint" in (partial / "train.log").read_text()
    assert read_status(partial)["epoch"] == EPOCHS and not list(partial.glob(".*.tmp"))
    assert _run_fingerprint(partial) == reference["hard-s1"]  # the same result as a straight run
    # run once more (a second requeue): nothing left to do, nothing rewritten
    resumed = _snapshot(partial)
    assert [o.action for o in chunk.checkpoint(tasks).result()] == ["kept", "kept"]
    assert _snapshot(done) == before and _snapshot(partial) == resumed


def test_a_preempted_submitit_job_is_requeued_through_its_checkpoint_and_completes(base, reference, tmp_path):
    pytest.importorskip("submitit", reason="the slurm extra is not installed (pip install 'softbench[slurm]')")
    root = _fresh(base, tmp_path, "preempted")
    # max_retries 0: the dispatcher resubmits nothing, so a complete result can only come from submitit's requeue
    # time_min 30: submitit calls a signal within 10 min of the start 'preempted' (under 10 min, 'timed-out')
    ex = Execution(executor="slurm", max_retries=0, slurm=SlurmOptions(**{**SLURM, "time_min": 30}))
    usr_sig = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))
    outcomes, (run, _) = _with_fault(root, lambda: _train(root, ex), sig=usr_sig, target="hard/s1")
    by_id = {o.task.run_id: o.action for o in outcomes}
    # job 1 = [hard-s0, hard-s1]: its requeued run keeps hard-s0 (done before the signal) and resumes hard-s1
    assert by_id == {"hard-s0": "kept", "hard-s1": "resumed", "soft-s0": "trained", "soft-s1": "trained"}
    logs = "".join(p.read_text(errors="replace") for p in (root / "runs/slurm").rglob("*.err"))
    assert f"Caught signal {usr_sig.name}" in logs and "this job is preempted" in logs  # submitit's handler
    assert "resuming from its checkpoint" in (run / "train.log").read_text()
    assert _fingerprint(root) == reference


@pytest.fixture
def quick_lost_jobs(monkeypatch):
    """submitit waits 15 s for a job's result file (a slow shared filesystem) before it calls the job lost; the
    local executor writes it at once."""
    submitit = pytest.importorskip("submitit", reason="the slurm extra is not installed (pip install 'softbench[slurm]')")
    monkeypatch.setattr(submitit.core.core.Job, "_results_timeout_s", 2)


def test_a_killed_submitit_job_is_resubmitted_and_its_chunk_completes(base, reference, tmp_path, quick_lost_jobs):
    root = _fresh(base, tmp_path, "slurm-retried")
    ex = Execution(executor="slurm", max_retries=1, slurm=SlurmOptions(**SLURM))
    outcomes, (run, _) = _with_fault(root, lambda: _train(root, ex), target="hard/s1")
    hard_s0 = _snapshot(_run(root, "hard", 0))
    by_id = {o.task.run_id: o.action for o in outcomes}
    assert by_id == {"hard-s0": "kept", "hard-s1": "resumed", "soft-s0": "trained", "soft-s1": "trained"}
    assert _fingerprint(root) == reference
    assert _snapshot(_run(root, "hard", 0)) == hard_s0


def test_a_killed_submitit_job_past_max_retries_is_recorded_failed_and_its_finished_cells_are_kept(
        base, reference, tmp_path, quick_lost_jobs):
    root = _fresh(base, tmp_path, "slurm-lost")
    ex = Execution(executor="slurm", max_retries=0, slurm=SlurmOptions(**SLURM))
    outcomes, (run, _) = _with_fault(root, lambda: _train(root, ex), target="hard/s1")
    assert run == _run(root, "hard", 1)
    by_id = {o.task.run_id: o for o in outcomes}
    lost = by_id["hard-s1"]
    assert lost.action == "lost"
    status = read_status(run)
    assert status["status"] == "failed" and status["reason"] == lost.error
    assert "Slurm job" in status["reason"] and "was lost" in status["reason"]
    assert "gave up after 1 attempts (execution.max_retries)" in status["reason"]
    assert 1 <= int(status["epoch"]) < EPOCHS
    # the sweep went on: the other job's cells are trained
    assert by_id["soft-s0"].action == by_id["soft-s1"].action == "trained"
    # hard-s0 was finished by the lost job before it died: complete, not marked failed, not to be retrained
    assert by_id["hard-s0"].action == "kept", by_id["hard-s0"]
    assert read_status(_run(root, "hard", 0)).get("status") != "failed"
    fp = _fingerprint_without(root, "hard-s1")
    assert fp == {k: v for k, v in reference.items() if k != "hard-s1"}
    again = _train(root, Execution(executor="serial"))  # a second dispatch retrains only the failed cell
    assert {o.task.run_id: o.action for o in again} == {"hard-s0": "kept", "hard-s1": "trained",
                                                       "soft-s0": "kept", "soft-s1": "kept"}
    assert _fingerprint(root) == reference


def _fingerprint_without(root: Path, skip: str) -> dict:
    return {f"{arm}-s{seed}": _run_fingerprint(_run(root, arm, seed))
            for arm in RUN_ARMS for seed in SEEDS if f"{arm}-s{seed}" != skip}
