"""Blobs as objects in one external S3 bucket (AWS, MinIO, Ceph…), under a key prefix.

The blob ``u12/3f2a…`` is the object ``<prefix>u12/3f2a…``. S3 makes every write atomic: a
PutObject or a completed multipart upload appears whole or not at all. What an interrupted
write leaves is an unfinished multipart upload (invisible, but billed), which ``sweep`` aborts.

``client`` is a boto3 S3 client made by the caller (credentials, endpoint, retries and checksum
settings are its business). It is thread-safe, and so is this class.
"""

import base64
import contextlib
import hashlib
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from botocore.exceptions import ClientError

from calor.storage.blobs import (
    CHUNK_SIZE,
    BlobInfo,
    BlobNotFound,
    check_blob_id,
    check_range,
)

PART_SIZE = 8 << 20
"""A put of more than this is a multipart upload of parts of this size."""
MIN_PART_SIZE = 5 << 20  # S3: every part of a multipart upload but the last
MAX_COPY_PART_SIZE = 5 << 30  # S3: UploadPartCopy and CopyObject
MAX_PARTS = 10_000  # S3: parts of one multipart upload

_MISSING = {"404", "NoSuchKey", "NotFound"}


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _stream(body: Any) -> Iterator[bytes]:
    """Yields b"" once first (consumed by ``get``, so the body closes with the generator even
    if the caller never iterates), then the body in chunks of at most 1 MiB."""
    try:
        yield b""
        for chunk in body.iter_chunks(CHUNK_SIZE):
            if chunk:
                yield chunk
    finally:
        body.close()


def _take(chunks: deque[bytes], size: int) -> bytes:
    """The first ``size`` bytes of ``chunks`` (which holds more), taken off it."""
    taken: list[bytes] = []
    need = size
    while need:
        chunk = chunks[0]
        if len(chunk) <= need:
            taken.append(chunks.popleft())
            need -= len(chunk)
        else:
            taken.append(chunk[:need])
            chunks[0] = chunk[need:]
            need = 0
    return b"".join(taken)


