"""Targets 4 and 5: reads against stores of 10^4, 10^5 and 10^6 tasks (seeded by seed.py).

For each size a server (--cores 1) is started on the seeded data dir, then:
- target 4, filtered page: POST /tasks/paginate (full objects, what the SDK sends when it
  filters) with And(Tags Equal t3, State Equal Success), maximumResults 100, sequential
  requests after a warm-up; p50/p99 client-side. Target: p99 <= 20 ms at 10^6 and at most 2x
  the 10^4 p99. The same page of summaries and a rare tag (1 task in 1,000) are reported too.
- target 5, GET /tasks/{uuid} with 16 client threads for a fixed number of requests on random
  uuids of the store: requests/s (best of 3 rounds, each after a round of GET /settings, the
  cheapest authenticated call, as a same-server reference); and the server's RSS (psutil, on
  the server pid) after start, after the page requests and after the GET load. Target: neither
  falls/grows with the store.
- single POST /tasks round trips (the submit path counts the user's tasks first).
"""

import argparse
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from common import client, percentile, result, running_server, task_body
from seed import seeded

FILTER = {
    "operator": "And",
    "filters": [
        {"field": "Tags", "operator": "Equal", "value": "t3"},
        {"field": "State", "operator": "Equal", "value": "Success"},
    ],
}
RARE = {
    "operator": "And",
    "filters": [
        {"field": "Tags", "operator": "Equal", "value": "rare"},
        {"field": "State", "operator": "Equal", "value": "Success"},
    ],
}
THREADS = 16
MB = 2**20


@dataclass
class Figures:
    n: int
    seed_s: float
    page_p50: float
    page_p99: float
    summ_p99: float
    rare_p99: float
    get_rps: float
    base_rps: float
    get_p99: float
    submit_p50: float
    submit_refused: int
    rss_start: float
    rss_pages: float
    rss_end: float


def timed_posts(url: str, token: str, path: str, body: Any, count: int, warm: int) -> list[float]:
    out: list[float] = []
    with client(url, token) as c:
        for i in range(warm + count):
            t0 = time.monotonic()
            r = c.post(path, json=body)
            elapsed = time.monotonic() - t0
            r.raise_for_status()
            if r.json()["count"] == 0 and body is FILTER:
                raise RuntimeError("the filtered page is empty")
            if i >= warm:
                out.append(elapsed)
    return out


