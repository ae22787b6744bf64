"""A real Dask cluster on loopback for the Dask executor tests: one scheduler and two workers of
different sizes (CPU=2 and CPU=1), started from this virtualenv's ``dask`` command, and a calor
server that sends its instances there."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, free_port, make_server, wait_for

DASK = str(Path(sys.executable).with_name("dask"))
# calor decides about retries, and a long instance is never moved once queued on a worker
SCHEDULER_ENV = {
    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
    "DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING": "False",
}


@dataclass
class Cluster:
    address: str
    root: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        self.procs[name] = subprocess.Popen(
            [DASK, *args],
            env={**os.environ, **SCHEDULER_ENV, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def add_worker(self, name: str, cpu: int, mem: float = 2e9) -> None:
        workdir = self.root / name
        workdir.mkdir(exist_ok=True)
        self._spawn(
            name,
            [
                "worker",
                self.address,
                "--name",
                name,
                "--nthreads",
                str(cpu * 2),
                "--nworkers",
                "1",
                "--resources",
                f"CPU={cpu},MEM={mem:g}",
                "--no-dashboard",
                "--local-directory",
                str(workdir / "dask"),
                "--host",
                "127.0.0.1",
            ],
            {"CALOR_WORKER_DIR": str(workdir / "calor")},
        )
        wait_for(lambda: name in self.worker_names(), timeout=60, message=f"worker {name}")

    def worker_names(self) -> set[str]:
        from distributed import Client

        with Client(self.address, timeout=10) as client:
            info = client.scheduler_info(n_workers=-1)
        return {w["name"] for w in info["workers"].values()}

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for name in list(self.procs):
            self.kill(name)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("dask")
    port = free_port()
    c = Cluster(f"tcp://127.0.0.1:{port}", root)
    c._spawn(
        "scheduler",
        ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        {},
    )
    try:
        c.add_worker("big", 2)
        c.add_worker("small", 1)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def server(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(
        tmp_path_factory.mktemp("dask-server"),
        "sqlite",
        CALOR_EXECUTOR="dask",
        CALOR_DASK_SCHEDULER=cluster.address,
    ).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    token = server.new_user()
    with httpx.Client(base_url=server.url, headers={"Authorization": token}, timeout=30) as c:
        yield c
