"""Each task keeps the totals of its instances (count per state, progress sum, wall time sum,
first start, last end), maintained by triggers on instances in the same statement as the
instance's change, so that deriving a task's state costs the same at 10 or 10^5 instances
and no write path can forget them

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 20:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# domain.states.InstanceState values and the tasks column counting each
COUNTED = {
    "Waiting": "n_waiting",
    "Queued": "n_queued",
    "Dispatched": "n_dispatched",
    "Executing": "n_executing",
    "UploadingResults": "n_uploading",
    "Success": "n_success",
    "Failure": "n_failure",
    "Cancelled": "n_cancelled",
}
FINAL = "('Success', 'Failure', 'Cancelled')"


def _progress(row: str) -> str:
    # a final instance counts as 100 % whatever it last reported (domain.task.derive)
    return f"(CASE WHEN {row}.state IN {FINAL} THEN 100.0 ELSE {row}.progress END)"


def _is(row: str, state: str) -> str:
    return f"(CASE WHEN {row}.state = '{state}' THEN 1 ELSE 0 END)"


def _earlier(column: str, value: str) -> str:
    """``column`` moved back to ``value`` if that is earlier (NULLs never win; SQLite's
    min() of a NULL is NULL, and PostgreSQL's LEAST has no SQLite twin)."""
    return (
        f"CASE WHEN {value} IS NOT NULL AND ({column} IS NULL OR {value} < {column}) "
        f"THEN {value} ELSE {column} END"
    )


def _later(column: str, value: str) -> str:
    return (
        f"CASE WHEN {value} IS NOT NULL AND ({column} IS NULL OR {value} > {column}) "
        f"THEN {value} ELSE {column} END"
    )


def _set(new: str | None, old: str | None) -> str:
    """The SET clause adding row ``new`` and taking away row ``old`` (either may be None)."""
    parts = []
    for state, column in COUNTED.items():
        delta = " ".join(
            [*([f"+ {_is(new, state)}"] if new else []), *([f"- {_is(old, state)}"] if old else [])]
        )
        parts.append(f"{column} = {column} {delta}")
    progress = " ".join(
        [*([f"+ {_progress(new)}"] if new else []), *([f"- {_progress(old)}"] if old else [])]
    )
    wall = " ".join(
        [*([f"+ {new}.wall_time_sec"] if new else []), *([f"- {old}.wall_time_sec"] if old else [])]
    )
    parts.append(f"progress_sum = progress_sum {progress}")
    parts.append(f"wall_sum = wall_sum {wall}")
    if new:
        # a retry clears started_at: the task's first start stays where it was
        parts.append(f"first_start = {_earlier('first_start', f'{new}.started_at')}")
        parts.append(f"last_end = {_later('last_end', f'{new}.ended_at')}")
    return ", ".join(parts)


# the columns whose change moves a total: other updates (pid, slot use...) fire nothing
WATCHED = "state, progress, wall_time_sec, started_at, ended_at"
CHANGED = " OR ".join(
    f"OLD.{c} IS NOT NEW.{c}"
    for c in ("state", "progress", "wall_time_sec", "started_at", "ended_at")
)
CHANGED_PG = CHANGED.replace(" IS NOT ", " IS DISTINCT FROM ")


def _sqlite_triggers() -> list[str]:
    return [
        "CREATE TRIGGER tr_instances_totals_insert AFTER INSERT ON instances BEGIN "
        f"UPDATE tasks SET {_set('NEW', None)} WHERE id = NEW.task_id; END",
        f"CREATE TRIGGER tr_instances_totals_update AFTER UPDATE OF {WATCHED} ON instances "
        f"WHEN {CHANGED} BEGIN "
        f"UPDATE tasks SET {_set('NEW', 'OLD')} WHERE id = NEW.task_id; END",
        "CREATE TRIGGER tr_instances_totals_delete AFTER DELETE ON instances BEGIN "
        f"UPDATE tasks SET {_set(None, 'OLD')} WHERE id = OLD.task_id; END",
    ]


def _postgres_triggers() -> list[str]:
    def function(name: str, body: str, returns: str) -> str:
        return (
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"{body} RETURN {returns}; END $$"
        )

    return [
        function(
            "instances_totals_insert",
            f"UPDATE tasks SET {_set('NEW', None)} WHERE id = NEW.task_id;",
            "NEW",
        ),
        function(
            "instances_totals_update",
            f"UPDATE tasks SET {_set('NEW', 'OLD')} WHERE id = NEW.task_id;",
            "NEW",
        ),
        function(
            "instances_totals_delete",
            f"UPDATE tasks SET {_set(None, 'OLD')} WHERE id = OLD.task_id;",
            "OLD",
        ),
        "CREATE TRIGGER tr_instances_totals_insert AFTER INSERT ON instances "
        "FOR EACH ROW EXECUTE FUNCTION instances_totals_insert()",
        f"CREATE TRIGGER tr_instances_totals_update AFTER UPDATE OF {WATCHED} ON instances "
        f"FOR EACH ROW WHEN ({CHANGED_PG}) EXECUTE FUNCTION instances_totals_update()",
        "CREATE TRIGGER tr_instances_totals_delete AFTER DELETE ON instances "
        "FOR EACH ROW EXECUTE FUNCTION instances_totals_delete()",
    ]


def upgrade() -> None:
    for column in COUNTED.values():
        op.add_column("tasks", sa.Column(column, sa.Integer(), nullable=False, server_default="0"))
    for column in ("progress_sum", "wall_sum"):
        op.add_column("tasks", sa.Column(column, sa.Float(), nullable=False, server_default="0"))
    op.add_column("tasks", sa.Column("last_end", sa.DateTime(), nullable=True))
    # the active instances of a task are read by (task_id, state) at every derivation
    op.create_index("ix_instances_task_state", "instances", ["task_id", "state"])
    # the totals of the tasks already stored
    counts = ", ".join(
        f"{column} = (SELECT count(*) FROM instances i WHERE i.task_id = tasks.id "
        f"AND i.state = '{state}')"
        for state, column in COUNTED.items()
    )
    op.execute(
        f"UPDATE tasks SET {counts}, "
        f"progress_sum = (SELECT coalesce(sum({_progress('i')}), 0) FROM instances i "
        "WHERE i.task_id = tasks.id), "
        "wall_sum = (SELECT coalesce(sum(i.wall_time_sec), 0) FROM instances i "
        "WHERE i.task_id = tasks.id), "
        "first_start = (SELECT min(i.started_at) FROM instances i WHERE i.task_id = tasks.id), "
        "last_end = (SELECT max(i.ended_at) FROM instances i WHERE i.task_id = tasks.id)"
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _postgres_triggers() if postgres else _sqlite_triggers():
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for what in ("insert", "update", "delete"):
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS tr_instances_totals_{what} ON instances")
            op.execute(f"DROP FUNCTION IF EXISTS instances_totals_{what}()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS tr_instances_totals_{what}")
    op.drop_index("ix_instances_task_state", "instances")
    # SQLite drops a column in place (3.35+); a batch copy of tasks would trip the foreign
    # keys that point at it
    for column in [*COUNTED.values(), "progress_sum", "wall_sum", "last_end"]:
        op.execute(f"ALTER TABLE tasks DROP COLUMN {column}")
