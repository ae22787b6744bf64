"""Credits, budgets, computing quotas and carbon facts (contract §2.1), from the usage calor
recorded for each instance attempt (services/accounting.py) and the operator's rates."""

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from calor.api.deps import PlatformDep, UserDep, json_response
from calor.api.schemas import budget_json, carbon_json, quota_json
from calor.domain.errors import NotFound
from calor.services.platform import Platform

router = APIRouter()


def user_quota(p: Platform, running_cores: float, running_instances: int) -> dict[str, Any]:
    """The user's computing quota (§8.1 Q), as /info and /quotas/… report it, with what
    they run now (services.tasks counts)."""
    limits = p.settings.limits
    return quota_json(
        p.accounting.max_cores, running_cores, limits.max_instances_per_task, running_instances
    )


@router.get("/quotas/computing-quotas/user")
async def user_quotas(p: PlatformDep, user: UserDep) -> Response:
    counts = await run_in_threadpool(p.tasks.counts, user.id)
    quota = user_quota(p, counts.running_core_count, counts.running_instance_count)
    return json_response({"flex": quota, "onDemand": quota, "reserved": []})


@router.get("/quotas/computing-quotas/organization")
async def organization_quotas(p: PlatformDep, _: UserDep) -> Response:
    """The whole server is the organization: its cores and what every user runs on them."""
    running, cores = await run_in_threadpool(p.accounting.running_cores)
    quota = quota_json(p.host.cores, cores, p.settings.limits.max_instances_per_task, running)
    return json_response({"name": "calor", "flex": quota, "onDemand": quota, "reserved": []})


@router.get("/credits/v1/accounts/credits")
async def account_credits(p: PlatformDep, user: UserDep) -> Response:
    """What the user may still spend: their budget less what they consumed."""
    remaining = await run_in_threadpool(p.accounting.remaining_credits, user.id)
    return json_response({"credits": remaining})


# the SDK's names of the kinds of objects that have credits and carbon facts
_SCOPES = {"tasks": "task", "pools": "pool"}


def _scope(kind: str) -> str:
    if kind not in _SCOPES:
        raise NotFound("no such endpoint")
    return _SCOPES[kind]


@router.get("/credits/v1/{kind}/{uuid}/credits")
async def object_credits(kind: str, uuid: str, p: PlatformDep, user: UserDep) -> Response:
    """A task's or pool's credits (404 when the user has no such one, nor had)."""
    totals = await run_in_threadpool(p.accounting.of, user.id, _scope(kind), uuid)
    return json_response({"credits": totals.credits})


@router.get("/credits/v1/projects/{uuid}/budgets")
async def project_budgets(
    uuid: str,
    p: PlatformDep,
    user: UserDep,
    active_only: bool = Query(default=False, alias="activeOnly"),
) -> Response:
    """The user's budget, if the operator set one: always active (it has no expiry), so
    activeOnly changes nothing."""
    p.accounting.check_project(user.id, uuid)
    budget = await run_in_threadpool(p.accounting.budget, user.id)
    return json_response({"budgets": [] if budget is None else [budget_json(uuid, budget)]})


@router.get("/carbon/v1/{kind}/{uuid}/carbon-facts")
async def carbon(
    kind: str,
    uuid: str,
    p: PlatformDep,
    user: UserDep,
    comparison: str | None = Query(default=None, alias="comparisonDatacenter"),
) -> Response:
    facts = await run_in_threadpool(p.accounting.carbon, user.id, _scope(kind), uuid, comparison)
    return json_response(carbon_json(facts))
