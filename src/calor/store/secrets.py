"""Secrets rows: sealed values by (user, key). Every read is a point lookup or one range of
ix_secrets_user_key; a folder's listing skips over each sub-folder instead of reading it."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from calor.domain.errors import Conflict
from calor.domain.secrets import SecretsGrant, prefix_end
from calor.domain.states import ACTIVE_INSTANCE_STATES
from calor.store.engine import Database
from calor.store.keys import check_room
from calor.store.tables import instances, secrets, tasks, users

LIST_PAGE = 500
_ACTIVE = [s.value for s in ACTIVE_INSTANCE_STATES]
_SLOT = instances.alias("slot")
_SLOT_TASK = tasks.alias("slot_task")


def _in_range(prefix: str) -> list[Any]:
    """Keys that start with ``prefix``, as an index range."""
    where: list[Any] = [secrets.c.key >= prefix]
    end = prefix_end(prefix)
    if end is not None:
        where.append(secrets.c.key < end)
    return where


def _ancestors(key: str) -> list[str]:
    parts = key.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


class SecretStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, user_id: int, key: str, sealed: bytes, now: datetime, limit: int) -> None:
        """Conflict when the key exists, or when it would be both a secret and a folder
        (``a`` and ``a/b``): instances read secrets as files, and a path is one or the other."""
        try:
            with self.db.write() as conn:
                # one creation per user at a time (PostgreSQL; SQLite has one writer anyway),
                # so that two racing creations of "a" and "a/b" cannot both pass the checks
                conn.execute(select(users.c.id).where(users.c.id == user_id).with_for_update())
                mine = secrets.c.user_id == user_id
                if conn.execute(select(secrets.c.id).where(mine, secrets.c.key == key)).first():
                    raise Conflict(f"a secret with key {key!r} already exists")
                parents = _ancestors(key)
                if parents:
                    found = conn.execute(
                        select(secrets.c.key).where(mine, secrets.c.key.in_(parents)).limit(1)
                    ).scalar()
                    if found is not None:
                        raise Conflict(
                            f"{found!r} is a secret, so it cannot be a folder of {key!r}; "
                            "delete it or choose another key"
                        )
                inside = conn.execute(
                    select(secrets.c.key).where(mine, *_in_range(key + "/")).limit(1)
                ).scalar()
                if inside is not None:
                    raise Conflict(
                        f"{key!r} is a folder of secrets (it holds {inside!r}), so it cannot "
                        "be a secret too"
                    )
                check_room(conn, secrets, user_id, limit, "secret")
                conn.execute(
                    insert(secrets).values(
                        user_id=user_id, key=key, sealed=sealed, created_at=now, updated_at=now
                    )
                )
        except IntegrityError:
            raise Conflict(f"a secret with key {key!r} already exists") from None

    def get(self, user_id: int, key: str) -> bytes | None:
        with self.db.read() as conn:
            found = conn.execute(
                select(secrets.c.sealed).where(secrets.c.user_id == user_id, secrets.c.key == key)
            ).scalar()
        return bytes(found) if found is not None else None

    def update(self, user_id: int, key: str, sealed: bytes, now: datetime) -> bool:
        with self.db.write() as conn:
            result = conn.execute(
                update(secrets)
                .where(secrets.c.user_id == user_id, secrets.c.key == key)
                .values(sealed=sealed, updated_at=now)
            )
        return bool(result.rowcount)

    def delete(self, user_id: int, key: str) -> bool:
        with self.db.write() as conn:
            result = conn.execute(
                delete(secrets).where(secrets.c.user_id == user_id, secrets.c.key == key)
            )
        return bool(result.rowcount)

    def children(self, user_id: int, folder: str) -> list[str]:
        """The secrets and sub-folders (ending in ``/``) right under ``folder`` ("" for the
        top), relative to it, in key order."""
        base = folder + "/" if folder else ""
        end = prefix_end(base) if base else None
        out: list[str] = []
        lower, inclusive = base, True
        with self.db.read() as conn:
            while True:
                where = [
                    secrets.c.user_id == user_id,
                    secrets.c.key >= lower if inclusive else secrets.c.key > lower,
                ]
                if end is not None:
                    where.append(secrets.c.key < end)
                rows = conn.execute(
                    select(secrets.c.key).where(*where).order_by(secrets.c.key).limit(LIST_PAGE)
                ).scalars()
                seen = 0
                skipped = False
                for key in rows:
                    seen += 1
                    rest = key[len(base) :]
                    cut = rest.find("/")
                    if cut < 0:
                        out.append(rest)
                        lower, inclusive = key, False
                        continue
                    # a sub-folder: named once, then everything in it is jumped over ("0"
                    # is the character after "/")
                    out.append(rest[: cut + 1])
                    lower, inclusive = base + rest[:cut] + "0", True
                    skipped = True
                    break
                if not skipped and seen < LIST_PAGE:
                    return out

    def missing(self, user_id: int, keys: Iterable[str]) -> list[str]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return []
        with self.db.read() as conn:
            found = set(
                conn.execute(
                    select(secrets.c.key).where(
                        secrets.c.user_id == user_id, secrets.c.key.in_(wanted)
                    )
                ).scalars()
            )
        return [k for k in wanted if k not in found]

    def granted(self, user_id: int, grant: SecretsGrant) -> list[tuple[str, bytes]]:
        """(key, sealed value) of every secret of the user that ``grant`` covers."""
        if not grant:
            return []
        ranges: list[Any] = []
        if grant.keys:
            ranges.append(secrets.c.key.in_(grant.keys))
        for prefix in grant.prefixes:
            ends = _in_range(prefix)
            ranges.append(ends[0] if len(ends) == 1 else ends[0] & ends[1])
        with self.db.read() as conn:
            rows = conn.execute(
                select(secrets.c.key, secrets.c.sealed)
                .where(secrets.c.user_id == user_id, or_(*ranges))
                .order_by(secrets.c.key)
            ).all()
        return [(r.key, bytes(r.sealed)) for r in rows]

    def attempt_grant(self, row_id: int) -> tuple[int, list[dict[str, Any]]] | None:
        """The owner of an active instance and the documents that grant it secrets: its task's
        and, for a task on a pool, its slot's (the pool's); None when it is not active."""
        with self.db.read() as conn:
            row = conn.execute(
                select(tasks.c.user_id, tasks.c.document, _SLOT_TASK.c.document.label("pool"))
                .select_from(
                    instances.join(tasks, tasks.c.id == instances.c.task_id)
                    .outerjoin(_SLOT, _SLOT.c.id == instances.c.slot_row_id)
                    .outerjoin(_SLOT_TASK, _SLOT_TASK.c.id == _SLOT.c.task_id)
                )
                .where(instances.c.id == row_id, instances.c.state.in_(_ACTIVE))
            ).first()
        if row is None:
            return None
        return int(row.user_id), [row.document, row.pool]
