"""The engine's side of the store: claim queued instances, record what executors report."""

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, or_, select, true, update

from calor.domain.accounting import Accounting
from calor.domain.errors import BadRequest
from calor.domain.hardware import CORE_EPSILON, requirements
from calor.domain.network import forward_rules
from calor.domain.pool import SlotState
from calor.domain.ports import (
    Finished,
    InstanceEvent,
    InstanceJob,
    Leftover,
    Output,
    Progress,
    Ready,
    SnapshotDone,
    Started,
    Transfer,
)
from calor.domain.profiles import PROFILES
from calor.domain.secrets import grant_of
from calor.domain.states import (
    ACTIVE_INSTANCE_STATES,
    RUNNING_TASK_STATES,
    InstanceState,
    TaskState,
    can_transition,
    should_retry,
)
from calor.domain.transfer import transfers
from calor.store.engine import Database, in_index_order
from calor.store.logs import LogStore
from calor.store.records import recompute
from calor.store.tables import instances, snapshots, tasks
from calor.store.usage import ATTEMPT_COLUMNS, ATTEMPT_FROM, record_attempt

_ACTIVE = [s.value for s in ACTIVE_INSTANCE_STATES]

# what a claim needs of a queued instance's task (execution._job)
_CLAIMED_TASK = (
    tasks.c.uuid,
    tasks.c.user_id,
    tasks.c.instance_count,
    tasks.c.profile,
    tasks.c.cores,
    tasks.c.document,
    tasks.c.result_bucket,
    tasks.c.slots_of,
    tasks.c.state.label("task_state"),
)
# Built once (the engine runs them for every instance; see records.py)
_QUEUED = (
    select(
        instances.c.id,
        instances.c.task_id,
        instances.c.instance_id,
        instances.c.attempts,
        *_CLAIMED_TASK,
    )
    .join(tasks, tasks.c.id == instances.c.task_id)
    .where(instances.c.state == InstanceState.QUEUED.value)
    .order_by(instances.c.id)
)
# The head of the queue for free cores: the oldest queued instances read by
# ix_instances_state_id in its order and cut at the limit before the join, so a claim reads
# what it takes whatever the planner's statistics say (joined first, PostgreSQL planned a
# scan of every queued instance, or of every task, for each claim: bench/RESULTS.md). The
# rows of tasks on pools, which wait for a slot and not for cores, are passed over here.
_HEAD = (
    select(instances.c.id, instances.c.task_id, instances.c.instance_id, instances.c.attempts)
    .where(instances.c.state == InstanceState.QUEUED.value, instances.c.id > bindparam("after"))
    .order_by(instances.c.id)
    .limit(bindparam("limit"))
    .subquery("head")
)
_QUEUE_HEAD = select(
    _HEAD.c.id,
    _HEAD.c.task_id,
    _HEAD.c.instance_id,
    _HEAD.c.attempts,
    *_CLAIMED_TASK,
    tasks.c.pool_id,
).join(tasks, tasks.c.id == _HEAD.c.task_id)
# rows read per query of the head, per row a claim takes: a few more, so that rows passed
# over (tasks on pools, users at their limit) seldom cost another query
HEAD_PAGE_FACTOR = 2
# the user's tasks running now (ix_tasks_user_state_id: a range per user and state)
_RUNNING_TASKS = (
    select(tasks.c.user_id, func.count())
    .where(
        tasks.c.user_id.in_(bindparam("user_ids", expanding=True)),
        tasks.c.state.in_([s.value for s in RUNNING_TASK_STATES]),
        tasks.c.slots_of.is_(None),
    )
    .group_by(tasks.c.user_id)
)
# attempts of tasks on pools run in slots, which hold cores too: with the queue the executor
# is given ahead (Dask: twice its cores), no more than this many instances per core are ever
# active, so a limit at least this high can never be reached and costs the claim nothing
ACTIVE_PER_CORE_BOUND = 4
# rows read per free core by a claim: enough for the slots of a node split in up to this many
# (a node split finer fills its cores over several claims, one per wake of the engine)
SHARE_ROWS = 4
_QUEUED_ON_POOL = _QUEUED.where(tasks.c.pool_id == bindparam("pool_id")).limit(bindparam("limit"))
_SLOT_TASK = tasks.alias("slot_task")
_FREE_USES = [SlotState.IDLE.value, SlotState.SYNCING.value]
_IDLE_SLOTS = (
    select(
        instances.c.id,
        instances.c.instance_id,
        instances.c.slot_use,
        _SLOT_TASK.c.uuid,
        _SLOT_TASK.c.slots_of,
        _SLOT_TASK.c.document,
    )
    .join(_SLOT_TASK, _SLOT_TASK.c.id == instances.c.task_id)
    .where(
        instances.c.state == InstanceState.EXECUTING.value,
        instances.c.slot_use.in_(_FREE_USES),
    )
    # idle ones first: a syncing slot goes only to tasks that need not wait for it
    .order_by(instances.c.slot_use, instances.c.id)
)
_WAITING_FOR_SLOT = (
    select(instances.c.id)
    .join(tasks, tasks.c.id == instances.c.task_id)
    .where(
        instances.c.state == InstanceState.QUEUED.value,
        tasks.c.pool_id == _SLOT_TASK.c.slots_of,
    )
)
_SLOT_WANTED = (
    select(instances.c.id)
    .join(_SLOT_TASK, _SLOT_TASK.c.id == instances.c.task_id)
    .where(
        instances.c.state == InstanceState.EXECUTING.value,
        instances.c.slot_use.in_(_FREE_USES),
        _WAITING_FOR_SLOT.exists(),
    )
    .limit(1)
)
_FREE_SLOT = (
    update(instances)
    .where(instances.c.id == bindparam("slot_id"), instances.c.slot_use == SlotState.BUSY.value)
    .values(slot_use=SlotState.IDLE.value, idle_since=bindparam("at"))
)
# prepared, or synced again: idle, unless a task took it meanwhile
_SLOT_READY = (
    update(instances)
    .where(
        instances.c.id == bindparam("slot_id"),
        or_(instances.c.slot_use.is_(None), instances.c.slot_use != SlotState.BUSY.value),
    )
    .values(slot_use=SlotState.IDLE.value, idle_since=bindparam("at"))
)
_TAKE_SLOT = (
    update(instances)
    .where(instances.c.id == bindparam("slot_id"))
    .values(slot_use=SlotState.BUSY.value, idle_since=None)
)
_PUT_IN_SLOT = (
    update(instances)
    .where(instances.c.id == bindparam("row_id"))
    .values(slot_row_id=bindparam("slot_id"))
)
_DISPATCH = (
    update(instances)
    .where(instances.c.id.in_(bindparam("row_ids", expanding=True)))
    .values(
        state=InstanceState.DISPATCHED.value,
        attempts=instances.c.attempts + 1,
        progress=0.0,
        started_at=None,
        ended_at=None,
        exit_code=None,
        error=None,
        transfer_progress=0.0,
        results=None,
    )
)
_CURRENT = select(
    instances.c.id,
    instances.c.task_id,
    instances.c.instance_id,
    instances.c.state,
    instances.c.attempts,
    instances.c.wall_time_sec,
    instances.c.cpu_time_sec,
    instances.c.peak_memory_mb,
    instances.c.slot_row_id,
).where(instances.c.id.in_(bindparam("row_ids", expanding=True)))
_UPDATE_INSTANCE = update(instances).where(instances.c.id == bindparam("_row_id"))
# all an ended attempt needs of its task: its retry settings and what accounting needs
_ENDED_ATTEMPT_TASK = (
    select(
        tasks.c.cancel_requested,
        tasks.c.retries_used,
        tasks.c.max_per_instance_retries,
        tasks.c.max_total_retries,
        *ATTEMPT_COLUMNS,
    )
    .select_from(ATTEMPT_FROM)
    .where(tasks.c.id == bindparam("task_id"))
)


