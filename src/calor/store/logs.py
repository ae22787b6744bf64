"""Instance output: appended in chunks of whole lines, read in full or "fresh" via a cursor."""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, insert, select, update

from calor.store.engine import Database
from calor.store.tables import log_chunks, log_cursors

TASK_LEVEL = -1


@dataclass(frozen=True)
class Chunk:
    id: int
    instance_id: int
    data: str


class LogStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def append(conn: Connection, rows: Sequence[dict[str, object]]) -> None:
        if rows:
            # PostgreSQL text cannot hold NUL: a failed insert would lose the engine's whole
            # batch of events (and wedge its tasks), so NUL shows as U+FFFD like bad UTF-8
            clean = [{**r, "data": str(r["data"]).replace("\x00", "\ufffd")} for r in rows]
            conn.execute(insert(log_chunks), clean)

    @staticmethod
    def _select(
        conn: Connection, task_id: int, stream: int, instance_id: int | None, after: int
    ) -> list[Chunk]:
        where = [
            log_chunks.c.task_id == task_id,
            log_chunks.c.stream == stream,
            log_chunks.c.id > after,
        ]
        if instance_id is not None:
            where.append(log_chunks.c.instance_id == instance_id)
        rows = conn.execute(
            select(log_chunks.c.id, log_chunks.c.instance_id, log_chunks.c.data)
            .where(and_(*where))
            .order_by(log_chunks.c.id)
        )
        return [Chunk(r.id, r.instance_id, r.data) for r in rows]

    def read(self, task_id: int, stream: int, instance_id: int | None) -> list[Chunk]:
        with self.db.read() as conn:
            return self._select(conn, task_id, stream, instance_id, 0)

    def read_tail(
        self, task_id: int, stream: int, instance_id: int | None, chars: int
    ) -> list[Chunk]:
        """The newest chunks holding at least ``chars`` characters (all, if fewer), oldest
        first: a tail without reading the whole output."""
        where = [log_chunks.c.task_id == task_id, log_chunks.c.stream == stream]
        if instance_id is not None:
            where.append(log_chunks.c.instance_id == instance_id)
        found: list[Chunk] = []
        total = 0
        with self.db.read() as conn:
            rows = conn.execute(
                select(log_chunks.c.id, log_chunks.c.instance_id, log_chunks.c.data)
                .where(and_(*where))
                .order_by(log_chunks.c.id.desc())
                .execution_options(yield_per=64)
            )
            for r in rows:
                found.append(Chunk(r.id, r.instance_id, r.data))
                total += len(r.data)
                if total >= chars:
                    break
        found.reverse()
        return found

    def read_fresh(self, task_id: int, stream: int, instance_id: int | None) -> list[Chunk]:
        """What was written since the previous fresh read of the same scope; moves the cursor."""
        scope = TASK_LEVEL if instance_id is None else instance_id
        key = and_(
            log_cursors.c.task_id == task_id,
            log_cursors.c.stream == stream,
            log_cursors.c.instance_id == scope,
        )
        with self.db.write() as conn:
            cursor = conn.execute(select(log_cursors.c.last_chunk_id).where(key)).scalar()
            chunks = self._select(conn, task_id, stream, instance_id, cursor or 0)
            if chunks:
                last = chunks[-1].id
                if cursor is None:
                    conn.execute(
                        insert(log_cursors).values(
                            task_id=task_id, stream=stream, instance_id=scope, last_chunk_id=last
                        )
                    )
                else:
                    conn.execute(update(log_cursors).where(key).values(last_chunk_id=last))
            return chunks
