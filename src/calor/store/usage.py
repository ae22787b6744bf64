"""Usage accounting in the store: each ended attempt recorded with its figures and added to
the totals of its user, task, pool and job in the same transaction; the reads the credits,
carbon, quota and billing answers are made of."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from calor.domain.accounting import Accounting, core_seconds, credits_of, estimated_energy_j
from calor.domain.ports import Finished
from calor.domain.states import ACTIVE_INSTANCE_STATES
from calor.store.engine import Database
from calor.store.tables import (
    credit_budgets,
    instances,
    pools,
    tasks,
    usage_records,
    usage_totals,
    users,
)

# what accounting an ended attempt needs of its task: the engine reads it with the task's
# retry settings, in the one query it makes of the task per ended attempt
ATTEMPT_COLUMNS = (
    tasks.c.user_id,
    tasks.c.uuid,
    tasks.c.name,
    tasks.c.cores,
    tasks.c.pool_uuid,
    tasks.c.job_uuid,
    tasks.c.slots_of,
    pools.c.uuid.label("slots_pool_uuid"),
)
ATTEMPT_FROM = tasks.outerjoin(pools, pools.c.id == tasks.c.slots_of)
_SUMMED = (
    "attempts",
    "core_seconds",
    "cpu_time_sec",
    "wall_time_sec",
    "energy_j",
    "measured_energy_j",
    "credits",
)


def _totals_upsert(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO UPDATE adding to the row (both dialects spell it alike)."""
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(usage_totals)
    t, new = usage_totals.c, ins.excluded
    return ins.on_conflict_do_update(
        index_elements=[t.scope, t.key],
        set_={
            **{name: t[name] + new[name] for name in _SUMMED},
            "peak_memory_mb": case(
                (new.peak_memory_mb > t.peak_memory_mb, new.peak_memory_mb),
                else_=t.peak_memory_mb,
            ),
        },
    )


_UPSERTS = {name: _totals_upsert(name) for name in ("sqlite", "postgresql")}


def record_attempt(
    conn: Connection,
    ctx: Any,
    instance_id: int,
    attempt: int,
    ev: Finished,
    rates: Accounting,
    total_cores: int | None = None,
) -> None:
    """Account one ended attempt. An instance of a task on a pool is not billed (the pool's
    slot holding its cores is), nor is an interrupted one (the server stopped under it);
    their energy counts all the same. ``ctx``: the task's ATTEMPT_COLUMNS."""
    slot = ctx.slots_of is not None
    # the executor gives an instance that asks for more than it has all it has
    cores = float(ctx.cores if total_cores is None else min(ctx.cores, total_cores))
    core_sec = core_seconds(cores, ev.wall_time_sec)
    billed = not ev.interrupted and ctx.pool_uuid is None
    measured = ev.energy_j is not None
    energy = ev.energy_j if ev.energy_j is not None else 0.0
    if not measured:
        energy = estimated_energy_j(ev.cpu_time_sec, rates.watts_per_core)
    pool_uuid = ctx.slots_pool_uuid if slot else ctx.pool_uuid
    figures = {
        "core_seconds": core_sec,
        "cpu_time_sec": ev.cpu_time_sec,
        "wall_time_sec": ev.wall_time_sec,
        "peak_memory_mb": ev.peak_memory_mb,
        "energy_j": energy,
        "credits": credits_of(core_sec, rates.price_per_core_hour) if billed else 0.0,
    }
    conn.execute(
        insert(usage_records),
        {
            **figures,
            "user_id": ctx.user_id,
            "task_uuid": None if slot else ctx.uuid,
            "pool_uuid": pool_uuid,
            "job_uuid": ctx.job_uuid,
            "name": ctx.name,
            "instance_id": instance_id,
            "attempt": attempt,
            "ended_at": ev.at,
            "cores": cores,
            "energy_measured": measured,
        },
    )
    keys = [("user", str(ctx.user_id)), ("pool", pool_uuid), ("job", ctx.job_uuid)]
    if not slot:
        keys.append(("task", ctx.uuid))
    row = {**figures, "attempts": 1, "measured_energy_j": energy if measured else 0.0}
    conn.execute(
        _UPSERTS[conn.dialect.name],
        [
            {**row, "scope": scope, "key": key, "user_id": ctx.user_id}
            for scope, key in keys
            if key is not None
        ],
    )


@dataclass(frozen=True)
class Totals:
    attempts: int = 0
    core_seconds: float = 0.0
    cpu_time_sec: float = 0.0
    wall_time_sec: float = 0.0
    peak_memory_mb: int = 0
    energy_j: float = 0.0
    measured_energy_j: float = 0.0
    credits: float = 0.0


