"""The contract of every blob store (``calor.storage.blobs.BlobStore``), run over each backend:
``FsBlobStore`` on a temporary directory and ``S3BlobStore`` against a real moto server process
on 127.0.0.1. Then a few checks of what each backend does underneath (file layout, multipart
uploads), which the contract cannot see."""

import hashlib
import importlib.util
import os
import random
import select
import signal
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from calor.storage import blobs_fs
from calor.storage.blobs import CHUNK_SIZE, BlobInfo, BlobNotFound, BlobStore
from calor.storage.blobs_fs import FsBlobStore
from calor.storage.blobs_s3 import PART_SIZE, S3BlobStore
from tests.conftest import IN_CI, free_port, wait_for

MiB = 1 << 20
BUCKET = "calor-blobs"


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real moto server process on a free loopback port, stopped by pid afterwards."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        message = "moto[server] is not installed: the S3 blob store cannot be tested"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"moto server exited: {log_path.read_text()}")
        try:
            httpx.get(f"{url}/moto-api/", timeout=1)
        except httpx.TransportError:
            return False
        return True

    try:
        wait_for(answers, timeout=30, message="the moto server to answer")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def s3_client(moto_endpoint: str) -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=16),
    )
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(params=["fs", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "fs":
        return FsBlobStore(tmp_path / "blobs")
    client = request.getfixturevalue("s3_client")
    return S3BlobStore(client, BUCKET, f"t-{uuid.uuid4().hex[:12]}/")  # a bucket of its own


@pytest.fixture
def fs_store(tmp_path: Path) -> FsBlobStore:
    return FsBlobStore(tmp_path / "blobs")


@pytest.fixture
def s3_store(s3_client: Any) -> S3BlobStore:
    return S3BlobStore(s3_client, BUCKET, f"t-{uuid.uuid4().hex[:12]}/")


# -- helpers -----------------------------------------------------------------------------


def new_id() -> str:
    return f"u12/{uuid.uuid4().hex}"


def data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def chunked(content: bytes, size: int = 100_000) -> Iterator[bytes]:
    """Odd-sized chunks, so nothing lines up with a backend's buffers by luck."""
    for i in range(0, len(content), size):
        yield content[i : i + size]


def info_of(content: bytes) -> BlobInfo:
    return BlobInfo(len(content), hashlib.md5(content).hexdigest())


def read(store: BlobStore, blob_id: str, start: int = 0, end: int | None = None) -> bytes:
    chunks = list(store.get(blob_id, start, end))
    assert all(0 < len(c) <= CHUNK_SIZE for c in chunks), [len(c) for c in chunks]
    return b"".join(chunks)


# -- the contract ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [0, 1, 3 * MiB + 5, 20 * MiB], ids=["empty", "1B", "3MiB", "20MiB"]
)
def test_round_trip(store: BlobStore, size: int) -> None:
    content = data(size, seed=size)
    blob_id = new_id()
    assert store.put(blob_id, chunked(content)) == info_of(content)
    assert store.size(blob_id) == size
    assert read(store, blob_id) == content


def test_put_takes_any_chunking(store: BlobStore) -> None:
    content = data(2 * MiB + 3)
    pieces = [b"", content[:1], b"", content[1 : 3 * MiB], content[3 * MiB :], b""]
    blob_id = new_id()
    assert store.put(blob_id, iter(pieces)) == info_of(content)
    assert store.put(new_id(), [content]) == info_of(content)
    assert read(store, blob_id) == content


def test_put_streams(store: BlobStore) -> None:
    chunk = data(MiB)
    total = 6 * PART_SIZE

    def chunks() -> Iterator[bytes]:
        for _ in range(total // MiB):
            yield chunk  # the same object every time: the input itself takes no memory

    tracemalloc.start()
    try:
        info = store.put(new_id(), chunks())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info == BlobInfo(total, hashlib.md5(chunk * (total // MiB)).hexdigest())
    assert peak < 3 * PART_SIZE, peak  # S3 holds a part and what makes it; the disk a chunk


def test_ranged_gets(store: BlobStore) -> None:
    content = data(3 * MiB + 17, seed=1)
    n = len(content)
    blob_id = new_id()
    store.put(blob_id, chunked(content))
    cases = [
        (0, 0),  # first byte
        (n - 1, n - 1),  # last byte
        (n - 1, None),
        (1000, 2_500_000),  # middle, across chunk boundaries
        (MiB, 2 * MiB - 1),  # exactly one chunk's worth
        (5, n + 100),  # the end clamps
        (0, n - 1),
        (7, None),
    ]
    for start, end in cases:
        want = content[start : (n if end is None else end + 1)]
        assert read(store, blob_id, start, end) == want, (start, end)
    assert read(store, blob_id, n) == b""  # starts past the end: nothing
    assert read(store, blob_id, n + 10, n + 20) == b""
    with pytest.raises(ValueError):
        store.get(blob_id, -1)
    with pytest.raises(ValueError):
        store.get(blob_id, 10, 9)


def test_empty_blob_reads_empty_in_any_range(store: BlobStore) -> None:
    blob_id = new_id()
    store.put(blob_id, [])
    assert read(store, blob_id) == b""
    assert read(store, blob_id, 0, 0) == b""
    assert read(store, blob_id, 0, 100) == b""


def test_overwrite_replaces(store: BlobStore) -> None:
    blob_id = new_id()
    store.put(blob_id, chunked(data(3 * MiB, seed=2)))
    new = data(1000, seed=3)
    assert store.put(blob_id, [new]) == info_of(new)
    assert store.size(blob_id) == 1000
    assert read(store, blob_id) == new


def test_missing_blob(store: BlobStore) -> None:
    blob_id = new_id()
    with pytest.raises(BlobNotFound):
        store.get(blob_id)  # eagerly: before anything is iterated
    with pytest.raises(BlobNotFound):
        store.get(blob_id, 5, 10)
    with pytest.raises(BlobNotFound):
        store.size(blob_id)


def test_delete_is_idempotent(store: BlobStore) -> None:
    blob_id, other = new_id(), new_id()
    store.put(blob_id, [b"doomed"])
    store.put(other, [b"kept"])
    store.delete(blob_id)
    with pytest.raises(BlobNotFound):
        store.get(blob_id)
    with pytest.raises(BlobNotFound):
        store.size(blob_id)
    store.delete(blob_id)
    store.delete(new_id())  # never was
    assert read(store, other) == b"kept"


def test_reader_keeps_the_blob_it_opened(store: BlobStore) -> None:
    blob_id = new_id()
    old = data(3 * MiB, seed=4)
    store.put(blob_id, chunked(old))
    reading = store.get(blob_id)
    first = next(reading)
    store.put(blob_id, [b"new"])
    assert first + b"".join(reading) == old
    reading = store.get(blob_id)
    store.delete(blob_id)
    assert b"".join(reading) == b"new"


def test_a_reader_can_stop_early(store: BlobStore) -> None:
    blob_id = new_id()
    store.put(blob_id, chunked(data(3 * MiB)))
    for _ in range(20):  # a leak of files or connections would show
        reading = store.get(blob_id)
        next(reading)
        reading.close()  # type: ignore[attr-defined]
        store.get(blob_id)  # never iterated
    assert store.size(blob_id) == 3 * MiB


def test_concat_small_parts(store: BlobStore) -> None:
    contents = [b"hello ", b"", b"world", b"!", data(70_000, seed=5)]
    parts = [new_id() for _ in contents]
    for part, content in zip(parts, contents, strict=True):
        store.put(part, [content])
    blob_id = new_id()
    whole = b"".join(contents)
    assert store.concat(blob_id, parts) == info_of(whole)
    assert read(store, blob_id) == whole
    assert store.size(blob_id) == len(whole)
    for part, content in zip(parts, contents, strict=True):  # the parts stay
        assert read(store, part) == content


def test_concat_large_parts(store: BlobStore) -> None:
    contents = [data(5 * MiB, seed=6), data(6 * MiB + 1, seed=7), data(1000, seed=8)]
    parts = [new_id() for _ in contents]
    for part, content in zip(parts, contents, strict=True):
        store.put(part, chunked(content))
    blob_id = new_id()
    whole = b"".join(contents)
    assert store.concat(blob_id, parts) == info_of(whole)
    assert read(store, blob_id) == whole
    assert read(store, blob_id, 5 * MiB - 2, 5 * MiB + 1) == whole[5 * MiB - 2 : 5 * MiB + 2]
    assert store.size(parts[0]) == 5 * MiB


def test_concat_edge_cases(store: BlobStore) -> None:
    a, b = new_id(), new_id()
    store.put(a, [b"aaa"])
    store.put(b, [b"bb"])
    copy = new_id()
    assert store.concat(copy, [a]) == info_of(b"aaa")  # a copy
    assert read(store, copy) == b"aaa"
    assert store.concat(copy, [b, b]) == info_of(b"bbbb")  # over an existing blob, a part twice
    assert read(store, copy) == b"bbbb"
    assert store.concat(a, [a, b]) == info_of(b"aaabb")  # into one of its parts
    assert read(store, a) == b"aaabb"
    empty = new_id()
    assert store.concat(empty, []) == info_of(b"")
    assert read(store, empty) == b""


def test_concat_without_md5(store: BlobStore) -> None:
    contents = [data(5 * MiB, seed=9), data(1000, seed=10)]
    parts = [new_id() for _ in contents]
    for part, content in zip(parts, contents, strict=True):
        store.put(part, chunked(content))
    blob_id = new_id()
    whole = b"".join(contents)
    assert store.concat(blob_id, parts, md5=False) == BlobInfo(len(whole), "")
    assert read(store, blob_id) == whole
    with pytest.raises(BlobNotFound):
        store.concat(new_id(), [parts[0], new_id()], md5=False)


def test_concat_of_a_missing_part_makes_nothing(store: BlobStore) -> None:
    present = new_id()
    store.put(present, chunked(data(5 * MiB)))
    blob_id = new_id()
    for parts in ([present, new_id()], [new_id(), present], [new_id()]):
        with pytest.raises(BlobNotFound):
            store.concat(blob_id, parts)
        with pytest.raises(BlobNotFound):
            store.size(blob_id)
    assert store.sweep(0) == 0


INVALID_IDS = [
    "",
    "/abs",
    "/",
    "..",
    "../x",
    "a/../b",
    "a/..",
    ".",
    "a/./b",
    "a//b",
    "a/",
    "a\x00b",
    "a\\b",
    "a\nb",
    "x" * 256,
    "\ud800",
]


@pytest.mark.parametrize("bad", INVALID_IDS, ids=repr)
def test_invalid_ids_are_rejected(store: BlobStore, bad: str) -> None:
    good = new_id()
    store.put(good, [b"x"])
    with pytest.raises(ValueError):
        store.put(bad, [b"x"])
    with pytest.raises(ValueError):
        store.get(bad)
    with pytest.raises(ValueError):
        store.size(bad)
    with pytest.raises(ValueError):
        store.delete(bad)
    with pytest.raises(ValueError):
        store.concat(bad, [good])
    with pytest.raises(ValueError):
        store.concat(new_id(), [good, bad])


def test_unusual_valid_ids_are_distinct_blobs(store: BlobStore) -> None:
    ids = ["a", "a/b", "a%2Fb", "a%252Fb", "b/a", "..a", "a..", ".hidden", "é/ü", "x" * 255]
    ids += ["ab/cd/abcd", "abcd", "ab", "ab/__/ab", "a b", "A", "u1/.tmp", ".tmp"]
    ids += ["abcd/abcd", "abcd%2Fabcd", "abcd%252Fabcd"]  # one fan directory
    for i, blob_id in enumerate(ids):
        store.put(blob_id, [str(i).encode()])
    for i, blob_id in enumerate(ids):
        assert read(store, blob_id) == str(i).encode(), blob_id
    for blob_id in ids:
        store.delete(blob_id)
    assert store.sweep(0) == 0


def test_concurrent_puts_and_gets(store: BlobStore) -> None:
    contents = {new_id(): data(MiB + 1000 * i, seed=i) for i in range(8)}
    shared = new_id()
    store.put(shared, chunked(data(2 * MiB, seed=99)))
    barrier = threading.Barrier(8)

    def work(item: tuple[str, bytes]) -> BlobInfo:
        blob_id, content = item
        barrier.wait(timeout=10)
        info = store.put(blob_id, chunked(content, 64 * 1024))
        assert read(store, shared) == data(2 * MiB, seed=99)
        return info

    with ThreadPoolExecutor(8) as pool:
        infos = list(pool.map(work, contents.items()))
    assert infos == [info_of(c) for c in contents.values()]
    for blob_id, content in contents.items():
        assert read(store, blob_id) == content


def test_concurrent_overwrites_leave_one_whole_blob(store: BlobStore) -> None:
    blob_id = new_id()
    versions = [bytes([i]) * (MiB + 3) for i in range(8)]

    def write(content: bytes) -> None:
        store.put(blob_id, chunked(content, 64 * 1024))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, versions))
    assert read(store, blob_id) in versions


def test_failed_put_leaves_nothing(store: BlobStore) -> None:
    blob_id = new_id()
    old = data(1000, seed=10)
    store.put(blob_id, [old])

    def failing() -> Iterator[bytes]:
        yield from chunked(data(PART_SIZE + 2 * MiB, seed=11), MiB)  # S3: multipart by now
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.put(blob_id, failing())
    with pytest.raises(ConnectionResetError):
        store.put(new_id(), failing())
    assert read(store, blob_id) == old  # untouched
    assert store.sweep(0) == 0  # and nothing left behind to sweep


def test_sweep_of_a_clean_store(store: BlobStore) -> None:
    assert store.sweep(0) == 0
    store.put(new_id(), [b"x"])
    assert store.sweep(0) == 0


WRITER = textwrap.dedent(
    """
    import sys

    kind, blob_id, *where = sys.argv[1:]
    if kind == "fs":
        from pathlib import Path
        from calor.storage.blobs_fs import FsBlobStore
        store = FsBlobStore(Path(where[0]))
    else:
        import boto3
        from botocore.config import Config
        from calor.storage.blobs_s3 import S3BlobStore
        endpoint, bucket, prefix = where
        client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id="testing",
            aws_secret_access_key="testing", region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )
        store = S3BlobStore(client, bucket, prefix)

    def chunks():
        for i in range(9):  # past one S3 part: a multipart upload is under way
            yield bytes([i]) * (1 << 20)
        print("written", flush=True)
        sys.stdin.read()  # until killed

    store.put(blob_id, chunks())
    """
)


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"no line from the writer in {timeout}s")
    return proc.stdout.readline()


def test_killed_writer_leaves_no_blob_and_sweep_removes_its_leftovers(
    store: BlobStore,
) -> None:
    blob_id, fresh_id = new_id(), new_id()
    old = data(1000, seed=12)
    store.put(blob_id, [old])
    if isinstance(store, FsBlobStore):
        kind, where = "fs", [str(store.root)]
    else:
        assert isinstance(store, S3BlobStore)
        kind, where = "s3", [store.client.meta.endpoint_url, store.bucket, store.prefix]
    for target in (blob_id, fresh_id):  # over an existing blob, and a new one
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, kind, target, *where],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert read_line(proc, timeout=30) == b"written\n"
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                assert pipe is not None
                pipe.close()
    assert read(store, blob_id) == old
    assert store.size(blob_id) == len(old)
    with pytest.raises(BlobNotFound):
        store.get(fresh_id)
    if kind == "fs":  # moto dates every multipart upload 2010: test_s3_sweep_age covers S3
        assert store.sweep(3600) == 0  # too recent
    assert store.sweep(0) == 2
    assert store.sweep(0) == 0
    assert read(store, blob_id) == old


# -- the filesystem backend underneath ---------------------------------------------------


def test_fs_concat_without_kernel_copy(
    fs_store: FsBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blobs_fs, "_kernel_copy", False)  # a filesystem without it
    contents = [data(3 * MiB, seed=11), b"", data(10, seed=12)]
    parts = [new_id() for _ in contents]
    for part, content in zip(parts, contents, strict=True):
        fs_store.put(part, [content])
    blob_id = new_id()
    assert fs_store.concat(blob_id, parts, md5=False).size == 3 * MiB + 10
    assert read(fs_store, blob_id) == b"".join(contents)


def test_fs_layout(fs_store: FsBlobStore) -> None:
    blob_id = "u12/3f2a9c0d1e2f4a5b6c7d8e9f0a1b2c3d"
    fs_store.put(blob_id, [b"x"])
    path = fs_store.root / "3f" / "2a" / "u12%2F3f2a9c0d1e2f4a5b6c7d8e9f0a1b2c3d"
    assert fs_store.path(blob_id) == path
    assert path.read_bytes() == b"x"
    assert fs_store.path("a..b") == fs_store.root / "a_" / "_b" / "a..b"  # never '..' dirs
    assert fs_store.path("x") == fs_store.root / "x_" / "__" / "x"
    assert list(fs_store.tmp.iterdir()) == []


def test_fs_put_streams(fs_store: FsBlobStore) -> None:
    chunk = data(MiB)

    def chunks() -> Iterable[bytes]:
        for _ in range(32):
            yield chunk  # the same object: the input costs no memory

    tracemalloc.start()
    try:
        info = fs_store.put(new_id(), chunks())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == 32 * MiB
    assert peak < 4 * MiB, peak


def test_fs_sweep_spares_recent_writes(fs_store: FsBlobStore) -> None:
    leftover = fs_store.tmp / "tmpabc.tmp"
    leftover.write_bytes(b"partial")
    os.utime(leftover, (1, 1))  # long ago
    recent = fs_store.tmp / "tmpdef.tmp"
    recent.write_bytes(b"in progress")
    assert fs_store.sweep(60) == 1
    assert not leftover.exists() and recent.exists()


# -- the S3 backend underneath -----------------------------------------------------------


def etag(store: S3BlobStore, blob_id: str) -> str:
    return str(store.client.head_object(Bucket=store.bucket, Key=store.key(blob_id))["ETag"])


def test_s3_small_put_is_one_object_and_large_is_multipart(s3_store: S3BlobStore) -> None:
    small, large = new_id(), new_id()
    content = data(PART_SIZE)
    assert s3_store.put(small, chunked(content)) == info_of(content)
    assert etag(s3_store, small).strip('"') == info_of(content).md5_hex
    s3_store.put(large, chunked(data(2 * PART_SIZE + 1)))
    assert etag(s3_store, large).endswith('-3"')  # 8 MiB + 8 MiB + 1 byte


def test_s3_concat_copies_server_side_when_it_can(s3_store: S3BlobStore) -> None:
    big = [new_id(), new_id(), new_id()]
    for i, part in enumerate(big):
        s3_store.put(part, chunked(data(5 * MiB if i < 2 else 10, seed=i)))
    blob_id = new_id()
    s3_store.concat(blob_id, big)
    assert etag(s3_store, blob_id).endswith('-3"')  # UploadPartCopy
    small = [new_id(), new_id()]
    for part in small:
        s3_store.put(part, [b"tiny"])
    s3_store.concat(blob_id, small)
    assert etag(s3_store, blob_id).strip('"') == info_of(b"tinytiny").md5_hex  # streamed


def test_s3_keys_live_under_the_prefix(s3_client: Any) -> None:
    prefix = f"p-{uuid.uuid4().hex[:8]}"
    store = S3BlobStore(s3_client, BUCKET, prefix)
    assert store.prefix == prefix + "/"
    store.put("u1/abc", [b"x"])
    listed = s3_client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    assert [o["Key"] for o in listed["Contents"]] == [f"{prefix}/u1/abc"]
    assert S3BlobStore(s3_client, BUCKET).key("u1/abc") == "u1/abc"


class FakeUploads:
    """Just enough of an S3 client for sweep: moto dates every multipart upload 2010."""

    def __init__(self, uploads: list[dict[str, Any]]) -> None:
        self.uploads = uploads
        self.aborted: list[str] = []

    def get_paginator(self, name: str) -> Any:
        assert name == "list_multipart_uploads"
        fake = self

        class Paginator:
            def paginate(self, Bucket: str, Prefix: str) -> Iterator[dict[str, Any]]:
                assert (Bucket, Prefix) == ("b", "p/")
                yield {"Uploads": fake.uploads[:1]}
                yield {"Uploads": fake.uploads[1:]}

        return Paginator()

    def abort_multipart_upload(self, Bucket: str, Key: str, UploadId: str) -> None:
        self.aborted.append(UploadId)


def test_s3_sweep_age() -> None:
    now = datetime.now(UTC)
    client = FakeUploads(
        [
            {"Key": "p/a", "UploadId": "old", "Initiated": now - timedelta(hours=2)},
            {"Key": "p/b", "UploadId": "new", "Initiated": now - timedelta(minutes=1)},
            {"Key": "p/c", "UploadId": "older", "Initiated": now - timedelta(days=3)},
        ]
    )
    store = S3BlobStore(client, "b", "p")
    assert store.sweep(3600) == 2
    assert client.aborted == ["old", "older"]
