"""A crash during uploads loses nothing already acknowledged, and shows nothing half-written.

One real server (SQLite, and PostgreSQL when available) is given objects, a completed multipart
upload, a deletion and a multipart upload with two parts done, all acknowledged; then it is
SIGKILLed while three uploads are in flight (a new key, an overwrite of an acknowledged key and a
third part), each with bytes already in its temporary file. Restarted on the same data dir and
database, it must serve every acknowledged object whole, none of the interrupted ones, keep the
acknowledged parts so that the upload can be completed, count only acknowledged bytes, and
sweep the temporary file of a write interrupted longer ago than the grace period.
"""

import hashlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import BACKENDS, Server, make_server, wait_for
from tests.s3.conftest import S3Client, s3_client, unique_bucket

KiB, MiB = 1024, 1024 * 1024
PART = 5 * MiB  # S3's smallest part but the last
HEAD = 3 * MiB  # what an interrupted upload sends before it stalls (over the gateway's batch)
DECLARED = 64 * MiB  # what it claims it will send
ON_DISK = 1 * MiB  # in its temporary file before the server is killed


@pytest.fixture(params=BACKENDS)
def crashing(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """A server of this test's own: it is killed and restarted."""
    srv = make_server(tmp_path, request.param).start()
    yield srv
    srv.stop(signal.SIGKILL)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _multipart_etag(etags: list[str]) -> str:
    """The ETag S3 gives an object assembled from parts: the MD5 of their MD5s, and a count."""
    digests = b"".join(bytes.fromhex(e.strip('"')) for e in etags)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(etags)}"'


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _temp_files(server: Server) -> dict[Path, int]:
    """The blob store's writes in progress (or interrupted), with their sizes."""
    found: dict[Path, int] = {}
    for path in (server.data_dir / "blobs" / ".tmp").glob("*.tmp"):
        try:
            found[path] = path.stat().st_size
        except FileNotFoundError:  # finished meanwhile
            continue
    return found


