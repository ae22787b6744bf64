"""Target 2: submit -> first instance running, p50 and p99 (target p50 <= 20 ms).

Tasks (`true`, 1 instance) are submitted one at a time through POST /tasks; the next one is only
submitted once the previous one is final, so the queue is empty at every submission. The
latency is read from the server's own timestamps after all tasks finished: in the SQLite file
<data-dir>/calor.db, instances.started_at (set when the process has been spawned, the Started
event) minus tasks.creation_date (set by the submit use case before the insert is committed).

The baseline is the runner alone: the time from calling InstanceRunner.run to its Started event
(working directory, environment, bwrap spawn), measured in this process with the same runtime.
The difference is what the platform adds: HTTP, commit, engine wake-up, claim, thread start.
"""

import argparse
import itertools
import sqlite3
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

from common import percentile, result, running_server, task_body

from calor.domain.ports import InstanceEvent, InstanceJob, Started
from calor.runner.host import HostRuntime
from calor.runner.instance import InstanceRunner
from calor.runner.runtime import Handle

FINAL = {"Success", "Failure", "Cancelled"}


def bare_start_latencies(root: Path, n: int) -> list[float]:
    data_dir = (root / "bare").resolve()
    data_dir.mkdir(parents=True)
    runner = InstanceRunner(HostRuntime(hidden_dirs=[data_dir]), data_dir / "work")
    out: list[float] = []
    for i in range(n):
        job = InstanceJob(i, str(uuid.uuid4()), 0, 1, 1, "docker-batch", {"DOCKER_CMD": "true"}, 1)
        t0 = time.monotonic()

        def emit(event: InstanceEvent, t0: float = t0) -> None:
            if isinstance(event, Started):
                out.append(time.monotonic() - t0)

        def on_process(_: Handle) -> None:
            pass

        runner.run(job, emit, on_process)
    return out


def platform_latencies(root: Path, n: int) -> tuple[list[float], list[float], int]:
    """Server-side submit->started latencies, client-side POST times, overlapping submissions."""
    data_dir = root / "srv"
    posts: list[float] = []
    with running_server(data_dir) as server, server.client() as c:
        for i in range(n):
            t0 = time.monotonic()
            r = c.post("/tasks", json=task_body(f"lat-{i}", "true", ["lat"]))
            posts.append(time.monotonic() - t0)
            r.raise_for_status()
            key = r.json()["uuid"]
            deadline = time.monotonic() + 30
            while c.get(f"/tasks/{key}").json()["state"] not in FINAL:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"task {key} not final after 30 s")
                time.sleep(0.005)
    db = sqlite3.connect(data_dir / "calor.db")
    rows = db.execute(
        "SELECT t.creation_date, i.started_at, i.ended_at, t.state FROM tasks t"
        " JOIN instances i ON i.task_id = t.id WHERE i.instance_id = 0 ORDER BY t.id"
    ).fetchall()
    db.close()
    if len(rows) != n or any(r[3] != "Success" for r in rows):
        raise RuntimeError("not every task succeeded")

    def ts(text: str) -> float:
        return datetime.fromisoformat(text).timestamp()

    lat = [ts(started) - ts(created) for created, started, _, _ in rows]
    # a submission that came before the previous instance ended did not find an empty queue
    overlaps = sum(1 for a, b in itertools.pairwise(rows) if ts(b[0]) < ts(a[2]))
    return lat, posts, overlaps


def main() -> None:
    ap = argparse.ArgumentParser(description="submit -> first instance running latency")
    ap.add_argument("--quick", action="store_true", help="a fast smoke run")
    ap.add_argument("--tasks", type=int, default=None, help="tasks submitted (default 300)")
    args = ap.parse_args()
    n = args.tasks or (30 if args.quick else 300)
    with tempfile.TemporaryDirectory(prefix="calor-bench-lat-") as tmp:
        root = Path(tmp)
        bare = bare_start_latencies(root, n)
        lat, posts, overlaps = platform_latencies(root, n)
    ms = 1000.0
    p50, p99 = percentile(lat, 50) * ms, percentile(lat, 99) * ms
    b50, b99 = percentile(bare, 50) * ms, percentile(bare, 99) * ms
    print(f"tasks={n} (sequential; submissions that overlapped a running instance: {overlaps})")
    print(f"bare runner run->Started: p50 {b50:.1f} ms, p99 {b99:.1f} ms")
    print(f"POST /tasks round trip (client): p50 {percentile(posts, 50) * ms:.1f} ms")
    print(f"platform creation_date->started_at: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    result(
        "submit_to_running_p50",
        f"{p50:.1f} ms (bare runner {b50:.1f} ms; platform adds {p50 - b50:.1f} ms,"
        f" ratio {p50 / b50:.1f}x)",
        "<= 20 ms",
        p50 <= 20.0,
    )
    result("submit_to_running_p99", f"{p99:.1f} ms (bare runner {b99:.1f} ms)", "report", None)


if __name__ == "__main__":
    main()
