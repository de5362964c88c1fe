"""Downloads against a loopback HTTP server and file:// URLs: verification, refusal and deletion on a
mismatch, extraction of only the registered members, Zenodo record resolution, and the registry pins."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import tarfile
import threading
import zipfile
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from envs.data import registry
from envs.data.download import COMPLETE_MARKER, default_cache_dir, digest, download, fetch
from envs.data.errors import ChecksumError, DataError
from envs.data.registry import DatasetEntry, Member, RemoteFile, get_entry, parse_zenodo_record

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.readers._common.DataWarning")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A loopback HTTP server over tmp_path/www; yields (root folder, base URL)."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


RATINGS = "".join(f"{u}::{10 + j}::{1 + (u + j) % 5}::{978300000 + 100 * u + j}\n" for u in (1, 2) for j in range(12))
MOVIES = "".join(f"{10 + j}::Movie {j} (1999)::Drama|Comedy\n" for j in range(12))
USERS = "1::F::1::10::48067\n2::M::56::16::70072\n"


def _ml_zip(path: Path) -> bytes:
    """A tiny archive in ML-1M's layout (files written here, not copied from anywhere)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-1m/ratings.dat", RATINGS)
        zf.writestr("ml-1m/movies.dat", MOVIES.encode("latin-1"))
        zf.writestr("ml-1m/users.dat", USERS)
        zf.writestr("ml-1m/README", "tiny")
        zf.writestr("ml-1m/unneeded.bin", b"x" * 1000)
    return path.read_bytes()


def _entry(url: str, data: bytes, **over) -> DatasetEntry:
    def git(b: bytes) -> str:
        return hashlib.sha1(b"blob %d\0" % len(b) + b).hexdigest()

    base = replace(
        get_entry("ml1m"),
        url=url,
        filename="ml-1m.zip",
        size=len(data),
        md5=hashlib.md5(data).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
        members=(
            Member("ml-1m/ratings.dat", len(RATINGS), hashlib.sha256(RATINGS.encode()).hexdigest()),
            Member("ml-1m/movies.dat", git_sha1=git(MOVIES.encode("latin-1"))),
            Member("ml-1m/users.dat"),
            Member("ml-1m/README"),
        ),
    )
    return replace(base, **over)


def test_http_download_verifies_and_extracts_only_members(server, tmp_path):
    root, base = server
    data = _ml_zip(root / "ml-1m.zip")
    entry = _entry(f"{base}/ml-1m.zip", data)
    result = download(entry, tmp_path / "cache", progress=False)
    d = tmp_path / "cache" / "ml1m"
    assert result.directory == d and not result.cached
    assert sorted(p.relative_to(d).as_posix() for p in result.files) == ["ml-1m/README", "ml-1m/movies.dat", "ml-1m/ratings.dat", "ml-1m/users.dat"]
    assert (d / "ml-1m" / "ratings.dat").read_text() == RATINGS
    assert not (d / "ml-1m" / "unneeded.bin").exists()
    assert (d / COMPLETE_MARKER).is_file() and not list(d.rglob("*.part"))
    assert download(entry, tmp_path / "cache", progress=False).cached

    # the cache feeds prepare without --source
    from envs.data.prepare import prepare

    out = prepare("ml1m", tmp_path / "out", cache_dir=tmp_path / "cache", k=4)
    assert json.loads((out / "meta.json").read_text())["sources"]["ml-1m/ratings.dat"]["bytes"] == len(RATINGS)


@pytest.mark.parametrize("field", ["sha256", "md5", "size"])
def test_checksum_or_size_mismatch_is_refused_and_the_file_deleted(server, tmp_path, field):
    root, base = server
    data = _ml_zip(root / "ml-1m.zip")
    wrong = {"sha256": "0" * 64, "md5": "0" * 32, "size": len(data) + 1}[field]
    entry = _entry(f"{base}/ml-1m.zip", data, **{field: wrong})
    with pytest.raises(ChecksumError, match="deleted") as e:
        download(entry, tmp_path / "cache", progress=False)
    assert base in str(e.value)
    d = tmp_path / "cache" / "ml1m"
    assert list(d.iterdir()) == []  # neither the archive nor a partial file nor an extracted member
    with pytest.raises(DataError):  # and prepare does not mistake it for a download
        from envs.data.prepare import prepare

        prepare("ml1m", tmp_path / "out", cache_dir=tmp_path / "cache")


def test_a_corrupted_cached_archive_is_fetched_again(server, tmp_path):
    root, base = server
    data = _ml_zip(root / "ml-1m.zip")
    entry = _entry(f"{base}/ml-1m.zip", data)
    dest = tmp_path / "c" / "ml-1m.zip"
    dest.parent.mkdir()
    dest.write_bytes(b"garbage")
    fetch(RemoteFile(entry.url, "ml-1m.zip", entry.size, entry.md5, entry.sha256), dest, progress=False)
    assert dest.read_bytes() == data


