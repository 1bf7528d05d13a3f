"""Fetching data archives on first use: download with a progress bar, verify, place atomically.

Downloads go through torchvision's downloader (``torchvision.datasets.utils.download_url``: redirects,
a tqdm progress bar; a ``file://`` source is copied with a tqdm bar) into a temporary folder next to the destination; the file is checked against its
published checksum (MD5 with torchvision's ``calculate_md5``, plus size and SHA-256 where known) and
only then renamed into place. A failed or interrupted download, or a checksum mismatch, leaves nothing
behind. Archives that must be unpacked are extracted with torchvision's ``extract_archive`` into a
temporary folder and their top-level folder is renamed into place once complete.

Overriding the source (mirrors, air-gapped machines, tests)
-----------------------------------------------------------
Every archive has a key (``CIFAR10``, ``CIFAR100``, ``TINYIMAGENET``, ``CIFAR10_C``, ``CIFAR100_C``,
``TINYIMAGENET_C``, ``TINYIMAGENET_C_EXTRA``):

``SOFTBENCH_DATA_URL_<KEY>``
    URL of the archive to use instead of the official one: ``https://...``, ``http://...``,
    ``file:///path/archive`` or a plain local path. The published checksum still applies.
``SOFTBENCH_DATA_MD5_<KEY>``
    The expected MD5 of that archive, for a mirror that serves a different build of the data (then the
    published size and SHA-256 are not checked). Without it, only the official bytes are accepted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlparse

from tqdm.auto import tqdm

__all__ = [
    "URL_ENV",
    "MD5_ENV",
    "ChecksumMismatchError",
    "DownloadError",
    "Remote",
    "fetch",
    "fetch_and_extract",
    "verify_file",
]

URL_ENV = "SOFTBENCH_DATA_URL_{key}"
MD5_ENV = "SOFTBENCH_DATA_MD5_{key}"


# torchvision (~1.6 s) and urllib.request are imported only when something is downloaded: every
# pipeline stage imports this module (through harness.datasets and the grid check), few download.
def _tv_utils():
    """``torchvision.datasets.utils`` (the downloader, ``calculate_md5``, ``extract_archive``)."""
    import torchvision.datasets.utils as utils

    return utils


class ChecksumMismatchError(ValueError):
    """A file's size or checksum differs from the published one."""


class DownloadError(RuntimeError):
    """The source could not be reached or read (network down, HTTP error, missing local file)."""


@dataclass(frozen=True)
class Remote:
    """One downloadable archive: where it is published and how to recognise it."""

    key: str  # suffix of the override variables, e.g. "CIFAR10"
    url: str
    filename: str
    md5: str
    size: int | None = None
    sha256: str | None = None

    def resolved(self) -> Remote:
        """This archive with the ``SOFTBENCH_DATA_URL_<KEY>`` / ``SOFTBENCH_DATA_MD5_<KEY>`` overrides applied."""
        out = self
        url = os.environ.get(URL_ENV.format(key=self.key))
        if url:
            if not urlparse(url).scheme or len(urlparse(url).scheme) == 1:  # a plain (or Windows) path
                url = Path(url).expanduser().absolute().as_uri()
            out = replace(out, url=url)
        md5 = os.environ.get(MD5_ENV.format(key=self.key))
        if md5:
            md5 = md5.strip().lower()
            if len(md5) != 32 or any(c not in "0123456789abcdef" for c in md5):
                raise ValueError(f"${MD5_ENV.format(key=self.key)} = {md5!r} must be an MD5 hex digest "
                                 "(32 hex characters)")
            out = replace(out, md5=md5, size=None, sha256=None)
        return out

    def override_names(self) -> str:
        """The override variables, for messages."""
        return f"${URL_ENV.format(key=self.key)} / ${MD5_ENV.format(key=self.key)}"


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 23), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: str | os.PathLike, remote: Remote) -> None:
    """Raise :class:`ChecksumMismatchError` unless ``path`` has ``remote``'s size, MD5 and SHA-256 (where known)."""
    path = Path(path)
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        raise ChecksumMismatchError(f"{remote.filename} from {remote.url}: size {size} bytes, expected "
                                    f"{remote.size}; refused")
    got = _tv_utils().calculate_md5(path)
    if got != remote.md5:
        raise ChecksumMismatchError(f"{remote.filename} from {remote.url}: MD5 {got}, expected {remote.md5}; "
                                    f"refused (a corrupt or truncated download, or not the official file; a mirror "
                                    f"with another build must state its MD5 in ${MD5_ENV.format(key=remote.key)})")
    if remote.sha256 is not None and _digest(path, "sha256") != remote.sha256:
        raise ChecksumMismatchError(f"{remote.filename} from {remote.url}: SHA-256 differs from {remote.sha256}; "
                                    "refused")


