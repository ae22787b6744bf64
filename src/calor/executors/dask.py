"""The Dask executor: each instance attempt is a Dask task on a cluster (``dask scheduler`` and
``dask worker`` processes, dask-jobqueue, dask-kubernetes...), placed by Dask on a worker that
has the resources it asks for.

Workers advertise resources (``dask worker ... --resources "CPU=16,MEM=64e9"``); an attempt asks
for ``CPU`` = its cores and, when it has a memory limit and workers advertise ``MEM``, that many
bytes. Tasks are submitted fire-and-forget: they outlive this server, whose restart re-attaches
to them (their events come back through the EventChannel, which waits for the server). The
scheduler is asked every few seconds about this server's tasks: one it no longer knows, or one
that erred (its worker died: run the scheduler with ``allowed-failures: 0`` so that calor, not
Dask, decides about retries), ends the attempt with an error and the task's retry settings apply.
"""

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from calor.domain.hardware import machine_fits
from calor.domain.ports import EventSink, Finished, InstanceEvent, InstanceJob, Leftover, Started
from calor.domain.transfer import Upload
from calor.executors.remote import StorageCredentials, WorkerSetup, run_instance
from calor.executors.wire import Orders, decode_event
from calor.runner.machine import cpu_model

log = logging.getLogger("calor.dask")

POLL_EVERY = 2.0  # seconds between two looks at the scheduler's tasks
# attempts handed to the cluster per core it has: the surplus waits on the scheduler (state
# no-worker) and starts as soon as a worker frees resources, without a round trip to calor
QUEUE_AHEAD = 2
ABORTED_MEMORY = 120.0  # seconds an attempt aborted before it reported Started is watched for
LOST = "the Dask worker running this instance was lost ({why})"


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class _InFlight:
    row_id: int
    key: str
    cores: float
    started: bool = False
    submitted_at: float = field(default_factory=time.monotonic)
    orders: Orders = field(default_factory=Orders)


def _calor_tasks(dask_scheduler: Any, prefix: str) -> dict[str, str]:
    """Runs on the scheduler: the state of each of this server's tasks."""
    return {
        str(key): ts.state
        for key, ts in dask_scheduler.tasks.items()
        if isinstance(key, str) and key.startswith(prefix)
    }


