"""One Settings object; the CLI fills it from flags and environment variables."""

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Limits:
    max_tasks_per_user: int = 1_000_000
    max_running_tasks_per_user: int = 100_000
    max_instances_per_task: int = 100_000
    max_body_bytes: int = 64 * 1024 * 1024
    max_bulk_items: int = 10_000
    page_default: int = 50
    page_max: int = 1000


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str | None = None
    cores: int | None = None
    sandbox: bool | None = None  # None: use bubblewrap when installed
    drain_seconds: float = 5.0
    storage_url: str | None = None
    limits: Limits = field(default_factory=Limits)
