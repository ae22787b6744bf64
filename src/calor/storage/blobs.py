"""Blob stores: opaque bytes kept by id, under the object store's metadata.

The S3 gateway keeps buckets, keys, sizes and ETags in calor's database; the bytes of each
object (and of each part of a multipart upload) are one *blob* here, named by an id the caller
makes (``u12/3f2a…``: a uuid4 hex, possibly after a ``/``-separated prefix). A blob is written
once, atomically, and then only read, replaced whole or deleted.

Every backend implements :class:`BlobStore`, and ``tests/storage/test_blobs.py`` holds the one
contract suite that runs over all of them.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

CHUNK_SIZE = 1 << 20
"""``get`` yields chunks of at most this many bytes."""

MAX_BLOB_ID_BYTES = 255
"""The longest blob id, in UTF-8 bytes."""


@dataclass(frozen=True)
class BlobInfo:
    size: int
    md5_hex: str  # MD5 of the content (the S3 ETag of a single-part object); "" if not asked


class BlobNotFound(Exception):
    """No blob has that id."""


class BlobStore(Protocol):
    def put(self, blob_id: str, chunks: Iterable[bytes]) -> BlobInfo:
        """Store the bytes under blob_id, atomically: until put returns, readers never see the
        blob, and a crash (even SIGKILL) mid-write never leaves a partial blob visible under
        blob_id. MD5 and size computed while streaming (never hold the whole blob in memory).
        Overwriting an existing blob_id replaces it atomically. If ``chunks`` raises, nothing
        is stored and the exception propagates."""
        ...

    def get(self, blob_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes [start, end] inclusive (end None = to the end), streamed in chunks of at
        most 1 MiB. An end beyond the blob is clamped to its last byte, and a start beyond it
        gives no bytes. Raises BlobNotFound eagerly, before the first chunk is asked for, and
        ValueError for a negative start or an end before start. A reader keeps seeing the blob
        it opened even if the blob is replaced or deleted meanwhile. Close the iterator (or
        drop it) to stop early."""
        ...

    def size(self, blob_id: str) -> int:
        """The blob's size in bytes; raises BlobNotFound."""
        ...

    def delete(self, blob_id: str) -> None:
        """Remove the blob; idempotent: a missing blob is not an error."""
        ...

    def concat(self, blob_id: str, parts: Sequence[str], md5: bool = True) -> BlobInfo:
        """A new blob made of the given blobs in order (multipart upload completion), atomic
        like put; the parts stay (the caller deletes them). With ``md5`` the info has the MD5
        of the whole content; without, its md5_hex is "" and no backend reads the content just
        to hash it (a multipart ETag comes from the parts' ETags, a copy's from its source).
        Raises BlobNotFound (before anything is written) if a part is missing. blob_id may be
        one of the parts. No parts make an empty blob."""
        ...

    def sweep(self, older_than_seconds: float) -> int:
        """Remove temporary leftovers of interrupted writes older than that; returns how many.
        A write still in progress has to be idle for that long before its leftovers go, so
        pick a value well above the longest stall of a live upload (an hour, say)."""
        ...


def check_blob_id(blob_id: str) -> str:
    """``blob_id`` if it is a valid id, else ValueError.

    An id is one or more non-empty ``/``-separated segments, none of them ``.`` or ``..``, of
    at most 255 UTF-8 bytes (so valid Unicode), with no backslash and no control character
    (NUL included).
    """
    if not isinstance(blob_id, str) or not blob_id:
        raise ValueError(f"a blob id must be a non-empty string, not {blob_id!r}")
    try:
        encoded = blob_id.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"a blob id is valid Unicode, not {blob_id!r}") from None
    if len(encoded) > MAX_BLOB_ID_BYTES:
        raise ValueError(f"a blob id is at most {MAX_BLOB_ID_BYTES} bytes: {blob_id[:40]!r}…")
    if "\\" in blob_id or any(ord(c) < 0x20 or ord(c) == 0x7F for c in blob_id):
        raise ValueError(f"a blob id has no backslash nor control character: {blob_id!r}")
    if blob_id.startswith("/"):
        raise ValueError(f"a blob id is relative, not {blob_id!r}")
    for segment in blob_id.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"a blob id has no empty, '.' or '..' segment: {blob_id!r}")
    return blob_id


def check_range(start: int, end: int | None) -> None:
    if start < 0:
        raise ValueError(f"a range starts at 0 or after, not {start}")
    if end is not None and end < start:
        raise ValueError(f"a range ends at or after its start ({start}), not {end}")
