"""Issue 13: one task of N instances of `true` through the REST API, N = 10^3, 10^4 (and 10^5
with --sizes), as instances/s, against a bare spawn measured in the same run.

Bare spawn (the physical limit): the same command in the same sandbox the host runtime uses
(`HostRuntime.argv`: bubblewrap when installed), spawned with subprocess from Python over as
many threads as cores, each in a fresh directory, output piped and read. No calor code runs
in it but the one function that builds the sandbox's argv.

Platform: one POST /tasks with instanceCount = N, then GET /tasks/summaries polled (a
summary never loads instances) until it is final; the clock runs from the POST. The
server's resident memory is sampled meanwhile (its peak is reported).

Targets: instances/s at the largest N >= 0.8 x the figure at 10^3 (flat in N), and
>= 0.5 x bare spawn.
"""

import argparse
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil
from common import bare_spawn_rate, result, running_server, task_body


class PeakRss:
    """The peak resident memory of a process, sampled every 0.2 s on a thread."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def platform_rate(root: Path, n: int) -> tuple[float, int]:
    """Instances/s of one task of ``n`` instances, and the server's peak RSS meanwhile."""
    with running_server(root / f"srv-{uuid.uuid4().hex[:8]}") as server, server.client() as c:
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
        return n / elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="instances per task, comma-separated")
    parser.add_argument("--bare", type=int, default=2000, help="bare spawns per baseline run")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="calor-bench-big-") as tmp:
        root = Path(tmp)
        bare_before = bare_spawn_rate(root, args.bare, cores)
        rates: dict[int, float] = {}
        for n in sizes:
            rates[n], peak = platform_rate(root, n)
            print(
                f"task of {n}: {rates[n]:.0f} instances/s, server peak RSS {peak / 2**20:.0f} MiB"
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


if __name__ == "__main__":
    main()
