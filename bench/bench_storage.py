"""S3 gateway: PUT and GET throughput (MiB/s) of 1 MiB and 64 MiB objects through the gateway with
boto3, as a ratio to the same copy done directly on the local filesystem (target: ratio >= 0.5),
and small-object PUTs per second with several client threads.

Every figure is measured for a few seconds per round, over several rounds that alternate all the
sides, so all of them see the same machine; the medians count. The sides:

- ``file>file`` (the baseline of the target, for PUT and GET alike): ``shutil.copyfile`` of a
  source file of the object's size to a new file in the server's data dir (the blobs'
  filesystem), no fsync. On Linux, copyfile copies in the kernel (sendfile), and the source
  is in the page cache.
- ``gateway`` (the measured side of the target): boto3 against the server's S3 port, file to
  file as well. PUT: ``put_object`` with the same source file, opened, as the body. GET:
  ``get_object`` streamed in 1 MiB chunks into a new file in the same filesystem (no fsync).
  As the server's first user (access key = its e-mail, secret = its API token), SigV4,
  path-style, us-east-1, over plain http. The server fsyncs every blob (durability stays).
- informative, from or to memory (the figures of the first version of this bench):
  ``mem>file`` is ``shutil.copyfileobj`` of the bytes in memory into a new file (no fsync)
  and ``file>mem`` reads a file back in 1 MiB reads (page cache: GB/s that no HTTP server
  reaches); ``mem>file+fsync`` (PUT) adds the fsync that the blob store does for every blob;
  ``gw mem`` is the gateway with the body in memory (``put_object`` of bytes; ``get_object``
  read to memory), and for 64 MiB also ``upload_fileobj`` from memory, which goes multipart
  above 8 MiB.
- ``svc`` (informative): calor's own storage layer in this process, no HTTP: ``BucketService
  .put_object`` / ``get_object`` (blob file, MD5, fsyncs, SQLite) on a second store in the same
  filesystem, fed 1 MiB chunks from memory as the gateway feeds them.
- ``http`` (informative): a trivial Starlette app under uvicorn in its own process (as the gateway
  is) that streams a PUT body into a new file (no fsync) and answers a GET by streaming a file in
  1 MiB chunks, driven by urllib3 (boto3's HTTP stack) from and to memory, with no signing and no
  checksums.

The RESULT lines compare ``gateway`` (file to file) with ``file>file``. Every PUT writes a new
key or file, every GET a new file; what they wrote is deleted between rounds.
"""

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import psutil
import urllib3
from botocore.config import Config
from common import HOST, free_port, result, running_server

from calor.services.buckets import BucketService
from calor.settings import Limits, Settings
from calor.storage.blobs_fs import FsBlobStore
from calor.store.buckets import BucketStore
from calor.wiring import open_database, user_service

MiB = 1024 * 1024
CHUNK = MiB
EMAIL = "admin@calor.local"  # the first user, created by `calor serve` on a new data dir
TARGET = 0.5


def s3_client(endpoint: str, token: str, pool: int = 10) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=EMAIL,
        aws_secret_access_key=token,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            proxies={},  # 127.0.0.1 only: never a proxy from the environment
            retries={"max_attempts": 1},
            max_pool_connections=pool,
        ),
    )


# -- the trivial HTTP server of the `http` side ---------------------------------------------


def plain_app(directory: Path) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    async def put(request: Request) -> Response:
        with open(directory / request.path_params["name"], "wb") as f:
            async for chunk in request.stream():
                f.write(chunk)
        return Response(status_code=200)

    async def get(request: Request) -> Response:
        path = directory / request.path_params["name"]

        def chunks() -> Iterator[bytes]:
            with open(path, "rb", buffering=0) as f:
                while data := f.read(CHUNK):
                    yield data

        return StreamingResponse(chunks(), headers={"Content-Length": str(path.stat().st_size)})

    async def clear(request: Request) -> Response:
        keep = request.query_params.get("keep", "")
        for p in directory.iterdir():
            if p.name != keep:
                p.unlink()
        return Response(status_code=204)

    return Starlette(
        routes=[
            Route("/{name}", put, methods=["PUT"]),
            Route("/{name}", get, methods=["GET"]),
            Route("/", clear, methods=["DELETE"]),
        ]
    )