@dataclass(frozen=True)
class ReportLine:
    """One task's (or one pool's slots') usage in a billing report."""

    email: str
    user_id: int
    task_uuid: str | None
    pool_uuid: str | None
    name: str
    totals: Totals


_TOTALS_COLUMNS = [usage_totals.c[name] for name in (*_SUMMED, "peak_memory_mb")]
_TOTALS = select(usage_totals.c.user_id, *_TOTALS_COLUMNS).where(
    usage_totals.c.scope == bindparam("scope"), usage_totals.c.key == bindparam("key")
)
_ACTIVE = [s.value for s in ACTIVE_INSTANCE_STATES]


def _totals(row: Any) -> Totals:
    return Totals(**{name: row._mapping[name] for name in (*_SUMMED, "peak_memory_mb")})


def pool_credits(conn: Connection, pool_uuids: list[str]) -> dict[str, float]:
    """The credits of these pools, by uuid (pools without any are left out)."""
    if not pool_uuids:
        return {}
    rows = conn.execute(
        select(usage_totals.c.key, usage_totals.c.credits).where(
            usage_totals.c.scope == "pool", usage_totals.c.key.in_(pool_uuids)
        )
    )
    return {r.key: r.credits for r in rows}


class UsageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def totals(self, user_id: int, scope: str, key: str) -> Totals | None:
        """The sums of one user's task, pool, job or account; None when it has none (or
        they are another user's)."""
        with self.db.read() as conn:
            row = conn.execute(_TOTALS, {"scope": scope, "key": key}).first()
        if row is None or row.user_id != user_id:
            return None
        return _totals(row)

    def exists(self, user_id: int, scope: str, key: str) -> bool:
        """Whether the user has this task or pool now (by uuid)."""
        if scope == "task":
            where = [tasks.c.uuid == key, tasks.c.user_id == user_id, tasks.c.slots_of.is_(None)]
            query = select(tasks.c.id).where(*where)
        else:
            query = select(pools.c.id).where(pools.c.uuid == key, pools.c.user_id == user_id)
        with self.db.read() as conn:
            return conn.execute(query).first() is not None

    def running_cores(self) -> tuple[int, float]:
        """Instances active on the whole server and the cores they hold (the engine keeps
        their number near the executor's cores: an index range, not a scan)."""
        with self.db.read() as conn:
            row = conn.execute(
                select(func.count(), func.coalesce(func.sum(tasks.c.cores), 0.0))
                .select_from(instances.join(tasks, tasks.c.id == instances.c.task_id))
                .where(instances.c.state.in_(_ACTIVE), instances.c.slot_row_id.is_(None))
            ).one()
        return int(row[0]), float(row[1])

    def budget(self, user_id: int) -> tuple[float, datetime] | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(credit_budgets.c.credits, credit_budgets.c.set_at).where(
                    credit_budgets.c.user_id == user_id
                )
            ).first()
        return (row.credits, row.set_at) if row else None

    def set_budget(self, user_id: int, credits: float | None, now: datetime) -> None:
        with self.db.write() as conn:
            conn.execute(credit_budgets.delete().where(credit_budgets.c.user_id == user_id))
            if credits is not None:
                conn.execute(
                    insert(credit_budgets), {"user_id": user_id, "credits": credits, "set_at": now}
                )

    def report(self, since: datetime | None, user_id: int | None) -> list[ReportLine]:
        """Usage of attempts that ended since ``since``, per user and task (or pool slots),
        read by the ended_at indexes."""
        r = usage_records.c
        where = []
        if since is not None:
            where.append(r.ended_at >= since)
        if user_id is not None:
            where.append(r.user_id == user_id)
        query = (
            select(
                r.user_id,
                func.coalesce(users.c.email, "").label("email"),
                r.task_uuid,
                r.pool_uuid,
                func.max(r.name).label("name"),
                func.count().label("attempts"),
                *[
                    func.sum(r[name]).label(name)
                    for name in ("core_seconds", "cpu_time_sec", "wall_time_sec", "energy_j")
                ],
                func.sum(case((r.energy_measured, r.energy_j), else_=0.0)).label(
                    "measured_energy_j"
                ),
                func.sum(r.credits).label("credits"),
                func.max(r.peak_memory_mb).label("peak_memory_mb"),
            )
            .select_from(usage_records.outerjoin(users, users.c.id == r.user_id))
            .where(*where)
            .group_by(r.user_id, users.c.email, r.task_uuid, r.pool_uuid)
            .order_by(users.c.email, func.min(r.ended_at))
        )
        with self.db.read() as conn:
            return [
                ReportLine(
                    row.email, row.user_id, row.task_uuid, row.pool_uuid, row.name, _totals(row)
                )
                for row in conn.execute(query)
            ]
