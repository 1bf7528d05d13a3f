"""Atomic file writes, the one JSON reader, and run provenance (seed, config, versions, git SHA).

Every file the harness reads back (JSON here; checkpoints, models and npz in :mod:`harness.runs`)
goes through a reader that turns a missing, empty, truncated or unparsable file into a
:class:`FileFormatError` naming the path, what was expected and, where there is one, the fix.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from harness.paths import repo_root

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "git_sha", "provenance", "FileFormatError",
           "read_json", "bad_file", "TMP_SUFFIX", "tmp_files"]

#: suffix of :func:`atomic_open`'s temp files (``.<name>.<random>.tmp`` beside the target)
TMP_SUFFIX = ".tmp"


class FileFormatError(ValueError):
    """A file that exists (or should) but cannot be read as what it is meant to be; the message names
    the path, what was expected and how to recover."""

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        super().__init__(message)
        self.path = Path(path)


def bad_file(path: str | os.PathLike, expected: str, problem: str, hint: str | None = None) -> FileFormatError:
    """The :class:`FileFormatError` for ``path``: ``<path>: expected <expected>, but <problem>[; <hint>]``."""
    msg = f"{path}: expected {expected}, but {problem}"
    return FileFormatError(path, f"{msg}; {hint}" if hint else msg)


def read_json(path: str | os.PathLike, expected: str = "a JSON file", *, kind: type | None = dict,
              hint: str | None = None) -> Any:
    """Parse the JSON file ``path``; an absent, empty or invalid file, or a top-level value that is not
    ``kind`` (None: any), raises :class:`FileFormatError` naming ``path``, ``expected`` and ``hint``."""
    path = Path(path)
    if not path.is_file():
        problem = "it is a directory" if path.is_dir() else "the file does not exist"
        raise bad_file(path, expected, problem, hint)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise bad_file(path, expected, f"it cannot be read ({type(exc).__name__}: {exc})", hint) from None
    if not text.strip():
        raise bad_file(path, expected, "the file is empty", hint)
    try:
        obj = json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError
        raise bad_file(path, expected, f"it is not valid JSON ({exc})", hint) from None
    if kind is not None and not isinstance(obj, kind):
        raise bad_file(path, expected, f"it holds a JSON {type(obj).__name__}, not a {kind.__name__}", hint)
    return obj


def tmp_files(folder: str | os.PathLike) -> list[Path]:
    """Temp files of :func:`atomic_open` left in ``folder`` by a writer that was killed mid-write."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f".*{TMP_SUFFIX}") if p.is_file())


@contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temp file beside ``path`` for binary writing; on success fsync it and rename it to ``path``.

    A crash or exception inside the block leaves either the old file or no file, never a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Atomic UTF-8 text write (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def git_sha(cwd: str | os.PathLike | None = None) -> str | None:
    """Current git commit SHA (with ``-dirty`` if the tree has changes), or None outside git."""
    cwd = cwd or repo_root()
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def provenance(config: dict | None = None, seed: int | None = None) -> dict:
    """Everything needed to trace a result: config, seed, versions, git SHA, host and time."""
    return {
        "config": config or {},
        "seed": seed if seed is not None else (config or {}).get("seed"),
        "git_sha": git_sha(),
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,  # with its build tag, e.g. +cu130
            # the installed distribution's version: naming it needs no torchvision import (1.6 s)
            "torchvision": importlib.metadata.version("torchvision"),
            "numpy": np.__version__,
        },
        "platform": platform.platform(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
