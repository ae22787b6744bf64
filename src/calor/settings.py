"""One Settings object; the CLI fills it from flags and environment variables."""

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from calor.domain.accounting import Accounting


@dataclass(frozen=True)
class Limits:
    """Operator limits; each is also read from CALOR_LIMIT_<NAME> (e.g. CALOR_LIMIT_PAGE_MAX)."""

    max_tasks_per_user: int = 1_000_000
    max_running_tasks_per_user: int = 100_000
    max_instances_per_task: int = 100_000
    max_body_bytes: int = 64 * 1024 * 1024
    max_bulk_items: int = 10_000
    page_default: int = 50
    page_max: int = 1000
    max_output_bytes_per_instance: int = 64 * 1024 * 1024
    max_buckets_per_user: int = 10_000
    max_storage_bytes_per_user: int = 2**50  # 1 PiB: no quota unless the operator sets one
    max_pools_per_user: int = 1000
    max_jobs_per_user: int = 100_000
    max_secrets_per_user: int = 10_000
    max_secret_bytes: int = 64 * 1024  # of one secret's value (UTF-8)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Limits":
        limits = cls()
        for f in fields(cls):
            raw = environ.get(f"CALOR_LIMIT_{f.name.upper()}")
            if raw is None:
                continue
            try:
                value = int(raw.replace("_", ""))
            except ValueError:
                raise ValueError(f"CALOR_LIMIT_{f.name.upper()}={raw!r} is not a number") from None
            if value < 1:
                raise ValueError(f"CALOR_LIMIT_{f.name.upper()} must be at least 1")
            limits = replace(limits, **{f.name: value})
        return limits


def accounting_from_env(environ: Mapping[str, str]) -> Accounting:
    """Each rate from CALOR_<NAME> (CALOR_PRICE_PER_CORE_HOUR, CALOR_WATTS_PER_CORE,
    CALOR_GRAMS_CO2E_PER_KWH, CALOR_PUE, CALOR_REFERENCE_DATACENTER, CALOR_REFERENCE_PUE,
    CALOR_MAX_CORES_PER_USER); ValueError says which one is wrong."""
    values: dict[str, object] = {}
    for f in fields(Accounting):
        name = f"CALOR_{f.name.upper()}"
        raw = environ.get(name)
        if raw is None or not raw.strip():
            continue
        if f.name == "reference_datacenter":
            values[f.name] = raw.strip()
            continue
        try:
            values[f.name] = int(raw) if f.name == "max_cores_per_user" else float(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not a number") from None
    accounting = Accounting(**values)  # type: ignore[arg-type]
    try:
        accounting.check()
    except ValueError as exc:
        raise ValueError(f"CALOR_{exc}") from None
    return accounting


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str | None = None
    cores: int | None = None
    sandbox: bool | None = None  # None: use bubblewrap when installed
    runtime: str = "auto"  # docker | host | auto (Docker when an engine answers)
    docker_url: str | None = None  # None: DOCKER_HOST, else the default socket
    docker_network: str = "bridge"  # for profiles with network (docker-network)
    # tokens are derived from it: every server of one store needs the same (CALOR_SECRET_KEY);
    # None: a key kept in <data_dir>/secret.key, made at first use
    secret_key: str | None = None
    storage_port: int | None = None  # the S3 gateway's port; None: the API's port + 1
    # where object bytes live: "fs" (<data_dir>/blobs) or "s3://bucket/prefix" (an external S3,
    # reached with the usual AWS_* variables, AWS_ENDPOINT_URL included)
    blob_store: str = "fs"
    drain_seconds: float = 5.0
    # idle client connections stay open this long: well past the SDK's polls (wait(5),
    # 10 s), so a pooled connection is never closed under a client that is about to reuse it
    keep_alive_seconds: int = 75
    # where the access log goes (calor/access_log.py): stderr, stdout, a file path, or off
    access_log: str = "stderr"
    storage_url: str | None = None  # the gateway's public URL; None: derived per request
    limits: Limits = field(default_factory=Limits)
    # prices, budgets' unit, computing quota, energy and carbon factors (domain/accounting.py)
    accounting: Accounting = field(default_factory=Accounting)
    executor: str = "local"  # local | dask
    dask_scheduler: str | None = None  # e.g. tcp://scheduler:8786
    # the API's URL as Dask workers reach it (their events go there); None: http://host:port
    executor_url: str | None = None