# completedInstances[].results lists at most this many per instance (all are uploaded)
MAX_LISTED_RESULTS = 1000


def _bump_results_count(conn: Any, task_id: int) -> None:
    """Contract §9.3: the SDK downloads results only when resultsCount has grown."""
    conn.execute(
        update(tasks).where(tasks.c.id == task_id).values(results_count=tasks.c.results_count + 1)
    )


def _forward_ports(row: Any, pool: dict[str, Any] | None) -> tuple[int, ...]:
    """The ports forwarded for this instance: its task's rules, and its pool's for a task on
    a pool (it runs in the pool's slot); checked at submit, so a rule refused now (the
    profile changed meaning in an upgrade) forwards nothing rather than failing the run."""
    ports: set[int] = set()
    for document in (row.document, pool):
        if document is None:
            continue
        try:
            rules = forward_rules(row.profile, document.get("forcedNetworkRules"))
        except BadRequest:
            continue
        ports.update(r.port for r in rules)
    return tuple(sorted(ports))


def _constants(
    profile: str, document: dict[str, Any], pool: dict[str, Any] | None = None
) -> dict[str, str]:
    """The profile's defaults, then the pool's constants (for a task on a pool), then the
    task's own: each may override the one before."""
    merged = PROFILES[profile].defaults() if profile in PROFILES else {}
    for item in [*((pool or {}).get("poolConstants") or []), *(document.get("constants") or [])]:
        merged[str(item["key"])] = str(item["value"])
    return merged


