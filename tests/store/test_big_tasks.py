"""A task's instance totals are kept by the store as its instances change (migrations 0015 and
0016), so what the engine does per instance must not grow with the number of instances in the
task, the slots of a pool or the tasks of a job."""

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from calor.api.requests import JobBody, PoolBody, TaskBody, parse
from calor.api.schemas import job_spec, pool_spec, task_spec
from calor.domain.ports import Finished, Progress, Ready, Started
from calor.domain.task import totals_of
from calor.settings import Settings
from calor.store.engine import Database, in_index_order
from calor.store.execution import _QUEUE_HEAD, ExecutionStore
from calor.store.jobs import JobStore
from calor.store.pools import PoolStore
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


def _user(db: Database) -> int:
    user, _ = user_service(db, Settings(data_dir=Path("/x"), secret_key="k")).create("u@x")
    return user.id


def _submit(
    db: Database, instances: int, tasks: int = 1, user_id: int | None = None, **body: Any
) -> tuple[int, str, TaskStore]:
    user_id = _user(db) if user_id is None else user_id
    store = TaskStore(db)
    spec = {
        "name": "big",
        "instanceCount": instances,
        "constants": [{"key": "DOCKER_CMD", "value": "true"}],
        **body,
    }
    specs = [task_spec(parse(TaskBody, spec), 10**6)] * tasks
    uuids = store.insert(user_id, specs, T0, 10**6)
    assert all(isinstance(u, str) for u in uuids), uuids
    return user_id, str(uuids[0]), store


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


def _drive(engine: ExecutionStore, cores: int, now: datetime, one_by_one: bool = False) -> int:
    """Claim, start and finish what is queued as the engine does, until nothing is left;
    ``one_by_one``: each event in a batch of its own (instances ending apart). Returns how
    many attempts ran."""
    ran = 0
    while jobs := engine.claim(cores, cores, now):
        batches = [[j] for j in jobs] if one_by_one else [jobs]
        for batch in batches:
            engine.apply([Started(j.row_id, now, 1, 1.0) for j in batch], now)
        now += timedelta(seconds=1)
        for batch in batches:
            engine.apply([Finished(j.row_id, now, 0, wall_time_sec=1.0) for j in batch], now)
        ran += len(jobs)
    return ran


def _run_one_task(tmp: Path, instances: int, cores: int = 8) -> tuple[float, float]:
    """Statements and SQLite VM steps per instance for a task of ``instances`` instances,
    from its first claim to its end, as the engine drives it (claims of ``cores``, each
    claimed batch started then finished)."""
    db = open_database(Settings(data_dir=tmp))
    try:
        _submit(db, instances)
        engine = ExecutionStore(db)
        work = _Work(db)
        assert _drive(engine, cores, T0) == instances
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


def _run_a_pool(tmp: Path, slots: int) -> tuple[float, float]:
    """Work per slot of a pool of ``slots`` slots, from their claim to all of them ready,
    each slot's events in batches of their own, then per instance of a task of ``slots``
    instances run on it, one by one."""
    db = open_database(Settings(data_dir=tmp))
    try:
        user_id = _user(db)
        body = {"name": "p", "instanceCount": slots, "constants": []}
        pool = PoolStore(db).insert(user_id, pool_spec(parse(PoolBody, body), 10**6), T0, 10)
        engine = ExecutionStore(db)
        work = _Work(db)
        held = engine.claim(slots, slots, T0)
        assert len(held) == slots and all(j.hold for j in held)
        for job in held:
            engine.apply([Started(job.row_id, T0, 1, 1.0)], T0)
            engine.apply([Ready(job.row_id, T0)], T0)
        _check(db)
        per_slot = work.statements / slots, work.steps / slots
        _submit(db, slots, user_id=user_id, poolUuid=pool)
        work.statements = work.steps = 0
        assert _drive(engine, 0, T0, one_by_one=True) == slots
        _check(db)
        assert PoolStore(db).get(user_id, pool).state.value == "FullyExecuting"
        per_task_instance = work.statements / slots, work.steps / slots
        return per_slot + per_task_instance
    finally:
        db.dispose()


