"""Issue 13: one task of N instances of `true` through the REST API, N = 10^3, 10^4 (and 10^5
with --sizes), as instances/s, against a bare spawn measured in the same run.

Bare spawn (the physical limit): the same command in the same sandbox the host runtime uses
(`HostRuntime.argv`: bubblewrap when installed), spawned with subprocess from Python over as
many threads as cores, each in a fresh directory, output piped and read. No calor code runs
in it but the one function that builds the sandbox's argv.

Platform: one POST /tasks with instanceCount = N, then GET /tasks/summaries polled (a
summary never loads instances) until it is final; the clock runs from the POST. The
server's resident memory is sampled meanwhile (its peak is reported).

Then GET /tasks/{uuid} of the ended task (completedInstances lists all N), three times: the
time of each from the request to the last byte, the size of the answer, and how much the
server's resident memory grew while it answered (sampled every 10 ms).

Targets: instances/s at the largest N >= 0.8 x the figure at 10^3 (flat in N), and
>= 0.5 x bare spawn; the GET of the largest task within 1 s.
"""

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from common import (
    bare_spawn_rate,
    fresh_postgres,
    postgres_option,
    result,
    running_server,
    task_body,
)


class PeakRss:
    """The peak resident memory of a process, sampled every ``every`` s on a thread."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.proc = psutil.Process(pid)
        self.peak = self.proc.memory_info().rss
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


@dataclass
class Get:
    seconds: list[float]
    size: int  # bytes of JSON
    rss_growth: int  # bytes, the largest of the three


def get_task(c: httpx.Client, pid: int, task: str, n: int) -> Get:
    seconds, growth, size = [], 0, 0
    for _ in range(3):
        before = psutil.Process(pid).memory_info().rss
        rss = PeakRss(pid, every=0.01)
        t0 = time.monotonic()
        r = c.get(f"/tasks/{task}")
        seconds.append(time.monotonic() - t0)
        growth = max(growth, rss.stop() - before)
        r.raise_for_status()
        size = len(r.content)
        if len(r.json()["completedInstances"]) != n:
            raise RuntimeError("the GET did not list every instance")
    return Get(seconds, size, growth)


def platform_rate(root: Path, n: int, postgres: str | None) -> tuple[float, int, Get]:
    """Instances/s of one task of ``n`` instances, the server's peak RSS meanwhile, and
    the GET of the ended task."""
    with (
        fresh_postgres(postgres) as env,
        running_server(root / f"srv-{uuid.uuid4().hex[:8]}", env=env) as server,
        server.client() as c,
    ):
        body = task_body("big", "true")
        body["instanceCount"] = n
        rss = PeakRss(server.pid)
        t0 = time.monotonic()
        r = c.post("/tasks", json=body)
        r.raise_for_status()
        task = r.json()["uuid"]
        deadline = t0 + 120 + n * 0.05
        while True:
            [summary] = [t for t in c.get("/tasks/summaries").json() if t["uuid"] == task]
            if summary["state"] in ("Success", "Failure", "Cancelled"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"task of {n} not final in time: {summary['state']}")
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        peak = rss.stop()
        if summary["state"] != "Success":
            errors = c.get(f"/tasks/{task}").json()["errors"][:5]
            raise RuntimeError(f"task of {n} ended {summary['state']}: {errors}")
        return n / elapsed, peak, get_task(c, server.pid, task, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="instances per task, comma-separated")
    parser.add_argument("--bare", type=int, default=2000, help="bare spawns per baseline run")
    postgres_option(parser)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="calor-bench-big-") as tmp:
        root = Path(tmp)
        bare_before = bare_spawn_rate(root, args.bare, cores)
        rates: dict[int, float] = {}
        gets: dict[int, Get] = {}
        for n in sizes:
            rates[n], peak, gets[n] = platform_rate(root, n, args.postgres)
            times = ", ".join(f"{t:.2f}" for t in gets[n].seconds)
            print(
                f"task of {n}: {rates[n]:.0f} instances/s, server peak RSS {peak / 2**20:.0f} MiB;"
                f" GET {times} s, {gets[n].size / 2**20:.1f} MiB of JSON, server RSS"
                f" +{gets[n].rss_growth / 2**20:.0f} MiB"
            )
        bare_after = bare_spawn_rate(root, args.bare, cores)
    bare = (bare_before + bare_after) / 2
    print(
        f"bare spawn ({cores} threads): {bare_before:.0f} and {bare_after:.0f}/s (mean {bare:.0f})"
    )
    first, last = sizes[0], sizes[-1]
    flat = rates[last] / rates[first]
    result(
        "big_task_flat",
        f"{last} vs {first} instances: {flat:.2f} ({rates[last]:.0f} vs {rates[first]:.0f}/s)",
        ">= 0.8",
        flat >= 0.8,
    )
    ratio = rates[last] / bare
    result(
        "big_task_vs_bare_spawn",
        f"{ratio:.2f} ({rates[last]:.0f} vs {bare:.0f}/s)",
        ">= 0.5",
        ratio >= 0.5,
    )
    best = min(gets[last].seconds)
    result(
        "big_task_get",
        f"GET /tasks/{{uuid}} of {last} instances: {best:.2f} s (best of 3; median "
        f"{statistics.median(gets[last].seconds):.2f} s), server RSS +"
        f"{gets[last].rss_growth / 2**20:.0f} MiB",
        "< 1 s",
        best < 1.0,
    )


if __name__ == "__main__":
    main()