def _copy_pieces(size: int) -> list[tuple[int, int]]:
    """[first, last] byte ranges that cut ``size`` bytes into even pieces UploadPartCopy takes
    (at most 5 GiB each; each at least 2.5 GiB when there are several)."""
    count = -(-size // MAX_COPY_PART_SIZE)
    step = -(-size // count)
    return [(first, min(first + step, size) - 1) for first in range(0, size, step)]


class S3BlobStore:
    """Blobs as objects ``prefix + blob_id`` of ``bucket``. A non-empty prefix gets a trailing
    ``/`` if it has none (``s3://bucket/calor`` keeps blobs under ``calor/``)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        if not bucket:
            raise ValueError("S3BlobStore needs a bucket")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def key(self, blob_id: str) -> str:
        """The object key of ``blob_id``; ValueError if the id is invalid."""
        return self.prefix + check_blob_id(blob_id)

    # -- writing -------------------------------------------------------------------------

    def put(self, blob_id: str, chunks: Iterable[bytes]) -> BlobInfo:
        """One PutObject for at most 8 MiB; past that a multipart upload of 8 MiB parts, sent
        as they fill, so at most about one part is held in memory."""
        key = self.key(blob_id)
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0
        pending: deque[bytes] = deque()  # the chunks not sent yet: at most a part and a chunk
        pending_size = 0
        upload_id: str | None = None
        etags: list[str] = []
        try:
            for chunk in chunks:
                if type(chunk) is not bytes:  # kept a while: a buffer the caller reuses won't do
                    chunk = bytes(chunk)
                md5.update(chunk)
                size += len(chunk)
                pending.append(chunk)
                pending_size += len(chunk)
                while pending_size > PART_SIZE:  # so the last part is never empty
                    if upload_id is None:
                        upload_id = self._start_upload(key)
                    body = _take(pending, PART_SIZE)
                    pending_size -= PART_SIZE
                    etags.append(self._upload_part(key, upload_id, len(etags) + 1, body))
            body = b"".join(pending)
            pending.clear()
            if upload_id is None:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentMD5=base64.b64encode(md5.digest()).decode(),
                )
            else:
                etags.append(self._upload_part(key, upload_id, len(etags) + 1, body))
                self._complete_upload(key, upload_id, etags)
        except BaseException:
            if upload_id is not None:
                self._abort_upload(key, upload_id)
            raise
        return BlobInfo(size, md5.hexdigest())

    def concat(self, blob_id: str, parts: Sequence[str], md5: bool = True) -> BlobInfo:
        """Server-side (CopyObject for one part, UploadPartCopy for several) when S3 allows it,
        that is when every part but the last has at least 5 MiB; else streamed through here
        like a put. With ``md5``, every part is read once more to compute the MD5 of the
        whole; without, a server-side concat moves no bytes through here."""
        key = self.key(blob_id)
        sources = [(part, self.key(part)) for part in parts]
        heads = [self._head(part, source) for part, source in sources]  # all there, first
        sizes = [int(h["ContentLength"]) for h in heads]
        etags = [str(h["ETag"]) for h in heads]
        # empty parts add nothing; S3 rejects copying them as parts
        pieces = [(s, z, e) for (_, s), z, e in zip(sources, sizes, etags, strict=True) if z]
        server_side = (
            bool(pieces)
            and all(z >= MIN_PART_SIZE for _, z, _ in pieces[:-1])
            and sum(len(_copy_pieces(z)) for _, z, _ in pieces) <= MAX_PARTS
        )
        if not server_side:
            info = self.put(blob_id, self._read_parts(pieces))
            return info if md5 else BlobInfo(info.size, "")
        size = sum(z for _, z, _ in pieces)
        info = BlobInfo(size, "")
        if md5:
            # hash first: a part that is missing or has changed stops us before anything is
            # made (without it, the heads above and CopySourceIfMatch below do)
            digest = hashlib.md5(usedforsecurity=False)
            for chunk in self._read_parts(pieces):
                digest.update(chunk)
            info = BlobInfo(size, digest.hexdigest())
        if len(pieces) == 1 and size <= MAX_COPY_PART_SIZE:
            source, _, etag = pieces[0]
            try:
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=key,
                    CopySource={"Bucket": self.bucket, "Key": source},
                    CopySourceIfMatch=etag,
                )
            except ClientError as e:
                self._raise_changed(e, parts)
            return info
        upload_id = self._start_upload(key)
        try:
            part_etags: list[str] = []
            for source, z, etag in pieces:
                for first, last in _copy_pieces(z):
                    try:
                        result = self.client.upload_part_copy(
                            Bucket=self.bucket,
                            Key=key,
                            UploadId=upload_id,
                            PartNumber=len(part_etags) + 1,
                            CopySource={"Bucket": self.bucket, "Key": source},
                            CopySourceIfMatch=etag,
                            CopySourceRange=f"bytes={first}-{last}",
                        )
                    except ClientError as e:
                        self._raise_changed(e, parts)
                    part_etags.append(str(result["CopyPartResult"]["ETag"]))
            self._complete_upload(key, upload_id, part_etags)
        except BaseException:
            self._abort_upload(key, upload_id)
            raise
        return info

    def _read_parts(self, pieces: Sequence[tuple[str, int, str]]) -> Iterator[bytes]:
        for source, _, etag in pieces:
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=source, IfMatch=etag)
            except ClientError as e:
                if _code(e) in _MISSING:
                    raise BlobNotFound(source.removeprefix(self.prefix)) from None
                self._raise_changed(e, [source])
            yield from _stream(response["Body"])

    def _raise_changed(self, error: ClientError, parts: Sequence[str]) -> NoReturn:
        if _code(error) in ("PreconditionFailed", "412") or _status(error) == 412:
            raise RuntimeError(f"a part changed while being concatenated: {parts}") from error
        if _code(error) in _MISSING:
            raise BlobNotFound(", ".join(parts)) from error
        raise error

    def _start_upload(self, key: str) -> str:
        response = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)
        return str(response["UploadId"])

    def _upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        response = self.client.upload_part(
            Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return str(response["ETag"])

    def _complete_upload(self, key: str, upload_id: str, etags: Sequence[str]) -> None:
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]
            },
        )

    def _abort_upload(self, key: str, upload_id: str) -> None:
        """Best effort, while another error is on its way: ``sweep`` gets what this misses."""
        with contextlib.suppress(Exception):  # the error being raised matters more
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    # -- reading -------------------------------------------------------------------------

    def get(self, blob_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        check_range(start, end)
        key = self.key(blob_id)
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start or end is not None:
            request["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            response = self.client.get_object(**request)
        except ClientError as e:
            if _code(e) in _MISSING:
                raise BlobNotFound(blob_id) from None
            if _code(e) == "InvalidRange" or _status(e) == 416:  # starts past the end
                return iter(())
            raise
        chunks = _stream(response["Body"])
        next(chunks)  # now inside its try: closing or dropping it closes the body
        return chunks

    def _head(self, blob_id: str, key: str) -> dict[str, Any]:
        try:
            response: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if _code(e) in _MISSING or _status(e) == 404:
                raise BlobNotFound(blob_id) from None
            raise
        return response

    def size(self, blob_id: str) -> int:
        return int(self._head(blob_id, self.key(blob_id))["ContentLength"])

    # -- removing ------------------------------------------------------------------------

    def delete(self, blob_id: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(blob_id))

    def sweep(self, older_than_seconds: float) -> int:
        """Abort the multipart uploads under the prefix started longer ago than that."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        aborted = 0
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Initiated"] > cutoff:
                    continue
                try:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                except ClientError as e:
                    if _code(e) == "NoSuchUpload":  # completed or aborted meanwhile
                        continue
                    raise
                aborted += 1
        return aborted
