"""Dask executor: end-to-end throughput of 1-instance `true` tasks through the REST API with
`--executor dask`, as a ratio to bare Dask running the same runner code on the same cluster
(target: ratio >= 0.5), and the submit -> running latency of single tasks.

A loopback cluster is started from this virtualenv's `dask` command: one scheduler (with
allowed-failures 0 and no work stealing, as calor asks) and 2 workers advertising CPU=2 each
(4 threads each); then a calor server with CALOR_EXECUTOR=dask and CALOR_RUNTIME=host.

- Platform: N tasks are POSTed as arrays, then POST /tasks/summaries/paginate (State NotIn
  [final], maximumResults 1) is polled every 50 ms until none is left; tasks/s from the first
  POST to that answer.
- Bare Dask: `client.map` of a function that builds an InstanceRunner with HostRuntime on the
  worker and runs the same InstanceJob (`true`, 1 core), with resources={"CPU": 1} as calor
  asks, N of them; tasks/s from the map call until all N results are back.
The two alternate for a few rounds on the same cluster (after a warm-up of each), and the ratio
uses the medians.

With --one-task, calor gets the N instances as one task of N instances (issue 13: a big task
must cost per instance what small ones do); the figures are then instances/s.

Latency: M tasks (`sleep 0.5`) one at a time, each waited for until final before the next.
Client side: from the POST's return until GET /tasks/{uuid} (polled every 5 ms) shows the task
past Submitted/Dispatched. Server side: instances.started_at (the Started event, stamped on the
worker at spawn) minus tasks.creation_date, read from <data-dir>/calor.db afterwards.
"""

import argparse
import contextlib
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from common import (
    HOST,
    count_in_state,
    free_port,
    percentile,
    result,
    running_server,
    task_body,
    wait_all_final,
)

ROOT = Path(__file__).resolve().parents[1]
DASK = ROOT / ".venv" / "bin" / "dask"
SCHEDULER_ENV = {
    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
    "DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING": "False",
}
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
NOT_STARTED = {"Submitted", "PartiallyDispatched", "FullyDispatched"}
FINAL = {"Success", "Failure", "Cancelled"}


# -- the cluster ---------------------------------------------------------------------------


class Cluster:
    """A scheduler and workers as subprocesses, each in its own session, stopped by pid."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.address = f"tcp://{HOST}:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        base = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS}
        base = {k: v for k, v in base.items() if not k.startswith("CALOR_")}
        with open(self.root / f"{name}.log", "wb") as log:
            self.procs[name] = subprocess.Popen(
                [str(DASK), *args],
                env={**base, **SCHEDULER_ENV, "NO_PROXY": "127.0.0.1,localhost", **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self, workers: int, cpu: int, nthreads: int) -> None:
        self._spawn(
            "scheduler",
            ["scheduler", "--host", HOST, "--port", str(self.port), "--no-dashboard"],
        )
        for i in range(workers):
            name = f"w{i}"
            workdir = self.root / name
            workdir.mkdir()
            self._spawn(
                name,
                [
                    "worker",
                    self.address,
                    "--name",
                    name,
                    "--nthreads",
                    str(nthreads),
                    "--nworkers",
                    "1",
                    "--resources",
                    f"CPU={cpu},MEM=4e9",
                    "--no-dashboard",
                    "--local-directory",
                    str(workdir / "dask"),
                    "--host",
                    HOST,
                ],
                {"CALOR_WORKER_DIR": str(workdir / "calor")},
            )
        self._wait_workers(workers, timeout=90)

    def _wait_workers(self, n: int, timeout: float) -> None:
        from distributed import Client

        deadline = time.monotonic() + timeout
        with Client(self.address, timeout=timeout, set_as_default=False) as c:
            while len(c.scheduler_info(n_workers=-1)["workers"]) < n:
                for name, proc in self.procs.items():
                    if proc.poll() is not None:
                        log = (self.root / f"{name}.log").read_text()
                        raise RuntimeError(f"dask {name} exited:\n{log}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{n} Dask workers did not join in {timeout}s")
                time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM to each process group (workers first), SIGKILL after a grace."""
        for name in sorted(self.procs, key=lambda n: n == "scheduler"):
            proc = self.procs[name]
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()


# -- bare Dask -----------------------------------------------------------------------------


