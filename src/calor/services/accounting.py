"""Usage, credits, budgets, quotas and carbon, as users and the operator see them."""

import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from calor.domain.accounting import (
    UNLIMITED_CREDITS,
    Accounting,
    CarbonFacts,
    carbon_facts,
    check_budget,
    check_quota,
)
from calor.domain.errors import BadRequest, NotFound
from calor.store.usage import ReportLine, Totals, UsageStore

# each user's one project (/info), named so that its uuid is the same on every call
_PROJECTS = uuidlib.UUID("6f1b3c5e-4d0a-4c57-9a43-0c8d5e1f2a7b")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def project_uuid(user_id: int) -> str:
    return str(uuidlib.uuid5(_PROJECTS, str(user_id)))


@dataclass(frozen=True)
class Budget:
    credits: float
    consumed: float
    set_at: datetime


class AccountingService:
    def __init__(
        self,
        usage: UsageStore,
        rates: Accounting,
        executor_cores: Callable[[], int],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.usage = usage
        self.rates = rates
        self.executor_cores = executor_cores
        self.clock = clock

    @property
    def max_cores(self) -> int:
        """A user's computing quota: the cores their instances may hold at once."""
        if self.rates.max_cores_per_user is not None:
            return self.rates.max_cores_per_user
        return self.executor_cores()

    def admission(self, user_id: int) -> Callable[[float, str], None]:
        """The check of a user's submissions (one budget read for all the tasks of a bulk
        submit): it refuses any once their budget is spent, and one that needs more cores at
        once than their quota (PaymentRequired: the SDK's NotEnoughCredits)."""
        budget = self.budget(user_id)

        def admit(cores_at_once: float, what: str) -> None:
            # the executor gives what asks for more than it has all it has: with the default
            # quota (its cores) nothing that runs today is refused
            check_quota(min(cores_at_once, self.executor_cores()), self.max_cores, what)
            if budget is not None:
                check_budget(budget.consumed, budget.credits)

        return admit

    def account(self, user_id: int) -> Totals:
        return self.usage.totals(user_id, "user", str(user_id)) or Totals()

    def of(self, user_id: int, scope: str, key: str) -> Totals:
        """A task's or pool's figures (kept after it is deleted); NotFound when the user has
        no such task or pool and never had."""
        found = self.usage.totals(user_id, scope, key)
        if found is not None:
            return found
        if not self.usage.exists(user_id, scope, key):
            raise NotFound(f"no {scope} {key!r}")
        return Totals()

    def remaining_credits(self, user_id: int) -> float:
        budget = self.budget(user_id)
        return UNLIMITED_CREDITS if budget is None else budget.credits - budget.consumed

    def budget(self, user_id: int) -> Budget | None:
        found = self.usage.budget(user_id)
        if found is None:
            return None
        return Budget(found[0], self.account(user_id).credits, found[1])

    def check_project(self, user_id: int, project: str) -> None:
        if project != project_uuid(user_id):
            raise NotFound(f"no project {project!r}")

    def carbon(self, user_id: int, scope: str, key: str, comparison: str | None) -> CarbonFacts:
        if comparison and comparison != self.rates.reference_datacenter:
            raise BadRequest(
                f"unknown comparisonDatacenter {comparison!r}; this server compares with "
                f"{self.rates.reference_datacenter!r}"
            )
        totals = self.of(user_id, scope, key)
        return carbon_facts(totals.energy_j, totals.measured_energy_j, self.rates)

    def running_cores(self) -> tuple[int, float]:
        return self.usage.running_cores()

    # -- the operator's side (calor admin) --------------------------------------------------

    def set_budget(self, user_id: int, credits: float | None) -> None:
        if credits is not None and not credits >= 0:
            raise BadRequest("a budget is a number of credits >= 0")
        self.usage.set_budget(user_id, credits, self.clock())

    def report(self, since: datetime | None, user_id: int | None) -> list[ReportLine]:
        return self.usage.report(since, user_id)