def _pick_slot(slots: list[Any], document: dict[str, Any]) -> Any:
    """Take an idle slot (or a syncing one, for a task that need not wait for the pool's
    resources synchronization) out of ``slots``; None if none fits."""
    wait = document.get("waitForPoolResourcesSynchronization")
    if wait is None and slots:
        wait = slots[0].document.get("taskDefaultWaitForPoolResourcesSynchronization")
    for i, slot in enumerate(slots):
        if slot.slot_use == SlotState.IDLE.value or not wait:
            return slots.pop(i)
    return None


def _job(
    row: Any, cores: float, pool: dict[str, Any] | None = None, slot: tuple[str, int] | None = None
) -> InstanceJob:
    profile = PROFILES.get(row.profile)
    needs = requirements(row.document.get("hardwareConstraints") or [])
    return InstanceJob(
        row_id=row.id,
        task_uuid=row.uuid,
        instance_id=row.instance_id,
        instance_count=row.instance_count,
        attempt=row.attempts + 1,
        profile=row.profile,
        constants=_constants(row.profile, row.document, pool),
        cores=cores,
        network=profile.network if profile else False,
        memory_limit_mb=needs.memory_limit_mb,
        user_id=row.user_id,
        transfers=transfers(row.document, row.result_bucket),
        hold=row.slots_of is not None,
        slot=slot,
        secrets=bool(grant_of([row.document, pool])),
        cpu_models=needs.cpu_models,
        forward_ports=_forward_ports(row, pool),
    )


def _queue_head(conn: Any, want: int, blocked: set[int]) -> list[Any]:
    """The oldest ``want`` queued instances not on pools, but those of tasks not started
    yet of ``blocked`` users, in the order they were queued."""
    rows: list[Any] = []
    after, size = 0, max(8, want * HEAD_PAGE_FACTOR)
    with in_index_order(conn):
        while len(rows) < want:
            page = conn.execute(_QUEUE_HEAD, {"after": after, "limit": size}).all()
            page.sort(key=lambda r: r.id)
            rows += [
                r
                for r in page
                if r.pool_id is None
                and not (r.user_id in blocked and r.task_state == TaskState.SUBMITTED.value)
            ]
            if len(page) < size:
                break
            after = page[-1].id
    return rows[:want]


