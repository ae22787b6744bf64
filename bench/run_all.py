"""Run every benchmark one after the other and print their RESULT lines together at the end.

    .venv/bin/python bench/run_all.py            # full run (seeds a 10^6 store: ~15 min)
    .venv/bin/python bench/run_all.py --quick    # smoke run (~1 min)

Each benchmark is a separate process (so one server at a time, and a crash stays contained) with
a time limit; extra arguments after `--` go to bench_scale.py (e.g. `-- --seed-cache DIR`).
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    "bench_throughput.py",
    "bench_latency.py",
    "bench_bulk.py",
    "bench_scale.py",
    "bench_storage.py",
    "bench_dask.py",  # starts its own loopback Dask scheduler and workers
    "bench_docker.py",  # needs DOCKER_HOST or CALOR_TEST_DOCKER_HOST (.ci/docker.sh start DIR)
]
TIMEOUT_S = {"bench_scale.py": 3600.0}


def main() -> int:
    ap = argparse.ArgumentParser(description="run all calor benchmarks")
    ap.add_argument("--quick", action="store_true", help="fast smoke runs")
    ap.add_argument("--only", nargs="+", choices=BENCHES, default=None)
    ap.add_argument("scale_args", nargs="*", help="extra arguments for bench_scale.py")
    args = ap.parse_args()
    results: list[str] = []
    failed: list[str] = []
    for name in args.only or BENCHES:
        if name == "bench_docker.py" and not (
            os.environ.get("DOCKER_HOST") or os.environ.get("CALOR_TEST_DOCKER_HOST")
        ):
            print(
                "=== bench_docker.py skipped: no DOCKER_HOST / CALOR_TEST_DOCKER_HOST", flush=True
            )
            continue
        argv = [sys.executable, str(HERE / name)] + (["--quick"] if args.quick else [])
        if name == "bench_scale.py":
            argv += args.scale_args
        print(f"=== {name} {'--quick' if args.quick else ''}", flush=True)
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S.get(name, 900.0),
                cwd=HERE,
            )
        except subprocess.TimeoutExpired:
            failed.append(f"{name}: timed out")
            continue
        print(proc.stdout, end="")
        if proc.returncode != 0:
            print(proc.stderr, end="", file=sys.stderr)
            failed.append(f"{name}: exit code {proc.returncode}")
        results += [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        print(f"--- {name} took {time.monotonic() - t0:.0f} s", flush=True)
    print("\n=== summary")
    for line in results:
        print(line)
    for line in failed:
        print(f"FAILED {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
