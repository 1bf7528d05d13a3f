"""Run a list of grid cells (train or evaluate) on an existing engine; one overall progress bar.

==========  =====================================================================================
executor    engine
==========  =====================================================================================
serial      this process, one cell after another (CI, tiny grids, debugging)
local       ``concurrent.futures.ProcessPoolExecutor`` with the ``spawn`` context: warm workers
            that import torch once; each pinned to its GPU (``CUDA_VISIBLE_DEVICES``) and to
            ``threads_per_run`` CPU threads
ray         Ray core tasks (``num_cpus`` / fractional ``num_gpus`` per run) on a local instance or
            a cluster; Ray retries a task whose worker died (``max_retries``)
slurm       submitit job arrays (``runs_per_job`` cells per job); a job that is preempted or times
            out is requeued by submitit, a job that is lost is resubmitted here (``max_retries``)
==========  =====================================================================================

Every engine runs the same function, :func:`execute_task`, on a picklable :class:`RunTask`; the cell's
own seeds decide its numbers, never the worker (see ``harness.execution`` for the thread count). A cell
whose worker is lost is retried from its checkpoint (the cell logic in ``harness.cell`` resumes a run
that stopped), and after ``max_retries`` recorded ``failed`` with the reason in its ``status.json``;
nothing half-written is ever read as a result (atomic writes, status ``complete`` last).

Limitation of ``local``: the standard library's pool cannot tell which worker died first, so a lost
worker charges one attempt to every cell in flight at that moment (at most ``workers`` cells).
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing as mp
import os
import socket
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from tqdm.auto import tqdm

from harness.cell import evaluate_cell, evaluation_is_current, run_log, train_cell, train_is_current
from harness.config import ConfigError
from harness.execution import Execution
from harness.grid import Grid, eval_dir, load_grid, run_id, train_dir
from harness.io import provenance, read_json
from harness.runs import RunBusyError, read_status, run_lock, write_json, write_status

__all__ = ["RunTask", "RunOutcome", "execute_task", "torch_threads", "execute_chunk", "dispatch", "DispatchError", "STAGES",
           "cell_tasks"]

STAGES = ("train", "evaluate")
#: outcome actions beyond those of harness.cell: the worker was lost max_retries + 1 times; the cell raised
LOST, ERROR = "lost", "error"


class DispatchError(RuntimeError):
    """Some cells raised (not a recorded failure such as a non-finite loss): the stage must not look done."""


@dataclass(frozen=True)
class RunTask:
    """One cell to run: ``stage`` (train | evaluate) of ``arm`` x ``seed`` of the grid in ``params``, in the
    working copy ``root`` (absolute: workers may start elsewhere), at ``threads`` torch CPU threads."""

    stage: str
    arm: str
    seed: int
    root: str
    params: str
    threads: int = 1

    @property
    def run_id(self) -> str:
        return run_id(self.arm, self.seed)

    @property
    def run_dir(self) -> Path:
        d = train_dir(self.arm, self.seed) if self.stage == "train" else eval_dir(self.arm, self.seed)
        return Path(self.root) / d


@dataclass(frozen=True)
class RunOutcome:
    """What became of a task: ``action`` (kept / trained / resumed / evaluated / failed / lost / error),
    where it ran (host, pid, device, ``CUDA_VISIBLE_DEVICES``), wall seconds, and the error text if any."""

    task: RunTask
    action: str
    host: str = ""
    pid: int = 0
    device: str = ""
    gpu: str | None = None
    wall_s: float = 0.0
    error: str | None = None


def cell_tasks(grid: Grid, stage: str, *, root: str | Path, params: str | Path, threads: int) -> list[RunTask]:
    """Every cell of ``grid`` for ``stage``, in grid order (arms, then seeds)."""
    if stage not in STAGES:
        raise ConfigError(f"stage must be one of {list(STAGES)}, got {stage!r}")
    root, params = str(Path(root).resolve()), str(Path(params).resolve())
    return [RunTask(stage, arm, int(seed), root, params, threads) for arm in grid.run_arms for seed in grid.seeds]


# ------------------------------------------------------------------------------------------ the worker side
_GRIDS: dict[tuple[str, float], Grid] = {}


def _grid(params: str) -> Grid:
    """The grid in ``params``, loaded once per worker process (keyed by path and modification time)."""
    key = (params, os.stat(params).st_mtime)
    if key not in _GRIDS:
        _GRIDS.clear()
        _GRIDS[key] = load_grid(params)
    return _GRIDS[key]


def _device_name() -> str:
    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name()})"
    return "cpu"


def execute_task(task: RunTask) -> RunOutcome:
    """Run one cell in this process (any engine's worker, or the dispatcher itself for ``serial``). Its
    messages go to ``<run_dir>/<stage>.log``; where it ran is added to the run's provenance."""
    t0 = time.perf_counter()
    if os.getcwd() != task.root:
        os.chdir(task.root)  # the run's relative paths (runs/, datasets/) are the working copy's
    grid = _grid(task.params)
    with torch_threads(task.threads), run_log(task.run_dir / f"{task.stage}.log"):
        if task.stage == "train":
            action = train_cell(grid, task.arm, task.seed)
        else:
            action = evaluate_cell(grid, task.arm, task.seed)
    outcome = RunOutcome(task, action, host=socket.gethostname(), pid=os.getpid(), device=_device_name(),
                         gpu=os.environ.get("CUDA_VISIBLE_DEVICES"), wall_s=time.perf_counter() - t0)
    if action != "kept":
        _record_placement(outcome)
    return outcome


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block at ``n`` torch CPU threads, then restore the previous count (the serial executor and a
    single run by hand work in the caller's process, which must not be left changed)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def execute_chunk(tasks: Sequence[RunTask]) -> list[RunOutcome]:
    """Several cells in turn (one Slurm job of ``runs_per_job`` cells); a cell that raises is reported, not fatal."""
    return [_safe_execute(t) for t in tasks]


def _safe_execute(task: RunTask) -> RunOutcome:
    try:
        return execute_task(task)
    except Exception as exc:  # noqa: BLE001 - reported by the dispatcher, which fails the stage at the end
        return RunOutcome(task, ERROR, host=socket.gethostname(), pid=os.getpid(), error=_error_text(exc))


def _error_text(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _record_placement(outcome: RunOutcome) -> None:
    """Where the cell ran, in its provenance: ``provenance.json`` of a training run (key ``placement``), a
    ``provenance.json`` of its own for an evaluation."""
    task = outcome.task
    placement = {"host": outcome.host, "pid": outcome.pid, "device": outcome.device, "cuda_visible_devices":
                 outcome.gpu, "threads": task.threads, "wall_s": round(outcome.wall_s, 3), "action": outcome.action}
    with run_lock(task.run_dir, command=f"softbench {task.stage} {task.run_id} (placement)"):
        path = task.run_dir / "provenance.json"
        if task.stage == "train":
            if not path.is_file():
                return
            prov = read_json(path, "the run's provenance")
            prov.setdefault("placements", []).append(placement)
        else:
            prov = provenance(config=None)
            prov.pop("config", None)
            prov.update(run_id=task.run_id, placement=placement)
        write_json(path, prov)


# ------------------------------------------------------------------------------------------ engines
OnDone = Callable[[RunOutcome], None]


def _run_serial(tasks: Sequence[RunTask], ex: Execution, on_done: OnDone) -> None:
    for task in tasks:
        on_done(_safe_execute(task))


def _init_local_worker(slots, threads: int, n_gpus: int, runs_per_gpu: int) -> None:
    """Pin a fresh pool worker: its GPU (slot k -> GPU k // runs_per_gpu) and its CPU threads."""
    slot = slots.get()
    if n_gpus > 0:
        os.environ["CUDA_VISIBLE_DEVICES"] = str((slot // runs_per_gpu) % n_gpus)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def _run_local(tasks: Sequence[RunTask], ex: Execution, on_done: OnDone) -> None:
    n_gpus = torch.cuda.device_count()
    n_workers = max(1, min(ex.local_workers(n_gpus), len(tasks)))
    ctx = mp.get_context("spawn")
    pending = collections.deque(tasks)
    attempts: collections.Counter = collections.Counter()
    while pending:
        slots = ctx.Queue()
        for k in range(n_workers):
            slots.put(k)
        pool = ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init_local_worker,
                                   initargs=(slots, ex.threads_per_run, n_gpus, ex.runs_per_gpu))
        inflight: dict = {}
        lost: list[tuple[RunTask, int]] = []  # recorded once the pool is down and the dead workers' locks are free
        try:
            broken = False
            while (pending and not broken) or inflight:
                while pending and not broken and len(inflight) < n_workers:
                    task = pending.popleft()
                    inflight[pool.submit(_safe_execute, task)] = task
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in done:
                    task = inflight.pop(fut)
                    try:
                        on_done(fut.result())
                    except BrokenProcessPool:  # a worker died (killed, out of memory): retry from the checkpoint
                        broken = True
                        attempts[task] += 1
                        if attempts[task] > ex.max_retries:
                            lost.append((task, attempts[task]))
                        else:
                            pending.appendleft(task)
                    except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be unpickled
                        on_done(RunOutcome(task, ERROR, error=_error_text(exc)))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        for task, n in lost:
            on_done(_lost(task, n, "its worker process died (killed or out of memory)"))


def _run_ray(tasks: Sequence[RunTask], ex: Execution, on_done: OnDone) -> None:
    try:
        import ray
        from ray.exceptions import RayTaskError
    except ImportError:
        raise ConfigError("execution.executor 'ray' needs Ray: pip install 'softbench[ray]'") from None
    started = False
    if not ray.is_initialized():
        if ex.ray.address == "local":
            n_workers = ex.local_workers(torch.cuda.device_count())
            ray.init(num_cpus=max(1, int(n_workers * max(ex.ray.num_cpus, 1))), include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=ex.ray.address, log_to_driver=False, configure_logging=False)
        started = True
    try:
        n_gpus = int(ray.cluster_resources().get("GPU", 0))
        remote = ray.remote(execute_task).options(num_cpus=ex.ray.num_cpus, num_gpus=ex.ray_gpus_per_run(n_gpus),
                                                  max_retries=ex.max_retries, retry_exceptions=False)
        refs = {remote.remote(t): t for t in tasks}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                task = refs.pop(ref)
                try:
                    on_done(ray.get(ref))
                except RayTaskError as exc:  # the cell raised: reported, the sweep goes on
                    on_done(RunOutcome(task, ERROR, error=_error_text(exc.cause or exc)))
                except ray.exceptions.RayError as exc:  # worker or node lost after max_retries
                    on_done(_lost(task, ex.max_retries + 1, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"))
    finally:
        if started:
            ray.shutdown()


def _run_slurm(tasks: Sequence[RunTask], ex: Execution, on_done: OnDone) -> None:
    try:
        import submitit
    except ImportError:
        raise ConfigError("execution.executor 'slurm' needs submitit: pip install 'softbench[slurm]'") from None
    opts = ex.slurm
    if opts.cluster == "slurm" and "slurm" not in (submitit.AutoExecutor.which(),):
        raise ConfigError("execution.executor 'slurm': no Slurm cluster here (sbatch not found); run on a login "
                          "node, or use execution.slurm.cluster 'local' to test the set-up on this machine")
    root = Path(tasks[0].root) if tasks else Path.cwd()
    executor = submitit.AutoExecutor(folder=str(root / opts.folder / "%j"), cluster=opts.cluster)
    params = dict(timeout_min=opts.time_min, gpus_per_node=opts.gpus_per_job, cpus_per_task=opts.cpus_per_job,
                  tasks_per_node=1, nodes=1, name="softbench")
    if opts.cluster == "slurm":
        params.update(slurm_additional_parameters=dict(opts.sbatch),
                      **({"slurm_partition": opts.partition} if opts.partition else {}))
    executor.update_parameters(**params)
    pending = [list(tasks[i:i + opts.runs_per_job]) for i in range(0, len(tasks), opts.runs_per_job)]
    attempts: collections.Counter = collections.Counter()
    while pending:
        chunks, pending = pending, []
        jobs = executor.map_array(_SlurmChunk(), chunks)
        for job, chunk in zip(jobs, chunks):
            try:
                outcomes = job.result()
            except (submitit.core.utils.UncompletedJobError, submitit.core.utils.FailedJobError) as exc:
                key = tuple(chunk)
                attempts[key] += 1
                reason = f"its Slurm job {job.job_id} was lost ({' '.join(str(exc).split())[:400]})"
                if attempts[key] > ex.max_retries:
                    for t in chunk:
                        on_done(_lost(t, attempts[key], reason))
                else:
                    pending.append(chunk)
                continue
            for o in outcomes:
                on_done(o)


class _SlurmChunk:
    """The callable a Slurm job runs; checkpointable, so submitit requeues a job that is preempted or times
    out (its cells resume from their run checkpoints)."""

    def __call__(self, tasks: Sequence[RunTask]) -> list[RunOutcome]:
        return execute_chunk(tasks)

    def checkpoint(self, tasks: Sequence[RunTask]):
        import submitit  # the slurm extra; only inside a submitit job, where it is installed

        return submitit.helpers.DelayedSubmission(self, tasks)


_ENGINES = {"serial": _run_serial, "local": _run_local, "ray": _run_ray, "slurm": _run_slurm}


def _lost(task: RunTask, attempts: int, why: str) -> RunOutcome:
    """Record a cell whose worker was lost ``attempts`` times as failed, in its own status.json (under its lock;
    the lost worker's lock died with it). A cell that finished before its worker was lost (a Slurm job lost after
    its first cells, a local pool that broke while a finished result was on its way) is complete: ``kept``, its
    files untouched, never overwritten as failed."""
    if _is_current(task):
        return RunOutcome(task, "kept")
    reason = f"{why}; gave up after {attempts} attempts (execution.max_retries)"
    deadline = time.monotonic() + 30.0  # a dying worker's lock is released when the kernel reaps it
    while True:
        try:
            with run_lock(task.run_dir, command=f"softbench dispatch ({task.run_id} lost)"):
                try:
                    epoch = read_status(task.run_dir).get("epoch")
                except Exception:  # noqa: BLE001 - the lost worker may have left no readable status
                    epoch = None
                write_status(task.run_dir, "failed", reason=reason, epoch=epoch)
            break
        except RunBusyError as exc:
            if time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            reason += f" (could not record it in {task.run_dir}: {exc})"
            break
        except Exception as exc:  # noqa: BLE001 - still reported as failed below
            reason += f" (could not record it in {task.run_dir}: {exc})"
            break
    return RunOutcome(task, LOST, error=reason)


def _is_current(task: RunTask) -> bool:
    """A read-only look from the dispatcher: would the cell be kept? (Any doubt: no, and the worker decides.)"""
    here = os.getcwd()
    try:
        os.chdir(task.root)
        grid = _grid(task.params)
        check = train_is_current if task.stage == "train" else evaluation_is_current
        return check(grid, task.arm, task.seed)
    except Exception:  # noqa: BLE001 - e.g. an unreadable file: the cell itself reports it
        return False
    finally:
        os.chdir(here)


# ------------------------------------------------------------------------------------------ dispatch
def dispatch(tasks: Sequence[RunTask], ex: Execution, *, progress: bool = True,
             label: str = "runs") -> list[RunOutcome]:
    """Run ``tasks`` on ``ex.executor`` with one progress bar (cells done / total, failures, ETA) and a line
    per cell that did work. Returns every outcome in task order. Cells recorded ``failed`` (non-finite loss,
    lost worker) do not stop the sweep; cells that raised are listed and then :class:`DispatchError`."""
    tasks = list(tasks)
    if ex.executor not in _ENGINES:
        raise ConfigError(f"execution.executor must be one of {list(_ENGINES)}, got {ex.executor!r}")
    by_task: dict[RunTask, RunOutcome] = {}
    counts: collections.Counter = collections.Counter()
    bar = tqdm(total=len(tasks), desc=f"{label} [{ex.executor}]", unit="run", disable=not progress,
               file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 30.0, dynamic_ncols=True)

    def on_done(outcome: RunOutcome) -> None:
        by_task[outcome.task] = outcome
        counts[outcome.action] += 1
        if outcome.action != "kept":
            msg = f"{outcome.task.run_id}: {outcome.action}"
            if outcome.host:
                msg += f" in {outcome.wall_s:.1f} s on {outcome.host}/{outcome.device}"
            if outcome.error:
                msg += f": {outcome.error}"
            tqdm.write(f"[softbench {outcome.task.stage}] {msg}", file=sys.stderr)
        bar.set_postfix_str(", ".join(f"{k} {v}" for k, v in sorted(counts.items())), refresh=False)
        bar.update(1)

    t0 = time.perf_counter()
    todo = []
    for task in tasks:  # cells that are certainly current are not sent to a worker (no pool start for nothing)
        if _is_current(task):
            on_done(RunOutcome(task, "kept"))
        else:
            todo.append(task)
    try:
        if todo:
            _ENGINES[ex.executor](todo, ex, on_done)
    finally:
        bar.close()
    missing = [t for t in tasks if t not in by_task]
    if missing:  # an engine that returned without an outcome for a cell is a bug, never a finished run
        raise DispatchError(f"{len(missing)} cells got no outcome from executor {ex.executor!r}: "
                            f"{[t.run_id for t in missing][:5]}")
    print(f"[softbench {label}] {len(tasks)} cells in {time.perf_counter() - t0:.1f} s on {ex.executor}: "
          + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())), file=sys.stderr, flush=True)
    errors = [o for o in by_task.values() if o.action == ERROR]
    if errors:
        raise DispatchError(f"{len(errors)} of {len(tasks)} cells raised an error (their runs are not complete): "
                            + "; ".join(f"{o.task.run_id}: {o.error}" for o in errors[:5]))
    return [by_task[t] for t in tasks]
