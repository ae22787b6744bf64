"""The engine loop: records what executors report, then hands queued instances to the executor.

One thread owns both jobs, so instance state changes are applied in order and in batches, and
capacity freed by an ending instance is reused in the same turn: a turn records a burst of
events and claims what their ends freed in one transaction.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from calor.domain.errors import Unavailable
from calor.domain.ports import Executor, Finished, InstanceEvent, Leftover
from calor.domain.transfer import SnapshotPlan
from calor.store.execution import ExecutionStore

log = logging.getLogger("calor.engine")

LOST_MESSAGE = (
    "the calor server stopped while this instance was running; its process was stopped "
    "when the server started again"
)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Engine:
    def __init__(
        self,
        store: ExecutionStore,
        reap: Callable[[int | None, float | None], bool],
        clock: Callable[[], datetime] = utcnow,
        max_batch: int = 5000,
        due_snapshots: Callable[[datetime], list[SnapshotPlan]] | None = None,
        deadlines: Callable[[datetime], list[int]] | None = None,
    ) -> None:
        self.store = store
        self.due_snapshots = due_snapshots
        # enforces what is due (wall times, queue limits, auto-deletion); returns the
        # instances to kill
        self.deadlines = deadlines
        self._next_timer_check = 0.0
        self.reap = reap
        self.clock = clock
        self.max_batch = max_batch
        self.executor: Executor | None = None
        self._events: queue.SimpleQueue[InstanceEvent] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # events taken from the queue but not yet recorded (the database was unreachable)
        self._unapplied: list[InstanceEvent] = []

    # -- called from anywhere --------------------------------------------------------------

    def emit(self, event: InstanceEvent) -> None:
        self._events.put(event)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def abort(self, row_ids: list[int]) -> None:
        if row_ids and self.executor is not None:
            self.executor.abort(row_ids)

    def refresh(self, row_ids: list[int]) -> None:
        if row_ids and self.executor is not None:
            self.executor.refresh(row_ids)

    def snapshot(self, plan: SnapshotPlan) -> None:
        if plan.row_ids and self.executor is not None:
            self.executor.snapshot(plan.row_ids, plan.snapshot_id, plan.target)

    # -- life cycle ----------------------------------------------------------------------

    def start(self, executor: Executor) -> None:
        self.executor = executor
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="calor-engine", daemon=True)
        self._thread.start()

    def recover(self) -> None:
        """After a crash: no instance stays active without a process behind it."""
        leftovers: list[Leftover] = self.store.leftovers()
        if leftovers and self.executor is not None:
            leftovers = self.executor.adopt(leftovers)
        if not leftovers:
            return
        now = self.clock()
        events: list[InstanceEvent] = []
        for item in leftovers:
            self.reap(item.pid, item.proc_start)
            if item.pid is None or item.hold:
                # dispatched but never started: it had no run at all; or a pool slot, which
                # only held its cores: it is prepared again
                events.append(Finished(item.row_id, now, None, interrupted=True))
            else:
                events.append(Finished(item.row_id, now, None, error=LOST_MESSAGE))
        self.store.apply(events, now)
        log.warning("recovered %d instances left active by a previous server", len(leftovers))

    def stop(self, grace_seconds: float) -> None:
        """Stop dispatching, let running instances end (or interrupt them), record everything."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        if self.executor is not None:
            self.executor.stop(grace_seconds)
        try:
            while self._drain():
                pass
        except Unavailable as exc:
            # their instances are still active in the store: the next start recovers them
            log.error("%d events were not recorded: %s", len(self._unapplied), exc.message)

    # -- the loop ------------------------------------------------------------------------

    def _take(self) -> list[InstanceEvent]:
        """The next batch of events, those the store could not take last time first."""
        batch, self._unapplied = self._unapplied, []
        while len(batch) < self.max_batch:
            try:
                batch.append(self._events.get_nowait())
            except queue.Empty:
                break
        return batch

    def _drain(self) -> int:
        """Record one batch of events; none is lost whatever the store does."""
        batch = self._take()
        if not batch:
            return 0
        try:
            self.store.apply(batch, self.clock())
        except Unavailable:
            self._unapplied = batch  # applied in order once the database answers again
            raise
        except Exception:
            log.exception("recording %d events failed; recording them one by one", len(batch))
            self._apply_one_by_one(batch)
        return len(batch)

    def _turn(self, executor: Executor) -> int:
        """Record one batch of events and start what fits now, in one transaction; returns
        how many events were recorded."""
        batch = self._take()
        try:
            _, jobs = self.store.turn(
                batch, executor.free_cores(), executor.total_cores, self.clock()
            )
        except Unavailable:
            self._unapplied = batch
            raise
        except Exception:
            if not batch:
                raise
            log.exception("recording %d events failed; recording them one by one", len(batch))
            self._apply_one_by_one(batch)
            self._wake.set()  # what their ends freed is claimed at the next turn
            return len(batch)
        for job in jobs:
            executor.start(job)
        return len(batch)

    def _apply_one_by_one(self, batch: list[InstanceEvent]) -> None:
        """Isolate the event the store rejects, so the others (and their tasks) move on."""
        for i, event in enumerate(batch):
            try:
                self.store.apply([event], self.clock())
            except Unavailable:
                self._unapplied = batch[i:]
                raise
            except Exception as exc:
                log.exception("event %r cannot be recorded", event)
                if isinstance(event, Finished):
                    # the outcome must land, or the instance would look alive forever
                    self.store.apply(
                        [
                            Finished(
                                event.row_id,
                                event.at,
                                None,
                                error=f"calor could not record this instance's outcome: {exc}",
                            )
                        ],
                        self.clock(),
                    )

    def _timers(self) -> None:
        """Looked at once a second at most: snapshot intervals and deadlines are whole
        seconds."""
        if time.monotonic() < self._next_timer_check:
            return
        self._next_timer_check = time.monotonic() + 1.0
        now = self.clock()
        if self.due_snapshots is not None:
            for plan in self.due_snapshots(now):
                self.snapshot(plan)
        if self.deadlines is not None:
            self.abort(self.deadlines(now))

    def _loop(self) -> None:
        assert self.executor is not None
        while not self._stopping.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            try:
                self._timers()
                # claimed even with no free core: tasks on pools run on their slots' cores
                while self._turn(self.executor) >= self.max_batch and not self._stopping.is_set():
                    pass
            except Unavailable as exc:
                log.warning("%s; the engine retries in 1 s", exc.message)
                self._stopping.wait(1.0)
                self._wake.set()
            except Exception:
                log.exception("engine turn failed; retrying")
                self._stopping.wait(0.5)
                self._wake.set()
