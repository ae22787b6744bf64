"""Fast seeding of a calor data dir with N one-instance tasks of one user.

The schema comes from the server's own migrations (Database.migrate through open_database);
rows go straight into tasks, task_tags and instances with SQLAlchemy Core executemany, 10,000
rows per statement and one transaction per batch.

Distribution (fixed random seed): 80 % Success, 10 % Failure, 5 % Cancelled, 5 % Submitted with
a queued instance (a backlog; their command is `sleep 600`, so a server started with --cores 1
runs one of them and the engine stays idle). Every task has one of 10 tags t0..t9 (uniform), and
1 task in 1,000 also has the tag `rare`.
"""

import argparse
import json
import random
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from calor.settings import Settings
from calor.store.tables import instances, task_tags, tasks, users
from calor.wiring import open_database, user_service

BATCH = 10_000
STATES = [("Success", 80), ("Failure", 10), ("Cancelled", 5), ("Submitted", 5)]
TAGS = [f"t{i}" for i in range(10)]
MARKER = "seeded.json"


def _document(command: str, tags: list[str]) -> dict[str, Any]:
    return {
        "constants": [{"key": "DOCKER_CMD", "value": command}],
        "constraints": [],
        "forcedConstants": [],
        "labels": {},
        "tags": tags,
        "dependencies": {"dependsOn": []},
        "resourceBuckets": [],
        "advancedResourceBuckets": [],
        "retrySettings": {"maxTotalRetries": None, "maxPerInstanceRetries": None},
        "maxRetriesPerInstance": 0,
        "schedulingType": "Flex",
        "privileges": {"exportApiAndStorageCredentialsInEnvironment": False},
        "secretsAccessRights": {"bySecret": [], "byPrefix": []},
    }


def _rows(
    first_id: int, count: int, user_id: int, start: datetime, rng: random.Random
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    names = [s for s, _ in STATES]
    weights = [w for _, w in STATES]
    task_rows: list[dict[str, Any]] = []
    tag_rows: list[dict[str, Any]] = []
    inst_rows: list[dict[str, Any]] = []
    for task_id in range(first_id, first_id + count):
        state = rng.choices(names, weights)[0]
        queued = state == "Submitted"
        created = start + timedelta(milliseconds=task_id)
        started = None if queued else created + timedelta(milliseconds=5)
        ended = None if queued else created + timedelta(milliseconds=20)
        tags = [rng.choice(TAGS)]
        if rng.random() < 0.001:
            tags.append("rare")
        key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        task_rows.append(
            {
                "id": task_id,
                "uuid": key,
                "user_id": user_id,
                "name": f"seed-{task_id}",
                "shortname": key,
                "profile": "docker-batch",
                "state": state,
                "previous_state": "Submitted" if queued else "FullyExecuting",
                "creation_date": created,
                "state_transition_time": ended or created,
                "previous_state_transition_time": started or created,
                "last_modified": ended or created,
                "end_date": ended,
                "instance_count": 1,
                "cores": 1,
                "cancel_requested": state == "Cancelled",
                "progress": 0.0 if queued else 100.0,
                "running_instance_count": 0,
                "running_core_count": 0,
                "execution_time_sec": 0.0 if queued else 0.015,
                "wall_time_sec": 0.0 if queued else 0.015,
                "first_start": started,
                "results_count": 0,
                "retries_used": 0,
                "errors": [],
                "document": _document("sleep 600" if queued else "true", tags),
            }
        )
        tag_rows.extend({"task_id": task_id, "tag": t, "user_id": user_id} for t in tags)
        inst_state = "Queued" if queued else state
        inst_rows.append(
            {
                "task_id": task_id,
                "instance_id": 0,
                "state": inst_state,
                "attempts": 0 if queued else 1,
                "progress": 0.0,
                "started_at": started,
                "ended_at": ended,
                "wall_time_sec": 0.0 if queued else 0.015,
                "cpu_time_sec": 0.0 if queued else 0.002,
                "peak_memory_mb": 0 if queued else 2,
                "exit_code": None if queued else (0 if state == "Success" else 1),
                "error": "exited with code 1" if state == "Failure" else None,
            }
        )
    return task_rows, tag_rows, inst_rows


def seed(data_dir: Path, n: int, rng_seed: int = 42) -> tuple[str, float]:
    """Create ``data_dir`` with ``n`` tasks; returns the user's token and the seconds it took."""
    t0 = time.monotonic()
    settings = Settings(data_dir=data_dir)
    db = open_database(settings)
    user, token = user_service(db, settings).create("bench@calor.local")
    rng = random.Random(rng_seed)
    start = datetime(2026, 1, 1)
    for first in range(1, n + 1, BATCH):
        task_rows, tag_rows, inst_rows = _rows(
            first, min(BATCH, n + 1 - first), user.id, start, rng
        )
        with db.write() as conn:
            conn.execute(tasks.insert(), task_rows)
            conn.execute(task_tags.insert(), tag_rows)
            conn.execute(instances.insert(), inst_rows)
    with db.write() as conn:  # the server's own inserts keep this counter in step
        conn.execute(users.update().where(users.c.id == user.id).values(task_count=n))
    db.dispose()
    seconds = time.monotonic() - t0
    (data_dir / MARKER).write_text(json.dumps({"tasks": n, "token": token, "seconds": seconds}))
    return token, seconds


def seeded(data_dir: Path, n: int) -> tuple[str, float]:
    """Reuse a data dir seeded with ``n`` tasks, or seed it now."""
    marker = data_dir / MARKER
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("tasks") == n:
            return str(info["token"]), 0.0
        raise RuntimeError(f"{data_dir} holds another store ({info.get('tasks')} tasks)")
    return seed(data_dir, n)


def main() -> None:
    ap = argparse.ArgumentParser(description="seed a calor data dir with N tasks")
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("tasks", type=int)
    args = ap.parse_args()
    token, seconds = seed(args.data_dir, args.tasks)
    print(f"seeded {args.tasks} tasks in {seconds:.1f} s; token {token}")


if __name__ == "__main__":
    main()
