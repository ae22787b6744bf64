"""Request-scoped helpers shared by the routes: the platform, the caller, bodies, responses."""

import itertools
from collections.abc import Iterator
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from calor.access_log import USER_ID
from calor.domain.errors import BadRequest
from calor.domain.users import User
from calor.services.platform import Platform


def platform(request: Request) -> Platform:
    return request.app.state.platform  # type: ignore[no-any-return]


async def current_user(request: Request) -> User:
    p = platform(request)
    user = await run_in_threadpool(p.users.authenticate, request.headers.get("authorization"))
    request.scope[USER_ID] = user.id  # for the access log
    return user


PlatformDep = Annotated[Platform, Depends(platform)]
UserDep = Annotated[User, Depends(current_user)]


async def json_body(request: Request, required: bool = True) -> Any:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise BadRequest("the request needs a JSON body")
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def json_response(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


def text_response(value: str) -> Response:
    return Response(value, media_type="text/plain; charset=utf-8")


def json_array_response(items: Iterator[Any]) -> Response:
    """A JSON array streamed as its items are read (long lists never sit in memory whole)."""

    def body() -> Iterator[bytes]:
        yield b"["
        first = True
        for item in items:
            yield (b"" if first else b",") + orjson.dumps(item)
            first = False
        yield b"]"

    return StreamingResponse(body(), media_type="application/json")


def json_object_response(head: dict[str, Any], key: str, items: Iterator[Any]) -> Response:
    """``head`` with one more member, ``key``, a JSON array streamed in slices as its items
    are made (a big task's completedInstances)."""

    def body() -> Iterator[bytes]:
        start = orjson.dumps(head)[:-1]  # without its closing brace
        yield start + (b',"' if len(start) > 1 else b'"') + orjson.dumps(key)[1:-1] + b'":['
        first = True
        while chunk := list(itertools.islice(items, 1000)):
            yield (b"" if first else b",") + orjson.dumps(chunk)[1:-1]
            first = False
        yield b"]}"

    return StreamingResponse(body(), media_type="application/json")


def page_response(data: list[Any], token: str | None, next_token: str | None) -> Response:
    """The envelope of every ``/…/paginate`` answer (contract §11.4)."""
    return json_response(
        {
            "data": data,
            "token": token,
            "nextToken": next_token,
            "isTruncated": next_token is not None,
            "count": len(data),
        }
    )
