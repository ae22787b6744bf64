"""The composition root: the only place that turns settings into concrete adapters."""

import hashlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from starlette.types import ASGIApp

from calor.api.app import create_app
from calor.domain.errors import NotFound
from calor.domain.pool import Capacity
from calor.domain.ports import Executor
from calor.executors.forwarder import TcpForwarder
from calor.executors.local import LocalExecutor
from calor.runner.files import TaskFiles
from calor.runner.host import HostRuntime, reap_leftover
from calor.runner.instance import InstanceRunner
from calor.runner.machine import cpu_info
from calor.runner.rapl import RaplMeter
from calor.runner.runtime import Runtime
from calor.scheduler import Engine
from calor.services.accounting import AccountingService
from calor.services.buckets import BucketService
from calor.services.jobs import JobService
from calor.services.platform import HostInfo, Platform
from calor.services.pools import PoolService
from calor.services.sealing import SecretBox
from calor.services.secrets import SecretService
from calor.services.tasks import TaskService
from calor.services.users import UserService
from calor.settings import Settings
from calor.storage.blobs import BlobStore
from calor.storage.blobs_fs import FsBlobStore
from calor.storage.gateway import create_gateway
from calor.storage.local_access import ServiceObjects
from calor.store.buckets import BucketStore
from calor.store.deadlines import DeadlineStore
from calor.store.engine import Database, sqlite_url
from calor.store.execution import ExecutionStore
from calor.store.jobs import JobStore
from calor.store.logs import LogStore
from calor.store.pools import PoolStore
from calor.store.secrets import SecretStore
from calor.store.snapshots import SnapshotStore
from calor.store.tasks import TaskStore
from calor.store.usage import UsageStore
from calor.store.users import UserStore

if TYPE_CHECKING:
    from calor.executors.dask import DaskExecutor  # imported when used: calor[dask]


def host_info(cores: int | None) -> HostInfo:
    model, ghz = cpu_info()
    return HostInfo(
        cores=cores or os.cpu_count() or 1,
        memory_mb=int(psutil.virtual_memory().total / 2**20),
        cpu_model=model,
        ghz=ghz,
    )


log = logging.getLogger("calor")

RUNTIMES = ("auto", "docker", "host")


def build_runtime(settings: Settings, data_dir: Path) -> Runtime:
    """Docker when asked for, or (auto) when an engine answers; the host runtime otherwise."""
    if settings.runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {settings.runtime!r}")
    if settings.runtime != "host":
        from calor.runner.docker import DockerRuntime, DockerUnavailable  # only when used

        # containers are labelled with this id: a server reaps its own leftovers, never those
        # of another calor on the same engine
        try:
            return DockerRuntime.connect(
                server_id(settings, data_dir), settings.docker_network, base_url=settings.docker_url
            )
        except DockerUnavailable as exc:
            if settings.runtime == "docker":
                raise
            log.warning("%s; instances run with the host runtime", exc)
    return HostRuntime(hidden_dirs=[data_dir], sandbox=settings.sandbox, user_uids=True)


# Where instances work when they run as uids of their own: outside the data dir, which is
# then closed to them, in a directory every uid can cross (a data dir under /root is not)
SHARED_WORK_ROOT = Path("/var/lib/calor-work")


def work_root(runtime: Runtime, settings: Settings, data_dir: Path) -> Path:
    """The instances' working directories' root: the data dir's ``work``, but for a host
    runtime that runs each user as a uid of their own (HostRuntime.uid_base)."""
    if not (isinstance(runtime, HostRuntime) and runtime.uid_base is not None):
        return data_dir / "work"
    root = SHARED_WORK_ROOT / server_id(settings, data_dir)
    root.mkdir(parents=True, exist_ok=True)
    for crossed in (SHARED_WORK_ROOT, root):
        crossed.chmod(0o711)  # crossed, never listed
    data_dir.chmod(0o700)
    return root


# said at start when instances run with no sandbox: nothing then keeps them from its files
UNSANDBOXED = (
    "warning: instances run unsandboxed, as this server's user: they can read what it can, "
    "its data dir included (database, key, other users' files); install bubblewrap"
)


