"""Data on first use: the prepare stage fetches a missing dataset from a (here: local) source, verifies its
checksum and prepares it; a wrong checksum, an unreachable source or `download: never` leave nothing behind
and give the not-found message. No internet: archives are served by a loopback HTTP server started here,
or read from a file path."""

from __future__ import annotations

import hashlib
import http.server
import io
import pickle
import socket
import tarfile
import threading
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets as tvd
import yaml
from PIL import Image

from harness import stages
from harness.config import ConfigError
from harness.corruptions import CORRUPTIONS
from harness.corruptions.official import fetch_official_corruptions, load_official_cifar_c
from harness.datasets import CIFAR10_CLASSES, REMOTES, load_dataset, prepare_dataset
from harness.download import ChecksumMismatchError, DownloadError, Remote, fetch
from harness.grid import load_grid

N_TRAIN, N_TEST = 30, 10  # per batch file x 5 train files


# ------------------------------------------------------------------ fake archives in the official formats


def _batch(n: int, offset: int) -> dict:
    labels = [(offset + i) % 10 for i in range(n)]
    data = np.stack([np.full(3072, (offset + i) % 256, dtype=np.uint8) for i in range(n)])
    return {b"batch_label": b"fake", b"labels": labels, b"data": data,
            b"filenames": [f"img{offset + i}.png".encode() for i in range(n)]}


