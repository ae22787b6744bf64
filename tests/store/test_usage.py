"""Usage accounting in the store, on SQLite and PostgreSQL: each ended attempt is recorded
and summed per user, task and job; measured and estimated energy; the figures outlive the
task; the billing report reads them back."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from calor.api.requests import TaskBody, parse
from calor.api.schemas import task_spec
from calor.domain.accounting import Accounting
from calor.domain.ports import Finished, Started
from calor.settings import Settings
from calor.store.engine import Database
from calor.store.execution import ExecutionStore
from calor.store.tasks import TaskStore
from calor.store.usage import UsageStore
from calor.wiring import open_database, user_service
from tests.conftest import BACKENDS, database_url

T0 = datetime(2026, 1, 1, 12, 0, 0)
RATES = Accounting(price_per_core_hour=3.6, watts_per_core=10.0)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = open_database(Settings(data_dir=tmp_path, database_url=database_url(request.param)))
    yield database
    database.dispose()


def _user(db: Database, email: str) -> int:
    users = user_service(db, Settings(data_dir=Path("/nonexistent"), secret_key="k"))
    return users.create(email)[0].id


def _submit(db: Database, user_id: int, instances: int = 1, **extra: object) -> str:
    body = {
        "name": "billed",
        "profile": "docker-batch",
        "instanceCount": instances,
        "constants": [{"key": "DOCKER_CMD", "value": "true"}],
        **extra,
    }
    (uuid,) = TaskStore(db).insert(user_id, [task_spec(parse(TaskBody, body), 10)], T0, 100)
    return str(uuid)


def test_attempts_are_summed_per_user_and_task_and_outlive_the_task(db: Database) -> None:
    alice, bob = _user(db, "alice@test.local"), _user(db, "bob@test.local")
    task = _submit(db, alice, instances=2)
    other = _submit(db, bob)
    engine = ExecutionStore(db, rates=RATES)
    jobs = engine.claim(3, 3, T0)
    assert len(jobs) == 3
    end = T0 + timedelta(seconds=10)
    events = []
    for i, job in enumerate(jobs):
        events.append(Started(job.row_id, T0, 1, 1.0))
        # the first attempt was measured by RAPL (7 J), the others are estimated
        events.append(
            Finished(
                job.row_id,
                end,
                0,
                cpu_time_sec=2.0 + i,
                peak_memory_mb=10 * (i + 1),
                wall_time_sec=10.0,
                energy_j=7.0 if i == 0 else None,
            )
        )
    engine.apply(events, end)
    # a duplicate report of an ended attempt is not counted twice
    engine.apply([events[1]], end)

    usage = UsageStore(db)
    mine = usage.totals(alice, "task", task)
    assert mine is not None
    assert mine.attempts == 2 and mine.core_seconds == pytest.approx(20.0)
    assert mine.credits == pytest.approx(20.0 / 3600 * 3.6)  # 0.02
    assert mine.cpu_time_sec == pytest.approx(5.0) and mine.peak_memory_mb == 20
    assert mine.energy_j == pytest.approx(7.0 + 3.0 * 10.0)
    assert mine.measured_energy_j == pytest.approx(7.0)
    account = usage.totals(alice, "user", str(alice))
    assert account is not None and account.credits == pytest.approx(mine.credits)
    assert usage.totals(bob, "task", task) is None  # another user's: not theirs to see
    theirs = usage.totals(bob, "user", str(bob))
    assert theirs is not None and theirs.attempts == 1

    TaskStore(db).delete(alice, task, end)
    kept = usage.totals(alice, "task", task)
    assert kept == mine  # billing outlives the task
    assert not usage.exists(alice, "task", task)

    report = usage.report(T0, None)
    assert [(line.email, line.task_uuid) for line in report] == [
        ("alice@test.local", task),
        ("bob@test.local", other),
    ]
    assert report[0].totals.credits == pytest.approx(mine.credits)
    assert report[0].totals.measured_energy_j == pytest.approx(7.0)
    assert [line.user_id for line in usage.report(None, bob)] == [bob]
    assert usage.report(end + timedelta(seconds=1), None) == []


def test_an_instance_asking_for_more_cores_than_there_are_is_billed_for_what_it_held(
    db: Database,
) -> None:
    alice = _user(db, "alice@test.local")
    cores = [{"discriminator": "MinimumCoreHardwareConstraint", "coreCount": 4}]
    task = _submit(db, alice, hardwareConstraints=cores)
    engine = ExecutionStore(db, rates=RATES)
    (job,) = engine.claim(2, 2, T0)
    assert job.cores == 2
    end = T0 + timedelta(seconds=10)
    engine.apply([Started(job.row_id, T0, 1, 1.0), Finished(job.row_id, end, 0, 1.0, 1, 10.0)], end)
    totals = UsageStore(db).totals(alice, "task", task)
    assert totals is not None and totals.core_seconds == pytest.approx(20.0)


def test_budgets(db: Database) -> None:
    alice = _user(db, "alice@test.local")
    usage = UsageStore(db)
    assert usage.budget(alice) is None
    usage.set_budget(alice, 12.5, T0)
    assert usage.budget(alice) == (12.5, T0)
    usage.set_budget(alice, 3.0, T0 + timedelta(days=1))
    assert usage.budget(alice) == (3.0, T0 + timedelta(days=1))
    usage.set_budget(alice, None, T0)
    assert usage.budget(alice) is None