SEPARATE_UIDS = (
    "note: without a sandbox, instances cannot read the data dir (0700) nor other users' "
    "files; they can read what any unprivileged user of this machine can"
)


def open_database(settings: Settings) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url or sqlite_url(settings.data_dir))
    db.migrate()
    return db


def server_key(settings: Settings) -> bytes:
    """The secret tokens are derived from (services/users.py)."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = settings.data_dir / "secret.key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".secret.key.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # never replaces a key another process made meanwhile
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip().encode()


def user_service(db: Database, settings: Settings) -> UserService:
    return UserService(UserStore(db), server_key(settings))


def accounting_service(db: Database, settings: Settings) -> AccountingService:
    """For the operator's commands (calor admin budget, usage), which run no executor."""
    return AccountingService(
        UsageStore(db), settings.accounting, lambda: settings.cores or os.cpu_count() or 1
    )


def build_blob_store(settings: Settings, data_dir: Path) -> BlobStore:
    if settings.blob_store == "fs":
        return FsBlobStore(data_dir / "blobs")
    if settings.blob_store.startswith("s3://"):
        import boto3  # only when used

        from calor.storage.blobs_s3 import S3BlobStore

        bucket, _, prefix = settings.blob_store[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError("the blob store s3://BUCKET/PREFIX needs a bucket")
        return S3BlobStore(boto3.client("s3"), bucket, prefix)
    raise ValueError(f"blob store must be fs or s3://bucket/prefix, not {settings.blob_store!r}")


@dataclass
class Server:
    platform: Platform
    engine: Engine
    app: ASGIApp
    gateway: ASGIApp
    db: Database
    where: str  # how instances run, for the operator


def server_id(settings: Settings, data_dir: Path) -> str:
    """Names this server's containers and Dask tasks: each server reaps or adopts its own."""
    return hashlib.sha256(f"{data_dir}|{settings.database_url or ''}".encode()).hexdigest()[:16]


def public_url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    return f"http://{host}:{port}"


def build_server(settings: Settings) -> Server:
    if settings.executor not in ("local", "dask"):
        raise ValueError(f"executor must be local or dask, not {settings.executor!r}")
    db = open_database(settings)
    snapshots = SnapshotStore(db)
    engine = Engine(
        ExecutionStore(db, settings.limits.max_running_tasks_per_user, settings.accounting),
        reap_leftover,
        due_snapshots=snapshots.due,
        deadlines=DeadlineStore(db).run,
    )
    data_dir = settings.data_dir.resolve()
    buckets = BucketService(BucketStore(db), build_blob_store(settings, data_dir), settings.limits)
    objects = ServiceObjects(buckets)
    users = user_service(db, settings)
    secrets_ = SecretService(SecretStore(db), SecretBox(server_key(settings)), settings.limits)
    # the CPU models of the machines instances run on: this one, or the Dask workers (read
    # when asked: workers come and go)
    local_model = cpu_info()[0]
    cpu_models: Callable[[], list[str]] = lambda: [local_model]  # noqa: E731
    executor: Executor
    accounting = AccountingService(
        UsageStore(db), settings.accounting, lambda: executor.total_cores
    )
    tasks = TaskService(
        TaskStore(db),
        LogStore(db),
        settings.limits,
        engine,
        snapshots=snapshots,
        bucket_exists=objects.exists,
        check_secrets=secrets_.check_grant,
        cpu_models=lambda: cpu_models(),
        admit=accounting.admission,
    )
    jobs = JobService(JobStore(db), tasks, settings.limits, engine)
    # instances' ports are forwarded by the local executor only: a Dask worker's instances
    # are on other machines
    forwarder: TcpForwarder | None = None

    def capacity() -> Capacity:
        return Capacity(executor.total_cores, executor.free_cores())

    pools = PoolService(
        PoolStore(db),
        LogStore(db),
        settings.limits,
        engine,
        bucket_exists=objects.exists,
        check_secrets=secrets_.check_grant,
        # a slot keeps its working directory on one machine, which a Dask cluster does not
        # promise
        unsupported=(
            "pools need the local executor in this version of calor; this server runs its "
            "instances on Dask"
            if settings.executor == "dask"
            else None
        ),
        capacity=capacity,
        cpu_models=lambda: cpu_models(),
        admit=accounting.admission,
    )
    receive: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    cluster: Callable[[], dict[str, Any]] | None = None
    attempt_secrets: Callable[[int, str], dict[str, str]] | None = None
    if settings.executor == "dask":
        dask = build_dask_executor(settings, data_dir, engine, users)
        executor, receive, cluster = dask, dask.receive, dask.cluster
        cpu_models = dask.cpu_models

        def attempt_secrets(row_id: int, key: str) -> dict[str, str]:
            # only the attempt the cluster runs now, never an older or a made-up one
            if not dask.is_current(row_id, key):
                raise NotFound(f"attempt {key!r} is not running on the cluster")
            return secrets_.for_attempt(row_id)

        reap_local: Callable[[], object] = lambda: None  # noqa: E731
        where = f"executor: Dask at {settings.dask_scheduler} (runtime chosen on each worker)"
    else:
        runtime = build_runtime(settings, data_dir)
        runner = InstanceRunner(
            runtime,
            work_root(runtime, settings, data_dir),
            max_output_bytes=settings.limits.max_output_bytes_per_instance,
            files=TaskFiles(objects),
            secrets=lambda job: secrets_.for_attempt(job.row_id),
            energy=RaplMeter.detect(),
        )
        forwarder = TcpForwarder()
        executor = LocalExecutor(
            runner, engine.emit, engine.wake, cores=settings.cores, forwards=forwarder
        )
        reap_local = runtime.reap_leftovers
        where = f"runtime: {runtime.name} ({runtime.description})"
        if isinstance(runtime, HostRuntime) and runtime.bwrap is None:
            where += f"\n{UNSANDBOXED if runtime.uid_base is None else SEPARATE_UIDS}"
    platform = Platform(
        settings=settings,
        users=users,
        tasks=tasks,
        buckets=buckets,
        jobs=jobs,
        pools=pools,
        secrets=secrets_,
        host=host_info(executor.total_cores),
        accounting=accounting,
        executor_receive=receive,
        executor_secrets=attempt_secrets,
        cluster=cluster,
        cpu_models=lambda: cpu_models(),
        forwards=forwarder,
    )

    def on_start() -> None:
        reap_local()
        buckets.recover()
        engine.start(executor)

    def on_stop() -> None:
        engine.stop(settings.drain_seconds)
        if forwarder is not None:
            forwarder.stop()
        db.dispose()

    logged = settings.access_log != "off"
    app = create_app(platform, on_start, on_stop, access_log=logged)
    gateway = create_gateway(buckets, platform.users, access_log=logged)
    return Server(platform=platform, engine=engine, app=app, gateway=gateway, db=db, where=where)


def build_dask_executor(
    settings: Settings, data_dir: Path, engine: Engine, users: UserService
) -> "DaskExecutor":
    from calor.executors.dask import DaskExecutor  # only when configured
    from calor.executors.remote import StorageCredentials, WorkerSetup

    if not settings.dask_scheduler:
        raise RuntimeError("--executor dask needs --dask-scheduler tcp://host:port")
    storage_port = settings.storage_port or settings.port + 1
    setup = WorkerSetup(
        server_url=settings.executor_url or public_url(settings.host, settings.port),
        token=users.executor_token(),
        storage_url=settings.storage_url or public_url(settings.host, storage_port),
        runtime=settings.runtime,
        docker_network=settings.docker_network,
        sandbox=settings.sandbox,
        max_output_bytes=settings.limits.max_output_bytes_per_instance,
        server_id=server_id(settings, data_dir),
    )

    def credentials(user_id: int) -> StorageCredentials:
        found = users.storage_credentials(user_id)
        if found is None:
            # the instance then fails at its first bucket access, with the gateway's message
            return StorageCredentials("", "")
        return StorageCredentials(*found)

    try:
        return DaskExecutor(settings.dask_scheduler, setup, engine.emit, engine.wake, credentials)
    except OSError as exc:
        raise RuntimeError(
            f"the Dask scheduler at {settings.dask_scheduler} cannot be reached: {exc}"
        ) from exc
