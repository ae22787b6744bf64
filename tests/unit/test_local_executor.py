"""The local executor's threads: reused from one attempt to the next, ended when idle, and a
stop that returns only once every attempt's end has reached the engine."""

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

import calor.executors.local as local
from calor.domain.ports import EventSink, Finished, InstanceEvent, InstanceJob, Started
from calor.executors.local import LocalExecutor
from calor.runner.host import HostRuntime
from calor.runner.instance import InstanceRunner
from calor.runner.runtime import Handle
from tests.conftest import wait_for

T0 = datetime(2026, 1, 1)


class FakeHandle:
    def __init__(self) -> None:
        self.cancelled = False
        self.interrupted = False
        self.address: str | None = None
        self.stopped = threading.Event()

    def terminate_tree(self) -> None:
        self.stopped.set()

    def kill_tree(self) -> None:
        self.stopped.set()


class FakeRunner(InstanceRunner):
    """Runs no process: an attempt runs until released (or stopped), on the executor's
    thread, which it notes."""

    def __init__(self) -> None:
        super().__init__(HostRuntime([], sandbox=False), Path("/nonexistent"))
        self.threads: dict[int, int] = {}
        self.release_all = threading.Event()
        self.handles: dict[int, FakeHandle] = {}
        self.before_process = threading.Event()
        self.before_process.set()

    def run(self, job: InstanceJob, emit: EventSink, on_process: Callable[[Handle], None]) -> None:
        self.threads[job.row_id] = threading.get_ident()
        self.before_process.wait()
        handle = FakeHandle()
        self.handles[job.row_id] = handle
        on_process(handle)
        emit(Started(job.row_id, T0, 1, 1.0))
        while not (self.release_all.is_set() or handle.stopped.is_set()):
            handle.stopped.wait(0.01)
        emit(
            Finished(
                job.row_id,
                T0,
                None if handle.stopped.is_set() else 0,
                cancelled=handle.cancelled,
                interrupted=handle.interrupted,
            )
        )


def _job(row_id: int) -> InstanceJob:
    return InstanceJob(row_id, "t", row_id, 10, 1, "docker-batch", {"DOCKER_CMD": "x"}, 1)


def _executor(runner: FakeRunner, events: list[InstanceEvent]) -> LocalExecutor:
    return LocalExecutor(runner, events.append, lambda: None, cores=2)


def _ended(events: list[InstanceEvent]) -> set[int]:
    return {e.row_id for e in events if isinstance(e, Finished)}


def test_a_thread_runs_attempt_after_attempt_then_ends_when_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local, "IDLE_THREAD_SECONDS", 0.3)
    runner, events = FakeRunner(), list[InstanceEvent]()
    runner.release_all.set()
    executor = _executor(runner, events)
    before = threading.active_count()
    for row_id in (1, 2, 3):
        executor.start(_job(row_id))
        wait_for(lambda r=row_id: r in _ended(events), timeout=5)
        # the engine hands the next attempt once the last one's thread is idle again
        wait_for(lambda: executor._idle == 1, timeout=5)
    assert len(set(runner.threads.values())) == 1, runner.threads
    assert executor.free_cores() == 2
    wait_for(lambda: threading.active_count() == before, timeout=5, message="idle thread end")
    assert executor._idle == 0


def test_stop_returns_once_every_end_reached_the_engine() -> None:
    runner, events = FakeRunner(), list[InstanceEvent]()
    executor = _executor(runner, events)
    for row_id in (1, 2):
        executor.start(_job(row_id))
    wait_for(lambda: len(runner.handles) == 2, timeout=5)
    executor.stop(grace_seconds=0.05)
    ended = [e for e in events if isinstance(e, Finished)]
    assert {e.row_id for e in ended} == {1, 2}
    assert all(e.interrupted for e in ended)  # requeued by the engine, no retry spent


def test_an_abort_before_the_process_exists_stops_it_when_it_starts() -> None:
    runner, events = FakeRunner(), list[InstanceEvent]()
    runner.before_process.clear()
    executor = _executor(runner, events)
    executor.start(_job(1))
    wait_for(lambda: 1 in runner.threads, timeout=5)
    executor.abort([1])
    runner.before_process.set()
    wait_for(lambda: 1 in _ended(events), timeout=5)
    [finished] = [e for e in events if isinstance(e, Finished)]
    assert finished.cancelled and runner.handles[1].stopped.is_set()
    assert executor._pending_abort == set()
    executor.stop(0)


def test_an_abort_of_an_unknown_attempt_changes_nothing() -> None:
    runner, events = FakeRunner(), list[InstanceEvent]()
    executor = _executor(runner, events)
    executor.abort([42])
    assert executor._pending_abort == set() and events == []
