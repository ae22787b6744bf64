"""Account and platform endpoints: settings, info, profiles, hardware constraints."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from calor.api.deps import PlatformDep, UserDep, json_response
from calor.api.routes.accounting import user_quota
from calor.api.schemas import projects_json
from calor.domain.hardware import CPU_MODEL, search_cpu_models
from calor.domain.profiles import PROFILES, get_profile

router = APIRouter()


@router.get("/settings")
async def settings(p: PlatformDep, _: UserDep, request: Request) -> Response:
    url = p.settings.storage_url
    if not url:
        # the host the client reached the API by, on the gateway's port
        port = p.settings.storage_port or p.settings.port + 1
        url = f"{request.url.scheme}://{request.url.hostname}:{port}"
    return json_response({"storage": url})


@router.get("/info")
async def info(p: PlatformDep, user: UserDep) -> Response:
    counts = await run_in_threadpool(p.tasks.counts, user.id)
    storage = await run_in_threadpool(p.buckets.usage, user.id)
    pool_count, open_pools = await run_in_threadpool(p.pools.counts, user.id)
    limits = p.settings.limits
    quota = user_quota(p, counts.running_core_count, counts.running_instance_count)
    cores = quota["maxCores"]
    return json_response(
        {
            "email": user.email,
            "maxBucket": limits.max_buckets_per_user,
            "bucketCount": storage.bucket_count,
            "quotaBytesBucket": limits.max_storage_bytes_per_user,
            "usedQuotaBytesBucket": storage.bytes_used,
            "taskCount": counts.task_count,
            "maxTask": limits.max_tasks_per_user,
            "runningTaskCount": counts.running_task_count,
            "maxRunningTask": limits.max_running_tasks_per_user,
            "maxInstances": limits.max_instances_per_task,
            "maxFlexCores": cores,
            "maxFlexInstances": limits.max_instances_per_task,
            "runningFlexCoreCount": counts.running_core_count,
            "runningFlexInstanceCount": counts.running_instance_count,
            "maxPool": limits.max_pools_per_user,
            "poolCount": pool_count,
            "maxRunningPool": limits.max_pools_per_user,
            "runningPoolCount": open_pools,
            "runningInstanceCount": counts.running_instance_count,
            "runningCoreCount": counts.running_core_count,
            "projects": projects_json(user),
            "computingQuotas": {
                "user": {"flex": quota, "onDemand": quota, "reserved": []},
                "organization": None,
            },
        }
    )


@router.get("/profiles")
async def profiles(_: UserDep) -> Response:
    return json_response(sorted(PROFILES))


@router.get("/profiles/{name}")
async def profile(name: str, _: UserDep) -> Response:
    prof = get_profile(name)
    return json_response(
        {
            "name": prof.name,
            "constants": [
                {"name": c.name, "value": c.value, "description": c.description}
                for c in prof.constants
            ],
        }
    )


def _constraints(cores: int, memory_mb: int, cpu_models: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"discriminator": "MinimumCoreHardwareConstraint", "coreCount": n}
        for n in range(1, cores + 1)
    ]
    out.append({"discriminator": "MaximumRamHardwareConstraint", "maximumMemoryMB": memory_mb})
    out.append({"discriminator": "NoGpuHardwareConstraint"})
    out += [{"discriminator": CPU_MODEL, "cpuModel": m} for m in sorted(set(cpu_models))]
    return out


# Offsets and limits are whole numbers a 32-bit signed field holds: a larger one is a 400
# that says so (it was a 500 when it reached the JSON encoder), never silently wrapped.
# Within that range a limit above 1000 is clamped, as page sizes are (contract §13).
MAX_PAGING_INT = 2**31 - 1
MAX_LIMIT = 1000
Offset = Annotated[int, Query(ge=0, le=MAX_PAGING_INT)]
Limit = Annotated[int, Query(ge=0, le=MAX_PAGING_INT)]


@router.get("/hardware-constraints")
async def hardware_constraints(
    p: PlatformDep,
    _: UserDep,
    limit: Limit = 50,
    offset: Offset = 0,
    # the docs' spelling
    limit_doc: Annotated[int | None, Query(alias="Limit", ge=0, le=MAX_PAGING_INT)] = None,
    offset_doc: Annotated[int | None, Query(alias="Offset", ge=0, le=MAX_PAGING_INT)] = None,
) -> Response:
    limit = limit_doc if limit_doc is not None else limit
    offset = offset_doc if offset_doc is not None else offset
    everything = _constraints(p.host.cores, p.host.memory_mb, p.cpu_models())
    limit = max(1, min(limit, MAX_LIMIT))
    return json_response(
        {
            "data": everything[offset : offset + limit],
            "offset": offset,
            "limit": limit,
            "total": len(everything),
        }
    )


@router.get("/hardware-constraints/cpu-model-constraints/search")
async def search_cpu_model_constraints(
    p: PlatformDep,
    _: UserDep,
    cpu_model: Annotated[str, Query(alias="cpuModel", max_length=256)] = "",
) -> Response:
    """The CPU models of the machines instances run on that match the search, most relevant
    first (domain/hardware.py), as constraints a task or pool can demand."""
    return json_response(
        [
            {"discriminator": CPU_MODEL, "cpuModel": m}
            for m in search_cpu_models(cpu_model, p.cpu_models())
        ]
    )
