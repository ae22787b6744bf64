"""Snapshots of running tasks: instant ones with a status to poll, and periodic settings."""

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from calor.domain.errors import BadRequest, Forbidden, NotFound
from calor.domain.transfer import SnapshotPlan, SnapshotRecord, snapshot_config, snapshot_target
from calor.store.engine import Database
from calor.store.tables import snapshots, tasks
from calor.store.tasks import executing_rows, task_id_of


def _trigger(
    conn: Connection, task: Any, request: dict[str, Any], now: datetime, row_ids: list[int]
) -> SnapshotPlan:
    target = snapshot_target(request, task.document or {}, task.result_bucket)
    snapshot_id = str(uuid.uuid4())
    conn.execute(
        insert(snapshots).values(
            id=snapshot_id,
            task_id=task.id,
            trigger_date=now,
            last_update=now,
            config=snapshot_config(request),
            status="Triggered",
            pending=len(row_ids),
        )
    )
    return SnapshotPlan(snapshot_id, row_ids, target)


_DUE = (
    select(
        tasks.c.id,
        tasks.c.uuid,
        tasks.c.document,
        tasks.c.result_bucket,
        tasks.c.end_date,
        tasks.c.snapshot_interval,
        tasks.c.snapshot_config,
    )
    .where(tasks.c.snapshot_due <= bindparam("now"))
    .order_by(tasks.c.snapshot_due)
    .limit(100)
)
_TASK = select(tasks.c.id, tasks.c.uuid, tasks.c.document, tasks.c.result_bucket)


class SnapshotStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def trigger(
        self, user_id: int, key: str, request: dict[str, Any], now: datetime
    ) -> SnapshotPlan:
        with self.db.write() as conn:
            task_id = task_id_of(conn, user_id, key)
            task = conn.execute(_TASK.where(tasks.c.id == task_id)).one()
            row_ids = executing_rows(conn, [task_id]).get(task_id, [])
            if not row_ids:
                raise Forbidden(f"task {key!r} is not running: there is nothing to snapshot")
            return _trigger(conn, task, request, now, row_ids)

    def get(self, user_id: int, key: str, snapshot_id: str) -> SnapshotRecord:
        with self.db.read() as conn:
            task_id = task_id_of(conn, user_id, key)
            row = conn.execute(
                select(snapshots, tasks.c.uuid)
                .join(tasks, tasks.c.id == snapshots.c.task_id)
                .where(snapshots.c.id == snapshot_id, snapshots.c.task_id == task_id)
            ).first()
        if row is None:
            raise NotFound(f"snapshot {snapshot_id!r} of task {key!r} not found")
        return SnapshotRecord(
            row.id,
            row.uuid,
            row.trigger_date,
            row.last_update,
            dict(row.config),
            row.status,
            row.size_to_upload,
            row.transferred_size,
            row.error,
        )

    def set_periodic(
        self, user_id: int, key: str, interval: int, request: dict[str, Any], now: datetime
    ) -> None:
        """Every ``interval`` seconds from now on (0 stops them)."""
        with self.db.write() as conn:
            task_id = task_id_of(conn, user_id, key)
            task = conn.execute(_TASK.where(tasks.c.id == task_id)).one()
            if interval:
                # refused now rather than failing at each period
                snapshot_target(request, task.document or {}, task.result_bucket)
            conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id)
                .values(
                    snapshot_interval=interval,
                    snapshot_config=snapshot_config(request) if interval else None,
                    snapshot_due=now + timedelta(seconds=interval) if interval else None,
                    last_modified=now,
                )
            )

    def due(self, now: datetime) -> list[SnapshotPlan]:
        """Periodic snapshots whose time has come, on tasks with running instances; the next
        one of each is scheduled an interval later (finished tasks have no next one)."""
        with self.db.read() as conn:  # asked every second: the usual answer costs no write
            rows = conn.execute(_DUE, {"now": now}).all()
        if not rows:
            return []
        plans: list[SnapshotPlan] = []
        with self.db.write() as conn:
            running = executing_rows(conn, [t.id for t in rows])
            for task in rows:
                next_due = None
                if task.end_date is None:
                    next_due = now + timedelta(seconds=max(1, task.snapshot_interval))
                    row_ids = running.get(task.id)
                    if row_ids:
                        try:
                            plans.append(
                                _trigger(conn, task, dict(task.snapshot_config or {}), now, row_ids)
                            )
                        except BadRequest:
                            next_due = None  # checked when set; nothing to retry
                conn.execute(
                    update(tasks).where(tasks.c.id == task.id).values(snapshot_due=next_due)
                )
        return plans
