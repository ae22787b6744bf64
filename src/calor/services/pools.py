"""Pool use cases (contract §2.3): create, read, page, search, update, scale, refresh
resources, close, delete, and the pool's output (its slots' preparation)."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from calor.domain.errors import BadRequest, NotFound
from calor.domain.filters import Filter
from calor.domain.hardware import check_cpu_models
from calor.domain.network import forward_rules
from calor.domain.pool import (
    Capacity,
    PoolRecord,
    PoolSpec,
    check_fits,
    min_slots,
    parse_policies,
    waiting_note,
)
from calor.services.tasks import (
    Admission,
    InstanceControl,
    SecretsCheck,
    admit_all,
    check_resource_buckets,
    decode_token,
    encode_token,
    every_page,
    no_secrets,
    page_size,
    read_output,
    utcnow,
)
from calor.settings import Limits
from calor.store.logs import LogStore
from calor.store.pools import PoolStore


@dataclass(frozen=True)
class PoolPage:
    pools: list[PoolRecord]
    token: str | None
    next_token: str | None


class PoolService:
    def __init__(
        self,
        pools: PoolStore,
        logs: LogStore,
        limits: Limits,
        control: InstanceControl,
        bucket_exists: Callable[[int, str], bool] = lambda _user, _name: True,
        unsupported: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        capacity: Callable[[], Capacity] | None = None,
        check_secrets: SecretsCheck = no_secrets,
        cpu_models: Callable[[], list[str]] | None = None,
        admit: Admission = admit_all,
    ) -> None:
        self.pools = pools
        self.logs = logs
        self.limits = limits
        self.control = control
        self.bucket_exists = bucket_exists
        # why this server cannot run pools (None: it can)
        self.unsupported = unsupported
        self.clock = clock
        # the executor's cores (all, free now): what a pool can never get is refused at
        # submit, what it cannot get now is said in its errors
        self.capacity = capacity
        self.check_secrets = check_secrets
        self.cpu_models = cpu_models
        self.admit = admit  # budgets and computing quotas

    def create(self, user_id: int, spec: PoolSpec) -> str:
        if self.unsupported:
            raise BadRequest(self.unsupported)
        if self.capacity is not None:
            check_fits(spec, self.capacity().total)
        check_resource_buckets(self.bucket_exists, user_id, spec.document)
        self.check_secrets(user_id, spec.document.get("secretsAccessRights"), None)
        if self.cpu_models is not None:
            check_cpu_models(spec.document.get("hardwareConstraints") or [], self.cpu_models())
        forward_rules(spec.profile, spec.document.get("forcedNetworkRules"))
        self.admit(user_id)(min_slots(spec) * spec.cores, "this pool (its slots at once)")
        pool_uuid = self.pools.insert(user_id, spec, self.clock(), self.limits.max_pools_per_user)
        self.control.wake()
        return pool_uuid

    def counts(self, user_id: int) -> tuple[int, int]:
        return self.pools.counts(user_id)

    def get(self, user_id: int, key: str) -> PoolRecord:
        record = self.pools.get(user_id, key)
        if self.capacity is not None:
            note = waiting_note(record, self.capacity())
            if note is not None:
                record = replace(record, notes=[note])
        return record

    def page(
        self, user_id: int, flt: Filter | None, token: str | None, size: int | None, full: bool
    ) -> PoolPage:
        records, more = self.pools.page(
            user_id, flt, decode_token(token), page_size(self.limits, size), full
        )
        return PoolPage(records, token, encode_token(records[-1].id) if more and records else None)

    def search(self, user_id: int, flt: Filter | None, size: int | None) -> list[PoolRecord]:
        limit = size if size and size > 0 else self.limits.page_max
        return self.pools.page(user_id, flt, 0, min(limit, self.limits.page_max), True)[0]

    def iterate(self, user_id: int, flt: Filter | None, full: bool) -> Iterator[PoolRecord]:
        return every_page(lambda after: self.pools.page(user_id, flt, after, 200, full))

    def update(self, user_id: int, key: str, spec: PoolSpec) -> None:
        self.pools.update(user_id, key, spec, self.clock())
        self.control.wake()

    def set_scaling(self, user_id: int, key: str, body: Any) -> None:
        if not isinstance(body, dict):
            raise BadRequest('the scaling body must be an object such as {"policies": [...]}')
        policies = {str(k).lower(): v for k, v in body.items()}.get("policies")
        if not parse_policies(policies):
            raise BadRequest("scaling.policies must list at least one policy")
        self.pools.set_scaling(user_id, key, {"policies": policies}, self.clock())

    def refresh_resources(self, user_id: int, key: str) -> None:
        """PATCH /pools/{uuid}: running slots fetch new or changed resource objects; tasks
        that wait for the pool's resources synchronization start on a slot once it has."""
        self.control.refresh(self.pools.sync_slots(user_id, key))

    def close(self, user_id: int, key: str) -> None:
        self.control.abort(self.pools.close(user_id, key, self.clock()))

    def delete(self, user_id: int, key: str) -> None:
        self.control.abort(self.pools.delete(user_id, key, self.clock()))

    def output(
        self,
        user_id: int,
        key: str,
        stream: int,
        instance_id: int | None,
        fresh: bool,
        tail: int | None = None,
    ) -> str:
        """What the slots printed (their preparation), as a task's output reads."""
        task_id = self.pools.slots_task(user_id, key)
        if instance_id is not None and instance_id not in self.pools.slot_ids(task_id):
            raise NotFound(f"instance {instance_id} of pool {key!r} not found")
        return read_output(self.logs, task_id, stream, instance_id, fresh, tail)
