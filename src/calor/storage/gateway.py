"""The S3 gateway: path-style S3 over HTTP, every request signed with SigV4 (the user's e-mail is
the access key, their API token the secret), served on its own port so buckets sit at the root.

Only the protocol lives here: which operation a request is, its authentication and body
decoding, and the XML answers. What an operation does is services/buckets.py.
"""

import hashlib
import logging
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from calor.access_log import REQUEST_ID, ROUTE, USER_ID, AccessLog
from calor.domain.errors import BadRequest, CalorError, Forbidden, PayloadTooLarge
from calor.domain.storage import InvalidRange, StoredObject
from calor.domain.users import User
from calor.services.buckets import BucketService, ObjectRead
from calor.services.users import UserService
from calor.storage import s3xml
from calor.storage.checksums import BodyChecksum
from calor.storage.s3xml import MalformedXML, quoted_etag
from calor.storage.sigv4 import (
    ChunkedPayload,
    IncomingRequest,
    SigV4Error,
    Verified,
    verify,
)

log = logging.getLogger("calor.s3")

MAX_XML_BYTES = 2 * 1024 * 1024  # DeleteObjects of 1000 long keys fits
MAX_SINGLE_PUT = 5 * 1024**3  # S3's limit for one PutObject / UploadPart
BATCH = 1024 * 1024

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class S3Failure(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


# status and S3 code of calor's errors that have no s3_code of their own
_STATUS: dict[type[CalorError], tuple[int, str]] = {
    BadRequest: (400, "InvalidArgument"),
    Forbidden: (403, "AccessDenied"),
    PayloadTooLarge: (400, "EntityTooLarge"),
    InvalidRange: (416, "InvalidRange"),
}


def _failure(exc: CalorError) -> S3Failure:
    code = getattr(exc, "s3_code", None)
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            status, default = _STATUS[cls]
            return S3Failure(code or default, exc.message, status)
    status = {"NoSuchBucket": 404, "NoSuchKey": 404, "NoSuchUpload": 404}.get(code or "", 0)
    if status:
        return S3Failure(code or "", exc.message, status)
    if code == "BucketNotEmpty":
        return S3Failure(code, exc.message, 409)
    return S3Failure(code or "InternalError", exc.message, 500)


@dataclass
class Call:
    """One request, authenticated."""

    request: Request
    user: User
    verified: Verified
    bucket: str
    key: str
    query: dict[str, str]

    @property
    def resource(self) -> str:
        return f"/{self.bucket}/{self.key}" if self.key else f"/{self.bucket}"


def _xml(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/xml", headers=headers)


def _user_metadata(request: Request) -> dict[str, str]:
    return {
        k[len("x-amz-meta-") :]: v
        for k, v in request.headers.items()
        if k.lower().startswith("x-amz-meta-")
    }


def _object_headers(obj: StoredObject) -> dict[str, str]:
    headers = {
        "ETag": quoted_etag(obj.etag),
        "Last-Modified": s3xml.http_date(obj.last_modified),
        "Accept-Ranges": "bytes",
        "Content-Type": obj.content_type,
    }
    headers.update({f"x-amz-meta-{k}": v for k, v in obj.user_metadata.items()})
    return headers


def _route_shape(path: str) -> str:
    segments = path.lstrip("/").split("/", 1)
    if not segments[0]:
        return "/"
    return "/{bucket}" if len(segments) == 1 or not segments[1] else "/{bucket}/{key}"


class Gateway:
    def __init__(self, buckets: BucketService, users: UserService) -> None:
        self.buckets = buckets
        self.users = users

    # -- entry ---------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        request_id = request.scope.get(REQUEST_ID) or uuid.uuid4().hex[:16].upper()
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        # the access log names the shape of the path, never a bucket or a key
        request.scope[ROUTE] = _route_shape(path)
        try:
            call = await self._authenticate(request, path)
            request.scope[USER_ID] = call.user.id
            response = await self._dispatch(call)
        except S3Failure as exc:
            response = self._error(request, exc, path, request_id)
        except CalorError as exc:
            response = self._error(request, _failure(exc), path, request_id)
        except MalformedXML as exc:
            response = self._error(
                request, S3Failure("MalformedXML", str(exc), 400), path, request_id
            )
        except SigV4Error as exc:
            response = self._error(
                request, S3Failure(exc.code, exc.message, exc.status), path, request_id
            )
        response.headers["x-amz-request-id"] = request_id
        return response

    @staticmethod
    def _error(request: Request, exc: S3Failure, path: str, request_id: str) -> Response:
        if exc.status >= 500:
            log.error("S3 %s %s failed: %s", request.method, path, exc.message)
        body = (
            b""
            if request.method == "HEAD"
            else s3xml.error(exc.code, exc.message, path, request_id)
        )
        return _xml(body, exc.status)

    async def _authenticate(self, request: Request, path: str) -> Call:
        query_pairs = parse_qsl(request.url.query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in request.headers.items()}
        incoming = IncomingRequest(request.method, path, query_pairs, headers)
        found: dict[str, User] = {}

        def secret_for(access_key: str) -> str | None:
            got = self.users.storage_secret(access_key)
            if got is None:
                return None
            found["user"] = got[0]
            return got[1]

        verified = await anyio.to_thread.run_sync(verify, incoming, secret_for, datetime.now(UTC))
        segments = path.lstrip("/").split("/", 1)
        bucket = unquote(segments[0])
        key = unquote(segments[1]) if len(segments) > 1 else ""
        return Call(request, found["user"], verified, bucket, key, dict(query_pairs))

    async def _dispatch(self, c: Call) -> Response:
        method, q = c.request.method, c.query
        if not c.bucket:
            if method == "GET":
                return await self._list_buckets(c)
            raise S3Failure("MethodNotAllowed", "only GET is allowed on the service", 405)
        if not c.key:
            handler = {
                "PUT": self._create_bucket,
                "HEAD": self._head_bucket,
                "DELETE": self._delete_bucket,
                "POST": self._post_bucket,
                "GET": self._get_bucket,
            }.get(method)
        elif "uploadId" in q:
            handler = {
                "PUT": self._upload_part,
                "GET": self._list_parts,
                "POST": self._complete_upload,
                "DELETE": self._abort_upload,
            }.get(method)
        elif "uploads" in q and method == "POST":
            handler = self._create_upload
        else:
            handler = {
                "PUT": self._put_object,
                "GET": self._get_object,
                "HEAD": self._head_object,
                "DELETE": self._delete_object,
            }.get(method)
        if handler is None:
            raise S3Failure("MethodNotAllowed", f"{method} is not allowed on {c.resource}", 405)
        return await handler(c)

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    # -- service and buckets -------------------------------------------------------------

    async def _list_buckets(self, c: Call) -> Response:
        items = await self._run(self.buckets.buckets, c.user.id)
        return _xml(s3xml.list_buckets(items, c.user.email))

    async def _create_bucket(self, c: Call) -> Response:
        await c.request.body()  # a CreateBucketConfiguration, if any: any region is fine
        # 200 also when the caller already owns it: the SDK does not catch
        # BucketAlreadyOwnedByYou (contract §9.2)
        await self._run(self.buckets.create_bucket, c.user.id, c.bucket)
        return Response(status_code=200, headers={"Location": f"/{c.bucket}"})

    async def _head_bucket(self, c: Call) -> Response:
        await self._run(self.buckets.bucket, c.user.id, c.bucket)
        return Response(status_code=200, headers={"x-amz-bucket-region": c.verified.region})

    async def _delete_bucket(self, c: Call) -> Response:
        await self._run(self.buckets.delete_bucket, c.user.id, c.bucket)
        return Response(status_code=204)

    async def _get_bucket(self, c: Call) -> Response:
        q = c.query
        await self._run(self.buckets.bucket, c.user.id, c.bucket)  # NoSuchBucket first
        if "versioning" in q:
            return _xml(s3xml.versioning())
        if "location" in q:
            return _xml(s3xml.location())
        if "uploads" in q:
            items = await self._run(self.buckets.uploads, c.user.id, c.bucket, q.get("prefix", ""))
            return _xml(s3xml.list_uploads(c.bucket, q.get("prefix", ""), items))
        if any(k in q for k in ("acl", "policy", "cors", "lifecycle", "tagging", "website")):
            raise S3Failure("NotImplemented", "this bucket sub-resource is not supported", 501)
        url = q.get("encoding-type", "") == "url"
        if q.get("encoding-type", "url") != "url":
            raise S3Failure("InvalidArgument", "encoding-type must be url", 400)
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        max_keys = self._max_keys(q.get("max-keys"))
        if "versions" in q:
            marker = q.get("key-marker", "")
            listing = await self._run(
                self.buckets.list_objects, c.user.id, c.bucket, prefix, delimiter, marker, max_keys
            )
            return _xml(
                s3xml.list_versions(
                    c.bucket, listing, prefix, delimiter, marker, max_keys, url, c.user.email
                )
            )
        if q.get("list-type") == "2":
            token = q.get("continuation-token", "")
            start_after = q.get("start-after", "")
            after = s3xml.decode_token(token) if token else start_after
            listing = await self._run(
                self.buckets.list_objects, c.user.id, c.bucket, prefix, delimiter, after, max_keys
            )
            owner = c.user.email if q.get("fetch-owner") == "true" else None
            return _xml(
                s3xml.list_objects_v2(
                    c.bucket, listing, prefix, delimiter, start_after, token, max_keys, url, owner
                )
            )
        marker = q.get("marker", "")
        listing = await self._run(
            self.buckets.list_objects, c.user.id, c.bucket, prefix, delimiter, marker, max_keys
        )
        return _xml(
            s3xml.list_objects_v1(
                c.bucket, listing, prefix, delimiter, marker, max_keys, url, c.user.email
            )
        )

    @staticmethod
    def _max_keys(raw: str | None) -> int:
        if raw is None or raw == "":
            return 1000
        try:
            value = int(raw)
        except ValueError:
            raise S3Failure("InvalidArgument", "max-keys must be a number", 400) from None
        if value < 0:
            raise S3Failure("InvalidArgument", "max-keys must not be negative", 400)
        return min(value, 1000)

    async def _post_bucket(self, c: Call) -> Response:
        if "delete" not in c.query:
            raise S3Failure("MethodNotAllowed", "POST on a bucket is only ?delete", 405)
        data = await self._small_body(c)
        keys, quiet = s3xml.parse_delete(data)
        if len(keys) > 1000:
            raise S3Failure("MalformedXML", "at most 1000 keys per DeleteObjects", 400)
        results = await self._run(self.buckets.delete_objects, c.user.id, c.bucket, keys)
        deleted = [r.key for r in results if r.error is None]
        errors = [
            (r.key, getattr(r.error, "s3_code", "InvalidArgument"), r.error.message)
            for r in results
            if r.error is not None
        ]
        return _xml(s3xml.delete_result(deleted, errors, quiet))

    # -- objects -------------------------------------------------------------------------

    async def _put_object(self, c: Call) -> Response:
        source = c.request.headers.get("x-amz-copy-source")
        if source is not None:
            return await self._copy_object(c, source)
        content_md5 = s3xml.md5_header_hex(c.request.headers.get("content-md5"))
        content_type = c.request.headers.get("content-type") or "binary/octet-stream"
        obj = await self._with_body(
            c,
            lambda chunks: self.buckets.put_object(
                c.user.id,
                c.bucket,
                c.key,
                chunks,
                content_type,
                _user_metadata(c.request),
                content_md5,
            ),
        )
        return Response(status_code=200, headers={"ETag": quoted_etag(obj.etag)})

    def _source(self, header: str) -> tuple[str, str]:
        text = unquote(header.split("?versionId=", 1)[0]).lstrip("/")
        bucket, _, key = text.partition("/")
        if not bucket or not key:
            raise S3Failure("InvalidArgument", "x-amz-copy-source must be bucket/key", 400)
        return bucket, key

    async def _copy_object(self, c: Call, header: str) -> Response:
        bucket, key = self._source(header)
        replace = c.request.headers.get("x-amz-metadata-directive", "COPY").upper() == "REPLACE"
        obj = await self._run(
            self.buckets.copy_object,
            c.user.id,
            bucket,
            key,
            c.bucket,
            c.key,
            c.request.headers.get("content-type") if replace else None,
            _user_metadata(c.request) if replace else None,
        )
        return _xml(s3xml.copy_result(obj))

    async def _head_object(self, c: Call) -> Response:
        obj: StoredObject = await self._run(self.buckets.head_object, c.user.id, c.bucket, c.key)
        headers = _object_headers(obj)
        headers["Content-Length"] = str(obj.size)
        return Response(status_code=200, headers=headers)

    async def _get_object(self, c: Call) -> Response:
        header = c.request.headers.get("range")
        wanted = None
        if header:
            m = _RANGE.match(header.strip())
            if m and (m.group(1) or m.group(2)):
                first = int(m.group(1)) if m.group(1) else None
                last = int(m.group(2)) if m.group(2) else None
                if first is not None and last is not None and last < first:
                    wanted = None  # an unsatisfiable syntax is ignored, as HTTP says
                else:
                    wanted = (first, last)
        read: ObjectRead = await self._run(
            self.buckets.get_object, c.user.id, c.bucket, c.key, wanted
        )
        headers = _object_headers(read.obj)
        headers["Content-Length"] = str(read.length)
        status = 200
        if wanted is not None:
            status = 206
            headers["Content-Range"] = f"bytes {read.start}-{read.end}/{read.obj.size}"
        return StreamingResponse(_iterate(read.body), status_code=status, headers=headers)

    async def _delete_object(self, c: Call) -> Response:
        await self._run(self.buckets.delete_objects, c.user.id, c.bucket, [c.key])
        return Response(status_code=204)

    # -- multipart uploads ---------------------------------------------------------------

    async def _create_upload(self, c: Call) -> Response:
        upload = await self._run(
            self.buckets.create_upload,
            c.user.id,
            c.bucket,
            c.key,
            c.request.headers.get("content-type") or "binary/octet-stream",
            _user_metadata(c.request),
        )
        return _xml(s3xml.initiate(c.bucket, c.key, upload.id))

    def _part_number(self, c: Call) -> int:
        try:
            return int(c.query.get("partNumber", ""))
        except ValueError:
            raise S3Failure("InvalidArgument", "partNumber must be a number", 400) from None

    async def _upload_part(self, c: Call) -> Response:
        number = self._part_number(c)
        upload_id = c.query["uploadId"]
        source = c.request.headers.get("x-amz-copy-source")
        if source is not None:
            return await self._upload_part_copy(c, number, upload_id, source)
        content_md5 = s3xml.md5_header_hex(c.request.headers.get("content-md5"))
        part = await self._with_body(
            c,
            lambda chunks: self.buckets.upload_part(
                c.user.id, c.bucket, c.key, upload_id, number, chunks, content_md5
            ),
        )
        return Response(status_code=200, headers={"ETag": quoted_etag(part.etag)})

    async def _upload_part_copy(
        self, c: Call, number: int, upload_id: str, header: str
    ) -> Response:
        bucket, key = self._source(header)
        wanted = None
        raw = c.request.headers.get("x-amz-copy-source-range")
        if raw:
            m = _RANGE.match(raw.strip())
            if not m or not m.group(1) or not m.group(2):
                raise S3Failure("InvalidArgument", "x-amz-copy-source-range must be bytes=a-b", 400)
            wanted = (int(m.group(1)), int(m.group(2)))

        def copy() -> Any:
            read = self.buckets.get_object(c.user.id, bucket, key, wanted)
            return self.buckets.upload_part(
                c.user.id, c.bucket, c.key, upload_id, number, read.body
            )

        part = await self._run(copy)
        return _xml(
            s3xml.copy_result(
                StoredObject(c.key, part.blob_id, part.size, part.etag, "", part.last_modified, {}),
                "CopyPartResult",
            )
        )

    async def _list_parts(self, c: Call) -> Response:
        parts = await self._run(self.buckets.parts, c.user.id, c.bucket, c.key, c.query["uploadId"])
        try:
            marker = int(c.query.get("part-number-marker") or 0)
            max_parts = min(int(c.query.get("max-parts") or 1000), 1000)
        except ValueError:
            raise S3Failure(
                "InvalidArgument", "part-number-marker and max-parts are numbers", 400
            ) from None
        return _xml(
            s3xml.list_parts(c.bucket, c.key, c.query["uploadId"], parts, marker, max_parts)
        )

    async def _complete_upload(self, c: Call) -> Response:
        wanted = s3xml.parse_complete(await self._small_body(c))
        obj = await self._run(
            self.buckets.complete_upload, c.user.id, c.bucket, c.key, c.query["uploadId"], wanted
        )
        location = f"{c.request.base_url}{quote(c.bucket)}/{quote(c.key)}"
        return _xml(s3xml.complete(location, c.bucket, c.key, obj))

    async def _abort_upload(self, c: Call) -> Response:
        await self._run(self.buckets.abort_upload, c.user.id, c.bucket, c.key, c.query["uploadId"])
        return Response(status_code=204)

    # -- bodies --------------------------------------------------------------------------

    async def _small_body(self, c: Call) -> bytes:
        data = bytearray()
        async for chunk in self._decoded(c):
            data += chunk
            if len(data) > MAX_XML_BYTES:
                raise S3Failure("MaxMessageLengthExceeded", "the XML document is too large", 400)
        return bytes(data)

    async def _decoded(self, c: Call) -> AsyncGenerator[bytes]:
        """The request body as sent by the client, with aws-chunked framing removed; the
        declared payload hash and any x-amz-checksum-* are checked at the end (before anything
        is committed)."""
        v = c.verified
        headers = c.request.headers
        checksum = BodyChecksum.of(headers)
        digest = hashlib.sha256() if re.fullmatch(r"[0-9a-f]{64}", v.payload) else None
        decoder = None
        if v.payload.startswith("STREAMING-"):
            declared = headers.get("x-amz-decoded-content-length")
            decoder = ChunkedPayload(v, int(declared) if declared and declared.isdigit() else None)
            digest = None  # each chunk carries its own signature, or the payload is unsigned
        received = 0
        async for data in c.request.stream():
            out = decoder.feed(data) if decoder is not None else data
            received += len(out)
            if received > MAX_SINGLE_PUT:
                raise S3Failure("EntityTooLarge", "a single upload is at most 5 GiB", 400)
            if digest is not None:
                digest.update(out)
            if checksum is not None:
                checksum.update(out)
            if out:
                yield out
        if decoder is not None:
            decoder.finish()
        if digest is not None and digest.hexdigest() != v.payload:
            raise S3Failure(
                "XAmzContentSHA256Mismatch",
                "the body's SHA-256 differs from x-amz-content-sha256",
                400,
            )
        if checksum is not None:
            checksum.verify(decoder.trailers if decoder is not None else {})

    async def _with_body(self, c: Call, consume: Callable[[Iterator[bytes]], Any]) -> Any:
        """Run ``consume`` (blocking: it writes a blob) in a worker thread, fed from the async
        body. Chunks are gathered to BATCH bytes so that a thread hop is paid per batch, not per
        network read."""
        body = self._decoded(c)

        async def batch() -> bytes | None:
            parts: list[bytes] = []
            size = 0
            async for chunk in body:
                parts.append(chunk)
                size += len(chunk)
                if size >= BATCH:
                    break
            # one copy on the event loop, where a bytearray grown chunk by chunk and then
            # copied to bytes made two (plus its reallocations)
            return b"".join(parts) if parts else None

        def chunks() -> Iterator[bytes]:
            while (data := anyio.from_thread.run(batch)) is not None:
                yield data

        try:
            return await anyio.to_thread.run_sync(lambda: consume(chunks()))
        finally:
            await body.aclose()


async def _iterate(body: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Blob chunks read in a worker thread, so the event loop never waits on a disk."""
    while True:
        chunk = await anyio.to_thread.run_sync(next, body, None)
        if chunk is None:
            return
        yield chunk


MAX_DRAIN = 64 * 1024 * 1024


class _TrackedReceive:
    """An ASGI receive that knows whether the request body has been read to its end."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.finished = False

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.finished = True
        return message

    async def drain(self) -> bool:
        """Read what is left of the body, up to MAX_DRAIN bytes; False when more remains."""
        drained = 0
        while not self.finished:
            message = await self()
            drained += len(message.get("body", b""))
            if drained > MAX_DRAIN:
                return False
        return True


class GatewayApp:
    """The ASGI application. An operation that fails before it reads the body (NoSuchBucket on a
    PutObject, say) still has the body drained, so the answer reaches the client and the
    connection stays usable; a body too large to drain closes the connection instead."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        tracked = _TrackedReceive(receive)
        response = await self.gateway.handle(Request(scope, tracked))
        if not await tracked.drain():
            response.headers["connection"] = "close"
        await response(scope, receive, send)


def create_gateway(buckets: BucketService, users: UserService, access_log: bool = False) -> ASGIApp:
    app = GatewayApp(Gateway(buckets, users))
    return AccessLog(app, "s3", header="x-amz-request-id") if access_log else app
