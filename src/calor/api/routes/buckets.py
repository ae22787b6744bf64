"""Bucket endpoints for the dashboard: the caller's buckets, a listing of one bucket's objects and
an object's bytes, authenticated with the API token like every other route (a browser page should
not sign S3 requests). The S3 gateway stays the way to write; these only read."""

from collections.abc import AsyncIterator, Iterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from calor.api.deps import PlatformDep, UserDep, json_response
from calor.api.wire import fmt_date
from calor.domain.errors import BadRequest
from calor.domain.storage import check_bucket_name
from calor.services.buckets import ObjectRead

router = APIRouter()

MAX_LISTED = 1000


@router.get("/buckets")
async def list_buckets(p: PlatformDep, user: UserDep) -> Response:
    found = await run_in_threadpool(p.buckets.buckets, user.id)
    return json_response(
        [
            {
                "name": b.name,
                "objectCount": b.object_count,
                "bytesUsed": b.bytes_used,
                "creationDate": fmt_date(b.created_at),
            }
            for b in found
        ]
    )


@router.get("/buckets/{name}/objects")
async def list_objects(
    name: str,
    p: PlatformDep,
    user: UserDep,
    prefix: str = "",
    delimiter: str = "",
    token: str = "",
    maximum_results: Annotated[int, Query(alias="maximumResults")] = MAX_LISTED,
) -> Response:
    """One page of keys after ``token`` (the previous page's ``nextToken``), in key order; with
    a delimiter, the keys below it are rolled up into ``prefixes`` as in S3."""
    check_bucket_name(name)
    if not 1 <= maximum_results <= MAX_LISTED:
        raise BadRequest(f"maximumResults must be between 1 and {MAX_LISTED}")
    listing = await run_in_threadpool(
        p.buckets.list_objects, user.id, name, prefix, delimiter, token, maximum_results
    )
    return json_response(
        {
            "objects": [
                {
                    "key": o.key,
                    "size": o.size,
                    "etag": o.etag,
                    "lastModified": fmt_date(o.last_modified),
                }
                for o in listing.objects
            ],
            "prefixes": listing.common_prefixes,
            "nextToken": listing.next_marker if listing.truncated else None,
        }
    )


def _disposition(key: str) -> str:
    """``attachment`` with the key's last segment as the file name: an ASCII fallback and the
    exact UTF-8 name (RFC 6266 / 5987)."""
    filename = key.rstrip("/").rsplit("/", 1)[-1] or "download"
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def _chunks(body: Iterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in iterate_in_threadpool(body):
        yield chunk


@router.get("/buckets/{name}/objects/{key:path}")
async def get_object(name: str, key: str, p: PlatformDep, user: UserDep) -> Response:
    check_bucket_name(name)
    read: ObjectRead = await run_in_threadpool(p.buckets.get_object, user.id, name, key)
    return StreamingResponse(
        _chunks(read.body),
        media_type=read.obj.content_type or "application/octet-stream",
        headers={
            "Content-Length": str(read.obj.size),
            "Content-Disposition": _disposition(key),
            "ETag": f'"{read.obj.etag}"',
            # what a task wrote is never rendered as a page of the dashboard's origin
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        },
    )
