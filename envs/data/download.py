"""Download a registered dataset into the cache, verify it, and extract only the members it needs.

* Transport and progress: pooch's ``HTTPDownloader`` (requests, streaming) with a rich progress bar;
  ``file://`` URLs are copied, which serves offline mirrors and tests.
* Every download goes to a temporary name beside its target; size, md5 and sha256 (whichever are
  known) are checked in one pass, and only a file that passes is renamed into place. A mismatch
  deletes the file and raises :class:`ChecksumError`. A cached file is re-verified, not trusted.
* Extraction streams the archive once and writes only the registered members (their size, sha256 or
  git blob SHA-1 checked the same way), so e.g. KuaiRand-1K's 3.1 GB statistics table never hits disk.
* Layout: ``CACHE/NAME/ARCHIVE`` and ``CACHE/NAME/<member paths>``, plus ``CACHE/NAME/.complete.json``
  once everything passed; ``prepare`` reads from ``CACHE/NAME`` when no ``--source`` is given.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Iterator
from urllib.parse import unquote, urlparse

from envs.data.errors import ChecksumError, DataError
from envs.data.registry import DatasetEntry, Member, RemoteFile, get_entry, resolve_remote

COMPLETE_MARKER = ".complete.json"
CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """``$HAC_CACHE_DIR``, else ``$XDG_CACHE_HOME/hac-rllib``, else ``~/.cache/hac-rllib``."""
    if os.environ.get("HAC_CACHE_DIR"):
        return Path(os.environ["HAC_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "hac-rllib"


def dataset_cache(name: str, cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()).expanduser() / get_entry(name).name


# --- hashing and verification ----------------------------------------------------------------------


@dataclass
class Digest:
    size: int
    md5: str
    sha256: str
    git_sha1: str


def digest(path: Path) -> Digest:
    """Size, md5, sha256 and git blob SHA-1 of a file in one read."""
    size = path.stat().st_size
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    git = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
            git.update(chunk)
    return Digest(size, md5.hexdigest(), sha256.hexdigest(), git.hexdigest())


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, *, size: int | None = None, md5: str | None = None, sha256: str | None = None, git_sha1: str | None = None, shown: str | None = None) -> Digest:
    """Check what is known; on a mismatch delete ``path`` and raise :class:`ChecksumError`."""
    d = digest(path)
    problems = []
    if size is not None and d.size != size:
        problems.append(f"size {d.size:,} bytes, expected {size:,}")
    for label, want, got in (("md5", md5, d.md5), ("sha256", sha256, d.sha256), ("git blob sha1", git_sha1, d.git_sha1)):
        if want and got != want.lower():
            problems.append(f"{label} {got}, expected {want.lower()}")
    if problems:
        path.unlink(missing_ok=True)
        raise ChecksumError("; ".join(problems) + " -- the file was deleted; download it again", path=shown or path)
    return d


# --- fetching ----------------------------------------------------------------------------------------


class RichBar:
    """The progress-bar object pooch's ``HTTPDownloader`` drives (``total``, ``update``, ``reset``, ``close``)."""

    def __init__(self, description: str):
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
            transient=False,
        )  # fmt: skip
        self._task = self._progress.add_task(description, total=None)
        self._progress.start()
        self._total = None

    @property
    def total(self):
        return self._total

    @total.setter
    def total(self, value):
        self._total = value or None
        self._progress.update(self._task, total=self._total)

    def update(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def reset(self) -> None:
        self._progress.reset(self._task, total=self._total)

    def close(self) -> None:
        self._progress.stop()


def _download_to(url: str, tmp: Path, *, progress: bool, label: str) -> None:
    parsed = urlparse(url)
    bar = RichBar(label) if progress else False
    try:
        if parsed.scheme == "file":
            src = Path(unquote(parsed.path))
            if not src.is_file():
                raise DataError("no such file", path=src)
            if bar:
                bar.total = src.stat().st_size
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                while chunk := fin.read(CHUNK):
                    fout.write(chunk)
                    if bar:
                        bar.update(len(chunk))
            return
        if parsed.scheme not in ("http", "https"):
            raise DataError(f"unsupported URL scheme {parsed.scheme!r}: {url}")
        import pooch
        import requests

        try:
            pooch.HTTPDownloader(progressbar=bar, chunk_size=CHUNK, timeout=60)(url, str(tmp), None)
        except requests.RequestException as e:
            raise DataError(f"download failed: {e}", path=url) from None
    finally:
        if bar:
            bar.close()


def fetch(remote: RemoteFile, dest: Path, *, progress: bool = True) -> Path:
    """``remote`` -> ``dest``, verified. An existing ``dest`` that verifies is kept (the cache)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    checks = dict(size=remote.size, md5=remote.md5, sha256=remote.sha256)
    if dest.is_file():
        try:
            verify(dest, **checks)
            return dest
        except ChecksumError:
            pass  # a stale or corrupt cached copy was deleted; fetch it again
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        _download_to(remote.url, tmp, progress=progress, label=dest.name)
        verify(tmp, **checks, shown=f"{remote.url} (downloaded to {tmp})")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


# --- extraction --------------------------------------------------------------------------------------


def _member_for(name: str, members: tuple[Member, ...]) -> Member | None:
    parts = PurePosixPath(name).parts
    for m in members:
        want = PurePosixPath(m.path).parts
        if len(parts) >= len(want) and parts[-len(want) :] == want:
            return m
    return None


def _archive_entries(archive: Path) -> Iterator[tuple[str, IO[bytes]]]:
    """(name, readable) for every regular file of a zip or tar archive, streaming through it once."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    with zf.open(info) as f:
                        yield info.filename, f
        return
    try:
        with tarfile.open(archive, mode="r|*") as tf:
            for info in tf:
                if info.isfile():
                    f = tf.extractfile(info)
                    if f is not None:
                        yield info.name, f
    except tarfile.TarError as e:
        raise DataError(f"not a readable zip or tar archive ({e})", path=archive) from None


def extract_members(archive: Path, dest_dir: Path, members: tuple[Member, ...]) -> list[Path]:
    """Write the registered members of ``archive`` under ``dest_dir`` (archive-relative paths), verified."""
    written: dict[str, Path] = {}
    for name, stream in _archive_entries(archive):
        member = _member_for(name, members)
        if member is None or member.path in written:
            continue
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise DataError(f"unsafe member path {name!r} in the archive", path=archive)
        target = dest_dir.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(stream, out, CHUNK)
            verify(tmp, size=member.size, sha256=member.sha256, git_sha1=member.git_sha1, shown=f"{archive}!{name}")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        written[member.path] = target
    missing = [m.path for m in members if m.required and m.path not in written]
    if missing:
        raise DataError(f"archive lacks the registered member(s) {missing}", path=archive)
    if members and not written:
        raise DataError(f"archive holds none of {[m.path for m in members]}", path=archive)
    return list(written.values())


# --- the whole download ------------------------------------------------------------------------------


@dataclass
class DownloadResult:
    directory: Path  # pass as --source, or let prepare find it in the cache
    files: list[Path]
    cached: bool  # everything was already there and verified


def is_downloaded(name: str, cache_dir: str | Path | None = None) -> bool:
    return (dataset_cache(name, cache_dir) / COMPLETE_MARKER).is_file()


def download(name: str | DatasetEntry, cache_dir: str | Path | None = None, *, progress: bool = True) -> DownloadResult:
    """Fetch, verify and extract one registered dataset into ``cache_dir/NAME``."""
    entry = name if isinstance(name, DatasetEntry) else get_entry(name)
    if not entry.downloadable:
        raise DataError(f"dataset {entry.name!r} is not downloaded (use `hac data prepare {entry.name}` directly)")
    directory = Path(cache_dir or default_cache_dir()).expanduser() / entry.name
    marker = directory / COMPLETE_MARKER
    if marker.is_file():
        try:
            done = json.loads(marker.read_text())
            files = [directory / f["path"] for f in done["files"]]
            if all(p.is_file() and p.stat().st_size == f["size"] for p, f in zip(files, done["files"])):
                return DownloadResult(directory, files, cached=True)
        except (json.JSONDecodeError, KeyError, TypeError):
            pass
        marker.unlink(missing_ok=True)

    files: list[Path] = []
    remotes = resolve_remote(entry)
    for remote in remotes:
        path = fetch(remote, directory / remote.filename, progress=progress)
        member = _member_for(remote.filename, entry.members)
        if member is not None:  # the record lists the member file itself
            verify(path, size=member.size, sha256=member.sha256, git_sha1=member.git_sha1)
            files.append(path)
        else:
            files.extend(extract_members(path, directory, entry.members) if entry.members else [path])
    missing = [m.path for m in entry.members if m.required and not any(_member_for(str(f.relative_to(directory).as_posix()), (m,)) for f in files)]
    if entry.require_one_of and not any(_member_for(str(f.relative_to(directory).as_posix()), (Member(p),)) for f in files for p in entry.require_one_of):
        missing.append(" or ".join(entry.require_one_of))
    if missing:
        raise DataError(f"download of {entry.name} lacks {missing}", path=directory)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps({"name": entry.name, "version": entry.version, "files": [{"path": f.relative_to(directory).as_posix(), "size": f.stat().st_size} for f in files]}, indent=2))
    os.replace(tmp, marker)
    return DownloadResult(directory, files, cached=False)

