"""The run directory: one folder per training run, every file written atomically.

Layout of ``<run_dir>/``:

===================  ==========================================================================
file                 content
===================  ==========================================================================
config.yaml          the resolved :class:`~harness.config.TrainConfig` (seed included)
provenance.json      seed, git SHA, package versions, device, precision, timings
epochs.csv           per-epoch log: epoch, loss, train_acc, mean_confidence, lr, time_s
checkpoint.pt        latest training state (model, optimiser, scheduler, RNG states)
model.pt             final weights (written when training finished)
metrics.json         final metrics in tidy form: a list of rows {metric, corruption, severity, value}
predictions.npz      per-example predictions (clean and per corruption x severity) + labels
status.json          {"status": "running" | "complete" | "failed", ...}; later stages trust only
                     ``complete``; a failed run records the epoch, step and reason
.lock                the run's lock file (see below); empty unless a writer holds it or was killed
===================  ==========================================================================

**Lock.** Everything that writes a run directory (train, resume, evaluate, the pipeline's train and
evaluate stages) holds :func:`run_lock` on it: an OS-level ``fcntl.flock`` on ``<run_dir>/.lock``
that the kernel releases when the process ends, however it ends (``kill -9`` included), so a killed
writer never blocks the next one. A second writer gets :class:`RunBusyError` ("run X is being
written by PID N on host H since T") and changes nothing. The holder's PID, host and start time are
written into the lock file while it is held and cleared on release. The lock is re-entrant within
one process (``train`` holds it while it calls ``evaluate_run``). When a writer takes the lock it
removes the run's stale ``.*.tmp`` files (left by a writer killed in the middle of an atomic write).

**Readers.** :func:`read_status`, :func:`load_torch` and :func:`load_npz` (and
:func:`harness.io.read_json`) turn an empty, truncated or unparsable file into a
:class:`~harness.io.FileFormatError` naming the path, what was expected and how to recover.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import pickle
import shutil
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.io import atomic_write_bytes, atomic_write_text, bad_file, read_json, tmp_files

__all__ = [
    "STATUS_FILE",
    "LOCK_FILE",
    "STATUSES",
    "RESULT_FILES",
    "write_status",
    "read_status",
    "write_json",
    "save_torch",
    "save_npz",
    "load_torch",
    "load_npz",
    "is_complete",
    "run_lock",
    "RunBusyError",
    "lock_holder",
    "clear_run_dir",
    "remove_stale_tmp",
    "check_run_dir_path",
    "remove_run_dir",
    "read_metrics",
]

STATUS_FILE = "status.json"
LOCK_FILE = ".lock"
STATUSES = ("running", "complete", "failed")
#: files that hold a run's results: a directory without any of them holds nothing worth keeping
RESULT_FILES = ("checkpoint.pt", "model.pt", "metrics.json", "predictions.npz")
_DELETE_HINT = "delete the run directory {run_dir} and run it again"


class RunBusyError(RuntimeError):
    """Another process holds the run directory's lock (the message names the run, PID, host and start)."""


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_status(run_dir: Path, status: str, **fields: Any) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    write_json(Path(run_dir) / STATUS_FILE, {"status": status, **fields})


def read_status(run_dir: str | Path) -> dict:
    """The run's ``status.json`` (``{"status": "missing"}`` when there is none). An unreadable file or
    one without a known ``status`` raises :class:`~harness.io.FileFormatError` naming it."""
    path = Path(run_dir) / STATUS_FILE
    if not path.exists():
        return {"status": "missing"}
    expected = f"a run status (JSON object with \"status\" one of {list(STATUSES)})"
    hint = (f"the run's state is unknown: if it holds a checkpoint, rerun with --resume (rewrites the status), "
            f"else {_DELETE_HINT.format(run_dir=Path(run_dir))}")
    st = read_json(path, expected, hint=hint)
    if st.get("status") not in STATUSES:
        raise bad_file(path, expected, f"its status is {st.get('status')!r}", hint)
    return st


def is_complete(run_dir: str | Path) -> bool:
    return read_status(run_dir).get("status") == "complete"


