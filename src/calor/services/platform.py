"""The services the API and CLI talk to, bundled; built by calor.wiring."""

from dataclasses import dataclass

from calor.services.buckets import BucketService
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
    host: HostInfo
