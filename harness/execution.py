"""The grid's ``execution:`` section: where the run matrix runs. Plain data, validated once.

```yaml
execution:
  executor: local          # serial | local | ray | slurm   (env SOFTBENCH_EXECUTOR overrides)
  workers: auto            # local: warm worker processes; auto = CPU count, or GPUs x runs_per_gpu
  runs_per_gpu: 1          # local/ray: runs sharing one GPU
  threads_per_run: 1       # torch CPU threads of every run, on every executor (see below)
  max_retries: 2           # a run whose worker/node is lost is retried this often (from its checkpoint)
  ray: {address: local, num_cpus: 1, num_gpus: auto}
  slurm: {partition: null, time_min: 240, gpus_per_job: 1, cpus_per_job: 4, runs_per_job: 1,
          cluster: slurm, folder: runs/slurm, sbatch: {}}
```

``threads_per_run`` is part of a CPU run's numbers: a convolution's reductions split over threads,
so the same seed gives bit-identical metrics only at the same thread count (measured here: 1 vs 2
threads change the first epoch's loss in the 4th decimal). Every executor therefore runs every run
at this count, which is what makes ``serial``, ``local``, ``ray`` and ``slurm`` results identical. For the
same reason ``threads_per_run`` is a DVC parameter of the stages that run torch (proxy_accuracy,
fit_mappings, train, evaluate) and part of every run's train and evaluation stamp (``harness.cell``):
changing it retrains and re-evaluates every run, so no grid mixes runs trained at two thread counts.

The rest of the section is not a DVC parameter of any stage: changing the executor never reruns anything.
``SOFTBENCH_EXECUTOR`` / ``SOFTBENCH_WORKERS`` (``make reproduce EXECUTOR=ray WORKERS=4``) pick them
per machine without editing the grid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from harness.config import ConfigError

__all__ = ["EXECUTORS", "SLURM_CLUSTERS", "Execution", "RayOptions", "SlurmOptions", "parse_execution"]

EXECUTORS: tuple[str, ...] = ("serial", "local", "ray", "slurm")
#: submitit clusters: ``slurm`` (a real cluster), ``local`` / ``debug`` (submitit's local executors, for tests)
SLURM_CLUSTERS: tuple[str, ...] = ("slurm", "local", "debug")
_KEYS = {"executor", "workers", "runs_per_gpu", "threads_per_run", "max_retries", "ray", "slurm"}
_RAY_KEYS = {"address", "num_cpus", "num_gpus"}
_SLURM_KEYS = {"partition", "time_min", "gpus_per_job", "cpus_per_job", "runs_per_job", "cluster", "folder",
               "sbatch"}


@dataclass(frozen=True)
class RayOptions:
    """``address``: ``local`` (start a Ray instance on this machine for the sweep), ``auto`` (join the cluster
    this machine belongs to, ``ray start``) or ``ray://host:port``. ``num_cpus`` / ``num_gpus``: resources of
    one run (``num_gpus`` fractional packs runs on a GPU, e.g. 0.25; None = 1 / runs_per_gpu on a machine with
    GPUs, else 0)."""

    address: str = "local"
    num_cpus: float = 1.0
    num_gpus: float | None = None


@dataclass(frozen=True)
class SlurmOptions:
    """submitit job arrays: ``partition`` (None: the cluster's default), ``time_min`` (wall-time limit of
    one job, minutes), ``gpus_per_job``, ``cpus_per_job``, ``runs_per_job`` (runs one job works through in
    turn), ``cluster`` (see :data:`SLURM_CLUSTERS`), ``folder`` (submitit's job logs and pickles, on the
    shared filesystem), ``sbatch`` (extra ``#SBATCH`` options, e.g. ``{account: X, qos: Y}``)."""

    partition: str | None = None
    time_min: int = 240
    gpus_per_job: int = 1
    cpus_per_job: int = 4
    runs_per_job: int = 1
    cluster: str = "slurm"
    folder: str = "runs/slurm"
    sbatch: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Execution:
    """A validated ``execution:`` section (see the module doc); ``workers`` None = auto."""

    executor: str = "local"
    workers: int | None = None
    runs_per_gpu: int = 1
    threads_per_run: int = 1
    max_retries: int = 2
    ray: RayOptions = field(default_factory=RayOptions)
    slurm: SlurmOptions = field(default_factory=SlurmOptions)

    def local_workers(self, n_gpus: int, n_cpus: int | None = None) -> int:
        """The local pool's size: ``workers``, else GPUs x ``runs_per_gpu``, else CPU count // threads_per_run."""
        if self.workers is not None:
            return self.workers
        if n_gpus > 0:
            return n_gpus * self.runs_per_gpu
        return max(1, (n_cpus or os.cpu_count() or 1) // self.threads_per_run)

    def ray_gpus_per_run(self, n_gpus: int) -> float:
        if self.ray.num_gpus is not None:
            return self.ray.num_gpus
        return 1.0 / self.runs_per_gpu if n_gpus > 0 else 0.0


def _fail(where: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"params field {where!r} must be {allowed}, got {value!r}")


def _int(where: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(where, value, f"an int >= {minimum}")
    return value


def _number(where: str, value: Any, minimum: float, allowed: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
        _fail(where, value, allowed)
    return float(value)


def _mapping(where: str, value: Any, keys: set[str]) -> dict:
    value = {} if value is None else value
    if not isinstance(value, dict):
        _fail(where, value, f"a mapping with keys among {sorted(keys)}")
    for k in value:
        if k not in keys:
            _fail(f"{where}.{k}", value[k], f"absent (allowed: {sorted(keys)})")
    return value


def parse_execution(raw: Any, env: Mapping[str, str] | None = None) -> Execution:
    """Validate a grid's ``execution:`` section (None: all defaults), then apply ``SOFTBENCH_EXECUTOR`` and
    ``SOFTBENCH_WORKERS`` from ``env`` (default ``os.environ``). Errors name the field, the value and what
    is allowed."""
    env = os.environ if env is None else env
    sec = dict(_mapping("execution", raw, _KEYS))
    if env.get("SOFTBENCH_EXECUTOR"):
        sec["executor"] = env["SOFTBENCH_EXECUTOR"]
    if env.get("SOFTBENCH_WORKERS"):
        text = env["SOFTBENCH_WORKERS"]
        sec["workers"] = int(text) if text.strip().isdigit() else text
    executor = sec.get("executor", "local")
    if executor not in EXECUTORS:
        _fail("execution.executor", executor, f"one of {list(EXECUTORS)} (or env SOFTBENCH_EXECUTOR)")
    workers = sec.get("workers", "auto")
    workers = None if workers in (None, "auto") else _int("execution.workers", workers, 1)
    ray = _mapping("execution.ray", sec.get("ray"), _RAY_KEYS)
    address = ray.get("address", "local")
    if not isinstance(address, str) or not (address in ("local", "auto") or address.startswith("ray://")
                                            or ":" in address):
        _fail("execution.ray.address", address, "'local', 'auto', 'ray://host:port' or 'host:port'")
    num_gpus = ray.get("num_gpus", "auto")
    num_gpus = None if num_gpus in (None, "auto") else _number("execution.ray.num_gpus", num_gpus, 0.0,
                                                                 "a number >= 0 (fractional packs runs) or auto")
    slurm = _mapping("execution.slurm", sec.get("slurm"), _SLURM_KEYS)
    partition = slurm.get("partition")
    if partition is not None and (not isinstance(partition, str) or not partition):
        _fail("execution.slurm.partition", partition, "a partition name or null (the cluster's default)")
    cluster = slurm.get("cluster", "slurm")
    if cluster not in SLURM_CLUSTERS:
        _fail("execution.slurm.cluster", cluster, f"one of {list(SLURM_CLUSTERS)}")
    folder = slurm.get("folder", "runs/slurm")
    if not isinstance(folder, str) or not folder:
        _fail("execution.slurm.folder", folder, "a folder path on the filesystem every node shares")
    sbatch = slurm.get("sbatch") or {}
    if not isinstance(sbatch, dict) or any(not isinstance(k, str) for k in sbatch):
        _fail("execution.slurm.sbatch", sbatch, "a mapping of sbatch option -> value")
    return Execution(
        executor=executor, workers=workers,
        runs_per_gpu=_int("execution.runs_per_gpu", sec.get("runs_per_gpu", 1), 1),
        threads_per_run=_int("execution.threads_per_run", sec.get("threads_per_run", 1), 1),
        max_retries=_int("execution.max_retries", sec.get("max_retries", 2), 0),
        ray=RayOptions(address=address,
                       num_cpus=_number("execution.ray.num_cpus", ray.get("num_cpus", 1), 0.0, "a number >= 0"),
                       num_gpus=num_gpus),
        slurm=SlurmOptions(partition=partition,
                           time_min=_int("execution.slurm.time_min", slurm.get("time_min", 240), 1),
                           gpus_per_job=_int("execution.slurm.gpus_per_job", slurm.get("gpus_per_job", 1), 0),
                           cpus_per_job=_int("execution.slurm.cpus_per_job", slurm.get("cpus_per_job", 4), 1),
                           runs_per_job=_int("execution.slurm.runs_per_job", slurm.get("runs_per_job", 1), 1),
                           cluster=cluster, folder=folder, sbatch=dict(sbatch)),
    )
