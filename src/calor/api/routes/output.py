"""The output endpoints a task and a pool share (contract §2.2, §2.3): everything so far or only
what is fresh, of all instances (each line prefixed) or of one."""

from collections.abc import Callable
from typing import Annotated, Protocol

from fastapi import APIRouter, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from calor.api.deps import PlatformDep, UserDep, text_response
from calor.domain.errors import BadRequest
from calor.services.platform import Platform

STREAMS = {"stdout": 1, "stderr": 2}

# a calor extension: only the last N characters (a log tail, without sending it all)
Tail = Annotated[int | None, Query(ge=1, le=100_000_000, description="last N characters")]


class Outputs(Protocol):
    def output(
        self,
        user_id: int,
        key: str,
        stream: int,
        instance_id: int | None,
        fresh: bool,
        tail: int | None = None,
    ) -> str: ...


def instance_number(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"instance id {raw!r} must be an integer") from None


def add_output_routes(router: APIRouter, kind: str, service: Callable[[Platform], Outputs]) -> None:
    """GET (all) and POST (fresh) ``/{kind}s/{key}/{stdout|stderr}[/{instance}]``."""

    async def read(
        p: Platform,
        user_id: int,
        key: str,
        stream: str,
        instance: str | None,
        fresh: bool,
        tail: int | None = None,
    ) -> Response:
        number = instance_number(instance) if instance is not None else None
        text = await run_in_threadpool(
            service(p).output, user_id, key, STREAMS[stream], number, fresh, tail
        )
        return text_response(text)

    for stream in STREAMS:

        def make(stream: str) -> None:
            base = f"/{kind}s/{{key}}/{stream}"

            @router.get(base, name=f"{kind}_{stream}")
            async def get_all(
                key: str, p: PlatformDep, user: UserDep, tail: Tail = None
            ) -> Response:
                return await read(p, user.id, key, stream, None, False, tail)

            @router.post(base, name=f"{kind}_fresh_{stream}")
            async def get_fresh(key: str, p: PlatformDep, user: UserDep) -> Response:
                return await read(p, user.id, key, stream, None, fresh=True)

            @router.get(base + "/{instance}", name=f"{kind}_{stream}_instance")
            async def get_instance(
                key: str, instance: str, p: PlatformDep, user: UserDep, tail: Tail = None
            ) -> Response:
                return await read(p, user.id, key, stream, instance, False, tail)

            @router.post(base + "/{instance}", name=f"{kind}_fresh_{stream}_instance")
            async def fresh_instance(
                key: str, instance: str, p: PlatformDep, user: UserDep
            ) -> Response:
                return await read(p, user.id, key, stream, instance, fresh=True)

        make(stream)
