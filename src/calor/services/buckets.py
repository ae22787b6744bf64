"""Object storage use cases: buckets, objects and multipart uploads for one user, over the
metadata store and a blob store. The S3 gateway and the task runner both go through here."""

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from calor.domain.errors import BadRequest
from calor.domain.storage import (
    MAX_PARTS,
    MIN_PART_BYTES,
    Bucket,
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    InvalidRange,
    Listing,
    NoSuchKey,
    Part,
    StorageUsage,
    StoredObject,
    Upload,
    check_bucket_name,
    check_key,
    multipart_etag,
)
from calor.settings import Limits
from calor.storage.blobs import BlobStore
from calor.store.buckets import BucketStore

# a blob being written is garbage after this long unless its object was committed
PENDING_GRACE = timedelta(hours=6)


class BadDigest(BadRequest):
    s3_code = "BadDigest"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class ObjectRead:
    obj: StoredObject
    start: int
    end: int  # inclusive
    body: Iterator[bytes]

    @property
    def length(self) -> int:
        return self.end - self.start + 1 if self.obj.size else 0


@dataclass(frozen=True)
class DeleteResult:
    key: str
    error: BadRequest | None = None


class BucketService:
    def __init__(
        self,
        store: BucketStore,
        blobs: BlobStore,
        limits: Limits,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.limits = limits
        self.clock = clock

    # -- buckets -------------------------------------------------------------------------

    def create_bucket(self, user_id: int, name: str) -> bool:
        check_bucket_name(name)
        return self.store.create(user_id, name, self.clock(), self.limits.max_buckets_per_user)

    def bucket(self, user_id: int, name: str) -> Bucket:
        return self.store.get(user_id, name)

    def buckets(self, user_id: int) -> list[Bucket]:
        return self.store.all(user_id)

    def delete_bucket(self, user_id: int, name: str) -> None:
        self.store.delete(user_id, name, self.clock())
        self.collect()

    def usage(self, user_id: int) -> StorageUsage:
        return self.store.usage(user_id)

    # -- objects -------------------------------------------------------------------------

    def _new_blob(self, user_id: int) -> str:
        blob_id = f"u{user_id}/{uuid.uuid4().hex}"
        self.store.doom([blob_id], self.clock() + PENDING_GRACE)
        return blob_id

    def _bucket_and_new_blob(self, user_id: int, bucket_name: str) -> tuple[Bucket, str]:
        """The bucket an object is written to, and the new blob for it (doomed until its
        object is committed), in one transaction."""
        blob_id = f"u{user_id}/{uuid.uuid4().hex}"
        due = self.clock() + PENDING_GRACE
        return self.store.get_dooming(user_id, bucket_name, [blob_id], due), blob_id

    def put_object(
        self,
        user_id: int,
        bucket_name: str,
        key: str,
        chunks: Iterable[bytes],
        content_type: str = "binary/octet-stream",
        user_metadata: dict[str, str] | None = None,
        content_md5: str | None = None,
    ) -> StoredObject:
        check_key(key)
        bucket, blob_id = self._bucket_and_new_blob(user_id, bucket_name)
        info = self.blobs.put(blob_id, chunks)
        if content_md5 is not None and content_md5 != info.md5_hex:
            self.blobs.delete(blob_id)
            raise BadDigest("the Content-MD5 you sent does not match the content received")
        obj = StoredObject(
            key=key,
            blob_id=blob_id,
            size=info.size,
            etag=info.md5_hex,
            content_type=content_type,
            last_modified=self.clock(),
            user_metadata=user_metadata or {},
        )
        if self.store.put_object(
            user_id, bucket, obj, self.clock(), self.limits.max_storage_bytes_per_user
        ):
            self.collect()  # the replaced object's bytes
        return obj

    def head_object(self, user_id: int, bucket_name: str, key: str) -> StoredObject:
        obj = self.store.find_object(user_id, bucket_name, key)  # one read: bucket and object
        if obj is None:
            raise NoSuchKey(f"object {key!r} does not exist in bucket {bucket_name!r}")
        return obj

    def get_object(
        self,
        user_id: int,
        bucket_name: str,
        key: str,
        byte_range: tuple[int | None, int | None] | None = None,
    ) -> ObjectRead:
        """The object, or the bytes of ``byte_range`` (first, last) as in an HTTP Range:
        (None, n) is the last n bytes; a last beyond the end is clamped."""
        obj = self.head_object(user_id, bucket_name, key)
        start, end = 0, max(obj.size - 1, 0)
        if byte_range is not None:
            first, last = byte_range
            if first is None:
                if not last:
                    raise InvalidRange("the requested range is empty")
                start = max(obj.size - last, 0)
            else:
                if first >= obj.size:
                    raise InvalidRange(
                        f"the range starts at {first}, beyond the object's {obj.size} bytes"
                    )
                start = first
                end = min(last, obj.size - 1) if last is not None else obj.size - 1
        body = self.blobs.get(obj.blob_id, start, end) if obj.size else iter(())
        return ObjectRead(obj, start, end, body)

    def list_objects(
        self,
        user_id: int,
        bucket_name: str,
        prefix: str = "",
        delimiter: str = "",
        after: str = "",
        max_keys: int = 1000,
    ) -> Listing:
        bucket = self.store.get(user_id, bucket_name)
        return self.store.list_objects(
            bucket, prefix, delimiter, after, max(0, min(max_keys, 1000))
        )

    def copy_object(
        self,
        user_id: int,
        source_bucket: str,
        source_key: str,
        bucket_name: str,
        key: str,
        content_type: str | None = None,
        user_metadata: dict[str, str] | None = None,
    ) -> StoredObject:
        """A server-side copy; metadata kept unless new metadata is given (REPLACE)."""
        check_key(key)
        source = self.head_object(user_id, source_bucket, source_key)
        bucket, blob_id = self._bucket_and_new_blob(user_id, bucket_name)
        # a copy is one part, whatever the source was (as in S3): the ETag of a single-part
        # source is already the MD5 of the content, a multipart one's is not
        single_part = "-" not in source.etag
        info = self.blobs.concat(blob_id, [source.blob_id], md5=not single_part)
        obj = StoredObject(
            key=key,
            blob_id=blob_id,
            size=info.size,
            etag=source.etag if single_part else info.md5_hex,
            content_type=content_type or source.content_type,
            last_modified=self.clock(),
            user_metadata=source.user_metadata if user_metadata is None else user_metadata,
        )
        if self.store.put_object(
            user_id, bucket, obj, self.clock(), self.limits.max_storage_bytes_per_user
        ):
            self.collect()  # the replaced object's bytes
        return obj

    def delete_objects(
        self, user_id: int, bucket_name: str, keys: Sequence[str]
    ) -> list[DeleteResult]:
        """Delete keys; a missing key counts as deleted (S3), a malformed one is an error."""
        bucket = self.store.get(user_id, bucket_name)
        results: list[DeleteResult] = []
        valid: list[str] = []
        for key in keys:
            try:
                valid.append(check_key(key))
                results.append(DeleteResult(key))
            except BadRequest as exc:
                results.append(DeleteResult(key, exc))
        self.store.delete_objects(bucket, valid, self.clock())
        self.collect()
        return results

    # -- multipart uploads ---------------------------------------------------------------

    def create_upload(
        self,
        user_id: int,
        bucket_name: str,
        key: str,
        content_type: str = "binary/octet-stream",
        user_metadata: dict[str, str] | None = None,
    ) -> Upload:
        check_key(key)
        bucket = self.store.get(user_id, bucket_name)
        upload = Upload(
            id=uuid.uuid4().hex,
            bucket_id=bucket.id,
            key=key,
            content_type=content_type,
            user_metadata=user_metadata or {},
            created_at=self.clock(),
        )
        self.store.create_upload(upload)
        return upload

    def _upload(self, user_id: int, bucket_name: str, key: str, upload_id: str) -> Upload:
        bucket = self.store.get(user_id, bucket_name)
        return self.store.get_upload(bucket, upload_id, key)

    def upload_part(
        self,
        user_id: int,
        bucket_name: str,
        key: str,
        upload_id: str,
        number: int,
        chunks: Iterable[bytes],
        content_md5: str | None = None,
    ) -> Part:
        if not 1 <= number <= MAX_PARTS:
            raise BadRequest(f"part number must be between 1 and {MAX_PARTS}, not {number}")
        upload = self._upload(user_id, bucket_name, key, upload_id)
        blob_id = self._new_blob(user_id)
        info = self.blobs.put(blob_id, chunks)
        if content_md5 is not None and content_md5 != info.md5_hex:
            self.blobs.delete(blob_id)
            raise BadDigest("the Content-MD5 you sent does not match the part received")
        part = Part(number, blob_id, info.size, info.md5_hex, self.clock())
        if self.store.put_part(upload, part, self.clock()):
            self.collect()  # the replaced part's bytes
        return part

    def parts(self, user_id: int, bucket_name: str, key: str, upload_id: str) -> list[Part]:
        return self.store.parts(self._upload(user_id, bucket_name, key, upload_id))

    def uploads(self, user_id: int, bucket_name: str, prefix: str = "") -> list[Upload]:
        return self.store.list_uploads(self.store.get(user_id, bucket_name), prefix, 1000)

    def complete_upload(
        self,
        user_id: int,
        bucket_name: str,
        key: str,
        upload_id: str,
        wanted: Sequence[tuple[int, str]],
    ) -> StoredObject:
        """Assemble the listed parts (number, ETag), in ascending order, into the object."""
        bucket = self.store.get(user_id, bucket_name)
        upload = self.store.get_upload(bucket, upload_id, key)
        if not wanted:
            raise BadRequest("a multipart upload needs at least one part")
        numbers = [n for n, _ in wanted]
        if numbers != sorted(set(numbers)):
            raise InvalidPartOrder("the parts must be listed in ascending order, once each")
        have = {p.number: p for p in self.store.parts(upload)}
        chosen: list[Part] = []
        for number, etag in wanted:
            part = have.get(number)
            if part is None or etag.strip('"').lower() != part.etag:
                raise InvalidPart(f"part {number} was not uploaded with ETag {etag}")
            chosen.append(part)
        for part in chosen[:-1]:
            if part.size < MIN_PART_BYTES:
                raise EntityTooSmall(
                    f"part {part.number} is {part.size} bytes; every part but the last must be "
                    f"at least {MIN_PART_BYTES}"
                )
        blob_id = self._new_blob(user_id)
        # the ETag comes from the parts' ETags: no MD5 of the whole object
        info = self.blobs.concat(blob_id, [p.blob_id for p in chosen], md5=False)
        obj = StoredObject(
            key=key,
            blob_id=blob_id,
            size=info.size,
            etag=multipart_etag([p.etag for p in chosen]),
            content_type=upload.content_type,
            last_modified=self.clock(),
            user_metadata=upload.user_metadata,
        )
        self.store.end_upload(
            user_id, bucket, upload, obj, self.clock(), self.limits.max_storage_bytes_per_user
        )
        self.collect()
        return obj

    def abort_upload(self, user_id: int, bucket_name: str, key: str, upload_id: str) -> None:
        bucket = self.store.get(user_id, bucket_name)
        upload = self.store.get_upload(bucket, upload_id, key)
        self.store.end_upload(
            user_id, bucket, upload, None, self.clock(), self.limits.max_storage_bytes_per_user
        )
        self.collect()

    # -- garbage -------------------------------------------------------------------------

    def recover(self) -> None:
        """At start: drop what writes a crash interrupted. A temporary write older than the
        grace given to new blobs is not in flight any more."""
        self.blobs.sweep(PENDING_GRACE.total_seconds())
        self.collect()

    def collect(self) -> int:
        """Delete the bytes of blobs no object needs any more; returns how many."""
        total = 0
        while due := self.store.due(self.clock()):
            for blob_id in due:
                self.blobs.delete(blob_id)
            self.store.forget(due)
            total += len(due)
        return total
