"""Pool reads and writes (contract §2.3, §5): create, look up, page, update, scale, close,
delete; and the resizing the engine does every resize period.

A pool's slots are the instances of a hidden task (``tasks.slots_of``), so they are claimed,
run, logged, retried and recovered as any instance is. No task listing shows that task.
"""

import uuid as uuidlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, func, insert, select, update
from sqlalchemy.exc import DataError, IntegrityError

from calor.domain.errors import BadRequest, Conflict
from calor.domain.filters import Filter
from calor.domain.pool import (
    FINAL_POOL_STATES,
    PoolRecord,
    PoolSpec,
    PoolState,
    SlotState,
    SlotView,
    active_policy,
    derive_pool_state,
    elastic_policy,
    parse_policies,
    resize,
)
from calor.domain.states import (
    ACTIVE_INSTANCE_STATES,
    PENDING_INSTANCE_STATES,
    InstanceState,
)
from calor.store.engine import Database
from calor.store.filter_sql import POOLS, to_sql
from calor.store.keys import check_room, id_by_key, tags_by_owner
from calor.store.records import load_instances, recompute, task_record
from calor.store.settle import CANCELLED_CODE, NOT_FINAL, append_error
from calor.store.tables import instances, pool_tags, pools, tasks
from calor.store.tasks import abort_task, new_instance_rows, new_task_row
from calor.store.usage import pool_credits

_PENDING = [s.value for s in PENDING_INSTANCE_STATES]
_LIVE = [s.value for s in ACTIVE_INSTANCE_STATES | PENDING_INSTANCE_STATES]


def pool_id_of(conn: Connection, user_id: int, key: str) -> int:
    return id_by_key(conn, pools, user_id, key, "pool")


def _tags(conn: Connection, pool_ids: list[int]) -> dict[int, list[str]]:
    return tags_by_owner(conn, pool_tags.c.pool_id, pool_tags.c.tag, pool_ids)