@contextlib.contextmanager
def plain_server(directory: Path) -> Iterator[int]:
    """`python bench_storage.py --serve-plain PORT DIR`, stopped by its pid; yields the port."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [sys.executable, __file__, "--serve-plain", str(port), str(directory)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError("the plain HTTP server exited early")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"http://{HOST}:{port}/missing", timeout=1, trust_env=False)
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the plain HTTP server did not listen in 30 s")
            time.sleep(0.05)
        yield port
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# -- the sides ------------------------------------------------------------------------------


class _Reader:
    """A read-only file over bytes (io.BytesIO would copy them)."""

    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.view) if n is None or n < 0 else min(self.pos + n, len(self.view))
        out = bytes(self.view[self.pos : end])
        self.pos = end
        return out


@dataclass
class Env:
    s3: Any
    bucket: str
    fs_dir: Path  # in the server's data dir, where its blobs are
    svc: BucketService
    svc_user: int
    http_port: int
    src_dir: Path  # the source files of the PUTs (same filesystem)
    dl_dir: Path  # where the GETs write (same filesystem)


class Sides:
    """One object size: each side's PUT and GET, and the cleanup between rounds."""

    def __init__(self, size: int, env: Env) -> None:
        self.size, self.env = size, env
        self.payload = os.urandom(size)
        self.chunks = [self.payload[i : i + CHUNK] for i in range(0, size, CHUNK)]
        self.fs_dir = env.fs_dir / str(size)
        self.fs_dir.mkdir(parents=True, exist_ok=True)
        self.dl_dir = env.dl_dir / str(size)
        self.dl_dir.mkdir(parents=True, exist_ok=True)
        self.src_file = env.src_dir / f"source-{size}"
        self.src_file.write_bytes(self.payload)
        self.pool = urllib3.HTTPConnectionPool(HOST, env.http_port, maxsize=1)
        self.s3_keys: list[str] = []
        self.svc_keys: list[str] = []
        self.read_key = f"read-{size}"
        # the objects the GETs read
        self.read_file = self.fs_dir / "read"
        self.read_file.write_bytes(self.payload)
        env.s3.put_object(Bucket=env.bucket, Key=self.read_key, Body=self.payload)
        env.svc.put_object(env.svc_user, env.bucket, self.read_key, self.chunks)
        self.pool.urlopen("PUT", f"/read-{size}", body=self.payload).drain_conn()

    # filesystem, file to file: the baseline of the target
    def copy_put(self) -> None:
        shutil.copyfile(self.src_file, self.fs_dir / uuid.uuid4().hex)

    def copy_get(self) -> None:
        shutil.copyfile(self.read_file, self.dl_dir / uuid.uuid4().hex)

    # filesystem, from or to memory
    def _fs_write(self, fsync: bool) -> None:
        with open(self.fs_dir / uuid.uuid4().hex, "wb") as f:
            shutil.copyfileobj(_Reader(self.payload), f, CHUNK)
            if fsync:
                f.flush()
                os.fsync(f.fileno())

    def fs_put(self) -> None:
        self._fs_write(False)

    def fs_put_fsync(self) -> None:
        self._fs_write(True)

    def fs_get(self) -> None:
        got = 0
        with open(self.read_file, "rb", buffering=0) as f:
            while data := f.read(CHUNK):
                got += len(data)
        assert got == self.size

    # calor's storage layer, in process
    def svc_put(self) -> None:
        key = f"put-{uuid.uuid4().hex}"
        self.env.svc.put_object(self.env.svc_user, self.env.bucket, key, iter(self.chunks))
        self.svc_keys.append(key)

    def svc_get(self) -> None:
        read = self.env.svc.get_object(self.env.svc_user, self.env.bucket, self.read_key)
        got = sum(len(c) for c in read.body)
        assert got == self.size

    # the gateway, file to file
    def s3_put_file(self) -> None:
        key = f"put-{uuid.uuid4().hex}"
        with open(self.src_file, "rb") as f:
            self.env.s3.put_object(Bucket=self.env.bucket, Key=key, Body=f)
        self.s3_keys.append(key)

    def s3_get_file(self) -> None:
        body = self.env.s3.get_object(Bucket=self.env.bucket, Key=self.read_key)["Body"]
        got = 0
        with open(self.dl_dir / uuid.uuid4().hex, "wb") as f:
            for chunk in body.iter_chunks(CHUNK):
                got += f.write(chunk)
        assert got == self.size

    # the gateway, from or to memory
    def s3_put(self) -> None:
        key = f"put-{uuid.uuid4().hex}"
        self.env.s3.put_object(Bucket=self.env.bucket, Key=key, Body=self.payload)
        self.s3_keys.append(key)

    def s3_upload_fileobj(self) -> None:
        key = f"up-{uuid.uuid4().hex}"
        self.env.s3.upload_fileobj(_Reader(self.payload), self.env.bucket, key)
        self.s3_keys.append(key)

    def s3_get(self) -> None:
        body = self.env.s3.get_object(Bucket=self.env.bucket, Key=self.read_key)["Body"]
        got = sum(len(c) for c in body.iter_chunks(CHUNK))
        assert got == self.size

    # plain HTTP
    def http_put(self) -> None:
        r = self.pool.urlopen("PUT", f"/{uuid.uuid4().hex}", body=self.payload)
        r.drain_conn()
        assert r.status == 200

    def http_get(self) -> None:
        r = self.pool.urlopen("GET", f"/read-{self.size}", preload_content=False)
        got = sum(len(c) for c in r.stream(CHUNK))
        r.release_conn()
        assert got == self.size

    def cleanup(self) -> None:
        for i in range(0, len(self.s3_keys), 1000):
            objects = [{"Key": k} for k in self.s3_keys[i : i + 1000]]
            self.env.s3.delete_objects(
                Bucket=self.env.bucket, Delete={"Objects": objects, "Quiet": True}
            )
        self.s3_keys.clear()
        self.env.svc.delete_objects(self.env.svc_user, self.env.bucket, self.svc_keys)
        self.svc_keys.clear()
        for p in self.fs_dir.iterdir():
            if p != self.read_file:
                p.unlink()
        for p in self.dl_dir.iterdir():
            p.unlink()
        self.pool.urlopen("DELETE", f"/?keep=read-{self.size}").drain_conn()


