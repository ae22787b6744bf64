"""Deadlines the engine enforces once a second: maxWallTime of jobs, maxTimeQueueSeconds of
tasks (and pools' slots), pools' resize periods, and the auto-deletion of ended tasks,
completed jobs and closed pools.

Each kind is found through its own index on a due date, so a turn with nothing due costs four
index probes and no write.
"""

from datetime import datetime

from sqlalchemy import Connection, select, update

from calor.domain.states import InstanceState, JobState
from calor.store.engine import Database
from calor.store.jobs import delete_job, terminate_job
from calor.store.pools import PoolStore, delete_pool
from calor.store.records import recompute
from calor.store.tables import instances, jobs, pools, tasks
from calor.store.tasks import delete_tasks

BATCH = 200


def _queue_timeout(conn: Connection, task_id: int, now: datetime) -> None:
    limit = conn.execute(select(tasks.c.max_queue_sec).where(tasks.c.id == task_id)).scalar()
    conn.execute(
        update(instances)
        .where(
            instances.c.task_id == task_id,
            instances.c.state == InstanceState.QUEUED.value,
            instances.c.attempts == 0,
        )
        .values(
            state=InstanceState.FAILURE.value,
            ended_at=now,
            error=(
                f"the instance waited more than {limit} s for resources without starting "
                "(maxTimeQueueSeconds)"
            ),
        )
    )
    conn.execute(update(tasks).where(tasks.c.id == task_id).values(queue_due=None))
    recompute(conn, [task_id], now)


class DeadlineStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.pools = PoolStore(db)

    def run(self, now: datetime) -> list[int]:
        """Enforce what is due; returns the instances to kill (of terminated jobs)."""
        with self.db.read() as conn:
            walls = conn.execute(
                select(jobs.c.id, jobs.c.wall_due, jobs.c.creation_date)
                .where(jobs.c.wall_due <= now, jobs.c.state == JobState.ACTIVE.value)
                .limit(BATCH)
            ).all()
            queued = list(
                conn.execute(
                    select(tasks.c.id).where(tasks.c.queue_due <= now).limit(BATCH)
                ).scalars()
            )
            old_tasks = conn.execute(
                select(tasks.c.id, tasks.c.user_id).where(tasks.c.delete_due <= now).limit(BATCH)
            ).all()
            old_jobs = conn.execute(
                select(jobs.c.id, jobs.c.user_id).where(jobs.c.delete_due <= now).limit(BATCH)
            ).all()
            old_pools = list(
                conn.execute(
                    select(pools.c.id).where(pools.c.delete_due <= now).limit(BATCH)
                ).scalars()
            )
        kill = self.pools.resize_due(now)
        if not (walls or queued or old_tasks or old_jobs or old_pools):
            return kill
        with self.db.write() as conn:
            for job in walls:
                allowed = round((job.wall_due - job.creation_date).total_seconds())
                kill += terminate_job(
                    conn, job.id, now, f"its job reached its maxWallTime ({allowed} s)"
                )
            for task_id in queued:
                _queue_timeout(conn, task_id, now)
            for task in old_tasks:
                kill += delete_tasks(conn, task.user_id, [task.id], now)
            for ended in old_jobs:
                kill += delete_job(conn, ended.user_id, ended.id, now)
            for pool_id in old_pools:
                kill += delete_pool(conn, pool_id, now)
        return kill
