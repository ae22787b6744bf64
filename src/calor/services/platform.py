"""The services the API and CLI talk to, bundled; built by calor.wiring."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from calor.domain.ports import Forwards
from calor.services.accounting import AccountingService
from calor.services.buckets import BucketService
from calor.services.jobs import JobService
from calor.services.pools import PoolService
from calor.services.secrets import SecretService
from calor.services.tasks import TaskService
from calor.services.users import UserService
from calor.settings import Settings


@dataclass(frozen=True)
class HostInfo:
    cores: int
    memory_mb: int
    cpu_model: str
    ghz: float


@dataclass
class Platform:
    settings: Settings
    users: UserService
    tasks: TaskService
    buckets: BucketService
    jobs: JobService
    pools: PoolService
    secrets: SecretService
    host: HostInfo
    accounting: AccountingService
    # with a remote executor (Dask): its side of the worker channel, and a view of the cluster
    executor_receive: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # the secrets of the attempt (row id, Dask key) a worker starts
    executor_secrets: Callable[[int, str], dict[str, str]] | None = None
    cluster: Callable[[], dict[str, Any]] | None = None
    # the CPU models of the machines instances run on (CpuModelHardwareConstraint)
    cpu_models: Callable[[], list[str]] = list
    # the forwarded ports of running instances (None: this executor forwards none)
    forwards: Forwards | None = None
