"""The instance totals also keep the running instances' starts (how many have started and the
sum of their start times, in ms since 2020-01-01), so a task's execution time so far is
derived without reading its running instances: a pool's slots all run, and a pool of many
nodes read every slot at each slot's event. Tasks are also indexed by (job, state), so a
terminating job's check for tasks still running is a probe, not a scan of its tasks.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 22:10:00
"""

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

ACTIVE = "('Dispatched', 'Executing', 'UploadingResults')"


def _previous() -> ModuleType:
    """Revision 0015, whose totals the triggers made here keep as they were."""
    path = Path(__file__).with_name("0015_instance_totals.py")
    spec = importlib.util.spec_from_file_location("calor_migration_0015", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _started(row: str) -> str:
    return f"{row}.state IN {ACTIVE} AND {row}.started_at IS NOT NULL"


def _ms(row: str, postgres: bool) -> str:
    """The row's start in ms since 2020-01-01, rounded alike on both databases (to the
    nearest ms, halves up): it is added and taken away computed from the same value."""
    if postgres:
        since = f"extract(epoch FROM ({row}.started_at - TIMESTAMP '2020-01-01 00:00:00'))"
        return f"CAST(round({since} * 1000) AS BIGINT)"
    since = f"(julianday({row}.started_at) - julianday('2020-01-01 00:00:00'))"
    return f"CAST(round({since} * 86400000.0) AS INTEGER)"


def _running_set(new: str | None, old: str | None, postgres: bool) -> str:
    count, total = [], []
    for row, sign in ((new, "+"), (old, "-")):
        if row is None:
            continue
        count.append(f"{sign} (CASE WHEN {_started(row)} THEN 1 ELSE 0 END)")
        total.append(f"{sign} (CASE WHEN {_started(row)} THEN {_ms(row, postgres)} ELSE 0 END)")
    return (
        f"running_started = running_started {' '.join(count)}, "
        f"started_ms_sum = started_ms_sum {' '.join(total)}"
    )


def _set(previous: ModuleType, new: str | None, old: str | None, postgres: bool) -> str:
    return f"{previous._set(new, old)}, {_running_set(new, old, postgres)}"


def _sqlite_triggers(previous: ModuleType) -> list[str]:
    return [
        "CREATE TRIGGER tr_instances_totals_insert AFTER INSERT ON instances BEGIN "
        f"UPDATE tasks SET {_set(previous, 'NEW', None, False)} WHERE id = NEW.task_id; END",
        f"CREATE TRIGGER tr_instances_totals_update AFTER UPDATE OF {previous.WATCHED} "
        f"ON instances WHEN {previous.CHANGED} BEGIN "
        f"UPDATE tasks SET {_set(previous, 'NEW', 'OLD', False)} WHERE id = NEW.task_id; END",
        "CREATE TRIGGER tr_instances_totals_delete AFTER DELETE ON instances BEGIN "
        f"UPDATE tasks SET {_set(previous, None, 'OLD', False)} WHERE id = OLD.task_id; END",
    ]


def _postgres_functions(previous: ModuleType) -> list[str]:
    def function(name: str, body: str, returns: str) -> str:
        return (
            f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"{body} RETURN {returns}; END $$"
        )

    return [
        function(
            "instances_totals_insert",
            f"UPDATE tasks SET {_set(previous, 'NEW', None, True)} WHERE id = NEW.task_id;",
            "NEW",
        ),
        function(
            "instances_totals_update",
            f"UPDATE tasks SET {_set(previous, 'NEW', 'OLD', True)} WHERE id = NEW.task_id;",
            "NEW",
        ),
        function(
            "instances_totals_delete",
            f"UPDATE tasks SET {_set(previous, None, 'OLD', True)} WHERE id = OLD.task_id;",
            "OLD",
        ),
    ]


def _install(previous: ModuleType, postgres: bool) -> None:
    """Put this revision's triggers in place of 0015's (PostgreSQL: its functions)."""
    if postgres:
        for statement in _postgres_functions(previous):
            op.execute(statement)
        return
    for what in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS tr_instances_totals_{what}")
    for statement in _sqlite_triggers(previous):
        op.execute(statement)


def upgrade() -> None:
    previous = _previous()
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column(
        "tasks", sa.Column("running_started", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "tasks", sa.Column("started_ms_sum", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.create_index("ix_tasks_job_state", "tasks", ["job_id", "state"])
    op.execute(
        "UPDATE tasks SET "
        "running_started = (SELECT count(*) FROM instances i WHERE i.task_id = tasks.id "
        f"AND {_started('i')}), "
        f"started_ms_sum = (SELECT coalesce(sum({_ms('i', postgres)}), 0) FROM instances i "
        f"WHERE i.task_id = tasks.id AND {_started('i')})"
    )
    _install(previous, postgres)


def downgrade() -> None:
    previous = _previous()
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for statement in previous._postgres_triggers()[:3]:  # 0015's functions
            op.execute(statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    else:
        for what in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS tr_instances_totals_{what}")
        for statement in previous._sqlite_triggers():
            op.execute(statement)
    op.drop_index("ix_tasks_job_state", "tasks")
    for column in ("running_started", "started_ms_sum"):
        op.execute(f"ALTER TABLE tasks DROP COLUMN {column}")