class Stalled:
    """A PUT to a presigned URL that sends HEAD bytes of a DECLARED-byte body, then waits for
    ``release`` (set once the server is dead) before it sends the rest."""

    def __init__(self, pool: ThreadPoolExecutor, url: str, release: threading.Event) -> None:
        self.head = os.urandom(HEAD)
        self.release = release
        self.sent = 0
        self.answer: Future[httpx.Response] = pool.submit(self._put, url)

    def _body(self) -> Iterator[bytes]:
        for at in range(0, HEAD, 256 * KiB):
            chunk = self.head[at : at + 256 * KiB]
            yield chunk
            self.sent += len(chunk)
        self.release.wait(timeout=120)
        zeros = bytes(MiB)
        for _ in range((DECLARED - HEAD) // MiB):
            yield zeros

    def _put(self, url: str) -> httpx.Response:
        return httpx.put(
            url,
            content=self._body(),
            headers={"Content-Length": str(DECLARED)},
            timeout=httpx.Timeout(120),
        )


def _start_stalled(
    pool: ThreadPoolExecutor, server: Server, url: str, release: threading.Event
) -> tuple[Stalled, Path]:
    """Start a stalled upload; wait until its bytes are in a temporary file, and return it."""
    before = set(_temp_files(server))
    upload = Stalled(pool, url, release)

    def written() -> Path | None:
        if upload.answer.done():  # an answer (or a failure) before the crash: a broken test
            raise AssertionError(f"the stalled upload ended early: {upload.answer.result()!r}")
        new = {p: n for p, n in _temp_files(server).items() if p not in before}
        full = [p for p, n in new.items() if n >= ON_DISK]
        return full[0] if upload.sent == HEAD and len(new) == 1 and full else None

    temp: Path = wait_for(written, message="the stalled upload to reach its temporary file")
    # it is this upload's file: what it holds is what was sent, cut short
    data = temp.read_bytes()
    assert len(data) >= ON_DISK and upload.head.startswith(data)
    return upload, temp


def test_a_crash_loses_nothing_acknowledged_and_shows_nothing_partial(crashing: Server) -> None:
    server = crashing
    email = f"crash-{uuid.uuid4().hex[:8]}@test.local"
    token = server.new_user(email)
    s3: S3Client = s3_client(server, email, token, signature_version="s3v4")
    bucket = unique_bucket("crash")
    s3.create_bucket(Bucket=bucket)

    # -- acknowledged before the crash ---------------------------------------------------
    acked: dict[str, bytes] = {}
    for key, size in [
        ("empty", 0),
        ("one", 1),
        ("dir/sub/small.bin", 1000),
        ("ünïcødé/ファイル", 4 * KiB + 3),
        ("batch.bin", MiB + 17),
        ("big.bin", 3 * MiB + 5),
    ]:
        body = os.urandom(size)
        put = s3.put_object(Bucket=bucket, Key=key, Body=body)
        assert put["ETag"] == f'"{_md5(body)}"'
        acked[key] = body

    s3.put_object(Bucket=bucket, Key="deleted", Body=b"gone before the crash")
    s3.delete_object(Bucket=bucket, Key="deleted")

    done_id = s3.create_multipart_upload(Bucket=bucket, Key="multi/done")["UploadId"]
    done_parts = [os.urandom(PART), os.urandom(KiB)]
    etags = [
        s3.upload_part(Bucket=bucket, Key="multi/done", UploadId=done_id, PartNumber=n, Body=p)[
            "ETag"
        ]
        for n, p in enumerate(done_parts, 1)
    ]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="multi/done",
        UploadId=done_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    acked["multi/done"] = b"".join(done_parts)

    open_id = s3.create_multipart_upload(Bucket=bucket, Key="multi/open")["UploadId"]
    open_parts = {1: os.urandom(PART), 2: os.urandom(PART)}
    for n, p in open_parts.items():
        s3.upload_part(Bucket=bucket, Key="multi/open", UploadId=open_id, PartNumber=n, Body=p)

    api = httpx.Client(base_url=server.url, headers={"Authorization": token}, timeout=30)
    used = sum(len(b) for b in acked.values())
    assert api.get("/info").json()["usedQuotaBytesBucket"] == used

    # -- three uploads in flight, then SIGKILL -------------------------------------------
    def presigned_put(key: str) -> str:
        url: str = s3.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600
        )
        return url

    part_url: str = s3.generate_presigned_url(
        "upload_part",
        Params={"Bucket": bucket, "Key": "multi/open", "UploadId": open_id, "PartNumber": 3},
        ExpiresIn=600,
    )
    release = threading.Event()
    pool = ThreadPoolExecutor(3)
    try:
        new_key, new_temp = _start_stalled(pool, server, presigned_put("interrupted"), release)
        overwrite, over_temp = _start_stalled(pool, server, presigned_put("big.bin"), release)
        part, part_temp = _start_stalled(pool, server, part_url, release)
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        release.set()
        pool.shutdown(wait=True)
    for stalled in (new_key, overwrite, part):
        with pytest.raises(httpx.TransportError):  # never acknowledged
            stalled.answer.result()

    # the interrupted writes left their temporary files; one of them is made to look as if the
    # crash had happened longer ago than the grace given to writes in flight (6 hours)
    assert {new_temp, over_temp, part_temp} <= set(_temp_files(server))
    long_ago = time.time() - 7 * 3600
    os.utime(new_temp, (long_ago, long_ago))

    server.restart()
    s3 = s3_client(server, email, token, signature_version="s3v4")

    # -- everything acknowledged is there, whole -----------------------------------------
    listed = {o["Key"]: o for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert sorted(listed) == sorted(acked), "listed keys differ from the acknowledged ones"
    for key, body in acked.items():
        assert listed[key]["Size"] == len(body), key
        got = s3.get_object(Bucket=bucket, Key=key)
        data = got["Body"].read()
        assert len(data) == len(body) and _md5(data) == _md5(body), key
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ETag"] == f'"{_md5(acked["big.bin"])}"'
    assert s3.head_object(Bucket=bucket, Key="multi/done")["ETag"] == _multipart_etag(etags)

    # -- nothing interrupted (or deleted) is visible -------------------------------------
    for key in ("interrupted", "deleted"):
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=bucket, Key=key)
        assert _code(exc) == "NoSuchKey", key

    # -- only acknowledged bytes are counted ---------------------------------------------
    assert api.get("/info").json()["usedQuotaBytesBucket"] == used

    # -- the open upload kept its acknowledged parts, and completes ----------------------
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("multi/open", open_id)]
    parts = s3.list_parts(Bucket=bucket, Key="multi/open", UploadId=open_id)["Parts"]
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in parts] == [
        (n, len(p), f'"{_md5(p)}"') for n, p in open_parts.items()
    ]
    open_parts[3] = os.urandom(10 * KiB)
    s3.upload_part(
        Bucket=bucket, Key="multi/open", UploadId=open_id, PartNumber=3, Body=open_parts[3]
    )
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="multi/open",
        UploadId=open_id,
        MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": f'"{_md5(p)}"'} for n, p in open_parts.items()]
        },
    )
    whole = b"".join(open_parts.values())
    data = s3.get_object(Bucket=bucket, Key="multi/open")["Body"].read()
    assert len(data) == len(whole) and _md5(data) == _md5(whole)
    assert api.get("/info").json()["usedQuotaBytesBucket"] == used + len(whole)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    # -- the start swept the temporary file of the write interrupted long ago -------------
    assert new_temp not in _temp_files(server)
    api.close()
