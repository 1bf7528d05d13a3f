"""Where the working copy is: the one place that decides the repository root.

The repository root is the directory that ``dvc repro`` / ``softbench`` runs in (DVC runs every stage
in the folder of ``dvc.yaml``), or ``$SOFTBENCH_ROOT`` when set -- never the folder the package was
installed from. Two clones sharing one virtual environment therefore read and write their own
``datasets/``, ``runs/`` and ``reports/``, and each looks for ``../shared/data`` beside itself.

Everything is computed when called (not at import), so a process that changes its working directory
sees the new root.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ROOT_ENV", "code_root", "raw_data_dir", "repo_root", "shared_data_dir"]

#: Environment variable naming the working copy's root (default: the current working directory).
ROOT_ENV = "SOFTBENCH_ROOT"

#: The folder holding the imported ``harness`` package (only a fallback for :func:`code_root`).
_PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def repo_root() -> Path:
    """The working copy's root: ``$SOFTBENCH_ROOT`` if set, else the current working directory (absolute)."""
    env = os.environ.get(ROOT_ENV)
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise NotADirectoryError(
                f"${ROOT_ENV} = {env!r} must name an existing directory (the working copy's root), "
                "or be unset (the root is then the current working directory)"
            )
        return Path(os.path.abspath(root))
    return Path(os.path.abspath(os.getcwd()))


def shared_data_dir() -> Path:
    """``<repo root>/../shared/data``: the shared data folder beside the working copy."""
    return repo_root().parent / "shared" / "data"


def raw_data_dir(name: str) -> Path:
    """``<repo root>/datasets/raw/<name>``: where a dataset's raw files go (and downloads land)."""
    return repo_root() / "datasets" / "raw" / name


def code_root(rel_paths: tuple[str, ...] = ("harness",)) -> Path:
    """The root whose sources a code hash covers: the working copy when it holds ``rel_paths`` (the DVC
    stage deps), else the folder the ``harness`` package was imported from (e.g. a stage run by hand
    outside a checkout)."""
    root = repo_root()
    if all((root / p).exists() for p in rel_paths):
        return root
    return _PACKAGE_PARENT