def test_the_store_work_per_slot_does_not_grow_with_the_pool(tmp_path: Path) -> None:
    small = _run_a_pool(tmp_path / "small", 20)
    large = _run_a_pool(tmp_path / "large", 200)
    for i, what in enumerate(("statements per slot", "steps per slot")):
        grows = 1.05 if i == 0 else 1.5
        assert large[i] <= small[i] * grows, (what, small, large)
    for i, what in enumerate(("statements per instance", "steps per instance"), start=2):
        grows = 1.05 if i == 2 else 1.5
        assert large[i] <= small[i] * grows, (what, small, large)


def _run_a_job(tmp: Path, n_tasks: int, terminate: bool) -> tuple[float, float]:
    """Work per task of a job of ``n_tasks`` 1-instance tasks run to their end, the job
    terminating (each ended task asks whether the job may complete) or not."""
    db = open_database(Settings(data_dir=tmp))
    try:
        user_id = _user(db)
        jobs = JobStore(db)
        job = jobs.insert(user_id, job_spec(parse(JobBody, {"name": "j"})), T0, 10)
        _submit(db, 1, tasks=n_tasks, user_id=user_id, jobUuid=job)
        engine = ExecutionStore(db)
        work = _Work(db)
        if terminate:
            # a terminating job's tasks end as cancelled: started, then aborted one by one
            assert len(engine.claim(n_tasks, n_tasks, T0)) == n_tasks
            jobs.terminate(user_id, job, T0)
            rows = [r.row_id for r in engine.leftovers()]
            for row_id in rows:
                engine.apply([Finished(row_id, T0, None, cancelled=True)], T0)
        else:
            assert _drive(engine, 4, T0, one_by_one=True) == n_tasks
        _check(db)
        state = jobs.get(user_id, job).state.value
        assert state == ("Completed" if terminate else "Active"), state
        return work.statements / n_tasks, work.steps / n_tasks
    finally:
        db.dispose()


@pytest.mark.parametrize("terminate", [False, True])
def test_the_store_work_per_task_does_not_grow_with_the_job(
    tmp_path: Path, terminate: bool
) -> None:
    small = _run_a_job(tmp_path / "small", 100, terminate)
    large = _run_a_job(tmp_path / "large", 1000, terminate)
    assert large[0] <= small[0] * 1.05, (small, large)
    assert large[1] <= small[1] * 1.5, (small, large)


def test_a_claim_reads_only_the_head_of_the_queue_on_postgresql(tmp_path: Path) -> None:
    """Statistics taken before a burst of submissions see no queued instance: PostgreSQL
    then planned a bitmap scan of every queued instance and a sort for each claim (a task
    of 2,000 ran at 29 instances/s). The claim's plan reads the (state, id) index in order
    and stops at its limit."""
    db = open_database(Settings(data_dir=tmp_path, database_url=database_url("postgres")))
    try:
        with db.write() as conn:
            conn.exec_driver_sql("ANALYZE instances")  # taken while nothing is queued
        _submit(db, 2000)
        plans: list[str] = []

        def explain(conn: Any, cursor: Any, statement: str, *_: Any) -> tuple[str, Any]:
            if "AS head JOIN tasks" in statement:
                statement = "EXPLAIN (ANALYZE, FORMAT JSON) " + statement
                plans.append(statement)
            return statement, _[0]

        event.listen(db.engine, "before_cursor_execute", explain, retval=True)
        with db.write() as conn, in_index_order(conn):
            [[[plan]]] = [conn.execute(_QUEUE_HEAD, {"after": 0, "limit": 8}).all()]
        event.remove(db.engine, "before_cursor_execute", explain)
        assert plans, "the claim's query was not seen"
        nodes = []
        todo = [plan[0]["Plan"] if isinstance(plan, list) else plan["Plan"]]
        while todo:
            node = todo.pop()
            nodes.append(node)
            todo += node.get("Plans", [])
        kinds = {n["Node Type"] for n in nodes}
        assert "Sort" not in kinds and "Bitmap Heap Scan" not in kinds, kinds
        # the rows each table gave: a claim of 8 reads 8 instances and their tasks' rows
        for table in ("instances", "tasks"):
            scans = [n for n in nodes if n.get("Relation Name") == table]
            read = sum(n["Actual Rows"] * n["Actual Loops"] for n in scans)
            assert scans and read <= 8, (table, scans)
    finally:
        db.dispose()
