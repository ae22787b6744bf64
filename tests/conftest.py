"""Shared fixtures: a real calor server on a free port, on SQLite and (in CI) PostgreSQL.

Set CALOR_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres) to
run the store and API tests on PostgreSQL too; under CI=true its absence is a failure.
"""

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

POSTGRES_URL = os.environ.get("CALOR_TEST_POSTGRES_URL")
IN_CI = bool(os.environ.get("CI"))
DOCKER_HOST = os.environ.get("CALOR_TEST_DOCKER_HOST")
BACKENDS = ["sqlite", "postgres"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.02,
    message: str = "condition",
) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}; last: {last!r}")


def postgres_database() -> str:
    """A fresh, empty database on the test PostgreSQL server; returns its URL."""
    if not POSTGRES_URL:
        if IN_CI:
            pytest.fail(
                "CI=true but CALOR_TEST_POSTGRES_URL is not set: .ci/run must start PostgreSQL"
            )
        pytest.skip("PostgreSQL tests need CALOR_TEST_POSTGRES_URL")
    import psycopg

    name = f"calor_test_{uuid.uuid4().hex[:12]}"
    plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_URL.rpartition("/")
    return f"{base}/{name}"


def docker_host() -> str:
    """The test Docker engine's address (.ci/run starts one: `.ci/docker.sh start DIR`)."""
    if not DOCKER_HOST:
        if IN_CI:
            pytest.fail("CI=true but CALOR_TEST_DOCKER_HOST is not set: .ci/run must start dockerd")
        pytest.skip("Docker tests need CALOR_TEST_DOCKER_HOST (see .ci/docker.sh)")
    return DOCKER_HOST


def database_url(backend: str) -> str | None:
    return postgres_database() if backend == "postgres" else None


@dataclass
class Server:
    url: str
    data_dir: Path
    database_url: str | None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    storage_port: int = 0

    @property
    def storage_url(self) -> str:
        return f"http://127.0.0.1:{self.storage_port}"

    def start(self) -> "Server":
        env = dict(os.environ)
        env["CALOR_RUNTIME"] = "host"  # tests that want Docker say so (tests/docker)
        env.update(self.extra_env)
        env["CALOR_DATA_DIR"] = str(self.data_dir)
        env.setdefault("CALOR_STORAGE_PORT", str(self.storage_port))
        if self.database_url:
            env["CALOR_DATABASE_URL"] = self.database_url
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its life
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "calor",
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log()}")
            try:
                return httpx.get(self.url + "/settings", timeout=1).status_code == 401
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, message="the server to listen")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def restart(self) -> "Server":
        return self.start()

    def new_user(self, email: str | None = None) -> str:
        """Create a user straight in the store (as `calor admin user create` does)."""
        from calor.settings import Settings
        from calor.wiring import open_database, user_service

        settings = Settings(data_dir=self.data_dir, database_url=self.database_url)
        db = open_database(settings)
        try:
            _, token = user_service(db, settings).create(
                email or f"u{uuid.uuid4().hex[:10]}@test.local"
            )
        finally:
            db.dispose()
        return token


def make_server(tmp: Path, backend: str, **env: str) -> Server:
    port = free_port()
    data = tmp / f"data-{port}"
    data.mkdir(parents=True)
    return Server(
        url=f"http://127.0.0.1:{port}",
        data_dir=data,
        database_url=database_url(backend),
        extra_env=env,
        port=port,
        storage_port=free_port(),
    )


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("server"), request.param).start()
    yield srv
    srv.stop()


@pytest.fixture
def token(server: Server) -> str:
    return server.new_user()


@pytest.fixture
def client(server: Server, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": token}, timeout=30) as c:
        yield c


def sh(script: str) -> str:
    """A DOCKER_CMD that runs ``script`` with a shell: calor, like the hosted service, adds
    none (domain/command.py), so pipes, ``;`` and ``$VAR`` need ``sh -c`` as users write it."""
    return "sh -c " + shlex.quote(script)


def task_body(command: str = "echo hello", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": extra.pop("name", "test-task"),
        "profile": "docker-batch",
        "instanceCount": extra.pop("instanceCount", 1),
        "constants": [{"key": "DOCKER_CMD", "value": command}],
    }
    body.update(extra)
    return body


FINAL = {"Success", "Failure", "Cancelled"}


def wait_final(client: httpx.Client, uuid_: str, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        task = client.get(f"/tasks/{uuid_}").json()
        return task if task["state"] in FINAL else None

    return wait_for(done, timeout=timeout, interval=0.05, message=f"task {uuid_} to end")  # type: ignore[no-any-return]
