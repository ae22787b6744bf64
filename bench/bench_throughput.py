"""Target 1: end-to-end throughput of 1-instance `true` tasks through the REST API, as a ratio
to the same commands run bare by the same runner code (InstanceRunner.run, same HostRuntime and
sandbox, concurrency = cores) without the platform. Target: ratio >= 0.5.

The platform run: N tasks are submitted in bulk arrays (<= 1000 per POST), then the bench polls
POST /tasks/summaries/paginate with a State NotIn [final] filter (maximumResults 1) every 50 ms
until no task is left; the clock runs from the first POST to that answer. The bare run is done
before and after the platform run; the ratio uses their mean.

Issue 13 adds the physical limit as a second baseline: a bare spawn of the same command in the
same sandbox (common.bare_spawn_rate, no runner code). Target: platform >= 0.5 x bare spawn.
"""

import argparse
import os
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import (
    bare_spawn_rate,
    count_in_state,
    fresh_postgres,
    postgres_option,
    result,
    running_server,
    task_body,
    wait_all_final,
)

from calor.domain.ports import Finished, InstanceEvent, InstanceJob
from calor.runner.host import HostRuntime
from calor.runner.instance import InstanceRunner
from calor.runner.runtime import Handle


def bare_rate(root: Path, n: int, cores: int) -> float:
    """Tasks/s when InstanceRunner.run is called directly, `cores` at a time."""
    data_dir = (root / f"bare-{uuid.uuid4().hex[:8]}").resolve()
    data_dir.mkdir(parents=True)
    runner = InstanceRunner(HostRuntime(hidden_dirs=[data_dir]), data_dir / "work")
    failures: list[str] = []

    def run_one(i: int) -> None:
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

        def emit(event: InstanceEvent) -> None:
            if isinstance(event, Finished) and (event.exit_code != 0 or event.error):
                failures.append(str(event.error))

        def on_process(_: Handle) -> None:
            pass

        runner.run(job, emit, on_process)

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=cores) as pool:
        list(pool.map(run_one, range(n)))
    elapsed = time.monotonic() - t0
    if failures:
        raise RuntimeError(f"{len(failures)} bare runs failed, e.g. {failures[0]}")
    return n / elapsed


def platform_rate(root: Path, n: int, batch: int, postgres: str | None) -> float:
    with (
        fresh_postgres(postgres) as env,
        running_server(root / f"srv-{uuid.uuid4().hex[:8]}", env=env) as server,
        server.client() as c,
    ):
        bodies = [task_body(f"tp-{i}", "true", ["bench"]) for i in range(n)]
        t0 = time.monotonic()
        for start in range(0, n, batch):
            r = c.post("/tasks", json=bodies[start : start + batch])
            r.raise_for_status()
            if any(item["statusCode"] != 200 for item in r.json()):
                raise RuntimeError("a submission was refused")
        t_end = wait_all_final(c, timeout=60 + n * 0.2)
        ok = count_in_state(c, "Success")
        if ok != n:
            raise RuntimeError(f"only {ok} of {n} tasks succeeded")
        return n / (t_end - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="a fast smoke run")
    ap.add_argument("--tasks", type=int, default=None, help="tasks per run (default 2000)")
    ap.add_argument("--batch", type=int, default=1000, help="tasks per POST /tasks array")
    postgres_option(ap)
    args = ap.parse_args()
    n = args.tasks or (100 if args.quick else 2000)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="calor-bench-tp-") as tmp:
        root = Path(tmp)
        spawn1 = bare_spawn_rate(root, n, cores)
        bare1 = bare_rate(root, n, cores)
        plat = platform_rate(root, n, args.batch, args.postgres)
        bare2 = bare_rate(root, n, cores)
        spawn2 = bare_spawn_rate(root, n, cores)
    bare = (bare1 + bare2) / 2
    spawn = (spawn1 + spawn2) / 2
    ratio = plat / bare
    print(f"tasks={n} cores={cores} store={'PostgreSQL' if args.postgres else 'SQLite'}")
    print(f"bare spawn: {spawn1:.0f} and {spawn2:.0f}/s (mean {spawn:.0f})")
    print(f"bare InstanceRunner.run: {bare1:.0f} and {bare2:.0f} tasks/s (mean {bare:.0f})")
    print(f"platform (REST submit -> all final): {plat:.0f} tasks/s")
    result(
        "throughput",
        f"platform/bare = {ratio:.2f} ({plat:.0f} vs {bare:.0f} tasks/s)",
        ">= 0.5",
        ratio >= 0.5,
    )
    # the physical limit: what calor's runner and platform cost together
    result(
        "throughput_vs_bare_spawn",
        f"platform/spawn = {plat / spawn:.2f} ({plat:.0f} vs {spawn:.0f} tasks/s)",
        ">= 0.5",
        plat / spawn >= 0.5,
    )


if __name__ == "__main__":
    main()
