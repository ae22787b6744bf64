"""Upgrading a store made by an older calor keeps its data and fills new columns correctly."""

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text

from calor.store.engine import MIGRATIONS, Database, sqlite_url
from calor.store.tables import metadata
from tests.conftest import BACKENDS, database_url


def _upgrade(db: Database, revision: str, down: bool = False) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


_TASK_COLUMNS = (
    "uuid, user_id, name, shortname, profile, state, previous_state, creation_date, "
    "state_transition_time, previous_state_transition_time, last_modified, instance_count, "
    "cores, cancel_requested, progress, running_instance_count, running_core_count, "
    "execution_time_sec, wall_time_sec, results_count, retries_used, errors, document"
)
_TASK_VALUES = (
    ":u, :uid, 'n', :u, 'docker-batch', :state, :state, '2026-01-01', '2026-01-01', "
    "'2026-01-01', '2026-01-01', 1, 1, false, 0, 0, 0, 0, 0, 0, 0, '[]', '{}'"
)


def _insert_user(conn: Connection) -> None:
    conn.execute(
        text(
            "INSERT INTO users (id, email, token_hash, created_at) "
            "VALUES (1, 'a@x', 'h1', '2026-01-01')"
        )
    )


def _insert_task(
    conn: Connection, uuid: str, user_id: int, state: str, extra: dict[str, object] | None = None
) -> None:
    """A tasks row as an old schema has it (``extra``: columns of later revisions)."""
    more = extra or {}
    columns = "".join(f", {k}" for k in more)
    values = "".join(f", :{k}" for k in more)
    conn.execute(
        text(f"INSERT INTO tasks ({_TASK_COLUMNS}{columns}) VALUES ({_TASK_VALUES}{values})"),
        {"u": uuid, "uid": user_id, "state": state, **more},
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_task_count_is_backfilled_from_existing_tasks(tmp_path: Path, backend: str) -> None:
    db = Database(database_url(backend) or sqlite_url(tmp_path))
    try:
        _upgrade(db, "0001")
        with db.engine.begin() as conn:
            for uid, email, n in ((1, "a@x", 3), (2, "b@x", 0), (3, "c@x", 1)):
                conn.execute(
                    text(
                        "INSERT INTO users (id, email, token_hash, created_at) "
                        "VALUES (:id, :email, :hash, '2026-01-01')"
                    ),
                    {"id": uid, "email": email, "hash": f"h{uid}"},
                )
                for i in range(n):
                    _insert_task(conn, f"{uid}-{i}", uid, "Success")
        db.migrate()
        with db.engine.connect() as conn:
            counts = dict(conn.execute(text("SELECT id, task_count FROM users")).all())
        assert counts == {1: 3, 2: 0, 3: 1}
    finally:
        db.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrations_build_exactly_the_declared_schema(tmp_path: Path, backend: str) -> None:
    db = Database(database_url(backend) or sqlite_url(tmp_path))
    try:
        db.migrate()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        # a change to store/tables.py without its migration shows up here
        assert diff == []
    finally:
        db.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_running_task_count_is_backfilled(tmp_path: Path, backend: str) -> None:
    db = Database(database_url(backend) or sqlite_url(tmp_path))
    try:
        _upgrade(db, "0008")
        with db.engine.begin() as conn:
            _insert_user(conn)
            for i, (state, slots_of) in enumerate(
                (
                    ("FullyExecuting", None),
                    ("PartiallyDispatched", None),
                    ("Submitted", None),
                    ("Success", None),
                    ("FullyExecuting", 7),  # a pool's slot task never counts
                )
            ):
                _insert_task(conn, f"t{i}", 1, state, {"slots_of": slots_of})
        _upgrade(db, "0009")  # 0010 drops the counter again
        with db.engine.connect() as conn:
            count = conn.execute(text("SELECT running_task_count FROM users")).scalar_one()
        assert count == 2
    finally:
        db.dispose()


_RUNNING = "SELECT running_started, started_ms_sum FROM tasks"


@pytest.mark.parametrize("backend", BACKENDS)
def test_running_starts_are_backfilled_and_kept_by_the_triggers(
    tmp_path: Path, backend: str
) -> None:
    """0016: the running instances' starts of the tasks already stored are summed; its
    triggers keep them; going back to 0015 leaves that revision's triggers working."""
    db = Database(database_url(backend) or sqlite_url(tmp_path))
    started = ("2026-01-01 00:00:01.250", "2026-01-01 00:00:03", None)
    try:
        _upgrade(db, "0015")
        with db.engine.begin() as conn:
            _insert_user(conn)
            _insert_task(conn, "t", 1, "FullyExecuting")
            task_id = conn.execute(text("SELECT id FROM tasks")).scalar_one()
            for i, (state, at) in enumerate(
                zip(
                    ("Executing", "UploadingResults", "Dispatched", "Success"),
                    [*started, "x"],
                    strict=True,
                )
            ):
                conn.execute(
                    text(
                        "INSERT INTO instances (task_id, instance_id, state, attempts, progress, "
                        "started_at, wall_time_sec, cpu_time_sec, peak_memory_mb) "
                        "VALUES (:t, :i, :s, 1, 0, :at, 0, 0, 0)"
                    ),
                    {"t": task_id, "i": i, "s": state, "at": None if at == "x" else at},
                )
        db.migrate()
        # 2026-01-01 is 2192 days after 2020-01-01
        day_ms = 2192 * 86_400_000
        with db.engine.begin() as conn:
            assert tuple(conn.execute(text(_RUNNING)).one()) == (2, 2 * day_ms + 1250 + 3000)
            conn.execute(text("UPDATE instances SET state = 'Success' WHERE instance_id = 0"))
            assert tuple(conn.execute(text(_RUNNING)).one()) == (1, day_ms + 3000)
        _upgrade(db, "0015", down=True)
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE instances SET state = 'Success' WHERE instance_id = 1"))
            n_success = conn.execute(text("SELECT n_success FROM tasks")).scalar_one()
        assert n_success == 3
        db.migrate()
        with db.engine.connect() as conn:
            assert tuple(conn.execute(text(_RUNNING)).one()) == (0, 0)
    finally:
        db.dispose()