def write_cifar10_archive(path: Path) -> Path:
    """A small ``cifar-10-python.tar.gz`` in the official layout (``cifar-10-batches-py/...`` pickles)."""
    members = {f"data_batch_{i}": _batch(N_TRAIN, 100 * i) for i in range(1, 6)}
    members["test_batch"] = _batch(N_TEST, 7)
    members["batches.meta"] = {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in members.items():
            data = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_tiny_zip(path: Path) -> Path:
    """A small ``tiny-imagenet-200.zip``: 2 classes, 2 train and 1 val image each."""
    wnids = ["n02", "n01"]
    buf = {}
    for k, w in enumerate(wnids):
        for i in range(2):
            buf[f"tiny-imagenet-200/train/{w}/images/{w}_{i}.JPEG"] = (k, i)
        buf[f"tiny-imagenet-200/val/images/val_{k}.JPEG"] = (k, 9)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("tiny-imagenet-200/wnids.txt", "\n".join(wnids) + "\n")
        z.writestr("tiny-imagenet-200/words.txt", "n01\tfirst\nn02\tsecond\n")
        z.writestr("tiny-imagenet-200/val/val_annotations.txt",
                   "".join(f"val_{k}.JPEG\t{w}\t0\t0\t63\t63\n" for k, w in enumerate(wnids)))
        for name, (k, i) in buf.items():
            png = io.BytesIO()
            Image.fromarray(np.full((64, 64, 3), 40 * k + i, dtype=np.uint8)).save(png, format="JPEG")
            z.writestr(name, png.getvalue())
    return path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ fixtures


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server API)
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server for tmp_path/www; yields (base URL, folder, list of request paths)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = type("H", (_Handler,), {"requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www, handler.requests
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A fresh working copy (the cwd) with no local data anywhere and no source overrides."""
    root = tmp_path / "clone"
    root.mkdir()
    monkeypatch.chdir(root)
    for var in ("SOFTBENCH_ROOT", "SOFTBENCH_DATA"):
        monkeypatch.delenv(var, raising=False)
    for r in REMOTES.values():
        monkeypatch.delenv(f"SOFTBENCH_DATA_URL_{r.key}", raising=False)
        monkeypatch.delenv(f"SOFTBENCH_DATA_MD5_{r.key}", raising=False)
    return root


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _grid_file(path: Path, **changes) -> Path:
    """A one-arm CIFAR-10 grid (what the prepare stage reads from params.yaml)."""
    raw = {"grid": "dl", "dataset": "cifar10", "data_source": None, "seeds": [0], "run_arms": ["baseline"],
           "base": {"model": "smallnet", "epochs": 1},
           "arms": {"baseline": {"factors": {"label_type": "hard", "family": "none"}, "augment": ["flip"]}}}
    raw.update(changes)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# ------------------------------------------------------------------ tests


def test_published_checksums_are_torchvisions():
    for name, cls in (("cifar10", tvd.CIFAR10), ("cifar100", tvd.CIFAR100)):
        r = REMOTES[name]
        assert (r.url, r.filename, r.md5) == (cls.url, cls.filename, cls.tgz_md5)


def test_prepare_stage_fetches_verifies_and_prepares(repo, server, monkeypatch):
    base, www, requests = server
    archive = write_cifar10_archive(www / "cifar-10-python.tar.gz")
    monkeypatch.setenv("SOFTBENCH_DATA_URL_CIFAR10", f"{base}/cifar-10-python.tar.gz")
    monkeypatch.setenv("SOFTBENCH_DATA_MD5_CIFAR10", md5(archive))  # a mirror of another build states its MD5
    stages.run_stage("prepare", params=_grid_file(repo / "params.yaml"), progress=False)

    assert set(requests) == {"/cifar-10-python.tar.gz"}  # (torchvision probes redirects with a GET first)
    raw = repo / "datasets" / "raw" / "cifar10" / "cifar-10-python.tar.gz"
    assert raw.read_bytes() == archive.read_bytes()
    assert _leftovers(repo / "datasets" / "raw") == ["cifar10", "cifar10/cifar-10-python.tar.gz"]  # no temp files
    train, test = load_dataset("cifar10")
    assert (len(train), len(test)) == (5 * N_TRAIN, N_TEST)
    assert train.labels[:3].tolist() == [0, 1, 2] and int(test.images[0, 0, 0, 0]) == 7
    assert (repo / "datasets" / "prepared" / "cifar10" / "meta.json").is_file()

    n = len(requests)
    stages.run_stage("prepare", params=repo / "params.yaml", progress=False)  # prepared: nothing fetched again
    assert len(requests) == n


def test_wrong_checksum_is_refused_and_nothing_is_left(repo, server, monkeypatch):
    base, www, requests = server
    write_cifar10_archive(www / "cifar-10-python.tar.gz")  # not the official bytes: published MD5 differs
    monkeypatch.setenv("SOFTBENCH_DATA_URL_CIFAR10", f"{base}/cifar-10-python.tar.gz")
    with pytest.raises(ChecksumMismatchError, match=r"MD5 [0-9a-f]{32}, expected c58f30108f718f92721af3b95e74349a"):
        prepare_dataset("cifar10", download=True)
    assert set(requests) == {"/cifar-10-python.tar.gz"}
    assert _leftovers(repo) == ["datasets", "datasets/raw"]  # no archive, no temp file, nothing prepared

    monkeypatch.setenv("SOFTBENCH_DATA_MD5_CIFAR10", "0" * 32)  # a stated MD5 is enforced too
    with pytest.raises(ChecksumMismatchError, match="expected 0{32}"):
        prepare_dataset("cifar10", download=True)
    assert _leftovers(repo) == ["datasets", "datasets/raw"]


def test_truncated_download_leaves_nothing(repo, tmp_path):
    class Truncating(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)  # then the connection closes

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Truncating)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        remote = Remote("TEST", f"http://127.0.0.1:{httpd.server_address[1]}/a.tar.gz", "a.tar.gz", "0" * 32)
        with pytest.raises((DownloadError, ChecksumMismatchError)):  # cut off, or refused by its checksum
            fetch(remote, repo / "dl")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert _leftovers(repo) == []


def test_unreachable_source_gives_the_not_found_message(repo, monkeypatch):
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SOFTBENCH_DATA_URL_CIFAR100", f"http://127.0.0.1:{port}/cifar-100-python.tar.gz")
    with pytest.raises(FileNotFoundError) as err:
        prepare_dataset("cifar100", download=True)
    msg = str(err.value)
    assert "raw data not found. Searched:" in msg and str(repo / "datasets" / "raw" / "cifar100") in msg
    assert "cifar-100-python" in msg and "Download tried and failed" in msg and f"127.0.0.1:{port}" in msg
    assert "SOFTBENCH_DATA_URL_CIFAR100" in msg
    assert _leftovers(repo) == ["datasets", "datasets/raw"]


def test_download_never_uses_local_copies_only(repo, server, monkeypatch):
    base, www, requests = server
    write_cifar10_archive(www / "cifar-10-python.tar.gz")
    monkeypatch.setenv("SOFTBENCH_DATA_URL_CIFAR10", f"{base}/cifar-10-python.tar.gz")
    params = _grid_file(repo / "params.yaml", download="never")
    assert load_grid(params).download == "never"
    with pytest.raises(FileNotFoundError, match="raw data not found") as err:
        stages.run_stage("prepare", params=params, progress=False)
    assert "download: auto" in str(err.value) and requests == []
    assert not (repo / "datasets").exists()


@pytest.mark.parametrize("value", ["always", False, None])
def test_download_field_is_validated(tmp_path, value):
    with pytest.raises(ConfigError, match=r"'download' must be one of \['auto', 'never'\]"):
        load_grid(_grid_file(tmp_path / "params.yaml", download=value))
    assert load_grid(_grid_file(tmp_path / "p2.yaml")).download == "auto"  # the default


def test_tinyimagenet_zip_from_a_local_path(repo, tmp_path, monkeypatch):
    archive = write_tiny_zip(tmp_path / "mirror" / "tiny-imagenet-200.zip")
    monkeypatch.setenv("SOFTBENCH_DATA_URL_TINYIMAGENET", str(archive))  # a plain path (file://)
    monkeypatch.setenv("SOFTBENCH_DATA_MD5_TINYIMAGENET", md5(archive))
    train, test = load_dataset("tinyimagenet", download=True)
    assert (len(train), len(test)) == (4, 2) and train.classes == ("first", "second")
    raw = repo / "datasets" / "raw" / "tinyimagenet"
    assert (raw / "tiny-imagenet-200" / "wnids.txt").is_file()
    assert sorted(p.name for p in raw.iterdir()) == ["tiny-imagenet-200"]  # zip removed after unpacking


# ------------------------------------------------------------------ official corruption files


def write_cifar10_c_tar(path: Path) -> Path:
    """A miniature ``CIFAR-10-C.tar``: ``CIFAR-10-C/<corruption>.npy`` (5 severities x 4 images) + labels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for k, name in enumerate((*CORRUPTIONS, "labels")):
            arr = (np.arange(20, dtype=np.uint8) % 10 if name == "labels"
                   else np.full((20, 32, 32, 3), k, dtype=np.uint8))
            buf = io.BytesIO()
            np.save(buf, arr)
            info = tarfile.TarInfo(f"CIFAR-10-C/{name}.npy")
            info.size = buf.tell()
            buf.seek(0)
            tar.addfile(info, buf)
    return path


def test_official_corruption_archive_fetched_verified_unpacked(repo, server, monkeypatch):
    base, www, _ = server
    archive = write_cifar10_c_tar(www / "CIFAR-10-C.tar")
    monkeypatch.setenv("SOFTBENCH_DATA_URL_CIFAR10_C", f"{base}/CIFAR-10-C.tar")
    with pytest.raises(FileNotFoundError, match="download: auto"):  # download=False: local copies only
        fetch_official_corruptions("cifar10")
    # the published size / MD5 / SHA-256 refuse this miniature, and nothing is left
    with pytest.raises(ChecksumMismatchError, match="size .* expected 2918471680"):
        fetch_official_corruptions("cifar10", download=True)
    assert _leftovers(repo) == ["datasets", "datasets/raw"]

    monkeypatch.setenv("SOFTBENCH_DATA_MD5_CIFAR10_C", md5(archive))  # a mirror stating its own MD5
    root = fetch_official_corruptions("cifar10", download=True)
    assert root == repo / "datasets" / "raw" / "cifar10-c"
    assert sorted(p.name for p in root.iterdir()) == ["CIFAR-10-C"]  # unpacked, archive removed
    images, labels = load_official_cifar_c(root, "fog", 2, dataset="cifar10", verify=False)
    assert images.shape == (4, 32, 32, 3) and labels.tolist() == [4, 5, 6, 7]
    assert fetch_official_corruptions("cifar10") == root  # found locally from now on


def test_corruption_source_is_validated(tmp_path):
    ok = load_grid(_grid_file(tmp_path / "a.yaml", evaluation={"corruption_source": "official"}))
    assert ok.corruption_source == "official"
    assert load_grid(_grid_file(tmp_path / "b.yaml")).corruption_source == "generated"
    with pytest.raises(ConfigError, match=r"'evaluation.corruption_source' must be one of \['generated', 'official'\]"):
        load_grid(_grid_file(tmp_path / "c.yaml", evaluation={"corruption_source": "released"}))
    with pytest.raises(ConfigError, match=r"official corruption files are scored for \['cifar10', 'cifar100'\]"):
        load_grid(_grid_file(tmp_path / "d.yaml", dataset="mnist5k", evaluation={"corruption_source": "official"}))