def test_member_checksum_mismatch_is_refused(server, tmp_path):
    root, base = server
    data = _ml_zip(root / "ml-1m.zip")
    entry = _entry(f"{base}/ml-1m.zip", data)
    bad = replace(entry, members=(Member("ml-1m/ratings.dat", sha256="1" * 64), *entry.members[1:]))
    with pytest.raises(ChecksumError, match="ratings.dat") as e:
        download(bad, tmp_path / "cache", progress=False)
    assert "sha256" in str(e.value)
    assert not (tmp_path / "cache" / "ml1m" / "ml-1m" / "ratings.dat").exists()
    missing = replace(entry, members=(*entry.members, Member("ml-1m/nope.dat")))
    with pytest.raises(DataError, match="lacks"):
        download(missing, tmp_path / "cache2", progress=False)


def test_file_url_and_missing_source(tmp_path):
    data = _ml_zip(tmp_path / "mirror.zip")
    entry = _entry((tmp_path / "mirror.zip").as_uri(), data)
    result = download(entry, tmp_path / "cache", progress=False)
    assert (result.directory / "ml-1m" / "users.dat").read_text() == USERS
    with pytest.raises(DataError, match="no such file"):
        download(_entry((tmp_path / "absent.zip").as_uri(), data), tmp_path / "cache3", progress=False)


def test_http_404_is_a_data_error(server, tmp_path):
    _, base = server
    with pytest.raises(DataError, match="download failed"):
        download(_entry(f"{base}/missing.zip", b""), tmp_path / "cache", progress=False)
    assert not list((tmp_path / "cache" / "ml1m").iterdir())


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


def _zenodo_record(base: str, key: str, data: bytes, md5: str | None = None) -> dict:
    """The shape of https://zenodo.org/api/records/ID (InvenioRDM: files[].key/size/checksum/links.self)."""
    return {
        "id": 123,
        "files": [
            {"key": "README.md", "size": 3, "checksum": "md5:" + hashlib.md5(b"abc").hexdigest(), "links": {"self": f"{base}/files/README.md"}},
            {"key": key, "size": len(data), "checksum": "md5:" + (md5 or hashlib.md5(data).hexdigest()), "links": {"self": f"{base}/files/{key}"}},
        ],
    }


def test_zenodo_record_resolution_and_tar_extraction(server, tmp_path):
    root, base = server
    data = _tar_gz({"rl4rs/raw_data/item_info.csv": b"item_id item_vec price location special_item\n", "rl4rs/raw_data/rl4rs_dataset_b_rl.csv": b"h\n", "rl4rs/raw_data/rl4rs_dataset_a_rl.csv": b"a" * 5000})
    (root / "files").mkdir()
    (root / "files" / "rl4rs-dataset.tar.gz").write_bytes(data)
    (root / "api" / "records").mkdir(parents=True)
    (root / "api" / "records" / "123").write_text(json.dumps(_zenodo_record(base, "rl4rs-dataset.tar.gz", data)))
    entry = replace(get_entry("rl4rs"), zenodo_record="123", zenodo_api=f"{base}/api/records/")
    result = download(entry, tmp_path / "cache", progress=False)
    names = sorted(p.name for p in result.files)
    assert names == ["item_info.csv", "rl4rs_dataset_b_rl.csv"]  # dataset A is not extracted
    assert not list(result.directory.rglob("rl4rs_dataset_a_rl.csv"))

    # an archive without a dataset-B log is not a complete download
    only_items = _tar_gz({"raw_data/item_info.csv": b"x\n"})
    (root / "files" / "items-only.tar.gz").write_bytes(only_items)
    (root / "api" / "records" / "124").write_text(json.dumps(_zenodo_record(base, "items-only.tar.gz", only_items)))
    with pytest.raises(DataError, match="rl4rs_dataset_b_rl.csv or rl4rs_dataset_b_sl.csv"):
        download(replace(entry, zenodo_record="124"), tmp_path / "cache3", progress=False)
    assert not (tmp_path / "cache3" / "rl4rs" / COMPLETE_MARKER).exists()

    # the md5 Zenodo lists is checked: a tampered archive is refused and deleted
    (root / "api" / "records" / "123").write_text(json.dumps(_zenodo_record(base, "rl4rs-dataset.tar.gz", data, md5="f" * 32)))
    with pytest.raises(ChecksumError, match="md5"):
        download(entry, tmp_path / "cache2", progress=False)
    assert not (tmp_path / "cache2" / "rl4rs" / "rl4rs-dataset.tar.gz").exists()


