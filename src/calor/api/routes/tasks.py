"""Task endpoints (contract §2.2): submit, read, list, page, search, output, abort, delete,
resources and snapshots."""

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
    json_object_response,
    json_response,
    page_response,
)
from calor.api.errors import status_of
from calor.api.requests import PageBody, SearchBody, TaskBody, parse
from calor.api.routes.output import add_output_routes
from calor.api.schemas import (
    HostFacts,
    select_fields,
    snapshot_json,
    task_full,
    task_full_streamed,
    task_spec,
    task_summary,
)
from calor.domain.errors import BadRequest, CalorError
from calor.domain.filters import Filter, parse_filter, tags_any
from calor.domain.ranges import format_ranges
from calor.domain.task import TaskRecord, TaskSpec
from calor.services.platform import Platform
from calor.services.tasks import utcnow

router = APIRouter()


def _facts(p: Platform) -> HostFacts:
    return HostFacts(p.host.cpu_model, p.host.ghz, p.forwards.active if p.forwards else None)


def _full(p: Platform, record: TaskRecord) -> dict[str, Any]:
    return task_full(record, utcnow(), _facts(p))


def _spec(p: Platform, raw: Any, prefix: str = "") -> TaskSpec:
    return task_spec(parse(TaskBody, raw, prefix), p.settings.limits.max_instances_per_task)


@router.post("/tasks")
async def create_tasks(request: Request, p: PlatformDep, user: UserDep) -> Response:
    raw = await json_body(request)
    if isinstance(raw, list):
        return await _create_many(p, user.id, raw)
    spec = _spec(p, raw)
    result = (await run_in_threadpool(p.tasks.submit, user.id, [spec]))[0]
    if isinstance(result, CalorError):
        raise result
    return json_response({"uuid": result})


async def _create_many(p: Platform, user_id: int, items: list[Any]) -> Response:
    """Array submission: one result per item, in order; bad items do not stop good ones."""
    if len(items) > p.settings.limits.max_bulk_items:
        raise BadRequest(f"at most {p.settings.limits.max_bulk_items} tasks per request")
    outcomes: list[dict[str, Any] | None] = []
    specs: list[TaskSpec] = []
    for index, item in enumerate(items):
        try:
            specs.append(_spec(p, item, prefix=f"[{index}]."))
            outcomes.append(None)
        except CalorError as exc:
            outcomes.append({"statusCode": status_of(exc), "uuid": None, "message": exc.message})
    results = await run_in_threadpool(p.tasks.submit, user_id, specs) if specs else []
    it = iter(results)
    out: list[dict[str, Any]] = []
    for outcome in outcomes:
        if outcome is not None:
            out.append(outcome)
            continue
        result = next(it)
        if isinstance(result, CalorError):
            out.append({"statusCode": status_of(result), "uuid": None, "message": result.message})
        else:
            out.append({"statusCode": 200, "uuid": result, "message": "Created"})
    return json_response(out)


def task_items(p: Platform, records: Iterable[TaskRecord], full: bool) -> Iterator[Any]:
    now = utcnow()
    for record in records:
        yield task_full(record, now, _facts(p)) if full else task_summary(record)


def _stream_list(p: Platform, user_id: int, flt: Filter | None, full: bool) -> Response:
    return json_array_response(task_items(p, p.tasks.iterate(user_id, flt, full), full))


@router.get("/tasks")
async def list_tasks(p: PlatformDep, user: UserDep, tag: list[str] = Query(default=[])) -> Response:
    return _stream_list(p, user.id, tags_any(tag), full=True)


@router.get("/tasks/summaries")
async def list_summaries(
    p: PlatformDep, user: UserDep, tag: list[str] = Query(default=[])
) -> Response:
    return _stream_list(p, user.id, tags_any(tag), full=False)


async def _paginate(request: Request, p: Platform, user_id: int, full: bool) -> Response:
    body = parse(PageBody, await json_body(request, required=False) or {})
    flt = parse_filter(body.filter)
    page = await run_in_threadpool(
        p.tasks.page, user_id, flt, body.token, body.maximum_results, full, body.descending()
    )
    now = utcnow()
    data = [task_full(t, now, _facts(p)) if full else task_summary(t) for t in page.tasks]
    return page_response(data, page.token, page.next_token)


@router.post("/tasks/paginate")
async def paginate(request: Request, p: PlatformDep, user: UserDep) -> Response:
    return await _paginate(request, p, user.id, full=True)


@router.post("/tasks/summaries/paginate")
async def paginate_summaries(request: Request, p: PlatformDep, user: UserDep) -> Response:
    return await _paginate(request, p, user.id, full=False)


@router.post("/tasks/search")
async def search(request: Request, p: PlatformDep, user: UserDep) -> Response:
    body = parse(SearchBody, await json_body(request, required=False) or {})
    flt = parse_filter(body.filter)
    fields = body.fields()
    records = await run_in_threadpool(p.tasks.search, user.id, flt, body.maximum_results)
    now = utcnow()
    out = [task_full(t, now, _facts(p)) for t in records]
    if fields:
        out = [select_fields(item, fields) for item in out]
    return json_response(out)


