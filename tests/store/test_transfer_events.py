"""What the store makes of transfer events: the download phase, UploadingResults, results and
resultsCount, and snapshot statuses (real SQLite, through the same stores the server uses)."""

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from calor.api.requests import TaskBody, parse
from calor.api.schemas import HostFacts, task_full, task_spec
from calor.domain.errors import Forbidden
from calor.domain.ports import Finished, InstanceJob, SnapshotDone, Started, Transfer
from calor.settings import Settings
from calor.store.engine import Database
from calor.store.execution import ExecutionStore
from calor.store.snapshots import SnapshotStore
from calor.store.tasks import TaskStore
from calor.wiring import open_database, user_service

T0 = datetime(2026, 1, 1, 12, 0, 0)
HOST = HostFacts("cpu", 1.0)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    settings = Settings(data_dir=tmp_path)
    database = open_database(settings)
    yield database
    database.dispose()


def _task(db: Database, **extra: object) -> tuple[int, str, InstanceJob]:
    user, _ = user_service(db, Settings(data_dir=Path("/nonexistent"), secret_key="k")).create(
        "t@test.local"
    )
    body = {
        "name": "t",
        "profile": "docker-batch",
        "instanceCount": 1,
        "constants": [{"key": "DOCKER_CMD", "value": "true"}],
        **extra,
    }
    (uuid,) = TaskStore(db).insert(user.id, [task_spec(parse(TaskBody, body), 10)], T0, 100)
    (job,) = ExecutionStore(db).claim(1, 1, T0)
    return user.id, str(uuid), job


def _full(db: Database, user_id: int, uuid: str) -> dict[str, object]:
    return task_full(TaskStore(db).get(user_id, uuid), T0, HOST)


def test_download_upload_and_results(db: Database) -> None:
    user_id, uuid, job = _task(db, resourceBuckets=["in"], resultBucket="out")
    assert [s.bucket for s in job.transfers.resources] == ["in"]
    assert job.transfers.results is not None and job.transfers.results.bucket == "out"
    store = ExecutionStore(db)

    store.apply([Transfer(job.row_id, "download", 40.0)], T0)
    task = _full(db, user_id, uuid)
    assert task["status"]["downloadProgress"] == 40.0  # type: ignore[index]
    assert task["status"]["runningInstancesInfo"]["perRunningInstanceInfo"][0]["phase"] == (  # type: ignore[index]
        "download"
    )

    store.apply([Started(job.row_id, T0, 1, 1.0), Transfer(job.row_id, "upload", 25.0)], T0)
    task = _full(db, user_id, uuid)
    assert task["state"] == "UploadingResults"
    assert task["status"]["uploadProgress"] == 25.0  # type: ignore[index]

    # a late download report cannot move it back
    store.apply([Transfer(job.row_id, "download", 100.0)], T0)
    assert _full(db, user_id, uuid)["state"] == "UploadingResults"

    store.apply([Finished(job.row_id, T0, 0, results=("out/a.txt", "out/b.txt"))], T0)
    task = _full(db, user_id, uuid)
    assert task["state"] == "Success"
    assert task["resultsCount"] == 1
    assert task["completedInstances"][0]["results"] == [  # type: ignore[index]
        "s3://out/a.txt",
        "s3://out/b.txt",
    ]


def test_snapshot_status_follows_its_instances(db: Database) -> None:
    user_id, uuid, job = _task(db, resultBucket="out")
    snapshots = SnapshotStore(db)
    with pytest.raises(Forbidden):
        snapshots.trigger(user_id, uuid, {}, T0)  # dispatched, not running yet
    store = ExecutionStore(db)
    store.apply([Started(job.row_id, T0, 1, 1.0)], T0)
    plan = snapshots.trigger(user_id, uuid, {"bucketPrefix": "p/", "whitelist": "x"}, T0)
    assert plan.row_ids == [job.row_id] and plan.target.prefix == "p/"
    assert plan.target.bucket == "out" and plan.target.filter.whitelist == "x"
    assert snapshots.get(user_id, uuid, plan.snapshot_id).status == "Triggered"
    store.apply([SnapshotDone(job.row_id, plan.snapshot_id, 12, 2)], T0)
    record = snapshots.get(user_id, uuid, plan.snapshot_id)
    assert (record.status, record.transferred_size, record.size_to_upload) == ("Success", 12, 12)
    assert record.config["bucketPrefix"] == "p/"
    assert _full(db, user_id, uuid)["resultsCount"] == 1

    failed = snapshots.trigger(user_id, uuid, {}, T0)
    store.apply([SnapshotDone(job.row_id, failed.snapshot_id, 0, 0, error="disk full")], T0)
    assert snapshots.get(user_id, uuid, failed.snapshot_id).status == "Failure"
    assert _full(db, user_id, uuid)["resultsCount"] == 1  # nothing was added


def test_periodic_snapshots_come_due_while_running(db: Database) -> None:
    user_id, uuid, job = _task(db, resultBucket="out")
    snapshots = SnapshotStore(db)
    snapshots.set_periodic(user_id, uuid, 5, {}, T0)
    later = datetime(2026, 1, 1, 12, 0, 6)
    assert snapshots.due(later) == []  # not running: only the next time is moved on
    ExecutionStore(db).apply([Started(job.row_id, T0, 1, 1.0)], T0)
    assert snapshots.due(later) == []  # not due before later + 5 s
    plans = snapshots.due(datetime(2026, 1, 1, 12, 0, 11))
    assert [p.row_ids for p in plans] == [[job.row_id]]
    snapshots.set_periodic(user_id, uuid, 0, {}, T0)
    assert snapshots.due(datetime(2026, 1, 2)) == []


def test_a_deleted_instance_row_id_is_never_given_again(db: Database) -> None:
    """Executors name attempts by row id: a late event of a deleted task's attempt must not
    reach a new instance (SQLite reuses the largest rowid unless AUTOINCREMENT)."""
    user_id, uuid, job = _task(db)
    TaskStore(db).delete(user_id, uuid, T0)
    body = {
        "name": "t2",
        "profile": "docker-batch",
        "instanceCount": 1,
        "constants": [{"key": "DOCKER_CMD", "value": "true"}],
    }
    TaskStore(db).insert(user_id, [task_spec(parse(TaskBody, body), 10)], T0, 100)
    (again,) = ExecutionStore(db).claim(1, 1, T0)
    assert again.row_id > job.row_id
    # the deleted attempt's outcome arrives late: the new instance is untouched
    ExecutionStore(db).apply([Finished(job.row_id, T0, None, cancelled=True)], T0)
    assert TaskStore(db).get(user_id, again.task_uuid).instances[0].state.value == "Dispatched"
