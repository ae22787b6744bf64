"""Endpoints of remote execution: the channel Dask workers post instance events to, and a view
of the cluster for operators and users."""

import hmac
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from calor.api.deps import PlatformDep, UserDep, json_body, json_response
from calor.domain.errors import BadRequest, NotFound, Unauthorized

router = APIRouter()


def _check_executor(request: Request, p: PlatformDep) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The remote executor's receiver, once the caller proved it holds the executor token."""
    if p.executor_receive is None:
        raise NotFound("this server runs instances itself: there is no remote executor")
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    expected = p.users.executor_token()
    if scheme.lower() != "executor" or not hmac.compare_digest(token.strip(), expected):
        raise Unauthorized("the executor token is missing or wrong")
    return p.executor_receive


@router.post("/executor/events")
async def executor_events(request: Request, p: PlatformDep) -> Response:
    receive = _check_executor(request, p)
    payload = await json_body(request)
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object with events and running")
    return json_response(await run_in_threadpool(receive, payload))


@router.post("/executor/secrets")
async def executor_secrets(request: Request, p: PlatformDep) -> Response:
    """The secrets of an attempt a worker starts: asked for at its start, over this channel
    only, so that no value travels in the Dask task or rests on the scheduler."""
    _check_executor(request, p)
    payload = await json_body(request)
    row, key = (payload.get("row"), payload.get("key")) if isinstance(payload, dict) else (0, 0)
    if isinstance(row, bool) or not isinstance(row, int) or not isinstance(key, str):
        raise BadRequest('the body must be {"row": <instance row id>, "key": "<Dask key>"}')
    if p.executor_secrets is None:
        raise NotFound("this server keeps no secrets for remote workers")
    secrets = await run_in_threadpool(p.executor_secrets, row, key)
    return json_response({"secrets": secrets})


@router.get("/cluster")
async def cluster(p: PlatformDep, user: UserDep) -> Response:
    """Where instances run: this machine, or a Dask cluster's workers, cores and memory."""
    if p.cluster is None:
        return json_response(
            {
                "executor": "local",
                "workers": 1,
                "cores": p.host.cores,
                "memoryBytes": p.host.memory_mb * 2**20,
            }
        )
    return json_response({"executor": "dask", **await run_in_threadpool(p.cluster)})