def save_torch(path: Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


#: what goes wrong when torch/numpy read a truncated, random or empty file
_READ_ERRORS = (OSError, EOFError, RuntimeError, ValueError, KeyError, IndexError, TypeError, AttributeError,
                pickle.UnpicklingError, zipfile.BadZipFile, UnicodeDecodeError)


def load_torch(path: str | Path, expected: str, *, weights_only: bool = True, keys: tuple[str, ...] = (),
               hint: str | None = None) -> Any:
    """``torch.load(path)`` on the CPU; a missing, empty, truncated or foreign file (or a dict without
    ``keys``) raises :class:`~harness.io.FileFormatError` naming ``path``, ``expected`` and ``hint``."""
    path = Path(path)
    if not path.is_file():
        raise bad_file(path, expected, "it is a directory" if path.is_dir() else "the file does not exist", hint)
    if path.stat().st_size == 0:
        raise bad_file(path, expected, "the file is empty", hint)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=weights_only)
    except _READ_ERRORS as exc:
        raise bad_file(path, expected, f"it cannot be read: truncated or corrupt ({type(exc).__name__}: "
                                       f"{str(exc).splitlines()[0] if str(exc) else ''})", hint) from None
    if keys:
        missing = [k for k in keys if not isinstance(obj, dict) or k not in obj]
        if missing:
            raise bad_file(path, expected, f"it lacks {missing}", hint)
    return obj


