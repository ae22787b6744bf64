"""A task's instance totals are kept by the store as its instances change (migration 0015), so
what the engine does per instance must not grow with the number of instances in the task."""

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from calor.api.requests import TaskBody, parse
from calor.api.schemas import task_spec
from calor.domain.ports import Finished, Progress, Started
from calor.domain.task import totals_of
from calor.settings import Settings
from calor.store.engine import Database
from calor.store.execution import ExecutionStore
from calor.store.records import _TOTALS_COLUMNS, load_instances, totals_row
from calor.store.tables import tasks
from calor.store.tasks import TaskStore
from calor.wiring import open_database, user_service
from tests.conftest import BACKENDS, database_url

T0 = datetime(2026, 1, 1, 12, 0, 0)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = open_database(Settings(data_dir=tmp_path, database_url=database_url(request.param)))
    yield database
    database.dispose()


def _submit(db: Database, instances: int, **body: Any) -> tuple[int, str, TaskStore]:
    user, _ = user_service(db, Settings(data_dir=Path("/x"), secret_key="k")).create("u@x")
    store = TaskStore(db)
    spec = {
        "name": "big",
        "instanceCount": instances,
        "constants": [{"key": "DOCKER_CMD", "value": "true"}],
        **body,
    }
    [uuid] = store.insert(user.id, [task_spec(parse(TaskBody, spec), 10**6)], T0, 10**6)
    return user.id, uuid, store


def _check(db: Database) -> None:
    """Every task's stored totals equal the totals counted from its instance rows."""
    with db.read() as conn:
        rows = conn.execute(select(tasks.c.id, *_TOTALS_COLUMNS)).all()
        insts = load_instances(conn, [r.id for r in rows])
    for row in rows:
        assert totals_row(row) == totals_of(insts[row.id]), f"task {row.id}"


def test_totals_follow_every_change_of_the_instances(db: Database) -> None:
    """Claims, starts, progress, successes, failures with and without a retry, an abort and
    a delete: after each, the kept totals are what a count of the rows gives."""
    user_id, uuid, store = _submit(db, 6, retrySettings={"maxPerInstanceRetries": 1})
    engine = ExecutionStore(db)
    _check(db)
    jobs = engine.claim(4, 4, T0)
    assert len(jobs) == 4
    _check(db)
    later = T0 + timedelta(seconds=3)
    engine.apply(
        [Started(j.row_id, T0 + timedelta(seconds=i), 1, 1.0) for i, j in enumerate(jobs)], T0
    )
    engine.apply([Progress(jobs[0].row_id, 40.0), Progress(jobs[1].row_id, 70.0)], T0)
    _check(db)
    engine.apply(
        [
            Finished(jobs[0].row_id, later, 0, wall_time_sec=3.0),
            Finished(jobs[1].row_id, later, 2, wall_time_sec=2.5),  # retried
            Finished(jobs[2].row_id, later, 2, wall_time_sec=1.5),  # retried
        ],
        later,
    )
    _check(db)
    again = engine.claim(4, 4, later)
    assert {j.row_id for j in again} >= {jobs[1].row_id, jobs[2].row_id}
    _check(db)
    engine.apply([Started(j.row_id, later, 1, 1.0) for j in again], later)
    engine.apply([Finished(again[0].row_id, later, 1, wall_time_sec=0.5)], later)
    _check(db)
    with db.read() as conn:
        row = conn.execute(select(*_TOTALS_COLUMNS).where(tasks.c.uuid == uuid)).one()
    totals = totals_row(row)
    assert totals.first_start == T0  # a retry clears started_at; the first start stays
    assert totals.wall_sum == pytest.approx(7.5)
    store.request_abort(user_id, uuid, later)
    _check(db)
    running = [j for j in [*jobs, *again] if j.row_id not in {jobs[0].row_id, again[0].row_id}]
    engine.apply([Finished(j.row_id, later, None, cancelled=True) for j in running], later)
    _check(db)
    task = store.get(user_id, uuid)
    assert task.state.value == "Cancelled"
    store.delete(user_id, uuid, later)
    _check(db)


class _Work:
    """Statements sent to SQLite and the instructions its virtual machine ran for them (its
    progress handler is called every ``STEP`` instructions): work done, not time taken."""

    STEP = 100

    def __init__(self, db: Database) -> None:
        self.statements = 0
        self.steps = 0
        event.listen(db.engine, "before_cursor_execute", self._statement)
        event.listen(db.engine, "connect", self._connected)
        db.engine.dispose()  # new connections, with the handler

    def _statement(self, *_: Any) -> None:
        self.statements += 1

    def _connected(self, dbapi: sqlite3.Connection, _record: Any) -> None:
        dbapi.set_progress_handler(self._step, self.STEP)

    def _step(self) -> int:
        self.steps += 1
        return 0  # go on


def _run_one_task(tmp: Path, instances: int, cores: int = 8) -> tuple[float, float]:
    """Statements and SQLite VM steps per instance for a task of ``instances`` instances,
    from its first claim to its end, as the engine drives it (claims of ``cores``, each
    claimed batch started then finished)."""
    db = open_database(Settings(data_dir=tmp))
    try:
        _submit(db, instances)
        engine = ExecutionStore(db)
        work = _Work(db)
        now = T0
        while jobs := engine.claim(cores, cores, now):
            engine.apply([Started(j.row_id, now, 1, 1.0) for j in jobs], now)
            now += timedelta(seconds=1)
            engine.apply([Finished(j.row_id, now, 0, wall_time_sec=1.0) for j in jobs], now)
        _check(db)
        return work.statements / instances, work.steps / instances
    finally:
        db.dispose()


def test_the_store_work_per_instance_does_not_grow_with_the_task(tmp_path: Path) -> None:
    small = _run_one_task(tmp_path / "small", 200)
    large = _run_one_task(tmp_path / "large", 2000)
    # the same statements per instance; SQLite's own work per instance within a small factor
    # (B-tree depth grows with the table: log N). Deriving from every instance was ~10x here
    assert large[0] <= small[0] * 1.05, (small, large)
    assert large[1] <= small[1] * 1.5, (small, large)