def test_zenodo_unreachable_falls_back_to_the_pinned_url_only_when_there_is_one(server, tmp_path):
    root, base = server
    data = _tar_gz({"KuaiRand-Pure/data/user_features_pure.csv": b"u\n"})
    (root / "KuaiRand-Pure.tar.gz").write_bytes(data)
    entry = replace(
        get_entry("kuairand-pure"),
        url=f"{base}/KuaiRand-Pure.tar.gz",
        md5=hashlib.md5(data).hexdigest(),
        zenodo_api=f"{base}/no-api/",
        members=(Member("KuaiRand-Pure/data/user_features_pure.csv", 2),),
    )
    assert [p.name for p in download(entry, tmp_path / "c", progress=False).files] == ["user_features_pure.csv"]
    with pytest.raises(DataError, match="cannot resolve Zenodo record"):
        download(replace(get_entry("rl4rs"), zenodo_api=f"{base}/no-api/"), tmp_path / "c2", progress=False)


def test_parse_zenodo_record_shapes():
    entry = get_entry("kuairand-1k")
    legacy = {"files": [{"key": "KuaiRand-1K.tar.gz", "size": 10, "checksum": "md5:" + "a" * 32, "links": {"self": "https://x/api/files/b/KuaiRand-1K.tar.gz"}}]}
    rdm = {"files": {"entries": {"KuaiRand-1K.tar.gz": {"key": "KuaiRand-1K.tar.gz", "size": 10, "checksum": "md5:" + "a" * 32, "links": {"content": "https://x/c"}}}}}
    assert parse_zenodo_record(entry, legacy)[0].url == "https://x/api/files/b/KuaiRand-1K.tar.gz"
    assert parse_zenodo_record(entry, rdm)[0].md5 == "a" * 32
    with pytest.raises(DataError, match="no file"):
        parse_zenodo_record(entry, {"files": [{"key": "other.tar.gz", "links": {"self": "u"}}]})
    rl = get_entry("rl4rs")
    two = {"files": [{"key": "a.tar.gz", "links": {"self": "u"}}, {"key": "b.zip", "links": {"self": "v"}}]}
    with pytest.raises(DataError, match="cannot tell"):
        parse_zenodo_record(rl, two)
    loose = {"files": [{"key": "item_info.csv", "links": {"self": "u"}}, {"key": "rl4rs_dataset_b_rl.csv", "links": {"self": "v"}}]}
    assert [f.filename for f in parse_zenodo_record(rl, loose)] == ["item_info.csv", "rl4rs_dataset_b_rl.csv"]


def test_registry_entries_and_cache_dir(monkeypatch, tmp_path):
    for name in ("ml1m", "ml100k", "ml-latest-small", "kuairand-1k", "kuairand-pure", "rl4rs", "synthetic"):
        e = get_entry(name)
        assert e.licence and isinstance(e.redistributable, bool)
        if name != "synthetic":
            assert e.downloadable and e.members and e.expected
    assert get_entry("ML-1M").name == "ml1m" and get_entry("kuairand").name == "kuairand-1k"
    assert not get_entry("ml1m").redistributable and get_entry("kuairand-1k").redistributable
    with pytest.raises(DataError, match="unknown dataset"):
        get_entry("netflix")
    monkeypatch.delenv("HAC_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "hac-rllib"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "hac-rllib"


def test_registry_pins_match_the_official_files_at_hand(shared_data):
    """Member pins checked against the real official copies in ../shared/data."""
    where = {
        "ml1m": shared_data / "ml1m-sample",  # ratings.dat there is a sample: its pin cannot match
        "ml100k": shared_data / "ml100k",
        "ml-latest-small": shared_data / "ml-latest-small",
        "kuairand-1k": shared_data / "kuairand",
        "kuairand-pure": shared_data / "kuairand",
    }
    checked = 0
    for name, folder in where.items():
        for m in get_entry(name).members:
            path = folder / m.path.rsplit("/", 1)[-1]
            if not path.is_file() or (name == "ml1m" and path.name == "ratings.dat"):
                continue
            d = digest(path)
            assert m.size in (None, d.size), m.path
            assert m.sha256 in (None, d.sha256), m.path
            assert m.git_sha1 in (None, d.git_sha1), m.path
            checked += 1
    assert checked >= 15


def test_download_command_via_cli(server, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from hac_rllib.cli import app

    root, base = server
    data = _ml_zip(root / "ml-1m.zip")
    monkeypatch.setitem(registry.REGISTRY, "ml1m", _entry(f"{base}/ml-1m.zip", data))
    result = CliRunner().invoke(app, ["data", "download", "ml1m", "--cache-dir", str(tmp_path / "c"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "downloaded and verified" in result.output and "ml-1m/ratings.dat" in result.output
