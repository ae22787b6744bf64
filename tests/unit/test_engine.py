"""The engine loop never loses an event, whatever the store does with a batch."""

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from calor.domain.errors import Unavailable
from calor.domain.ports import Finished, InstanceEvent, InstanceJob, Progress, Started
from calor.scheduler import Engine
from tests.conftest import wait_for

T0 = datetime(2026, 1, 1)


class FlakyStore:
    """Records what it applies; fails on demand like a database that went away or a bad row."""

    def __init__(self) -> None:
        self.applied: list[InstanceEvent] = []
        self.unavailable_calls = 0
        self.poison: set[int] = set()  # row ids whose events the store rejects
        self.lock = threading.Lock()

    def apply(self, events: Sequence[InstanceEvent], now: datetime) -> int:
        with self.lock:
            if self.unavailable_calls:
                self.unavailable_calls -= 1
                raise Unavailable("the database cannot be reached")
            if any(e.row_id in self.poison and not _is_error(e) for e in events):
                raise ValueError("bad row")
            self.applied.extend(events)
        return len(events)

    def claim(self, free: int, total: int, now: datetime) -> list[InstanceJob]:
        return []

    def turn(
        self, events: Sequence[InstanceEvent], free: int, total: int, now: datetime
    ) -> tuple[int, list[InstanceJob]]:
        # one transaction: a batch that fails claims nothing either
        ended = self.apply(events, now) if events else 0
        return ended, self.claim(free, total, now)

    def leftovers(self) -> list[Any]:
        return []


def _is_error(event: InstanceEvent) -> bool:
    return isinstance(event, Finished) and (event.error or "").startswith("calor could not")


class IdleExecutor:
    total_cores = 1

    def free_cores(self) -> int:
        return 0

    def start(self, job: InstanceJob) -> None:
        raise AssertionError("nothing is queued")

    def abort(self, row_ids: list[int]) -> None:
        pass

    def stop(self, grace_seconds: float) -> None:
        pass


def _engine(store: FlakyStore) -> Engine:
    engine = Engine(store, reap=lambda pid, start: False)  # type: ignore[arg-type]
    engine.start(IdleExecutor())
    return engine


def test_events_wait_in_order_while_the_database_is_unreachable() -> None:
    store = FlakyStore()
    store.unavailable_calls = 2
    engine = _engine(store)
    try:
        events: list[InstanceEvent] = [
            Started(1, T0, pid=10, proc_start=1.0),
            Progress(1, 50.0),
            Finished(1, T0, 0),
        ]
        for event in events:
            engine.emit(event)
        wait_for(lambda: len(store.applied) == 3, timeout=10)
        assert store.applied == events
        assert store.unavailable_calls == 0
    finally:
        engine.stop(0)


def test_a_rejected_event_does_not_hold_back_the_others() -> None:
    store = FlakyStore()
    store.poison = {2}
    engine = _engine(store)
    try:
        engine.emit(Started(1, T0, pid=10, proc_start=1.0))
        engine.emit(Finished(2, T0, 0))
        engine.emit(Finished(1, T0, 0))
        wait_for(lambda: len(store.applied) == 3, timeout=10)
        by_row = {(e.row_id, type(e).__name__): e for e in store.applied}
        assert by_row[(1, "Finished")] == Finished(1, T0, 0)
        outcome = by_row[(2, "Finished")]
        assert isinstance(outcome, Finished)
        # the instance still ends, with an error that says why, instead of looking alive
        assert outcome.error == "calor could not record this instance's outcome: bad row"
    finally:
        engine.stop(0)


def test_stop_records_what_is_left() -> None:
    store = FlakyStore()
    engine = _engine(store)
    engine.stop(0)
    engine.emit(Finished(3, T0, 0))
    engine.stop(0)
    assert store.applied == [Finished(3, T0, 0)]
