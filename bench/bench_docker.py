"""Docker runtime: the per-instance cost of calor's Docker runtime over a bare `docker run` of
the same image and command (target: ratio <= 1.10), and containers per second with N instances
in parallel, through the REST API, next to N bare `docker run` in parallel.

Needs an engine at DOCKER_HOST (or CALOR_TEST_DOCKER_HOST) holding the image
calor-test/busybox: `.ci/docker.sh start DIR` starts one and builds the image. The sequential
figures alternate bare and calor runs, so both see the same machine; medians are compared.
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import count_in_state, result, running_server, wait_all_final

from calor.domain.ports import Finished, InstanceEvent, InstanceJob
from calor.runner.docker import DockerRuntime
from calor.runner.instance import InstanceRunner
from calor.runner.runtime import Handle

IMAGE, TAG = "calor-test/busybox", "latest"
COMMAND = "true"


def bare_run() -> float:
    t0 = time.monotonic()
    subprocess.run(
        ["docker", "run", "--rm", "--network", "none", f"{IMAGE}:{TAG}", "/bin/sh", "-c", COMMAND],
        check=True,
        capture_output=True,
    )
    return time.monotonic() - t0


def calor_runner(root: Path) -> InstanceRunner:
    runtime = DockerRuntime.connect(f"bench-{uuid.uuid4().hex[:8]}", "none")
    return InstanceRunner(runtime, root / "work")


def calor_run(runner: InstanceRunner) -> float:
    job = InstanceJob(
        row_id=1,
        task_uuid=str(uuid.uuid4()),
        instance_id=0,
        instance_count=1,
        attempt=1,
        profile="docker-batch",
        constants={"DOCKER_REPO": IMAGE, "DOCKER_TAG": TAG, "DOCKER_CMD": COMMAND},
        cores=1,
    )
    failures: list[str] = []

    def emit(event: InstanceEvent) -> None:
        if isinstance(event, Finished) and (event.exit_code != 0 or event.error):
            failures.append(str(event.error))

    def on_process(_: Handle) -> None:
        pass

    t0 = time.monotonic()
    runner.run(job, emit, on_process)
    elapsed = time.monotonic() - t0
    if failures:
        raise RuntimeError(f"a calor run failed: {failures[0]}")
    return elapsed


def parallel_bare(n: int, width: int) -> float:
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=width) as pool:
        list(pool.map(lambda _: bare_run(), range(n)))
    return n / (time.monotonic() - t0)


def parallel_platform(root: Path, n: int, width: int) -> float:
    env = {"CALOR_RUNTIME": "docker", "DOCKER_HOST": os.environ["DOCKER_HOST"]}
    with running_server(root / "srv", cores=width, env=env) as server, server.client() as c:
        body = {
            "name": "docker-bench",
            "profile": "docker-batch",
            "instanceCount": n,
            "constants": [
                {"key": "DOCKER_REPO", "value": IMAGE},
                {"key": "DOCKER_TAG", "value": TAG},
                {"key": "DOCKER_CMD", "value": COMMAND},
            ],
        }
        t0 = time.monotonic()
        c.post("/tasks", json=body).raise_for_status()
        t_end = wait_all_final(c, timeout=60 + n)
        if count_in_state(c, "Success") != 1:
            raise RuntimeError("the bench task did not succeed")
        return n / (t_end - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="a fast smoke run")
    ap.add_argument("--rounds", type=int, default=None, help="sequential runs of each (40)")
    ap.add_argument("--instances", type=int, default=None, help="parallel instances (64)")
    ap.add_argument("--width", type=int, default=8, help="instances at a time (8)")
    args = ap.parse_args()
    if "DOCKER_HOST" not in os.environ and os.environ.get("CALOR_TEST_DOCKER_HOST"):
        os.environ["DOCKER_HOST"] = os.environ["CALOR_TEST_DOCKER_HOST"]
    rounds = args.rounds or (8 if args.quick else 40)
    n = args.instances or (16 if args.quick else 64)
    with tempfile.TemporaryDirectory(prefix="calor-bench-docker-") as tmp:
        root = Path(tmp)
        runner = calor_runner(root)
        bare_run()  # warm up the engine and the image's layers
        calor_run(runner)
        bare, calor = [], []
        for _ in range(rounds):
            bare.append(bare_run())
            calor.append(calor_run(runner))
        bare_rate = parallel_bare(n, args.width)
        platform_rate = parallel_platform(root, n, args.width)
    b, c = statistics.median(bare), statistics.median(calor)
    print(
        f"sequential, {rounds} rounds: bare docker run median {b * 1000:.0f} ms "
        f"(p10 {statistics.quantiles(bare, n=10)[0] * 1000:.0f}), calor runtime median "
        f"{c * 1000:.0f} ms (p10 {statistics.quantiles(calor, n=10)[0] * 1000:.0f})"
    )
    result(
        "docker_overhead",
        f"calor runtime / bare docker run = {c / b:.2f} ({c * 1000:.0f} vs {b * 1000:.0f} ms "
        "per instance, medians)",
        "<= 1.10",
        c / b <= 1.10,
    )
    result(
        "docker_parallel",
        f"{platform_rate:.1f} containers/s through REST ({n} instances, {args.width} at a time) "
        f"vs {bare_rate:.1f}/s bare docker run = {platform_rate / bare_rate:.2f}",
        "figure only",
        None,
    )


if __name__ == "__main__":
    main()
