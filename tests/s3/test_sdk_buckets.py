"""The official SDK's bucket flow, unchanged, against calor's gateway (found via GET /settings,
signed with the user's e-mail from GET /info and their token)."""

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from qarnot.connection import Connection

from tests.conftest import Server
from tests.s3.conftest import unique_bucket


@pytest.fixture
def conn(server: Server) -> Iterator[Connection]:
    connection = Connection(client_token=server.new_user(), cluster_url=server.url)
    yield connection
    connection._http.close()


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_sdk_bucket_flow(conn: Connection, tmp_path: Path) -> None:
    name = unique_bucket("sdk")
    bucket = conn.create_bucket(name)
    assert name in [b.uuid for b in conn.buckets()]
    assert conn.create_bucket(name).uuid == name  # again: no error (contract §9.2)

    src = tmp_path / "src"
    (src / "sub" / "deep").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.bin").write_bytes(os.urandom(100_000))
    (src / "sub" / "deep" / "c.txt").write_text("gamma\n")
    big = src / "big.bin"
    big.write_bytes(os.urandom(9 * 1024 * 1024))  # above 8 MiB: a multipart upload
    bucket.add_file(str(src / "a.txt"), "single/a.txt")
    bucket.add_string("hello", "greeting.txt")
    bucket.add_directory(str(src), "tree/")
    names = sorted(f.key for f in bucket.list_files())
    assert names == sorted(["single/a.txt", "greeting.txt"] + [f"tree/{k}" for k in _tree(src)])
    assert [f.key for f in bucket.directory("tree/sub/")] == [
        "tree/sub/b.bin",
        "tree/sub/deep/c.txt",
    ]

    out = tmp_path / "got.txt"
    bucket.get_file("single/a.txt", str(out))
    assert out.read_text() == "alpha\n"
    everything = tmp_path / "all"
    bucket.get_all_files(str(everything))
    assert _tree(everything / "tree") == _tree(src)

    # sync_directory compares local MD5s (multipart style above 8 MiB) with the ETags
    synced = conn.create_bucket(unique_bucket("sync"))
    synced.sync_directory(str(src))
    (src / "a.txt").write_text("changed\n")
    (src / "sub" / "deep" / "c.txt").unlink()
    synced.sync_directory(str(src))
    assert sorted(f.key for f in synced.list_files()) == sorted(_tree(src))
    back = tmp_path / "back"
    synced.get_all_files(str(back))
    assert _tree(back) == _tree(src)

    bucket.copy_file("greeting.txt", "copy.txt")
    bucket.delete_file("greeting.txt")
    keys = [f.key for f in bucket.list_files()]
    assert "copy.txt" in keys and "greeting.txt" not in keys

    bucket.delete()
    synced.delete()
    assert name not in [b.uuid for b in conn.buckets()]
