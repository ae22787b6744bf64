"""Endpoints of remote execution: the channel Dask workers post instance events to, and a view
of the cluster for operators and users."""

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from calor.api.deps import PlatformDep, UserDep, json_body, json_response
from calor.domain.errors import BadRequest, NotFound, Unauthorized

router = APIRouter()


@router.post("/executor/events")
async def executor_events(request: Request, p: PlatformDep) -> Response:
    if p.executor_receive is None:
        raise NotFound("this server runs instances itself: there is no remote executor")
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    expected = p.users.executor_token()
    if scheme.lower() != "executor" or not hmac.compare_digest(token.strip(), expected):
        raise Unauthorized("the executor token is missing or wrong")
    payload = await json_body(request)
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object with events and running")
    return json_response(await run_in_threadpool(p.executor_receive, payload))


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