def _task_instances(conn: Connection, pool_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Instances of each pool's tasks that are queued or running on it, and running."""
    if not pool_ids:
        return {}
    running = instances.c.state.in_([s.value for s in ACTIVE_INSTANCE_STATES])
    rows = conn.execute(
        select(tasks.c.pool_id, func.count(), func.count().filter(running))
        .select_from(instances.join(tasks, tasks.c.id == instances.c.task_id))
        .where(tasks.c.pool_id.in_(pool_ids), instances.c.state.in_(_LIVE))
        .group_by(tasks.c.pool_id)
    )
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def _record(
    row: Row[Any],
    tags: list[str],
    slots: Any = None,
    task_instances: tuple[int, int] = (0, 0),
    credits: float = 0.0,
) -> PoolRecord:
    return PoolRecord(
        id=row.id,
        uuid=row.uuid,
        name=row.name,
        shortname=row.shortname,
        profile=row.profile,
        state=PoolState(row.state),
        previous_state=PoolState(row.previous_state),
        creation_date=row.creation_date,
        state_transition_time=row.state_transition_time,
        previous_state_transition_time=row.previous_state_transition_time,
        last_modified=row.last_modified,
        end_date=row.end_date,
        cores=row.cores,
        elastic=row.elastic,
        closing=row.closing,
        active_policy=row.active_policy,
        document=dict(row.document or {}),
        tags=tags,
        slots=slots,
        task_instances=task_instances[0],
        busy_slots=task_instances[1],
        credits=credits,
    )


def close_pool(conn: Connection, pool_id: int, now: datetime) -> list[int]:
    """Cancel the pool's tasks (queued or running) and release its slots; returns the
    instances to stop. Closing a pool that is closing or closed changes nothing."""
    row = conn.execute(
        select(pools.c.closing, pools.c.slots_task_id).where(pools.c.id == pool_id)
    ).first()
    if row is None or row.closing:
        return []
    conn.execute(
        update(pools)
        .where(pools.c.id == pool_id)
        .values(closing=True, resize_due=None, last_modified=now)
    )
    kill: list[int] = []
    for task_id in conn.execute(
        select(tasks.c.id).where(tasks.c.pool_id == pool_id, tasks.c.state.in_(NOT_FINAL))
    ).scalars():
        append_error(conn, task_id, CANCELLED_CODE, "The task was cancelled: its pool was closed")
        kill += abort_task(conn, task_id, now)
    kill += abort_task(conn, row.slots_task_id, now)
    # an elastic pool shrunk to no slot has nothing left to abort: its state moves here
    recompute(conn, [row.slots_task_id], now)
    return kill


def delete_pool(conn: Connection, pool_id: int, now: datetime) -> list[int]:
    """Close the pool, then forget it and its slots (its tasks stay, cancelled)."""
    kill = close_pool(conn, pool_id, now)
    slots_task = conn.execute(select(pools.c.slots_task_id).where(pools.c.id == pool_id)).scalar()
    if slots_task is not None:
        conn.execute(delete(tasks).where(tasks.c.id == slots_task))
        conn.execute(delete(pools).where(pools.c.id == pool_id))
    return kill


class PoolStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes ----------------------------------------------------------------------------

    def insert(self, user_id: int, spec: PoolSpec, now: datetime, max_pools: int) -> str:
        pool_uuid = str(uuidlib.uuid4())
        # an elastic pool starts empty and is sized by its policy within a second
        initial = 0 if spec.elastic else spec.slots
        state = derive_pool_state({InstanceState.QUEUED: initial}, False, spec.elastic)
        slot_document = dict(spec.document)
        constants = list(spec.document.get("constants") or [])
        slot_document["poolConstants"] = constants
        slot_document["constants"] = [
            *[c for c in constants if c["key"] != "DOCKER_CMD"],
            {"key": "DOCKER_CMD", "value": spec.preparation or "true"},
        ]
        # a slot's results are never uploaded: its files are the pool's tasks' working dir
        slot_document.pop("resultBucket", None)
        try:
            with self.db.write() as conn:
                check_room(conn, pools, user_id, max_pools, "pool")
                pool_id = conn.execute(
                    insert(pools).returning(pools.c.id),
                    {
                        "uuid": pool_uuid,
                        "user_id": user_id,
                        "name": spec.name,
                        "shortname": spec.shortname or pool_uuid,
                        "profile": spec.profile,
                        "state": state.value,
                        "previous_state": state.value,
                        "creation_date": now,
                        "state_transition_time": now,
                        "previous_state_transition_time": now,
                        "last_modified": now,
                        "end_date": None,
                        "slots_task_id": 0,
                        "cores": spec.cores,
                        "elastic": spec.elastic,
                        "closing": False,
                        "resize_period_sec": spec.resize_period_sec,
                        "resize_due": now if spec.elastic else None,
                        "active_policy": None,
                        "completion_ttl_sec": spec.completion_ttl_sec,
                        "delete_due": None,
                        "document": spec.document,
                    },
                ).scalar_one()
                slot_uuid = str(uuidlib.uuid4())
                task_id = conn.execute(
                    insert(tasks).returning(tasks.c.id),
                    new_task_row(
                        now,
                        uuid=slot_uuid,
                        user_id=user_id,
                        name=f"slots of pool {pool_uuid}",
                        shortname=slot_uuid,
                        profile=spec.profile,
                        instance_count=initial,
                        cores=spec.cores,
                        document=slot_document,
                        max_queue_sec=spec.max_queue_sec,
                        queue_due=(
                            now + timedelta(seconds=spec.max_queue_sec)
                            if spec.max_queue_sec
                            else None
                        ),
                        slots_of=pool_id,
                    ),
                ).scalar_one()
                conn.execute(
                    update(pools).where(pools.c.id == pool_id).values(slots_task_id=task_id)
                )
                if initial:
                    conn.execute(
                        insert(instances),
                        new_instance_rows(task_id, range(initial), InstanceState.QUEUED),
                    )
                if spec.tags:
                    conn.execute(
                        insert(pool_tags),
                        [
                            {"pool_id": pool_id, "tag": t, "user_id": user_id}
                            for t in dict.fromkeys(spec.tags)
                        ],
                    )
        except IntegrityError:
            raise Conflict(f"shortname {spec.shortname!r} is already used by a pool") from None
        return pool_uuid

    def update(self, user_id: int, key: str, spec: PoolSpec, now: datetime) -> None:
        """PUT /pools/{uuid}: name, tags, labels and sizing (elasticProperty, scaling); the
        slots themselves (profile, constants, resources) are those the pool started with."""
        with self.db.write() as conn:
            pool_id = pool_id_of(conn, user_id, key)
            document = conn.execute(
                select(pools.c.document).where(pools.c.id == pool_id)
            ).scalar_one()
            document = {
                **document,
                **{
                    k: spec.document.get(k)
                    for k in ("elasticProperty", "scaling", "labels", "instanceCount")
                    if k in spec.document
                },
            }
            conn.execute(
                update(pools)
                .where(pools.c.id == pool_id, pools.c.closing.is_(False))
                .values(
                    name=spec.name,
                    document=document,
                    elastic=spec.elastic,
                    resize_period_sec=spec.resize_period_sec,
                    resize_due=now,
                    last_modified=now,
                )
            )
            conn.execute(delete(pool_tags).where(pool_tags.c.pool_id == pool_id))
            if spec.tags:
                conn.execute(
                    insert(pool_tags),
                    [
                        {"pool_id": pool_id, "tag": t, "user_id": user_id}
                        for t in dict.fromkeys(spec.tags)
                    ],
                )

    def set_scaling(self, user_id: int, key: str, scaling: dict[str, Any], now: datetime) -> None:
        """PUT /pools/{uuid}/scaling: new policies, applied from the next resize (now)."""
        with self.db.write() as conn:
            pool_id = pool_id_of(conn, user_id, key)
            document = conn.execute(
                select(pools.c.document).where(pools.c.id == pool_id)
            ).scalar_one()
            conn.execute(
                update(pools)
                .where(pools.c.id == pool_id)
                .values(
                    document={**document, "scaling": scaling},
                    elastic=True,
                    resize_due=now,
                    last_modified=now,
                )
            )

    def close(self, user_id: int, key: str, now: datetime) -> list[int]:
        with self.db.write() as conn:
            return close_pool(conn, pool_id_of(conn, user_id, key), now)

    def delete(self, user_id: int, key: str, now: datetime) -> list[int]:
        with self.db.write() as conn:
            return delete_pool(conn, pool_id_of(conn, user_id, key), now)

    # -- reads -----------------------------------------------------------------------------

    def slots_task(self, user_id: int, key: str) -> int:
        """The id of the pool's slot task (its logs are the pool's output)."""
        with self.db.read() as conn:
            pool_id = pool_id_of(conn, user_id, key)
            return int(
                conn.execute(
                    select(pools.c.slots_task_id).where(pools.c.id == pool_id)
                ).scalar_one()
            )

    def counts(self, user_id: int) -> tuple[int, int]:
        """The user's pools, and how many of them are open (neither closed nor failed)."""
        ended = [s.value for s in FINAL_POOL_STATES]
        with self.db.read() as conn:
            total, open_ = conn.execute(
                select(func.count(), func.count().filter(pools.c.state.not_in(ended))).where(
                    pools.c.user_id == user_id
                )
            ).one()
        return int(total), int(open_)

    def slot_ids(self, slots_task_id: int) -> set[int]:
        """The instance ids the pool's slots have had."""
        with self.db.read() as conn:
            return set(
                conn.execute(
                    select(instances.c.instance_id).where(instances.c.task_id == slots_task_id)
                ).scalars()
            )

    def sync_slots(self, user_id: int, key: str) -> list[int]:
        """The running slots, to fetch the pool's new or changed resources; idle ones are
        marked syncing (committed before the request is answered) until they report Ready."""
        with self.db.write() as conn:
            pool_id = pool_id_of(conn, user_id, key)
            slots_task = conn.execute(
                select(pools.c.slots_task_id).where(pools.c.id == pool_id)
            ).scalar_one()
            running = (instances.c.task_id == slots_task) & (
                instances.c.state == InstanceState.EXECUTING.value
            )
            conn.execute(
                update(instances)
                .where(running, instances.c.slot_use == SlotState.IDLE.value)
                .values(slot_use=SlotState.SYNCING.value)
            )
            return list(conn.execute(select(instances.c.id).where(running)).scalars())

    def _full(self, conn: Connection, rows: list[Row[Any]]) -> list[PoolRecord]:
        ids = [r.id for r in rows]
        tags = _tags(conn, ids)
        counts = _task_instances(conn, ids)
        slot_ids = [r.slots_task_id for r in rows]
        slot_rows = {t.id: t for t in conn.execute(select(tasks).where(tasks.c.id.in_(slot_ids)))}
        insts = load_instances(conn, slot_ids)
        credits = pool_credits(conn, [r.uuid for r in rows])
        out = []
        for r in rows:
            slot = slot_rows.get(r.slots_task_id)
            record = task_record(slot, [], insts[r.slots_task_id]) if slot is not None else None
            task_instances = counts.get(r.id, (0, 0))
            out.append(_record(r, tags[r.id], record, task_instances, credits.get(r.uuid, 0.0)))
        return out

    def get(self, user_id: int, key: str) -> PoolRecord:
        with self.db.read() as conn:
            pool_id = pool_id_of(conn, user_id, key)
            row = conn.execute(select(pools).where(pools.c.id == pool_id)).one()
            return self._full(conn, [row])[0]

    def page(
        self, user_id: int, flt: Filter | None, after_id: int, limit: int, full: bool
    ) -> tuple[list[PoolRecord], bool]:
        where = [pools.c.user_id == user_id, pools.c.id > after_id]
        if flt is not None:
            where.append(to_sql(flt, POOLS))
        with self.db.read() as conn:
            try:
                rows = conn.execute(
                    select(pools).where(and_(*where)).order_by(pools.c.id).limit(limit + 1)
                ).all()
            except DataError as exc:
                raise BadRequest(
                    f"the filter cannot be evaluated ({exc.orig}); check the Like regex"
                ) from None
            more = len(rows) > limit
            rows = list(rows[:limit])
            if full:
                return self._full(conn, rows), more
            tags = _tags(conn, [r.id for r in rows])
            return [_record(r, tags[r.id]) for r in rows], more

    # -- the engine's side: resizing ---------------------------------------------------------

    def resize_due(self, now: datetime) -> list[int]:
        """Slot instances to stop after the resizes due now (their slots are released)."""
        with self.db.read() as conn:
            due = list(
                conn.execute(
                    select(pools.c.id).where(pools.c.resize_due <= now).limit(100)
                ).scalars()
            )
        kill: list[int] = []
        for pool_id in due:
            with self.db.write() as conn:
                kill += self._resize(conn, pool_id, now)
        return kill

    def _resize(self, conn: Connection, pool_id: int, now: datetime) -> list[int]:
        pool = conn.execute(
            select(
                pools.c.closing,
                pools.c.slots_task_id,
                pools.c.document,
                pools.c.resize_period_sec,
            ).where(pools.c.id == pool_id)
        ).first()
        if pool is None or pool.closing:
            return []
        document = pool.document or {}
        policies = parse_policies((document.get("scaling") or {}).get("policies"))
        if not policies:
            elastic = elastic_policy(document.get("elasticProperty"))
            policies = (elastic,) if elastic else ()
        policy = active_policy(policies, now)
        conn.execute(
            update(pools)
            .where(pools.c.id == pool_id)
            .values(
                resize_due=now + timedelta(seconds=max(1.0, pool.resize_period_sec)),
                active_policy=policy.name if policy else None,
            )
        )
        if policy is None:
            return []
        slots = [
            SlotView(
                r.id,
                InstanceState(r.state),
                SlotState(r.slot_use) if r.slot_use else None,
                r.idle_since,
            )
            for r in conn.execute(
                select(
                    instances.c.id, instances.c.state, instances.c.slot_use, instances.c.idle_since
                ).where(instances.c.task_id == pool.slots_task_id, instances.c.state.in_(_LIVE))
            )
        ]
        queued = int(
            conn.execute(
                select(func.count())
                .select_from(instances.join(tasks, tasks.c.id == instances.c.task_id))
                .where(tasks.c.pool_id == pool_id, instances.c.state == InstanceState.QUEUED.value)
            ).scalar_one()
        )
        plan = resize(policy, slots, queued, now)
        if plan.add:
            first = conn.execute(
                select(func.coalesce(func.max(instances.c.instance_id) + 1, 0)).where(
                    instances.c.task_id == pool.slots_task_id
                )
            ).scalar_one()
            conn.execute(
                insert(instances),
                new_instance_rows(
                    pool.slots_task_id,
                    range(int(first), int(first) + plan.add),
                    InstanceState.QUEUED,
                ),
            )
            conn.execute(
                update(tasks)
                .where(tasks.c.id == pool.slots_task_id)
                .values(instance_count=tasks.c.instance_count + plan.add, cancel_requested=False)
            )
        kill: list[int] = []
        if plan.release:
            conn.execute(
                update(instances)
                .where(instances.c.id.in_(plan.release), instances.c.state.in_(_PENDING))
                .values(state=InstanceState.CANCELLED.value, ended_at=now)
            )
            kill = list(
                conn.execute(
                    select(instances.c.id).where(
                        instances.c.id.in_(plan.release),
                        instances.c.state.in_([s.value for s in ACTIVE_INSTANCE_STATES]),
                    )
                ).scalars()
            )
        if plan.add or plan.release:
            recompute(conn, [pool.slots_task_id], now)
        return kill