def _copy_local(src: Path, dst: Path) -> None:
    """Copy a ``file://`` source with a progress bar (torchvision's downloader handles only network URLs)."""
    with open(src, "rb") as fin, open(dst, "wb") as fout, tqdm(total=src.stat().st_size, unit="B",
                                                                unit_scale=True, desc=src.name) as bar:
        for block in iter(lambda: fin.read(1 << 22), b""):
            fout.write(block)
            bar.update(len(block))


def fetch(remote: Remote, dest_dir: str | os.PathLike) -> Path:
    """``dest_dir/<filename>``, downloaded (with a progress bar) and verified unless already there and valid.

    Raises :class:`DownloadError` when the source cannot be reached and :class:`ChecksumMismatchError`
    when the download is not the expected file; in both cases nothing is left in ``dest_dir``.
    Overrides from the environment are applied (see the module docstring).
    """
    remote = remote.resolved()
    dest_dir = Path(dest_dir)
    dest = dest_dir / remote.filename
    if dest.is_file():
        try:
            verify_file(dest, remote)
            return dest
        except ChecksumMismatchError:
            pass  # not the expected file: download it again (replaced only once the new one is verified)
    created = not dest_dir.exists()
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{remote.filename}.", suffix=".part", dir=dest_dir))
    try:
        part = tmp / remote.filename
        try:
            if urlparse(remote.url).scheme == "file":
                _copy_local(Path(unquote(urlparse(remote.url).path)), part)
            else:
                _tv_utils().download_url(remote.url, str(tmp), filename=remote.filename, md5=None)
        except Exception as exc:  # URLError, HTTPError, HTTPException, OSError, too many redirects, ...
            raise DownloadError(f"cannot download {remote.url} ({type(exc).__name__}: {exc})") from None
        if not part.is_file():
            raise DownloadError(f"cannot download {remote.url} (nothing was received)")
        verify_file(part, remote)
        os.chmod(part, 0o644)
        os.replace(part, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and not any(dest_dir.iterdir()):
            dest_dir.rmdir()  # leave no trace of a failed first download
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    return dest


def fetch_and_extract(remote: Remote, dest_dir: str | os.PathLike, folder: str, *,
                      keep_archive: bool = False, merge: bool = False) -> Path:
    """Fetch ``remote`` (see :func:`fetch`), unpack it and return ``dest_dir/folder``, the archive's top folder.

    The archive is extracted into a temporary folder inside ``dest_dir``; ``folder`` is moved into place
    (replacing an older copy; with ``merge``, its entries are moved into an existing ``folder`` instead, for a
    release split over several archives) only once extraction is complete. The verified archive is deleted
    afterwards unless ``keep_archive``. Raises ``ValueError`` when the archive does not hold ``folder``.
    """
    dest_dir = Path(dest_dir)
    archive = fetch(remote, dest_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder}.", suffix=".extract", dir=dest_dir))
    target = dest_dir / folder
    try:
        _tv_utils().extract_archive(str(archive), str(tmp))
        unpacked = tmp / folder
        if not unpacked.is_dir():
            found = sorted(p.name for p in tmp.iterdir())[:10]
            raise ValueError(f"{archive}: expected a top-level folder {folder}/ in the archive, found {found}")
        if merge and target.is_dir():
            for entry in sorted(unpacked.iterdir()):
                if (target / entry.name).is_dir():
                    shutil.rmtree(target / entry.name)
                os.replace(entry, target / entry.name)
        else:
            if target.exists():
                shutil.rmtree(target)
            os.replace(unpacked, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not keep_archive:
        archive.unlink()
    return target
