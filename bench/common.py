"""Shared helpers for the benchmarks: a calor server on a free loopback port, clients, stats.

Every server started here is stopped by its own pid (SIGINT, then SIGKILL after a grace).
Clients talk to 127.0.0.1 only and never read proxy settings from the environment.
"""

import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from calor.runner.host import HostRuntime

ROOT = Path(__file__).resolve().parents[1]
CALOR = ROOT / ".venv" / "bin" / "calor"
HOST = "127.0.0.1"
FINAL_STATES = ["Success", "Failure", "Cancelled"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def task_body(name: str, command: str = "true", tags: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "name": name,
        "profile": "docker-batch",
        "instanceCount": 1,
        "constants": [{"key": "DOCKER_CMD", "value": command}],
        "tags": list(tags),
    }


def client(url: str, token: str, timeout: float = 120.0) -> httpx.Client:
    return httpx.Client(
        base_url=url, headers={"Authorization": token}, timeout=timeout, trust_env=False
    )


@dataclass
class Server:
    proc: "subprocess.Popen[bytes]"
    url: str
    token: str
    data_dir: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def client(self, timeout: float = 120.0) -> httpx.Client:
        return client(self.url, self.token, timeout)

    def stop(self, grace: float = 30.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_server(
    data_dir: Path,
    token: str | None = None,
    cores: int | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> Server:
    """Start ``calor serve``; without ``token`` the data dir must be new (first user's token)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = data_dir.parent / f"{data_dir.name}-server-{port}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CALOR_")}
    full_env.update(env or {})
    full_env.setdefault("CALOR_DRAIN_SECONDS", "0")
    full_env.setdefault("CALOR_RUNTIME", "host")  # bench_docker.py asks for docker itself
    full_env.setdefault("CALOR_STORAGE_PORT", str(free_port()))
    argv = [str(CALOR), "serve", "--data-dir", str(data_dir), "--port", str(port)]
    argv += ["--host", HOST, "--log-level", "warning"]
    if cores is not None:
        argv += ["--cores", str(cores)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    url = f"http://{HOST}:{port}"
    server = Server(proc, url, token or "", data_dir, log_path)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not listen in {timeout}s:\n{log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/settings", timeout=1, trust_env=False).status_code:
                    break
            time.sleep(0.05)
        if token is None:
            # `calor serve` prints the first user's token on its second stdout line
            server.token = log_path.read_text().splitlines()[1].strip()
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def fresh_postgres(server_url: str | None) -> Iterator[dict[str, str]]:
    """A new, empty database on the PostgreSQL server at ``server_url``, as the server's
    environment (CALOR_DATABASE_URL), dropped afterwards; None: the server's own SQLite."""
    if not server_url:
        yield {}
        return
    import psycopg

    name = f"calor_bench_{uuid.uuid4().hex[:12]}"
    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server_url.rpartition("/")
    try:
        yield {"CALOR_DATABASE_URL": f"{base}/{name}"}
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_option(parser: Any) -> None:
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=None,
        help="run calor on a fresh database of this PostgreSQL server "
        "(postgresql+psycopg://user@host:port/db) instead of SQLite",
    )


@contextlib.contextmanager
def running_server(
    data_dir: Path,
    token: str | None = None,
    cores: int | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    server = start_server(data_dir, token=token, cores=cores, env=env)
    try:
        yield server
    finally:
        server.stop()


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 100 samples is the 99th smallest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]


def verdict(met: bool) -> str:
    return "MET" if met else "NOT MET"


def result(name: str, figure: str, target: str, met: bool | None) -> None:
    """One summary line per figure; run_all.py collects the lines that start with RESULT."""
    status = "" if met is None else f" -> {verdict(met)}"
    print(f"RESULT {name}: {figure} (target {target}){status}", flush=True)


def count_not_final(c: httpx.Client) -> int:
    """How many tasks are not final yet: 0 or 1 (a one-item filtered page is enough)."""
    body = {
        "filter": {"field": "State", "operator": "NotIn", "value": FINAL_STATES},
        "maximumResults": 1,
    }
    r = c.post("/tasks/summaries/paginate", json=body)
    r.raise_for_status()
    return int(r.json()["count"])


def wait_all_final(c: httpx.Client, timeout: float, interval: float = 0.05) -> float:
    """Poll until no task is left in a non-final state; returns the monotonic end time."""
    deadline = time.monotonic() + timeout
    while True:
        if count_not_final(c) == 0:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError(f"tasks not final after {timeout}s")
        time.sleep(interval)


def count_in_state(c: httpx.Client, state: str, limit: int = 1000) -> int:
    """Tasks in ``state``, counted page by page (summaries, up to ``limit`` per page)."""
    body: dict[str, Any] = {
        "filter": {"field": "State", "operator": "Equal", "value": state},
        "maximumResults": limit,
    }
    total = 0
    while True:
        r = c.post("/tasks/summaries/paginate", json=body)
        r.raise_for_status()
        page = r.json()
        total += int(page["count"])
        if not page["nextToken"]:
            return total
        body["token"] = page["nextToken"]


def bare_spawn_rate(root: Path, n: int, cores: int) -> float:
    """The physical limit of running `true` as an instance: spawned with subprocess over
    ``cores`` threads, each in a fresh directory, output piped and read, in the sandbox the
    host runtime uses (``HostRuntime.argv``: bubblewrap when installed; the only calor code
    that runs here)."""
    runtime = HostRuntime(hidden_dirs=[root / "hidden"])
    work = root / f"bare-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)

    def spawn(i: int) -> None:
        workdir = work / str(i)
        workdir.mkdir()
        done = subprocess.run(
            runtime.argv(["true"], workdir, network=False),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            start_new_session=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"bare spawn failed: {done.stderr!r}")

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=cores) as pool:
        list(pool.map(spawn, range(n)))
    return n / (time.monotonic() - t0)