@dataclass
class Figure:
    """MiB/s of one side's operation, one value per round; for the gateway also the CPU time
    of the client (this process) and of the server, per MiB moved."""

    rounds: list[float] = field(default_factory=list)
    client_cpu: float = 0.0  # seconds, all rounds
    server_cpu: float = 0.0
    mib: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.rounds) if self.rounds else float("nan")

    def cell(self) -> str:
        return f"{self.median:.0f} ({min(self.rounds):.0f}-{max(self.rounds):.0f})"


def timed(op: Callable[[], None], seconds: float, min_reps: int = 2) -> tuple[int, float]:
    """Calls ``op`` until ``seconds`` and ``min_reps`` are both reached: (calls, seconds)."""
    reps = 0
    t0 = time.perf_counter()
    while True:
        op()
        reps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and reps >= min_reps:
            return reps, elapsed


def cpu_seconds(p: psutil.Process) -> float:
    t = p.cpu_times()
    return float(t.user + t.system)


def throughput(
    sides: Sides, server: psutil.Process, seconds: float, rounds: int, multipart: bool
) -> dict[str, Figure]:
    ops: dict[str, Callable[[], None]] = {
        "copy put": sides.copy_put,
        "gateway put": sides.s3_put_file,
        "fs put": sides.fs_put,
        "gwmem put": sides.s3_put,
        "fs+fsync put": sides.fs_put_fsync,
        "svc put": sides.svc_put,
        "http put": sides.http_put,
        "copy get": sides.copy_get,
        "gateway get": sides.s3_get_file,
        "fs get": sides.fs_get,
        "gwmem get": sides.s3_get,
        "svc get": sides.svc_get,
        "http get": sides.http_get,
    }
    if multipart:
        ops["gwmem upload_fileobj"] = sides.s3_upload_fileobj
    figures = {name: Figure() for name in ops}
    for op in ops.values():  # warm-up: connections, caches, code paths
        op()
    sides.cleanup()
    me = psutil.Process()
    for _ in range(rounds):
        for name, op in ops.items():
            c0, s0 = cpu_seconds(me), cpu_seconds(server)
            reps, elapsed = timed(op, seconds)
            f = figures[name]
            f.client_cpu += cpu_seconds(me) - c0
            f.server_cpu += cpu_seconds(server) - s0
            f.mib += reps * sides.size / MiB
            f.rounds.append(reps * sides.size / MiB / elapsed)
            sides.cleanup()
    return figures