class ExecutionStore:
    def __init__(
        self,
        db: Database,
        max_running_tasks: int | None = None,
        rates: Accounting | None = None,
    ) -> None:
        self.db = db
        # every ended attempt is accounted (store/usage.py) at these rates
        self.rates = rates or Accounting()
        # the executor's cores, as the last claim saw them: an instance asking for more got
        # them all, and is billed for what it held
        self._total_cores: int | None = None
        # per user (maxRunningTask); None: no limit
        self.max_running_tasks = max_running_tasks
        # a pool slot can be idle only after it reported Ready to this server (a restart
        # prepares slots again), so until then claims need not look for idle slots
        self._slots_ready = False

    def claim(self, free_cores: float, total_cores: int, now: datetime) -> list[InstanceJob]:
        """Mark the oldest queued instances that fit in ``free_cores`` as dispatched."""
        return self.turn([], free_cores, total_cores, now)[1]

    def turn(
        self, events: Sequence[InstanceEvent], free_cores: float, total_cores: int, now: datetime
    ) -> tuple[int, list[InstanceJob]]:
        """One turn of the engine in one transaction: record a batch of events, then claim
        what fits in ``free_cores`` (counted with the ends of this batch). Returns how many
        instances ended and the claimed attempts."""
        self._total_cores = total_cores
        wants = free_cores >= CORE_EPSILON or (self._slots_ready and self._slot_wanted())
        if not events and not wants:
            return 0, []
        with self.db.write() as conn:
            touched: set[int] = set()
            ended = self._record(conn, events, now, touched) if events else 0
            jobs = self._claim(conn, free_cores, total_cores, touched) if wants else []
            recompute(conn, touched, now)
        return ended, jobs

    def _claim(
        self, conn: Any, free_cores: float, total_cores: int, task_ids: set[int]
    ) -> list[InstanceJob]:
        """Mark the oldest queued instances that fit as dispatched; adds their tasks to
        ``task_ids``."""
        jobs: list[InstanceJob] = []
        claimed: set[int] = set()
        limit = self.max_running_tasks
        if limit is not None and limit >= ACTIVE_PER_CORE_BOUND * max(total_cores, 1):
            limit = None
        rows, room = self._queued(conn, free_cores, limit)
        for row in rows:
            # the first instance of a task that has not started starts the task
            starts = row.user_id in room and row.task_state == TaskState.SUBMITTED.value
            starts = starts and row.task_id not in claimed
            if starts and room[row.user_id] <= 0:
                continue  # its user runs as many tasks as allowed; others go on
            cores = min(row.cores, total_cores)
            if cores > free_cores + CORE_EPSILON:
                break  # first come, first served: no overtaking by smaller instances
            free_cores -= cores
            if starts:
                room[row.user_id] -= 1
            jobs.append(_job(row, cores))
            claimed.add(row.task_id)
        if self._slots_ready:
            jobs += self._into_slots(conn, claimed)
        if jobs:
            conn.execute(_DISPATCH, {"row_ids": [j.row_id for j in jobs]})
        task_ids |= claimed
        return jobs

    @staticmethod
    def _queued(
        conn: Any, free_cores: float, limit: int | None
    ) -> tuple[list[Any], dict[int, int]]:
        """The oldest queued instances not on pools, and how many more tasks each of their
        users may start (with a limit). Users at their limit must not hold the head of the
        queue: a few more reads look past them."""
        # an instance takes a core or more, except pool slots, which share their node's: a
        # claim that fills a core with shares reads as many rows as a node has slots
        want = max(0, math.ceil(free_cores - CORE_EPSILON)) * SHARE_ROWS
        blocked: set[int] = set()
        for _ in range(4):
            rows = _queue_head(conn, want, blocked)
            if limit is None:
                return rows, {}
            starting = {r.user_id for r in rows if r.task_state == TaskState.SUBMITTED.value}
            if not starting:
                return rows, {}
            running = dict(conn.execute(_RUNNING_TASKS, {"user_ids": list(starting)}).all())
            room = {uid: limit - int(running.get(uid, 0)) for uid in starting}
            full = [uid for uid, n in room.items() if n <= 0]
            if not full:
                return rows, room
            blocked.update(full)
        return rows, room

    @staticmethod
    def _into_slots(conn: Any, task_ids: set[int]) -> list[InstanceJob]:
        """Queued instances of tasks on pools, each into an idle slot of its pool."""
        idle: dict[int, list[Any]] = {}
        for slot in conn.execute(_IDLE_SLOTS):
            idle.setdefault(slot.slots_of, []).append(slot)
        jobs: list[InstanceJob] = []
        for pool_id, slots in idle.items():
            rows = conn.execute(_QUEUED_ON_POOL, {"pool_id": pool_id, "limit": len(slots)}).all()
            for row in rows:
                slot = _pick_slot(slots, row.document)
                if slot is None:
                    continue
                job = _job(row, row.cores, slot.document, (slot.uuid, slot.instance_id))
                conn.execute(_TAKE_SLOT, {"slot_id": slot.id})
                conn.execute(_PUT_IN_SLOT, {"row_id": row.id, "slot_id": slot.id})
                jobs.append(job)
                task_ids.add(row.task_id)
        return jobs

    def _slot_wanted(self) -> bool:
        """Whether a task on a pool waits while a slot of its pool is idle: slots hold their
        own cores, so this is claimed even when no core is free."""
        with self.db.read() as conn:
            return conn.execute(_SLOT_WANTED).first() is not None

    def apply(self, events: Sequence[InstanceEvent], now: datetime) -> int:
        """Record a batch of events in one transaction; returns how many instances ended."""
        with self.db.write() as conn:
            touched: set[int] = set()
            ended = self._record(conn, events, now, touched)
            recompute(conn, touched, now)
        return ended

    def _record(
        self, conn: Any, events: Sequence[InstanceEvent], now: datetime, touched: set[int]
    ) -> int:
        """Apply the events to their instances; adds the tasks they changed to ``touched``
        and returns how many instances ended."""
        row_ids = sorted({e.row_id for e in events})
        ended = 0
        current = {r.id: r for r in conn.execute(_CURRENT, {"row_ids": row_ids})}
        state = {rid: InstanceState(r.state) for rid, r in current.items()}
        logs: list[dict[str, object]] = []
        for ev in events:
            row = current.get(ev.row_id)
            if row is None:
                continue  # the task was deleted meanwhile
            if isinstance(ev, Output):
                logs.append(
                    {
                        "task_id": row.task_id,
                        "instance_id": row.instance_id,
                        "stream": ev.stream,
                        "data": ev.data,
                    }
                )
                continue
            if isinstance(ev, Started):
                if not can_transition(state[ev.row_id], InstanceState.EXECUTING):
                    continue
                state[ev.row_id] = InstanceState.EXECUTING
                conn.execute(
                    _UPDATE_INSTANCE,
                    {
                        "_row_id": ev.row_id,
                        "state": InstanceState.EXECUTING.value,
                        "started_at": ev.at,
                        "pid": ev.pid,
                        "proc_start": ev.proc_start,
                    },
                )
            elif isinstance(ev, Progress):
                if state[ev.row_id] not in ACTIVE_INSTANCE_STATES:
                    continue
                conn.execute(
                    update(instances)
                    .where(instances.c.id == ev.row_id)
                    .values(progress=max(0.0, min(100.0, ev.value)))
                )
            elif isinstance(ev, Transfer):
                new_state = self._transfer(conn, ev, state[ev.row_id])
                if new_state is None:
                    continue
                state[ev.row_id] = new_state
            elif isinstance(ev, SnapshotDone):
                self._snapshot_done(conn, row.task_id, ev, now)
                continue
            elif isinstance(ev, Ready):
                if state[ev.row_id] is InstanceState.EXECUTING:
                    conn.execute(_SLOT_READY, {"slot_id": ev.row_id, "at": ev.at})
                    self._slots_ready = True
                continue
            elif isinstance(ev, Finished):
                new = self._finish(conn, row, state[ev.row_id], ev)
                if new is None:
                    continue
                state[ev.row_id] = new
                ended += 1
            touched.add(row.task_id)
        LogStore.append(conn, logs)
        return ended

    @staticmethod
    def _transfer(conn: Any, ev: Transfer, old: InstanceState) -> InstanceState | None:
        """Download progress while dispatched; an upload moves the instance to Uploading."""
        new = old
        if ev.phase == "upload" and old is not InstanceState.UPLOADING:
            if not can_transition(old, InstanceState.UPLOADING):
                return None
            new = InstanceState.UPLOADING
        elif ev.phase == "download" and old is not InstanceState.DISPATCHED:
            return None
        conn.execute(
            _UPDATE_INSTANCE,
            {
                "_row_id": ev.row_id,
                "state": new.value,
                "transfer_progress": max(0.0, min(100.0, ev.progress)),
            },
        )
        return new

    @staticmethod
    def _snapshot_done(conn: Any, task_id: int, ev: SnapshotDone, now: datetime) -> None:
        # the last instance to report settles the status; any failure makes it a Failure
        # (SET expressions see the row as it was before this update)
        failed = snapshots.c.error.is_not(None) if ev.error is None else true()
        conn.execute(
            update(snapshots)
            .where(snapshots.c.id == ev.snapshot_id)
            .values(
                pending=snapshots.c.pending - 1,
                size_to_upload=snapshots.c.size_to_upload + ev.size,
                transferred_size=snapshots.c.transferred_size + ev.size,
                last_update=now,
                error=ev.error if ev.error else snapshots.c.error,
                status=case(
                    (snapshots.c.pending > 1, "InProgress"),
                    (failed, "Failure"),
                    else_="Success",
                ),
            )
        )
        if ev.objects:
            _bump_results_count(conn, task_id)

    def _finish(
        self, conn: Any, row: Any, old: InstanceState, ev: Finished
    ) -> InstanceState | None:
        if old not in ACTIVE_INSTANCE_STATES:
            return None  # already final (e.g. cancelled), or a duplicate report
        values: dict[str, Any] = {
            "ended_at": ev.at,
            "wall_time_sec": row.wall_time_sec + ev.wall_time_sec,
            "cpu_time_sec": row.cpu_time_sec + ev.cpu_time_sec,
            "peak_memory_mb": max(row.peak_memory_mb, ev.peak_memory_mb),
            "exit_code": ev.exit_code,
            "error": ev.error,
            "pid": None,
            "proc_start": None,
            "results": list(ev.results[:MAX_LISTED_RESULTS]) if ev.results else None,
            # a slot is no longer one; an instance on a pool leaves its slot
            "slot_use": None,
            "idle_since": None,
            "slot_row_id": None,
        }
        if row.slot_row_id is not None:
            conn.execute(_FREE_SLOT, {"slot_id": row.slot_row_id, "at": ev.at})
        if ev.results:
            _bump_results_count(conn, row.task_id)
        task = conn.execute(_ENDED_ATTEMPT_TASK, {"task_id": row.task_id}).one()
        if ev.cancelled or task.cancel_requested:
            new = InstanceState.CANCELLED
        elif ev.interrupted:
            # the attempt never had a fair run: run it again without spending a retry
            new = InstanceState.QUEUED
            values["attempts"] = max(0, row.attempts - 1)
            values["error"] = None
        elif ev.exit_code == 0 and ev.error is None:
            new = InstanceState.SUCCESS
        elif should_retry(
            row.attempts,
            task.max_per_instance_retries,
            task.retries_used,
            task.max_total_retries,
        ):
            new = InstanceState.QUEUED
            conn.execute(
                update(tasks)
                .where(tasks.c.id == row.task_id)
                .values(retries_used=tasks.c.retries_used + 1)
            )
        else:
            new = InstanceState.FAILURE
        values["state"] = new.value
        conn.execute(_UPDATE_INSTANCE, {"_row_id": row.id, **values})
        record_attempt(conn, task, row.instance_id, row.attempts, ev, self.rates, self._total_cores)
        return new

    def leftovers(self) -> list[Leftover]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(
                    instances.c.id,
                    instances.c.pid,
                    instances.c.proc_start,
                    instances.c.attempts,
                    tasks.c.cores,
                    instances.c.slot_use,
                )
                .join(tasks, tasks.c.id == instances.c.task_id)
                .where(instances.c.state.in_(_ACTIVE))
            ).all()
        return [
            Leftover(r.id, r.pid, r.proc_start, r.attempts, r.cores, r.slot_use is not None)
            for r in rows
        ]
