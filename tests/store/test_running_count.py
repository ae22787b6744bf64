"""maxRunningTask in the claim: a user's tasks beyond the limit wait while cores are free, and
start as others end or go (real SQLite, the stores the server uses)."""

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from calor.api.requests import TaskBody, parse
from calor.api.schemas import task_spec
from calor.domain.ports import Finished, Started
from calor.domain.states import RUNNING_TASK_STATES
from calor.settings import Settings
from calor.store.engine import Database
from calor.store.execution import ExecutionStore
from calor.store.tables import tasks
from calor.store.tasks import TaskStore
from calor.wiring import open_database, user_service

T0 = datetime(2026, 1, 1, 12, 0, 0)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(Settings(data_dir=tmp_path))
    yield database
    database.dispose()


def counted(db: Database, user_id: int) -> int:
    """The user's tasks running now."""
    with db.read() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    tasks.c.user_id == user_id,
                    tasks.c.state.in_([s.value for s in RUNNING_TASK_STATES]),
                )
            ).scalar_one()
        )


def test_the_limit_holds_through_starts_ends_aborts_and_deletes(db: Database) -> None:
    user, _ = user_service(db, Settings(data_dir=Path("/x"), secret_key="k")).create("u@x")
    store, engine = TaskStore(db), ExecutionStore(db, max_running_tasks=2)
    body = {"name": "t", "instanceCount": 2, "constants": [{"key": "DOCKER_CMD", "value": "x"}]}
    uuids = store.insert(user.id, [task_spec(parse(TaskBody, body), 10)] * 3, T0, 100)
    jobs = engine.claim(10, 10, T0)
    # two tasks may run: the third waits though cores are free
    assert sorted({j.task_uuid for j in jobs}) == sorted(uuids[:2])
    assert counted(db, user.id) == 2
    assert engine.claim(10, 10, T0) == []
    engine.apply([Started(j.row_id, T0, 1, 1.0) for j in jobs], T0)
    # one task ends: the third starts at the next claim
    first = [j for j in jobs if j.task_uuid == uuids[0]]
    engine.apply([Finished(j.row_id, T0, 0) for j in first], T0)
    assert counted(db, user.id) == 1
    third = engine.claim(10, 10, T0)
    assert {j.task_uuid for j in third} == {uuids[2]}
    assert counted(db, user.id) == 2
    # an abort that still has processes to stop, then a delete before they report
    assert store.request_abort(user.id, uuids[1], T0)
    assert counted(db, user.id) == 2  # it runs until its instances are stopped
    store.delete(user.id, uuids[1], T0)
    assert counted(db, user.id) == 1
    # a late report of the deleted task's instances changes nothing; a limit too high to
    # bind is not even counted
    assert ExecutionStore(db, max_running_tasks=40).claim(1, 10, T0) == []
    second = [j for j in jobs if j.task_uuid == uuids[1]]
    engine.apply([Finished(j.row_id, T0, None, cancelled=True) for j in second], T0)
    assert counted(db, user.id) == 1
    engine.apply([Finished(j.row_id, T0, 1) for j in third], T0)
    assert counted(db, user.id) == 0