# -- small objects --------------------------------------------------------------------------


def in_threads(work: Callable[[int, int], None], threads: int, seconds: float) -> float:
    """Calls per second of ``work(thread, n)``, ``threads`` threads calling it for ``seconds``."""
    counts = [0] * threads
    errors: list[BaseException] = []
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def loop(i: int) -> None:
        start.wait()
        try:
            while not stop.is_set():
                work(i, counts[i])
                counts[i] += 1
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return sum(counts) / elapsed


# -- main -----------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="a fast smoke run")
    ap.add_argument("--seconds", type=float, default=None, help="per figure and round (1.5)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per figure (3)")
    ap.add_argument("--threads", type=int, default=8, help="client threads for small PUTs (8)")
    ap.add_argument("--small", type=int, default=1024, help="small object size, bytes (1024)")
    ap.add_argument("--serve-plain", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_plain:
        import uvicorn

        app = plain_app(Path(args.serve_plain[1]))
        uvicorn.run(app, host=HOST, port=int(args.serve_plain[0]), log_level="warning")
        return
    seconds = args.seconds or (0.4 if args.quick else 1.5)
    rounds = args.rounds or (1 if args.quick else 3)
    small_seconds = 1.5 if args.quick else 5.0
    storage_port = free_port()
    rows: list[tuple[str, dict[str, Figure]]] = []
    with tempfile.TemporaryDirectory(prefix="calor-bench-storage-") as tmp:
        root = Path(tmp)
        srv_dir = root / "srv"
        env_vars = {"CALOR_STORAGE_PORT": str(storage_port)}
        with (
            running_server(srv_dir, env=env_vars) as server,
            plain_server(srv_dir / "bench-http") as http_port,
        ):
            endpoint = f"http://{HOST}:{storage_port}"
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            s3 = s3_client(endpoint, server.token)
            s3.create_bucket(Bucket=bucket)
            # calor's storage layer in this process: its own store, in the same filesystem
            settings = Settings(data_dir=srv_dir / "bench-svc")
            db = open_database(settings)
            user, _ = user_service(db, settings).create("bench@calor.local")
            blobs = FsBlobStore(settings.data_dir / "blobs")
            svc = BucketService(BucketStore(db), blobs, Limits())
            svc.create_bucket(user.id, bucket)
            src_dir, dl_dir = root / "source", root / "download"
            src_dir.mkdir()
            env = Env(s3, bucket, srv_dir / "bench-fs", svc, user.id, http_port, src_dir, dl_dir)
            server_proc = psutil.Process(server.pid)
            for size, multipart in ((MiB, False), (64 * MiB, True)):
                sides = Sides(size, env)
                figures = throughput(sides, server_proc, seconds, rounds, multipart)
                rows.append((f"{size // MiB} MiB", figures))
                sides.cleanup()
            payload = os.urandom(args.small)
            clients = [s3_client(endpoint, server.token, 1) for _ in range(args.threads)]
            for c in clients:  # connect each
                c.head_bucket(Bucket=bucket)

            def small_put(i: int, n: int) -> None:
                clients[i].put_object(Bucket=bucket, Key=f"small/{i}/{n}", Body=payload)

            def svc_small_put(i: int, n: int) -> None:
                svc.put_object(user.id, bucket, f"small/{i}/{n}", [payload])

            pools = [urllib3.HTTPConnectionPool(HOST, http_port, maxsize=1) for _ in clients]

            def http_small_put(i: int, n: int) -> None:
                pools[i].urlopen("PUT", f"/small-{i}-{n}", body=payload).drain_conn()

            small = {
                "gateway": in_threads(small_put, args.threads, small_seconds),
                "gateway, 1 thread": in_threads(small_put, 1, small_seconds),
                "svc": in_threads(svc_small_put, args.threads, small_seconds),
                "svc, 1 thread": in_threads(svc_small_put, 1, small_seconds),
                "http": in_threads(http_small_put, args.threads, small_seconds),
            }
            db.dispose()

    print(f"rounds={rounds} x {seconds:g} s per figure; MiB/s, median (min-max) over the rounds")
    print("target: gateway (file to file) / file>file (shutil.copyfile); the rest is informative")
    head = [
        "size",
        "op",
        "file>file",
        "gateway",
        "gw/file>file",
        "mem>file, file>mem",
        "mem>file+fsync",
        "svc",
        "http",
        "gw mem",
        "gw mem/http",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for label, f in rows:
        for op in ("put", "get"):
            gw, base, mem, ht = (f[f"{side} {op}"] for side in ("gateway", "copy", "gwmem", "http"))
            cells = [
                label,
                op.upper(),
                base.cell(),
                gw.cell(),
                f"**{gw.median / base.median:.2f}**",
                f[f"fs {op}"].cell(),
                f["fs+fsync put"].cell() if op == "put" else "-",
                f[f"svc {op}"].cell(),
                ht.cell(),
                mem.cell(),
                f"{mem.median / ht.median:.2f}",
            ]
            print("| " + " | ".join(cells) + " |")
        if "gwmem upload_fileobj" in f:
            up = f["gwmem upload_fileobj"]
            base, ht = f["copy put"].median, f["http put"].median
            print(
                f"| {label} | upload_fileobj (from memory) | | | {up.median / base:.2f} | | | | | "
                f"{up.cell()} | {up.median / ht:.2f} |"
            )
    for label, f in rows:
        parts = []
        for name in ("gateway put", "gateway get", "gwmem upload_fileobj"):
            if name in f:
                g = f[name]
                parts.append(
                    f"{name.split(' ', 1)[1]} client {g.client_cpu / g.mib * 1000:.1f} + "
                    f"server {g.server_cpu / g.mib * 1000:.1f}"
                )
        print(f"CPU ms per MiB through the gateway (file to file), {label}: " + "; ".join(parts))
    print(
        f"small PUTs of {args.small} B per second: gateway {small['gateway']:.0f} with "
        f"{args.threads} client threads, {small['gateway, 1 thread']:.0f} with 1; in-process "
        f"storage layer {small['svc']:.0f} with {args.threads} threads, "
        f"{small['svc, 1 thread']:.0f} with 1; plain HTTP {small['http']:.0f} with {args.threads}"
    )
    for label, f in rows:
        for op in ("put", "get"):
            gw, base, ht = (f[f"{side} {op}"].median for side in ("gateway", "copy", "http"))
            result(
                f"s3_{op}_{label.replace(' ', '')}",
                f"gateway/file-to-file copy = {gw / base:.2f} ({gw:.0f} vs {base:.0f} MiB/s; "
                f"from/to memory: gateway/plain HTTP = {f[f'gwmem {op}'].median / ht:.2f})",
                f">= {TARGET}",
                gw / base >= TARGET,
            )
    result(
        "s3_small_puts",
        f"{small['gateway']:.0f} PUT/s of {args.small} B with {args.threads} client threads "
        f"({small['gateway, 1 thread']:.0f}/s with 1; plain HTTP {small['http']:.0f}/s)",
        "figure only",
        None,
    )


if __name__ == "__main__":
    main()