class DaskExecutor:
    def __init__(
        self,
        scheduler: str,
        setup: WorkerSetup,
        emit: EventSink,
        on_free: Callable[[], None],
        credentials_for: Callable[[int], StorageCredentials],
    ) -> None:
        from distributed import Client  # only when configured: pip install calor[dask]

        self.scheduler = scheduler
        self.setup = setup
        self.emit = emit
        self.on_free = on_free
        self.credentials_for = credentials_for
        self.prefix = f"calor-{setup.server_id}-"
        self.client = Client(scheduler, set_as_default=False, timeout=30)
        self._lock = threading.Lock()
        self._flight: dict[int, _InFlight] = {}
        self._stopping = threading.Event()
        self._capacity: list[dict[str, float]] = []
        self._workers: dict[str, dict[str, float]] = {}  # address -> resources
        self._models: dict[str, str] = {}  # address -> CPU model, asked once per worker
        self._aborted: dict[str, float] = {}  # key -> until when a worker's report is killed
        self._refresh_capacity()
        self._poller = threading.Thread(target=self._poll, daemon=True, name="calor-dask-poll")
        self._poller.start()

    # -- capacity ------------------------------------------------------------------------

    def _refresh_capacity(self) -> None:
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        resources = {str(a): dict(w.get("resources") or {}) for a, w in workers.items()}
        new = [a for a in resources if a not in self._models]
        models = dict(self._models)
        if new:
            # Dask resources are numbers: each worker tells its CPU model when first seen
            try:
                answers = self.client.run(cpu_model, workers=new, on_error="return")
            except Exception as exc:
                log.warning("Dask workers did not say their CPU model: %s", exc)
                answers = {}
            models.update({str(a): m for a, m in answers.items() if isinstance(m, str)})
        with self._lock:
            self._workers = resources
            self._capacity = list(resources.values())
            self._models = {a: m for a, m in models.items() if a in resources}

    def cpu_models(self) -> list[str]:
        """The CPU models of the workers the cluster has now."""
        with self._lock:
            return sorted(set(self._models.values()))

    def cluster(self) -> dict[str, Any]:
        """Workers, cores and memory the cluster offers, and what calor uses of it."""
        with self._lock:
            used = sum(f.cores for f in self._flight.values())
            running = len(self._flight)
        return {
            "scheduler": self.scheduler,
            "workers": len(self._capacity),
            "cores": int(sum(w.get("CPU", 0) for w in self._capacity)),
            "memoryBytes": int(sum(w.get("MEM", 0) for w in self._capacity)),
            "usedCores": used,
            "runningInstances": running,
            "cpuModels": self.cpu_models(),
        }

    @property
    def total_cores(self) -> int:
        return max(1, int(sum(w.get("CPU", 0) for w in self._capacity)))

    def free_cores(self) -> float:
        with self._lock:
            used = sum(f.cores for f in self._flight.values())
        return self.total_cores * QUEUE_AHEAD - used

    def _resources(self, job: InstanceJob) -> tuple[dict[str, float], list[str] | None] | str:
        """What the attempt asks of a worker and, when it demands a CPU model, the workers
        that have it; or why no worker can ever give it."""
        with self._lock:
            workers, models = dict(self._workers), dict(self._models)
        wanted: dict[str, float] = {"CPU": float(job.cores)}
        if job.memory_limit_mb and any("MEM" in w for w in workers.values()):
            wanted["MEM"] = float(job.memory_limit_mb) * 2**20
        if not any("CPU" in w for w in workers.values()):
            return (
                "no Dask worker advertises CPU: start workers with "
                '--resources "CPU=<cores>,MEM=<bytes>"'
            )
        placed: list[str] | None = None
        if job.cpu_models:
            placed = [a for a in workers if machine_fits(job.cpu_models, models.get(a, ""))]
            if not placed:
                asked = " or ".join(repr(m) for m in job.cpu_models)
                have = ", ".join(repr(m) for m in sorted(set(models.values()))) or "none known"
                return f"no Dask worker has the CPU model {asked}; the workers have: {have}"
            workers = {a: workers[a] for a in placed}
        if not any(all(w.get(k, 0) >= v for k, v in wanted.items()) for w in workers.values()):
            largest = max(workers.values(), key=lambda w: w.get("CPU", 0))
            asked = ", ".join(f"{k}={v:g}" for k, v in wanted.items())
            has = ", ".join(f"{k}={v:g}" for k, v in sorted(largest.items()))
            return f"no Dask worker can run this instance: it needs {asked}; the largest has {has}"
        return wanted, placed

    # -- attempts ------------------------------------------------------------------------

    def _key(self, row_id: int, attempt: int) -> str:
        """Unique per attempt: SQLite may give a deleted instance's row id to a new one."""
        return f"{self._attempt_prefix(row_id, attempt)}{uuid.uuid4().hex[:12]}"

    def _attempt_prefix(self, row_id: int, attempt: int) -> str:
        return f"{self.prefix}{row_id}-{attempt}-"

    def start(self, job: InstanceJob) -> None:
        from distributed import fire_and_forget

        resources = self._resources(job)
        if isinstance(resources, str):
            self._refresh_capacity()  # workers may have joined since
            resources = self._resources(job)
        if isinstance(resources, str):
            self.emit(Finished(job.row_id, _utcnow(), None, error=resources))
            self.on_free()
            return
        wanted, placed = resources
        key = self._key(job.row_id, job.attempt)
        with self._lock:
            self._flight[job.row_id] = _InFlight(job.row_id, key, job.cores)
        future = self.client.submit(
            run_instance,
            job,
            self.setup,
            self.credentials_for(job.user_id),
            key,
            key=key,
            resources=wanted,
            workers=placed,
            allow_other_workers=False,
            pure=False,
            retries=0,
        )
        fire_and_forget(future)

    def receive(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A worker's POST: record its events, answer with orders for its running rows."""
        tagged: list[tuple[str, InstanceEvent]] = []
        for raw in payload.get("events") or []:
            try:
                key = str(raw.pop("key"))
                tagged.append((key, decode_event(raw)))
            except (KeyError, ValueError, AttributeError) as exc:
                log.warning("a worker sent a bad event: %s", exc)
        freed = False
        events: list[InstanceEvent] = []
        with self._lock:
            for key, event in tagged:
                current = self._flight.get(event.row_id)
                if current is None or current.key != key:
                    continue  # an attempt that is over for calor (lost, aborted, deleted)
                events.append(event)
                if isinstance(event, Started):
                    current.started = True
                elif isinstance(event, Finished):
                    del self._flight[event.row_id]
                    freed = True
            orders = Orders()
            for entry in payload.get("running") or []:
                if not (isinstance(entry, list) and len(entry) == 2):
                    continue
                if entry[1] in self._aborted and isinstance(entry[0], int):
                    orders.abort.append(entry[0])  # it started after all: stop it
                    continue
                flight = self._flight.get(entry[0]) if isinstance(entry[0], int) else None
                if flight is None or flight.key != entry[1]:
                    continue
                orders.abort += flight.orders.abort
                orders.refresh += flight.orders.refresh
                orders.snapshot += flight.orders.snapshot
                # aborts are repeated until the outcome arrives; the others go once
                flight.orders = Orders(abort=flight.orders.abort)
        for event in events:
            self.emit(event)
        if freed:
            self.on_free()
        return orders.to_json()

    def is_current(self, row_id: int, key: str) -> bool:
        """Whether ``key`` is the attempt of this row the cluster runs now."""
        with self._lock:
            flight = self._flight.get(row_id)
            return flight is not None and flight.key == key

    def abort(self, row_ids: list[int]) -> None:
        not_started: list[_InFlight] = []
        with self._lock:
            for row in row_ids:
                flight = self._flight.get(row)
                if flight is None:
                    continue
                flight.orders.abort = [row]
                if not flight.started:
                    not_started.append(flight)
        with self._lock:
            now = time.monotonic()
            self._aborted = {k: t for k, t in self._aborted.items() if t > now}
            for flight in not_started:
                self._aborted[flight.key] = now + ABORTED_MEMORY
        for flight in not_started:
            # still queued on the cluster: cancelled there; if it started meanwhile, the
            # worker reports it running and is told to abort it
            self.client.cancel([flight.key], force=True)
            self._end(flight.row_id, Finished(flight.row_id, _utcnow(), None, cancelled=True))

    def refresh(self, row_ids: list[int]) -> None:
        with self._lock:
            for row in row_ids:
                if row in self._flight:
                    self._flight[row].orders.refresh.append(row)

    def snapshot(self, row_ids: list[int], snapshot_id: str, target: Upload) -> None:
        from calor.domain.ports import SnapshotDone

        missing = []
        with self._lock:
            for row in row_ids:
                flight = self._flight.get(row)
                if flight is None:
                    missing.append(row)
                else:
                    flight.orders.snapshot.append((row, snapshot_id, target))
        for row in missing:
            self.emit(SnapshotDone(row, snapshot_id, 0, 0))

    def _end(self, row_id: int, outcome: Finished) -> None:
        with self._lock:
            known = self._flight.pop(row_id, None) is not None
        if known:
            self.emit(outcome)
            self.on_free()

    # -- restarts and lost workers -------------------------------------------------------

    def adopt(self, leftovers: list[Leftover]) -> list[Leftover]:
        """Instances of a previous server whose Dask task still exists are this server's
        again; their workers keep posting events until they get through."""
        states = self.client.run_on_scheduler(_calor_tasks, prefix=self.prefix)
        alive = ("waiting", "processing", "queued", "no-worker")
        others: list[Leftover] = []
        with self._lock:
            for item in leftovers:
                prefix = self._attempt_prefix(item.row_id, item.attempts)
                keys = [k for k, state in states.items() if k.startswith(prefix) and state in alive]
                if keys:
                    self._flight[item.row_id] = _InFlight(
                        item.row_id, keys[0], item.cores, started=item.pid is not None
                    )
                else:
                    others.append(item)
        return others

    def _poll(self) -> None:
        while not self._stopping.wait(POLL_EVERY):
            try:
                self._refresh_capacity()
                states = self.client.run_on_scheduler(_calor_tasks, prefix=self.prefix)
            except Exception as exc:
                log.warning("the Dask scheduler did not answer: %s", exc)
                continue
            with self._lock:
                flights = list(self._flight.values())
            for flight in flights:
                state = states.get(flight.key)
                # a task just submitted may not be on the scheduler yet
                if state is None and time.monotonic() - flight.submitted_at < 10 * POLL_EVERY:
                    continue
                if state in (None, "erred", "forgotten", "released"):
                    why = "the scheduler no longer has its task" if state is None else state
                    self._end(
                        flight.row_id,
                        Finished(flight.row_id, _utcnow(), None, error=LOST.format(why=why)),
                    )

    def stop(self, grace_seconds: float) -> None:
        """The instances keep running on the cluster; the next start re-attaches to them."""
        self._stopping.set()
        self.client.close()
