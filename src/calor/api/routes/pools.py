"""Pool endpoints (contract §2.3): create, read, list, page, search, update, resources,
scaling, close, delete, output."""

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from calor.api.deps import (
    PlatformDep,
    UserDep,
    json_array_response,
    json_body,
    json_response,
    page_response,
)
from calor.api.requests import PageBody, PoolBody, SearchBody, parse
from calor.api.routes.output import add_output_routes
from calor.api.schemas import HostFacts, pool_full, pool_spec, pool_summary, select_fields
from calor.domain.filters import POOL_FIELDS, parse_filter, tags_any
from calor.domain.pool import PoolRecord, PoolSpec
from calor.services.platform import Platform
from calor.services.tasks import utcnow

router = APIRouter()


def _spec(p: Platform, raw: Any) -> PoolSpec:
    return pool_spec(parse(PoolBody, raw), p.settings.limits.max_instances_per_task)


def _items(p: Platform, records: Iterable[PoolRecord], full: bool) -> Iterator[Any]:
    forwards = p.forwards.active if p.forwards else None
    now, host = utcnow(), HostFacts(p.host.cpu_model, p.host.ghz, forwards)
    for record in records:
        yield pool_full(record, now, host) if full else pool_summary(record)


@router.post("/pools")
async def create_pool(request: Request, p: PlatformDep, user: UserDep) -> Response:
    spec = _spec(p, await json_body(request))
    return json_response({"uuid": await run_in_threadpool(p.pools.create, user.id, spec)})


@router.get("/pools")
async def list_pools(p: PlatformDep, user: UserDep, tag: list[str] = Query(default=[])) -> Response:
    return json_array_response(_items(p, p.pools.iterate(user.id, tags_any(tag), True), True))


@router.get("/pools/summaries")
async def list_summaries(
    p: PlatformDep, user: UserDep, tag: list[str] = Query(default=[])
) -> Response:
    return json_array_response(_items(p, p.pools.iterate(user.id, tags_any(tag), False), False))


async def _paginate(request: Request, p: Platform, user_id: int, full: bool) -> Response:
    body = parse(PageBody, await json_body(request, required=False) or {})
    flt = parse_filter(body.filter, POOL_FIELDS)
    page = await run_in_threadpool(
        p.pools.page, user_id, flt, body.token, body.maximum_results, full
    )
    data = list(_items(p, page.pools, full))
    return page_response(data, page.token, page.next_token)


@router.post("/pools/paginate")
async def paginate(request: Request, p: PlatformDep, user: UserDep) -> Response:
    return await _paginate(request, p, user.id, full=True)


@router.post("/pools/summaries/paginate")
async def paginate_summaries(request: Request, p: PlatformDep, user: UserDep) -> Response:
    return await _paginate(request, p, user.id, full=False)


@router.post("/pools/search")
async def search(request: Request, p: PlatformDep, user: UserDep) -> Response:
    body = parse(SearchBody, await json_body(request, required=False) or {})
    flt = parse_filter(body.filter, POOL_FIELDS)
    fields = body.fields()
    records = await run_in_threadpool(p.pools.search, user.id, flt, body.maximum_results)
    out = list(_items(p, records, True))
    return json_response([select_fields(i, fields) for i in out] if fields else out)


@router.get("/pools/{key}")
async def get_pool(key: str, p: PlatformDep, user: UserDep) -> Response:
    record = await run_in_threadpool(p.pools.get, user.id, key)
    return json_response(next(_items(p, [record], True)))


@router.put("/pools/{key}")
async def update_pool(key: str, request: Request, p: PlatformDep, user: UserDep) -> Response:
    spec = _spec(p, await json_body(request))
    await run_in_threadpool(p.pools.update, user.id, key, spec)
    return json_response({})


@router.patch("/pools/{key}")
async def update_resources(key: str, p: PlatformDep, user: UserDep) -> Response:
    await run_in_threadpool(p.pools.refresh_resources, user.id, key)
    return json_response({})


@router.put("/pools/{key}/scaling")
async def set_scaling(key: str, request: Request, p: PlatformDep, user: UserDep) -> Response:
    body = await json_body(request)
    await run_in_threadpool(p.pools.set_scaling, user.id, key, body)
    return json_response({})


@router.post("/pools/{key}/close")
async def close_pool(key: str, p: PlatformDep, user: UserDep) -> Response:
    await run_in_threadpool(p.pools.close, user.id, key)
    return json_response({})


@router.delete("/pools/{key}")
async def delete_pool(key: str, p: PlatformDep, user: UserDep) -> Response:
    await run_in_threadpool(p.pools.delete, user.id, key)
    return json_response({})


add_output_routes(router, "pool", lambda p: p.pools)
