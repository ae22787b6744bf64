"""Credits, budgets, computing quotas and carbon facts (contract §2.1), from the usage calor
recorded for each instance attempt (services/accounting.py) and the operator's rates."""

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from calor.api.deps import PlatformDep, UserDep, json_response
from calor.domain.accounting import CarbonFacts
from calor.domain.errors import NotFound
from calor.domain.users import User
from calor.services.accounting import project_uuid
from calor.services.platform import Platform

router = APIRouter()


def _quota(
    max_cores: int, running_cores: float, max_instances: int, running: int
) -> dict[str, Any]:
    return {
        "maxCores": max_cores,
        "runningCoresCount": round(running_cores),
        "maxInstances": max_instances,
        "runningInstancesCount": running,
    }


def user_quota(p: Platform, user: User) -> dict[str, Any]:
    """The user's computing quota (§8.1 Q), as /info and /quotas/… report it."""
    counts = p.tasks.counts(user.id)
    return _quota(
        p.accounting.max_cores,
        counts.running_core_count,
        p.settings.limits.max_instances_per_task,
        counts.running_instance_count,
    )


def projects_of(user: User) -> list[dict[str, Any]]:
    """Each user has one project, their own: the one their budget belongs to."""
    return [
        {
            "uuid": project_uuid(user.id),
            "name": "default",
            "slug": "default",
            "description": f"the projects of {user.email} on this calor server",
            "organizationUuid": None,
            "isDefault": True,
        }
    ]


@router.get("/quotas/computing-quotas/user")
async def user_quotas(p: PlatformDep, user: UserDep) -> Response:
    quota = await run_in_threadpool(user_quota, p, user)
    return json_response({"flex": quota, "onDemand": quota, "reserved": []})


@router.get("/quotas/computing-quotas/organization")
async def organization_quotas(p: PlatformDep, _: UserDep) -> Response:
    """The whole server is the organization: its cores and what every user runs on them."""
    running, cores = await run_in_threadpool(p.accounting.running_cores)
    quota = _quota(p.host.cores, cores, p.settings.limits.max_instances_per_task, running)
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


def _cents(credits: float) -> int:
    return round(credits * 100)


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
    if budget is None:
        return json_response({"budgets": []})
    item = {
        "uuid": uuid,
        "alias": "calor",
        "consumedAmountInCents": _cents(budget.consumed),
        "totalAmountInCents": _cents(budget.credits),
        "remainingAmountInCents": _cents(budget.credits - budget.consumed),
        # calor refuses new tasks and pools past it; running ones go on
        "budgetOverrunPolicy": "BlockNew",
        "startDateUtc": budget.set_at.isoformat(timespec="microseconds") + "Z",
        "expirationDateUtc": None,
        "isArchived": False,
    }
    return json_response({"budgets": [item]})


def carbon_json(facts: CarbonFacts) -> dict[str, Any]:
    """The SDK's CarbonFacts (snake_case); calor reuses no heat, so the heat figures are 0
    and ERE is the PUE. calor_energy_method says whether the energy was measured."""
    return {
        "total_consumed_energy_Wh": facts.consumed_energy_wh,
        "total_energy_it_Wh": facts.it_energy_wh,
        "total_reused_energy_Wh": 0.0,
        "qarnot_carbon_footprint": facts.carbon_g,
        "equivalent_datacenter_name": facts.reference_name,
        "equivalent_DC_carbon_footprint": facts.reference_carbon_g,
        "saved_carbon_footprint_compute": facts.saved_g,
        "saved_carbon_footprint_heat": 0.0,
        "saved_carbon_footprint_compute_heat": facts.saved_g,
        "saved_carbon_footprint_percent": facts.saved_percent,
        "PUE": facts.pue,
        "ERE": facts.pue,
        "ERF": 0.0,
        "WUE": None,  # not known to calor
        "calor_energy_method": facts.method,
    }


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