def bare_instance(i: int, root: str) -> str | None:
    """Runs on a worker: the same runner and job as calor's worker side, without the platform.
    Returns None on success, the failure otherwise."""
    from calor.domain.ports import Finished, InstanceEvent, InstanceJob
    from calor.runner.host import HostRuntime
    from calor.runner.instance import InstanceRunner
    from calor.runner.runtime import Handle

    data_dir = Path(root) / f"bare-{os.getpid()}"
    data_dir.mkdir(parents=True, exist_ok=True)
    runner = InstanceRunner(HostRuntime(hidden_dirs=[data_dir]), data_dir / "work")
    job = InstanceJob(
        row_id=i,
        task_uuid=str(uuid.uuid4()),
        instance_id=0,
        instance_count=1,
        attempt=1,
        profile="docker-batch",
        constants={"DOCKER_CMD": "true"},
        cores=1,
    )
    failures: list[str] = []

    def emit(event: InstanceEvent) -> None:
        if isinstance(event, Finished) and (event.exit_code != 0 or event.error):
            failures.append(f"exit {event.exit_code}: {event.error}")

    def on_process(_: Handle) -> None:
        pass

    runner.run(job, emit, on_process)
    return failures[0] if failures else None


def bare_rate(client: Any, root: Path, n: int) -> float:
    t0 = time.monotonic()
    futures = client.map(
        bare_instance, range(n), root=str(root), resources={"CPU": 1}, pure=False, retries=0
    )
    outcomes = client.gather(futures)
    elapsed = time.monotonic() - t0
    failed = [o for o in outcomes if o is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} bare runs failed, e.g. {failed[0]}")
    client.cancel(futures)
    return n / elapsed


# -- calor ---------------------------------------------------------------------------------


def platform_rate(
    c: Any, n: int, batch: int, done_before: int, tag: str, one_task: bool = False
) -> float:
    """Instances/s of n `true` instances: n 1-instance tasks, or one task of n (one_task)."""
    if one_task:
        body = task_body(tag, "true", [tag])
        body["instanceCount"] = n
        t0 = time.monotonic()
        c.post("/tasks", json=body).raise_for_status()
        t_end = wait_all_final(c, timeout=120 + n * 0.5)
        if count_in_state(c, "Success") != done_before + 1:
            raise RuntimeError(f"the task of {n} instances did not succeed")
        return n / (t_end - t0)
    bodies = [task_body(f"{tag}-{i}", "true", [tag]) for i in range(n)]
    t0 = time.monotonic()
    for start in range(0, n, batch):
        r = c.post("/tasks", json=bodies[start : start + batch])
        r.raise_for_status()
        if any(item["statusCode"] != 200 for item in r.json()):
            raise RuntimeError("a submission was refused")
    t_end = wait_all_final(c, timeout=120 + n * 0.5)
    ok = count_in_state(c, "Success")
    if ok != done_before + n:
        raise RuntimeError(f"only {ok - done_before} of {n} tasks succeeded")
    return n / (t_end - t0)


def latencies(c: Any, m: int, command: str) -> tuple[list[float], list[str]]:
    """Client-side POST return -> seen past Dispatched, and the uuids, for m sequential tasks."""
    out: list[float] = []
    uuids: list[str] = []
    for i in range(m):
        r = c.post("/tasks", json=task_body(f"lat-{i}", command, ["lat"]))
        t0 = time.monotonic()
        r.raise_for_status()
        key = r.json()["uuid"]
        uuids.append(key)
        deadline = t0 + 60
        seen = None
        while True:
            state = c.get(f"/tasks/{key}").json()["state"]
            if seen is None and state not in NOT_STARTED:
                seen = time.monotonic() - t0
            if state in FINAL:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"task {key} not final after 60 s")
            time.sleep(0.005)
        if state != "Success" or seen is None:
            raise RuntimeError(f"latency task {key} ended {state}")
        out.append(seen)
    return out, uuids


