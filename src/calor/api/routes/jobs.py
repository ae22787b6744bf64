"""Job endpoints (contract §2.4): create, read, list, page, search, a job's tasks, terminate,
delete."""

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
from calor.api.requests import JobBody, PageBody, SearchBody, parse
from calor.api.routes.tasks import task_items
from calor.api.schemas import job_json, job_spec, select_fields
from calor.domain.errors import BadRequest
from calor.domain.filters import JOB_FIELDS, parse_filter, tags_any

router = APIRouter()


# the Python SDK posts to /jobs/ (trailing slash), C# and node to /jobs: NormalizePath makes
# both /jobs
@router.post("/jobs")
async def create_job(request: Request, p: PlatformDep, user: UserDep) -> Response:
    spec = job_spec(parse(JobBody, await json_body(request)))
    job_uuid = await run_in_threadpool(p.jobs.create, user.id, spec)
    return json_response({"uuid": job_uuid})


@router.get("/jobs")
async def list_jobs(p: PlatformDep, user: UserDep, tag: list[str] = Query(default=[])) -> Response:
    records = p.jobs.iterate(user.id, tags_any(tag))
    return json_array_response(job_json(j) for j in records)


@router.post("/jobs/paginate")
async def paginate_jobs(request: Request, p: PlatformDep, user: UserDep) -> Response:
    body = parse(PageBody, await json_body(request, required=False) or {})
    flt = parse_filter(body.filter, JOB_FIELDS)
    page = await run_in_threadpool(p.jobs.page, user.id, flt, body.token, body.maximum_results)
    data = [job_json(j) for j in page.jobs]
    return page_response(data, page.token, page.next_token)


@router.post("/jobs/search")
async def search_jobs(request: Request, p: PlatformDep, user: UserDep) -> Response:
    body = parse(SearchBody, await json_body(request, required=False) or {})
    flt = parse_filter(body.filter, JOB_FIELDS)
    fields = body.fields()
    records = await run_in_threadpool(p.jobs.search, user.id, flt, body.maximum_results)
    out = [job_json(j) for j in records]
    return json_response([select_fields(j, fields) for j in out] if fields else out)


@router.get("/jobs/{key}")
async def get_job(key: str, p: PlatformDep, user: UserDep) -> Response:
    return json_response(job_json(await run_in_threadpool(p.jobs.get, user.id, key)))


@router.get("/jobs/{key}/tasks")
async def job_tasks(key: str, p: PlatformDep, user: UserDep) -> Response:
    records = await run_in_threadpool(p.jobs.tasks_of, user.id, key)
    return json_array_response(task_items(p, records, full=True))


@router.post("/jobs/{key}/terminate")
async def terminate_job(key: str, p: PlatformDep, user: UserDep) -> Response:
    await run_in_threadpool(p.jobs.terminate, user.id, key)
    return json_response({})


def _flag(raw: str | None, name: str) -> bool:
    """Python's bool text (``True``/``False``, as the SDK sends it) and the usual spellings."""
    if raw is None or raw == "":
        return False
    text = raw.strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise BadRequest(f"{name} must be True or False, not {raw!r}")


@router.delete("/jobs/{key}")
async def delete_job(
    key: str, p: PlatformDep, user: UserDep, force: str | None = Query(default=None)
) -> Response:
    await run_in_threadpool(p.jobs.delete, user.id, key, _flag(force, "force"))
    return json_response({})