@router.get("/tasks/{key}")
async def get_task(key: str, p: PlatformDep, user: UserDep) -> Response:
    record = await run_in_threadpool(p.tasks.get, user.id, key)
    head, completed = task_full_streamed(record, utcnow(), _facts(p))
    return json_object_response(head, "completedInstances", completed)


@router.put("/tasks/{key}")
async def update_task(key: str, request: Request, p: PlatformDep, user: UserDep) -> Response:
    spec = _spec(p, await json_body(request))
    await run_in_threadpool(p.tasks.update, user.id, key, spec)
    return json_response({})


@router.patch("/tasks/{key}")
async def update_resources(key: str, p: PlatformDep, user: UserDep) -> Response:
    await run_in_threadpool(p.tasks.refresh_resources, user.id, key)
    return json_response({})


_SNAPSHOT_KEYS = ("interval", "whitelist", "blacklist", "bucket", "bucketPrefix")


async def _snapshot_request(request: Request) -> dict[str, Any]:
    """The snapshot body with its keys in canonical case (nulls and a missing body allowed)."""
    raw = await json_body(request, required=False)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadRequest("the snapshot body must be a JSON object")
    canonical = {k.lower(): k for k in _SNAPSHOT_KEYS}
    out = {canonical[k.lower()]: v for k, v in raw.items() if k.lower() in canonical}
    for name in ("whitelist", "blacklist", "bucket", "bucketPrefix"):
        if out.get(name) is not None and not isinstance(out[name], str):
            raise BadRequest(f"{name} must be a string")
    return out


@router.post("/tasks/{key}/snapshot/periodic")
async def periodic_snapshots(key: str, request: Request, p: PlatformDep, user: UserDep) -> Response:
    body = await _snapshot_request(request)
    await run_in_threadpool(p.tasks.periodic_snapshots, user.id, key, body.get("interval"), body)
    return json_response({})


@router.post("/tasks/{key}/snapshot")
async def snapshot(key: str, request: Request, p: PlatformDep, user: UserDep) -> Response:
    body = await _snapshot_request(request)
    snapshot_id = await run_in_threadpool(p.tasks.snapshot, user.id, key, body)
    return json_response({"id": snapshot_id})


@router.get("/tasks/{key}/snapshot/{snapshot_id}")
async def snapshot_status(key: str, snapshot_id: str, p: PlatformDep, user: UserDep) -> Response:
    record = await run_in_threadpool(p.tasks.snapshot_status, user.id, key, snapshot_id)
    return json_response(snapshot_json(record))


@router.delete("/tasks/{key}")
async def delete_task(key: str, p: PlatformDep, user: UserDep) -> Response:
    await run_in_threadpool(p.tasks.delete, user.id, key)
    return json_response({})


@router.post("/tasks/{key}/abort")
async def abort_task(key: str, p: PlatformDep, user: UserDep) -> Response:
    await run_in_threadpool(p.tasks.abort, user.id, key)
    return json_response({})


# POST /tasks/{uuid}/clone | retry | resume | recover (contract §2.2): a new task from this
# one's submitted fields, with the optional body's fields on top; retry reruns the failed
# instances, resume the cancelled ones, recover both
_RERUN = {
    "clone": None,
    "retry": {"Failure"},
    "resume": {"Cancelled"},
    "recover": {"Failure", "Cancelled"},
}
# what a new task never takes from the one it copies
_NOT_COPIED = {"uuid", "shortname", "state", "previousState", "errors", "status"}


def _copy_body(source: dict[str, Any], overrides: Any, rerun: set[str] | None) -> dict[str, Any]:
    if overrides is not None and not isinstance(overrides, dict):
        raise BadRequest("the body must be a JSON object of the fields to change")
    body = {k: v for k, v in source.items() if k not in _NOT_COPIED}
    if rerun is not None:
        ids = [i["instanceId"] for i in source["completedInstances"] if i["state"] in rerun]
        if not ids:
            wanted = " or ".join(sorted(s.lower() for s in rerun))
            raise BadRequest(f"task {source['uuid']} has no {wanted} instance to run again")
        body.pop("instanceCount", None)
        body["advancedRanges"] = format_ranges(ids)
    lowered = {k.lower(): k for k in body}
    for key, value in (overrides or {}).items():
        body.pop(lowered.get(str(key).lower(), str(key)), None)
        body[str(key)] = value
    return body


for _action, _states in _RERUN.items():

    def _rerun(action: str, states: set[str] | None) -> None:
        @router.post(f"/tasks/{{key}}/{action}", name=f"{action}_task")
        async def copy(key: str, request: Request, p: PlatformDep, user: UserDep) -> Response:
            source = _full(p, await run_in_threadpool(p.tasks.get, user.id, key))
            overrides = await json_body(request, required=False)
            spec = _spec(p, _copy_body(source, overrides, states))
            result = (await run_in_threadpool(p.tasks.submit, user.id, [spec]))[0]
            if isinstance(result, CalorError):
                raise result
            return json_response({"uuid": result})

    _rerun(_action, _states)


add_output_routes(router, "task", lambda p: p.tasks)