def server_latencies(db_path: Path, uuids: list[str]) -> list[float]:
    """instances.started_at - tasks.creation_date for those tasks (both UTC, server-recorded)."""
    db = sqlite3.connect(db_path)
    try:
        rows = dict(
            db.execute(
                "SELECT t.uuid, julianday(i.started_at) - julianday(t.creation_date)"
                " FROM tasks t JOIN instances i ON i.task_id = t.id WHERE i.instance_id = 0"
            ).fetchall()
        )
    finally:
        db.close()
    return [rows[u] * 86400.0 for u in uuids if rows.get(u) is not None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="a fast smoke run")
    ap.add_argument("--tasks", type=int, default=None, help="tasks per throughput run (200)")
    ap.add_argument("--rounds", type=int, default=None, help="alternated rounds of each (3)")
    ap.add_argument("--latency-tasks", type=int, default=None, help="sequential tasks (50)")
    ap.add_argument("--workers", type=int, default=2, help="Dask workers (2)")
    ap.add_argument("--cpu", type=int, default=2, help="CPU resource per worker (2)")
    ap.add_argument("--nthreads", type=int, default=4, help="threads per worker (4)")
    ap.add_argument("--batch", type=int, default=1000, help="tasks per POST /tasks array")
    ap.add_argument(
        "--one-task", action="store_true", help="calor runs the N instances as one task of N"
    )
    args = ap.parse_args()
    n = args.tasks or (50 if args.quick else 200)
    rounds = args.rounds or (1 if args.quick else 3)
    m = args.latency_tasks or (10 if args.quick else 50)

    from distributed import Client

    with tempfile.TemporaryDirectory(prefix="calor-bench-dask-") as tmp:
        root = Path(tmp)
        cluster = Cluster(root)
        try:
            cluster.start(args.workers, args.cpu, args.nthreads)
            env = {
                "CALOR_EXECUTOR": "dask",
                "CALOR_DASK_SCHEDULER": cluster.address,
                "CALOR_RUNTIME": "host",
            }
            data_dir = root / "srv"
            with (
                Client(cluster.address, timeout=30, set_as_default=False) as dc,
                running_server(data_dir, env=env) as server,
                server.client() as c,
            ):
                warm = max(4, args.workers * args.cpu * 2)
                bare_rate(dc, root, warm)  # imports on the workers, first bwrap runs
                done = 0
                platform_rate(c, warm, args.batch, done, "warm")
                done += warm
                bare, plat = [], []
                for r in range(rounds):
                    bare.append(bare_rate(dc, root, n))
                    plat.append(platform_rate(c, n, args.batch, done, f"tp{r}", args.one_task))
                    done += 1 if args.one_task else n
                    print(
                        f"round {r + 1}: bare Dask {bare[-1]:.1f} tasks/s, "
                        f"calor {plat[-1]:.1f} tasks/s",
                        flush=True,
                    )
                client_lat, uuids = latencies(c, m, "sleep 0.5")
            server_lat = server_latencies(data_dir / "calor.db", uuids)
        finally:
            cluster.stop()
    b, p = statistics.median(bare), statistics.median(plat)
    ratio = p / b
    cores = args.workers * args.cpu
    print(
        f"cluster: {args.workers} workers x CPU={args.cpu} ({args.nthreads} threads each), "
        f"{cores} instances at a time; tasks={n} per run, {rounds} rounds; "
        f"machine cores={os.cpu_count()}"
    )
    print(f"bare Dask (client.map, resources CPU=1): {', '.join(f'{x:.1f}' for x in bare)} tasks/s")
    print(f"calor --executor dask (REST -> all final): {', '.join(f'{x:.1f}' for x in plat)}")
    result(
        "dask_throughput",
        f"calor/bare Dask = {ratio:.2f} ({p:.1f} vs {b:.1f} tasks/s, medians of {rounds})",
        ">= 0.5",
        ratio >= 0.5,
    )
    ms = 1000.0
    c50, c99 = percentile(client_lat, 50) * ms, percentile(client_lat, 99) * ms
    s50, s99 = percentile(server_lat, 50) * ms, percentile(server_lat, 99) * ms
    print(
        f"latency, {m} sequential `sleep 0.5` tasks: POST return -> seen running "
        f"p50 {c50:.0f} ms p99 {c99:.0f} ms; creation_date -> started_at "
        f"p50 {s50:.0f} ms p99 {s99:.0f} ms"
    )
    result(
        "dask_submit_to_running",
        f"p50 {c50:.0f} ms, p99 {c99:.0f} ms seen by the client (POST return -> running); "
        f"server timestamps creation -> Started p50 {s50:.0f} ms, p99 {s99:.0f} ms",
        "report",
        None,
    )


if __name__ == "__main__":
    sys.exit(main())
