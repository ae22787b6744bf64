"""Buckets, objects and multipart uploads: the metadata of the object store.

The bytes live in a blob store. A blob that a transaction stops referencing is written to
``doomed_blobs`` in that same transaction (deletable at once), and so is a blob about to be
written (deletable only after a grace period, unless the transaction that references it commits
first and takes it back). Whatever is doomed and due is deleted by the service, so a crash at any
point leaks nothing and never exposes a half-written object.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from calor.domain.storage import (
    Bucket,
    BucketNotEmpty,
    Listing,
    NoSuchBucket,
    NoSuchUpload,
    Part,
    QuotaExceeded,
    StorageUsage,
    StoredObject,
    Upload,
)
from calor.store.engine import Database
from calor.store.tables import buckets, doomed_blobs, objects, upload_parts, uploads

_LIST_BATCH = 1000

# The statements of the per-request paths (a PUT, a GET, a HEAD, garbage collection), built
# once: building a Core statement costs as much Python as running it on SQLite, and a prebuilt
# one keeps its compiled form's cache key too.
_BUCKET_ROW = select(buckets).where(
    buckets.c.user_id == bindparam("user_id"), buckets.c.name == bindparam("name")
)
_LOCK_BUCKET = select(buckets.c.id).where(buckets.c.id == bindparam("bucket_id")).with_for_update()
_OLD_OBJECT = select(objects.c.id, objects.c.size, objects.c.blob_id).where(
    objects.c.bucket_id == bindparam("bucket_id"), objects.c.key == bindparam("key")
)
_USER_BYTES = select(func.coalesce(func.sum(buckets.c.bytes_used), 0)).where(
    buckets.c.user_id == bindparam("user_id")
)
_INSERT_OBJECT = insert(objects)
_UPDATE_OBJECT = update(objects).where(objects.c.id == bindparam("_object_id"))
_COUNT_IN_BUCKET = (
    update(buckets)
    .where(buckets.c.id == bindparam("_bucket_id"))
    .values(
        bytes_used=buckets.c.bytes_used + bindparam("_bytes", type_=BigInteger),
        object_count=buckets.c.object_count + bindparam("_objects", type_=BigInteger),
    )
)
_GET_OBJECT = select(objects).where(
    objects.c.bucket_id == bindparam("bucket_id"), objects.c.key == bindparam("key")
)
# a bucket and one of its objects in one read: the object's columns are NULL when it is missing
_BUCKET_AND_OBJECT = (
    select(
        buckets.c.id.label("bucket_id"),
        objects.c.key,
        objects.c.blob_id,
        objects.c.size,
        objects.c.etag,
        objects.c.content_type,
        objects.c.last_modified,
        objects.c.user_metadata,
    )
    .select_from(
        buckets.outerjoin(
            objects,
            and_(objects.c.bucket_id == buckets.c.id, objects.c.key == bindparam("key")),
        )
    )
    .where(buckets.c.user_id == bindparam("user_id"), buckets.c.name == bindparam("name"))
)
_DOOM = insert(doomed_blobs)
_KEEP = delete(doomed_blobs).where(doomed_blobs.c.blob_id == bindparam("blob_id"))
_DUE = (
    select(doomed_blobs.c.blob_id)
    .where(doomed_blobs.c.since <= bindparam("now"))
    .limit(bindparam("limit"))
)
_FORGET = delete(doomed_blobs).where(
    doomed_blobs.c.blob_id.in_(bindparam("blob_ids", expanding=True))
)


def _bucket(row: Any) -> Bucket:
    return Bucket(row.id, row.name, row.created_at, row.object_count, row.bytes_used)


def _object(row: Any) -> StoredObject:
    return StoredObject(
        key=row.key,
        blob_id=row.blob_id,
        size=row.size,
        etag=row.etag,
        content_type=row.content_type,
        last_modified=row.last_modified,
        user_metadata=dict(row.user_metadata or {}),
    )


def _upload(row: Any) -> Upload:
    return Upload(
        row.id,
        row.bucket_id,
        row.key,
        row.content_type,
        dict(row.user_metadata or {}),
        row.created_at,
    )


def _after_prefix(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


class BucketStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- buckets -------------------------------------------------------------------------

    def create(self, user_id: int, name: str, now: datetime, max_buckets: int) -> bool:
        """Create the bucket; False when the user already has it (S3 answers 200 then)."""
        with self.db.write() as conn:
            if self._bucket_row(conn, user_id, name) is not None:
                return False
            count = conn.execute(
                select(func.count()).select_from(buckets).where(buckets.c.user_id == user_id)
            ).scalar_one()
            if count >= max_buckets:
                raise QuotaExceeded(f"maximum number of buckets reached ({max_buckets})")
            try:
                with conn.begin_nested():
                    conn.execute(insert(buckets).values(user_id=user_id, name=name, created_at=now))
            except IntegrityError:
                return False  # created by a concurrent request of the same user
        return True

    @staticmethod
    def _lock(conn: Connection, bucket: Bucket) -> None:
        """Writes of one bucket's objects take turns (PostgreSQL row lock; SQLite has one
        writer anyway): two PUTs of one new key must not both insert it, and the bucket's
        byte and object counts must add up."""
        found = conn.execute(_LOCK_BUCKET, {"bucket_id": bucket.id}).first()
        if found is None:
            raise NoSuchBucket(f"bucket {bucket.name!r} does not exist")

    @staticmethod
    def _bucket_row(conn: Connection, user_id: int, name: str) -> Any:
        return conn.execute(_BUCKET_ROW, {"user_id": user_id, "name": name}).first()

    def get(self, user_id: int, name: str) -> Bucket:
        with self.db.read() as conn:
            row = self._bucket_row(conn, user_id, name)
        if row is None:
            raise NoSuchBucket(f"bucket {name!r} does not exist")
        return _bucket(row)

    def get_dooming(
        self, user_id: int, name: str, blob_ids: Iterable[str], due: datetime
    ) -> Bucket:
        """``get`` and ``doom`` in one transaction: the bucket a blob about to be written is
        for, and that blob doomed (nothing doomed when there is no such bucket)."""
        with self.db.write() as conn:
            row = self._bucket_row(conn, user_id, name)
            if row is None:
                raise NoSuchBucket(f"bucket {name!r} does not exist")
            self._doom(conn, blob_ids, due)
        return _bucket(row)

    def all(self, user_id: int) -> list[Bucket]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(buckets).where(buckets.c.user_id == user_id).order_by(buckets.c.name)
            ).all()
        return [_bucket(r) for r in rows]

    def delete(self, user_id: int, name: str, now: datetime) -> None:
        with self.db.write() as conn:
            row = self._bucket_row(conn, user_id, name)
            if row is None:
                raise NoSuchBucket(f"bucket {name!r} does not exist")
            has_object = conn.execute(
                select(objects.c.id).where(objects.c.bucket_id == row.id).limit(1)
            ).first()
            if has_object is not None:
                raise BucketNotEmpty(f"bucket {name!r} is not empty")
            parts = conn.execute(
                select(upload_parts.c.blob_id)
                .join(uploads, uploads.c.id == upload_parts.c.upload_id)
                .where(uploads.c.bucket_id == row.id)
            ).scalars()
            self._doom(conn, parts, now)
            conn.execute(
                delete(upload_parts).where(
                    upload_parts.c.upload_id.in_(
                        select(uploads.c.id).where(uploads.c.bucket_id == row.id)
                    )
                )
            )
            conn.execute(delete(uploads).where(uploads.c.bucket_id == row.id))
            conn.execute(delete(buckets).where(buckets.c.id == row.id))

    def usage(self, user_id: int) -> StorageUsage:
        with self.db.read() as conn:
            count, used = conn.execute(
                select(func.count(), func.coalesce(func.sum(buckets.c.bytes_used), 0)).where(
                    buckets.c.user_id == user_id
                )
            ).one()
        return StorageUsage(int(count), int(used))

    # -- objects -------------------------------------------------------------------------

    def put_object(
        self, user_id: int, bucket: Bucket, obj: StoredObject, now: datetime, max_bytes: int
    ) -> bool:
        """Insert or replace the object (its blob written and doomed beforehand: this commit
        takes it back, and dooms the blob it replaces); True when it replaced one."""
        with self.db.write() as conn:
            self._lock(conn, bucket)
            old = conn.execute(_OLD_OBJECT, {"bucket_id": bucket.id, "key": obj.key}).first()
            delta = obj.size - (old.size if old else 0)
            if delta > 0:
                used = conn.execute(_USER_BYTES, {"user_id": user_id}).scalar_one()
                if used + delta > max_bytes:
                    raise QuotaExceeded(
                        f"storage quota exceeded: {used} of {max_bytes} bytes used, "
                        f"this object needs {delta} more"
                    )
            values = {
                "blob_id": obj.blob_id,
                "size": obj.size,
                "etag": obj.etag,
                "content_type": obj.content_type,
                "last_modified": obj.last_modified,
                "user_metadata": obj.user_metadata,
            }
            if old is None:
                conn.execute(_INSERT_OBJECT, {"bucket_id": bucket.id, "key": obj.key, **values})
            else:
                conn.execute(_UPDATE_OBJECT, {"_object_id": old.id, **values})
                self._doom(conn, [old.blob_id], now)
            self._keep(conn, obj.blob_id)
            conn.execute(
                _COUNT_IN_BUCKET,
                {"_bucket_id": bucket.id, "_bytes": delta, "_objects": 0 if old else 1},
            )
        return old is not None

    def get_object(self, bucket: Bucket, key: str) -> StoredObject | None:
        with self.db.read() as conn:
            row = conn.execute(_GET_OBJECT, {"bucket_id": bucket.id, "key": key}).first()
        return _object(row) if row else None

    def find_object(self, user_id: int, bucket_name: str, key: str) -> StoredObject | None:
        """The object ``key`` of the user's bucket, read with its bucket in one query; None
        when the bucket has no such key, NoSuchBucket when there is no such bucket."""
        with self.db.read() as conn:
            row = conn.execute(
                _BUCKET_AND_OBJECT, {"user_id": user_id, "name": bucket_name, "key": key}
            ).first()
        if row is None:
            raise NoSuchBucket(f"bucket {bucket_name!r} does not exist")
        return _object(row) if row.blob_id is not None else None

    def delete_objects(self, bucket: Bucket, keys: Sequence[str], now: datetime) -> set[str]:
        """Delete these keys (missing ones are fine, as in S3); returns the keys that existed."""
        if not keys:
            return set()
        with self.db.write() as conn:
            self._lock(conn, bucket)
            rows = conn.execute(
                select(objects.c.id, objects.c.key, objects.c.size, objects.c.blob_id).where(
                    objects.c.bucket_id == bucket.id, objects.c.key.in_(set(keys))
                )
            ).all()
            if not rows:
                return set()
            conn.execute(delete(objects).where(objects.c.id.in_([r.id for r in rows])))
            self._doom(conn, [r.blob_id for r in rows], now)
            conn.execute(
                update(buckets)
                .where(buckets.c.id == bucket.id)
                .values(
                    bytes_used=buckets.c.bytes_used - sum(r.size for r in rows),
                    object_count=buckets.c.object_count - len(rows),
                )
            )
        return {r.key for r in rows}

    def list_objects(
        self, bucket: Bucket, prefix: str, delimiter: str, after: str, max_keys: int
    ) -> Listing:
        """Keys after ``after`` that start with ``prefix``, in byte order; with a delimiter,
        keys sharing the part up to the next delimiter are rolled into one common prefix."""
        found: list[StoredObject] = []
        prefixes: list[str] = []
        upper = _after_prefix(prefix)
        cursor, inclusive = max(after, prefix), after < prefix
        last: str | None = None
        with self.db.read() as conn:
            while True:
                where = [objects.c.bucket_id == bucket.id]
                where.append(objects.c.key >= cursor if inclusive else objects.c.key > cursor)
                if upper is not None:
                    where.append(objects.c.key < upper)
                rows = conn.execute(
                    select(objects).where(and_(*where)).order_by(objects.c.key).limit(_LIST_BATCH)
                ).all()
                if not rows:
                    return Listing(found, prefixes, False, last)
                jumped = False
                for row in rows:
                    if len(found) + len(prefixes) >= max_keys:
                        return Listing(found, prefixes, True, last)
                    rest = row.key[len(prefix) :]
                    cut = rest.find(delimiter) if delimiter else -1
                    if cut >= 0:
                        common = prefix + rest[: cut + len(delimiter)]
                        if common != last and common > after:
                            prefixes.append(common)
                            last = common
                        # skip the rest of this common prefix in one jump
                        nxt = _after_prefix(common)
                        if nxt is None:
                            return Listing(found, prefixes, False, last)
                        cursor, inclusive, jumped = nxt, True, True
                        break
                    found.append(_object(row))
                    last = row.key
                if not jumped:
                    if len(rows) < _LIST_BATCH:
                        return Listing(found, prefixes, False, last)
                    cursor, inclusive = rows[-1].key, False

    # -- multipart uploads ---------------------------------------------------------------

    def create_upload(self, upload: Upload) -> None:
        with self.db.write() as conn:
            conn.execute(
                insert(uploads).values(
                    id=upload.id,
                    bucket_id=upload.bucket_id,
                    key=upload.key,
                    content_type=upload.content_type,
                    user_metadata=upload.user_metadata,
                    created_at=upload.created_at,
                )
            )

    def get_upload(self, bucket: Bucket, upload_id: str, key: str) -> Upload:
        with self.db.read() as conn:
            row = conn.execute(
                select(uploads).where(
                    uploads.c.id == upload_id,
                    uploads.c.bucket_id == bucket.id,
                    uploads.c.key == key,
                )
            ).first()
        if row is None:
            raise NoSuchUpload(f"upload {upload_id!r} does not exist (completed or aborted?)")
        return _upload(row)

    def list_uploads(self, bucket: Bucket, prefix: str, max_uploads: int) -> list[Upload]:
        upper = _after_prefix(prefix)
        where = [uploads.c.bucket_id == bucket.id, uploads.c.key >= prefix]
        if upper is not None:
            where.append(uploads.c.key < upper)
        with self.db.read() as conn:
            rows = conn.execute(
                select(uploads)
                .where(and_(*where))
                .order_by(uploads.c.key, uploads.c.created_at)
                .limit(max_uploads)
            ).all()
        return [_upload(r) for r in rows]

    def put_part(self, upload: Upload, part: Part, now: datetime) -> bool:
        """Record the part (a part sent again replaces the earlier one: True then)."""
        with self.db.write() as conn:
            # locked: two writes of one part number must not both insert it
            exists = conn.execute(
                select(uploads.c.id).where(uploads.c.id == upload.id).with_for_update()
            ).first()
            if exists is None:
                raise NoSuchUpload(f"upload {upload.id!r} does not exist (completed or aborted?)")
            old = conn.execute(
                select(upload_parts.c.blob_id).where(
                    upload_parts.c.upload_id == upload.id,
                    upload_parts.c.part_number == part.number,
                )
            ).scalar()
            values = {
                "blob_id": part.blob_id,
                "size": part.size,
                "etag": part.etag,
                "last_modified": part.last_modified,
            }
            if old is None:
                conn.execute(
                    insert(upload_parts).values(
                        upload_id=upload.id, part_number=part.number, **values
                    )
                )
            else:
                conn.execute(
                    update(upload_parts)
                    .where(
                        upload_parts.c.upload_id == upload.id,
                        upload_parts.c.part_number == part.number,
                    )
                    .values(**values)
                )
                self._doom(conn, [old], now)
            self._keep(conn, part.blob_id)
        return old is not None

    def parts(self, upload: Upload) -> list[Part]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(upload_parts)
                .where(upload_parts.c.upload_id == upload.id)
                .order_by(upload_parts.c.part_number)
            ).all()
        return [Part(r.part_number, r.blob_id, r.size, r.etag, r.last_modified) for r in rows]

    def end_upload(
        self,
        user_id: int,
        bucket: Bucket,
        upload: Upload,
        result: StoredObject | None,
        now: datetime,
        max_bytes: int,
    ) -> None:
        """Complete (``result`` is the assembled object) or abort the upload; its parts' blobs
        are doomed either way."""
        if result is not None:
            self.put_object(user_id, bucket, result, now, max_bytes)
        with self.db.write() as conn:
            blobs = conn.execute(
                select(upload_parts.c.blob_id).where(upload_parts.c.upload_id == upload.id)
            ).scalars()
            self._doom(conn, blobs, now)
            conn.execute(delete(upload_parts).where(upload_parts.c.upload_id == upload.id))
            conn.execute(delete(uploads).where(uploads.c.id == upload.id))

    # -- blob bookkeeping ----------------------------------------------------------------

    def doom(self, blob_ids: Iterable[str], due: datetime) -> None:
        """Before a blob is written: it is garbage (from ``due`` on) until a commit takes it."""
        with self.db.write() as conn:
            self._doom(conn, blob_ids, due)

    @staticmethod
    def _doom(conn: Connection, blob_ids: Iterable[str], due: datetime) -> None:
        rows = [{"blob_id": b, "since": due} for b in blob_ids]
        if rows:
            conn.execute(_DOOM, rows)

    @staticmethod
    def _keep(conn: Connection, blob_id: str) -> None:
        """The blob is referenced now: no longer garbage."""
        conn.execute(_KEEP, {"blob_id": blob_id})

    def due(self, now: datetime, limit: int = 1000) -> list[str]:
        """Doomed blobs whose time has come."""
        with self.db.read() as conn:
            return list(conn.execute(_DUE, {"now": now, "limit": limit}).scalars())

    def forget(self, blob_ids: Sequence[str]) -> None:
        if blob_ids:
            with self.db.write() as conn:
                conn.execute(_FORGET, {"blob_ids": list(blob_ids)})
