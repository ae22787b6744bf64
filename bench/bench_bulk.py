"""Target 3: bulk submission, POST /tasks with arrays of 1,000 tasks (target >= 5,000 tasks/s).

The server runs with --cores 1 so that execution takes at most one core of the two. Two runs:
- `true`: the submitted tasks run while the next arrays arrive (engine and API share the
  database writer and the GIL): the figure checked against the target;
- `sleep 600`: the first instance blocks the only core, nothing else runs, so the figure is the
  submission path alone.
The baseline is the same 1,000 specs given to TaskService.submit in this process on a fresh
store (no HTTP, JSON or validation): the ratio says how much the API layer costs.
"""

import argparse
import tempfile
import time
from pathlib import Path

from common import percentile, result, running_server, task_body

from calor.api.requests import TaskBody, parse
from calor.api.schemas import task_spec
from calor.settings import Settings
from calor.wiring import open_database, user_service

BATCH = 1000


class _NoEngine:
    """Nothing runs in the baseline: the engine's side is a no-op."""

    def wake(self) -> None: ...

    def abort(self, row_ids: list[int]) -> None: ...

    def refresh(self, row_ids: list[int]) -> None: ...

    def snapshot(self, plan: object) -> None: ...


def store_rate(root: Path, batches: int) -> float:
    """Tasks/s of TaskService.submit alone (one transaction per 1,000 tasks)."""
    from calor.services.tasks import TaskService
    from calor.settings import Limits
    from calor.store.logs import LogStore
    from calor.store.tasks import TaskStore

    settings = Settings(data_dir=root / "store")
    db = open_database(settings)
    user, _ = user_service(db, settings).create("bench@calor.local")
    service = TaskService(TaskStore(db), LogStore(db), Limits(), _NoEngine())
    elapsed = 0.0
    for b in range(batches):
        specs = [task_spec(parse(TaskBody, task_body(f"s{b}-{i}")), 1000) for i in range(BATCH)]
        t0 = time.monotonic()
        service.submit(user.id, specs)
        elapsed += time.monotonic() - t0
    db.dispose()
    return batches * BATCH / elapsed


def api_rates(root: Path, command: str, batches: int) -> list[float]:
    rates: list[float] = []
    data_dir = root / f"srv-{command.split()[0]}"
    with running_server(data_dir, cores=1) as server, server.client() as c:
        for b in range(batches):
            bodies = [task_body(f"b{b}-{i}", command, ["bulk"]) for i in range(BATCH)]
            t0 = time.monotonic()
            r = c.post("/tasks", json=bodies)
            elapsed = time.monotonic() - t0
            r.raise_for_status()
            if sum(1 for item in r.json() if item["statusCode"] == 200) != BATCH:
                raise RuntimeError("a bulk item was refused")
            rates.append(BATCH / elapsed)
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description="bulk submission rate")
    ap.add_argument("--quick", action="store_true", help="a fast smoke run")
    ap.add_argument("--batches", type=int, default=None, help="arrays of 1,000 (default 10)")
    args = ap.parse_args()
    batches = args.batches or (2 if args.quick else 10)
    with tempfile.TemporaryDirectory(prefix="calor-bench-bulk-") as tmp:
        root = Path(tmp)
        base = store_rate(root, batches)
        running = api_rates(root, "true", batches)
        idle = api_rates(root, "sleep 600", batches)
    med_run, med_idle = percentile(running, 50), percentile(idle, 50)
    print(f"batches={batches} x {BATCH}")
    print(f"TaskService.submit in-process: {base:.0f} tasks/s")
    print(f"API, tasks running (`true`, --cores 1): {[round(r) for r in running]}")
    print(f"API, nothing running (`sleep 600`, --cores 1): {[round(r) for r in idle]}")
    result(
        "bulk_submit",
        f"{med_run:.0f} tasks/s median per array while running (api/store = {med_run / base:.2f});"
        f" {med_idle:.0f} tasks/s with nothing running (api/store = {med_idle / base:.2f})",
        ">= 5000 tasks/s",
        med_run >= 5000,
    )


if __name__ == "__main__":
    main()
