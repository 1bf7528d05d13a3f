"""Paths follow the working copy: the repository root is the directory softbench runs in (or
$SOFTBENCH_ROOT), never the folder the package was installed from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import datasets as D
from harness.paths import code_root, raw_data_dir, repo_root, shared_data_dir

INSTALL_ROOT = Path(D.__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_root_is_the_working_directory_or_softbench_root(tmp_path, monkeypatch):
    monkeypatch.delenv("SOFTBENCH_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert repo_root() == tmp_path.resolve()
    assert shared_data_dir() == tmp_path.resolve().parent / "shared" / "data"
    assert raw_data_dir("cifar10") == tmp_path.resolve() / "datasets" / "raw" / "cifar10"
    assert D.search_paths("cifar10")[:2] == [raw_data_dir("cifar10"), shared_data_dir() / "cifar10"]
    assert code_root() == INSTALL_ROOT  # no harness/ sources here: hash the imported ones

    other = tmp_path / "clone"
    other.mkdir()
    monkeypatch.setenv("SOFTBENCH_ROOT", str(other))
    assert repo_root() == other and raw_data_dir("x") == other / "datasets" / "raw" / "x"
    monkeypatch.setenv("SOFTBENCH_ROOT", str(tmp_path / "missing"))
    with pytest.raises(NotADirectoryError, match="SOFTBENCH_ROOT.*missing.*existing directory"):
        repo_root()


def _clone_with_data(root: Path, fill: int) -> Path:
    raw = root / "datasets" / "raw" / "cifar10"
    raw.mkdir(parents=True)
    for split, n in (("train", 20), ("test", 10)):
        np.savez(raw / f"{split}.npz", images=np.full((n, 32, 32, 3), fill, dtype=np.uint8),
                 labels=np.arange(n) % 10)
    return root


@pytest.mark.skipif(not (BIN / "softbench").is_file(), reason="the softbench command is not installed here")
def test_two_clones_sharing_one_environment_prepare_into_their_own_folders(tmp_path):
    clones = [_clone_with_data(tmp_path / "first", 11), _clone_with_data(tmp_path / "second", 22)]
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTBENCH_ROOT", "SOFTBENCH_DATA", "PYTHONPATH")}
    for clone in clones:  # the same installed softbench, run in each working copy
        proc = subprocess.run([str(BIN / "softbench"), "prepare", "--dataset", "cifar10"], cwd=clone, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    for clone, fill in zip(clones, (11, 22), strict=True):
        out = clone / "datasets" / "prepared" / "cifar10"
        meta = json.loads((out / "meta.json").read_text())
        assert Path(meta["source"]) == (clone / "datasets" / "raw" / "cifar10").resolve()
        with np.load(out / "train.npz") as z:
            assert int(z["images"][0, 0, 0, 0]) == fill