def load_npz(path: str | Path, expected: str, *, keys: tuple[str, ...] = (), hint: str | None = None
             ) -> dict[str, np.ndarray]:
    """Every array of the npz file ``path`` (read fully, no pickles); a missing, empty, truncated or
    foreign file, or one without ``keys``, raises :class:`~harness.io.FileFormatError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise bad_file(path, expected, "it is a directory" if path.is_dir() else "the file does not exist", hint)
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise ValueError("a plain .npy array, not an npz archive")
            arrays = {k: z[k] for k in z.files}
    except _READ_ERRORS as exc:
        raise bad_file(path, expected, f"it cannot be read: truncated or corrupt ({type(exc).__name__}: {exc})",
                       hint) from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise bad_file(path, expected, f"it lacks the arrays {missing}", hint)
    return arrays


# ------------------------------------------------------------------------------------------ the lock
_HELD: dict[str, list] = {}  # realpath of the run directory -> [fd, depth] for locks this process holds
_HELD_GUARD = threading.Lock()


def check_run_dir_path(run_dir: str | Path) -> Path:
    """``run_dir`` as a Path; an existing non-directory (or a non-directory parent) is a ``ValueError``."""
    run_dir = Path(run_dir)
    for p in (run_dir, *run_dir.parents):
        if p.exists() and not p.is_dir():
            where = "is" if p == run_dir else f"lies inside {p}, which is"
            raise ValueError(f"run directory {run_dir} {where} an existing file, not a directory; "
                             "choose another --out")
    return run_dir


def lock_holder(run_dir: str | Path) -> dict | None:
    """The holder recorded in ``<run_dir>/.lock`` (``{pid, host, since, command}``), or None."""
    try:
        text = (Path(run_dir) / LOCK_FILE).read_text()
        info = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _busy(run_dir: Path, fd: int) -> RunBusyError:
    info = None
    for _ in range(20):  # the holder writes its record right after taking the lock
        raw = os.pread(fd, 4096, 0)
        try:
            info = json.loads(raw) if raw.strip() else None
        except ValueError:
            info = None
        if isinstance(info, dict):
            break
        time.sleep(0.01)
    if isinstance(info, dict):
        who = (f"PID {info.get('pid', '?')} on host {info.get('host', '?')} (since {info.get('since', '?')}, "
               f"{info.get('command', '?')})")
    else:
        who = "another process (PID not recorded yet)"
    return RunBusyError(f"run {run_dir} is being written by {who}; wait for it to finish or stop that process "
                        f"(the lock on {run_dir / LOCK_FILE} is released as soon as it exits)")


def remove_stale_tmp(run_dir: str | Path) -> list[Path]:
    """Remove the ``.*.tmp`` files of killed atomic writes in ``run_dir`` (call under its lock)."""
    stale = tmp_files(run_dir)
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def clear_run_dir(run_dir: str | Path) -> None:
    """Remove everything in ``run_dir`` except its lock file (call under :func:`run_lock`)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    for p in run_dir.iterdir():
        if p.name == LOCK_FILE:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def remove_run_dir(run_dir: str | Path, command: str = "softbench") -> None:
    """Delete ``run_dir`` and everything in it, under its lock (a writer holding it: :class:`RunBusyError`)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        if run_dir.exists() or run_dir.is_symlink():
            run_dir.unlink()
        return
    with run_lock(run_dir, command):
        clear_run_dir(run_dir)
        (run_dir / LOCK_FILE).unlink(missing_ok=True)  # still held: late openers fail the inode check
        run_dir.rmdir()


METRICS_EXPECTED = ("evaluation metrics (a JSON object whose 'rows' is a non-empty list of "
                    "{metric, corruption, severity, value})")


def read_metrics(path: str | Path, hint: str | None = None) -> list[dict]:
    """The metric rows of a ``metrics.json``, checked row by row; an unreadable file, no ``rows``, an empty
    list or a malformed row raises :class:`~harness.io.FileFormatError` naming the file and the row.
    Non-finite values are returned as they are (the caller decides what a NaN metric means)."""
    d = read_json(path, METRICS_EXPECTED, hint=hint)
    rows = d.get("rows")
    if not isinstance(rows, list):
        raise bad_file(path, METRICS_EXPECTED, "it has no 'rows' list" if rows is None
                       else f"its 'rows' is a {type(rows).__name__}", hint)
    if not rows:
        raise bad_file(path, METRICS_EXPECTED, "its 'rows' list is empty (no metric was recorded)", hint)
    for i, r in enumerate(rows):
        problem = None
        if not isinstance(r, dict) or set(r) != {"metric", "corruption", "severity", "value"}:
            problem = f"row {i} is {r!r}, not an object with exactly the keys metric, corruption, severity, value"
        elif not isinstance(r["metric"], str) or not r["metric"]:
            problem = f"row {i} has metric {r['metric']!r}, not a metric name"
        elif r["corruption"] is not None and not isinstance(r["corruption"], str):
            problem = f"row {i} has corruption {r['corruption']!r}, not a name or null"
        elif r["severity"] is not None and (isinstance(r["severity"], bool) or not isinstance(r["severity"], int)):
            problem = f"row {i} has severity {r['severity']!r}, not an int or null"
        elif isinstance(r["value"], bool) or not isinstance(r["value"], (int, float)):
            problem = f"row {i} ({r['metric']}) has value {r['value']!r}, not a number"
        if problem:
            raise bad_file(path, METRICS_EXPECTED, problem, hint)
    return rows


@contextlib.contextmanager
def run_lock(run_dir: str | Path, command: str = "softbench") -> Iterator[Path]:
    """Hold the exclusive lock of ``run_dir`` (created if needed) for the ``with`` block.

    Non-blocking: a directory locked by another process raises :class:`RunBusyError` at once. The lock
    is re-entrant within this process. On taking it, stale ``.*.tmp`` files are removed. If the block
    raises and leaves nothing in ``run_dir`` but the lock file, the lock file (if this call created it)
    and the directories this call created are removed again, so a failed start leaves no output behind.
    """
    run_dir = check_run_dir_path(run_dir)
    key = os.path.realpath(run_dir)
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None:
            held[1] += 1
    if held is not None:
        try:
            yield run_dir
        finally:
            with _HELD_GUARD:
                held[1] -= 1
        return
    created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    run_dir.mkdir(parents=True, exist_ok=True)
    lock_path = run_dir / LOCK_FILE
    lock_created = not lock_path.exists()
    try:
        fd, writable = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644), True
    except PermissionError:  # a read-only lock file (e.g. a DVC cache link): flock needs no write access
        fd, writable = os.open(lock_path, os.O_RDONLY), False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(run_dir, fd) from None
        try:  # the file may have been replaced after we opened it (a remover unlinks it under its lock)
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            raise RunBusyError(f"run {run_dir} is being removed or replaced by another process; try again")
    except BaseException:
        os.close(fd)
        raise
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command}
    if writable:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    with _HELD_GUARD:
        _HELD[key] = [fd, 1]
    failed = False
    try:
        remove_stale_tmp(run_dir)
        yield run_dir
    except BaseException:
        failed = True
        raise
    finally:
        with _HELD_GUARD:
            _HELD.pop(key, None)
        try:
            if (failed and lock_created and run_dir.is_dir()
                    and [p.name for p in run_dir.iterdir()] == [LOCK_FILE]):
                lock_path.unlink()  # still held: a process that opened it fails the inode check above
                for p in created:
                    with contextlib.suppress(OSError):
                        p.rmdir()
            elif writable:
                os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
