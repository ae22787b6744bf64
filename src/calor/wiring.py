"""The composition root: the only place that turns settings into concrete adapters."""

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import psutil
from starlette.types import ASGIApp

from calor.api.app import create_app
from calor.executors.local import LocalExecutor
from calor.runner.host import HostRuntime, reap_leftover
from calor.runner.instance import InstanceRunner
from calor.runner.runtime import Runtime
from calor.scheduler import Engine
from calor.services.platform import HostInfo, Platform
from calor.services.tasks import TaskService
from calor.services.users import UserService
from calor.settings import Settings
from calor.store.engine import Database, sqlite_url
from calor.store.execution import ExecutionStore
from calor.store.logs import LogStore
from calor.store.tasks import TaskStore
from calor.store.users import UserStore


def host_info(cores: int | None) -> HostInfo:
    model, ghz = "unknown", 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("cpu MHz") and ghz == 0.0:
                ghz = round(float(line.split(":", 1)[1]) / 1000, 3)
    except OSError:
        pass
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
        server_id = hashlib.sha256(
            f"{data_dir}|{settings.database_url or ''}".encode()
        ).hexdigest()[:16]
        try:
            return DockerRuntime.connect(
                server_id, settings.docker_network, base_url=settings.docker_url
            )
        except DockerUnavailable as exc:
            if settings.runtime == "docker":
                raise
            log.warning("%s; instances run with the host runtime", exc)
    return HostRuntime(hidden_dirs=[data_dir], sandbox=settings.sandbox)


def open_database(settings: Settings) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url or sqlite_url(settings.data_dir))
    db.migrate()
    return db


def user_service(db: Database) -> UserService:
    return UserService(UserStore(db))


@dataclass
class Server:
    platform: Platform
    engine: Engine
    runtime: Runtime
    app: ASGIApp
    db: Database


def build_server(settings: Settings) -> Server:
    db = open_database(settings)
    engine = Engine(ExecutionStore(db), reap_leftover)
    data_dir = settings.data_dir.resolve()
    runtime = build_runtime(settings, data_dir)
    runner = InstanceRunner(
        runtime, data_dir / "work", max_output_bytes=settings.limits.max_output_bytes_per_instance
    )
    executor = LocalExecutor(runner, engine.emit, engine.wake, cores=settings.cores)
    tasks = TaskService(TaskStore(db), LogStore(db), settings.limits, engine.wake, engine.abort)
    platform = Platform(
        settings=settings,
        users=user_service(db),
        tasks=tasks,
        host=host_info(executor.total_cores),
    )

    def on_start() -> None:
        runtime.reap_leftovers()
        engine.start(executor)

    def on_stop() -> None:
        engine.stop(settings.drain_seconds)
        db.dispose()

    app = create_app(platform, on_start, on_stop)
    return Server(platform=platform, engine=engine, runtime=runtime, app=app, db=db)
