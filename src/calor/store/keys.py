"""Lookups shared by tasks, jobs and pools: an object by uuid or shortname, and tags by owner."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Table, func, select, true

from calor.domain.errors import Forbidden, NotFound


def id_by_key(
    conn: Connection,
    table: Table,
    user_id: int,
    key: str,
    kind: str,
    extra: ColumnElement[bool] | None = None,
) -> int:
    """The id of the user's ``kind`` (a row of ``table``) whose uuid, else shortname, is
    ``key``; NotFound otherwise (other users' objects included)."""
    if "\x00" not in key:  # no object has one, and PostgreSQL rejects it in a query
        for column in (table.c.uuid, table.c.shortname):
            found = conn.execute(
                select(table.c.id).where(
                    table.c.user_id == user_id,
                    column == key,
                    extra if extra is not None else true(),
                )
            ).scalar()
            if found is not None:
                return int(found)
    raise NotFound(f"{kind} {key!r} not found")


def tags_by_owner(
    conn: Connection, owner: Column[Any], tag: Column[Any], ids: Sequence[int]
) -> dict[int, list[str]]:
    """The tags of each of ``ids``, from a tags table's owner and tag columns."""
    out: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        for owner_id, value in conn.execute(select(owner, tag).where(owner.in_(list(ids)))):
            out[owner_id].append(value)
    return out


def check_room(conn: Connection, table: Table, user_id: int, limit: int, kind: str) -> None:
    """Forbidden when the user already has ``limit`` rows of ``table`` (the SDK recognises
    "maximum number of <kind>s reached")."""
    count = conn.execute(select(func.count()).where(table.c.user_id == user_id)).scalar_one()
    if count >= limit:
        raise Forbidden(f"maximum number of {kind}s reached ({limit}); delete some to create more")