def get_load(url: str, token: str, paths: list[str], total: int) -> tuple[float, list[float]]:
    """``total`` GETs of random ``paths`` over THREADS client threads; returns (req/s, times)."""
    times: list[float] = []
    lock = threading.Lock()
    errors: list[str] = []

    def worker(part: list[str]) -> None:
        mine: list[float] = []
        with client(url, token) as c:
            for path in part:
                t0 = time.monotonic()
                r = c.get(path)
                mine.append(time.monotonic() - t0)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")
        with lock:
            times.extend(mine)

    rng = random.Random(7)
    picks = [rng.choice(paths) for _ in range(total)]
    threads = [threading.Thread(target=worker, args=(picks[i::THREADS],)) for i in range(THREADS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} GET failed, e.g. {errors[0]}")
    return total / elapsed, times


def measure(data_dir: Path, n: int, requests: int, gets: int) -> Figures:
    token, seed_s = seeded(data_dir, n)
    db = sqlite3.connect(data_dir / "calor.db")
    paths = [
        f"/tasks/{r[0]}" for r in db.execute("SELECT uuid FROM tasks ORDER BY random() LIMIT 5000")
    ]
    db.close()
    ms = 1000.0
    with running_server(data_dir, token=token, cores=1) as server:
        proc = psutil.Process(server.pid)
        rss_start = proc.memory_info().rss / MB
        warm = 10
        page = timed_posts(server.url, token, "/tasks/paginate", FILTER, requests, warm)
        body_summ = {"filter": FILTER, "maximumResults": 100}
        summ = timed_posts(server.url, token, "/tasks/summaries/paginate", body_summ, requests, 5)
        body_rare = {"filter": RARE, "maximumResults": 100}
        rare = timed_posts(
            server.url, token, "/tasks/paginate", body_rare, max(10, requests // 5), 2
        )
        rss_pages = proc.memory_info().rss / MB
        # best of 3 alternating rounds (noise on a shared machine only ever slows things down)
        base_rps, rps, get_times = 0.0, 0.0, []
        for _ in range(3):
            base_rps = max(base_rps, get_load(server.url, token, ["/settings"], gets // 3)[0])
            round_rps, times = get_load(server.url, token, paths, gets // 3)
            rps, get_times = max(rps, round_rps), get_times + times
        rss_end = proc.memory_info().rss / MB
        submits: list[float] = []
        refused = 0
        with server.client() as c:
            for i in range(20):
                t0 = time.monotonic()
                r = c.post("/tasks", json=task_body(f"late-{i}", "true"))
                submits.append(time.monotonic() - t0)
                if r.status_code == 403:  # the per-user limit (10^6 tasks) is reached
                    refused += 1
                else:
                    r.raise_for_status()
    return Figures(
        n=n,
        seed_s=seed_s,
        page_p50=percentile(page, 50) * ms,
        page_p99=percentile(page, 99) * ms,
        summ_p99=percentile(summ, 99) * ms,
        rare_p99=percentile(rare, 99) * ms,
        get_rps=rps,
        base_rps=base_rps,
        get_p99=percentile(get_times, 99) * ms,
        submit_p50=percentile(submits, 50) * ms,
        submit_refused=refused,
        rss_start=rss_start,
        rss_pages=rss_pages,
        rss_end=rss_end,
    )


def run(sizes: list[int], root: Path, requests: int, gets: int, keep: bool) -> list[Figures]:
    out: list[Figures] = []
    for n in sizes:
        data_dir = root / f"store-{n}"
        f = measure(data_dir, n, requests, gets)
        out.append(f)
        seed_note = f"seeded in {f.seed_s:.1f} s" if f.seed_s else "reused seed"
        print(
            f"n={n:>8} ({seed_note}): page p50 {f.page_p50:.1f} p99 {f.page_p99:.1f} ms;"
            f" summaries p99 {f.summ_p99:.1f} ms; rare tag p99 {f.rare_p99:.1f} ms;"
            f" GET task {f.get_rps:.0f} req/s (p99 {f.get_p99:.1f} ms),"
            f" GET /settings {f.base_rps:.0f} req/s;"
            f" POST /tasks p50 {f.submit_p50:.1f} ms"
            f"{' (403: per-user task limit reached)' if f.submit_refused else ''};"
            f" RSS {f.rss_start:.0f} -> {f.rss_pages:.0f} -> {f.rss_end:.0f} MiB",
            flush=True,
        )
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="reads at 10^4..10^6 stored tasks")
    ap.add_argument("--quick", action="store_true", help="a fast smoke run (10^3 and 10^4)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--requests", type=int, default=None, help="page requests per size (300)")
    ap.add_argument("--gets", type=int, default=None, help="GET requests per size (5000)")
    ap.add_argument(
        "--seed-cache", type=Path, default=None, help="keep seeded stores here and reuse them"
    )
    args = ap.parse_args()
    sizes = args.sizes or ([1_000, 10_000] if args.quick else [10_000, 100_000, 1_000_000])
    requests = args.requests or (40 if args.quick else 300)
    gets = args.gets or (400 if args.quick else 5000)
    if args.seed_cache:
        args.seed_cache.mkdir(parents=True, exist_ok=True)
        figs = run(sizes, args.seed_cache, requests, gets, keep=True)
    else:
        with tempfile.TemporaryDirectory(prefix="calor-bench-scale-") as tmp:
            figs = run(sizes, Path(tmp), requests, gets, keep=False)
    small, big = figs[0], figs[-1]
    growth = big.page_p99 / small.page_p99
    result(
        f"filtered_page_p99@{big.n}",
        f"{big.page_p99:.1f} ms (p50 {big.page_p50:.1f}); {growth:.2f}x the {small.n} p99"
        f" ({small.page_p99:.1f} ms)",
        "<= 20 ms and <= 2x",
        big.page_p99 <= 20.0 and growth <= 2.0,
    )
    norm_small = small.get_rps / small.base_rps
    norm_big = big.get_rps / big.base_rps
    size_ratio = big.get_rps / small.get_rps
    # the verdict uses the same-server reference: the machine's speed drifts between sizes
    result(
        f"get_rps@{big.n}",
        f"GET task / GET /settings = {norm_big:.2f} at {big.n} vs {norm_small:.2f} at"
        f" {small.n} (ratio {norm_big / norm_small:.2f}); raw {big.get_rps:.0f} vs"
        f" {small.get_rps:.0f} req/s ({size_ratio:.2f}x; best of 3 rounds, {THREADS} threads)",
        "no drop with size (ratio >= 0.8)",
        norm_big / norm_small >= 0.8,
    )
    result(
        f"rss@{big.n}",
        f"{big.rss_end:.0f} MiB after load = {big.rss_end / small.rss_end:.2f}x the {small.n}"
        f" figure ({small.rss_end:.0f} MiB)",
        "no growth with size",
        big.rss_end / small.rss_end <= 1.25,
    )


if __name__ == "__main__":
    main()
