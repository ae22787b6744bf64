"""The boundaries of the domain: what an executor is given, what it reports, what it offers."""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from calor.domain.accounting import EnergySample
from calor.domain.transfer import Transfers, Upload


@dataclass(frozen=True)
class InstanceJob:
    """Everything one instance attempt needs to run, copied out of the store."""

    row_id: int
    task_uuid: str
    instance_id: int
    instance_count: int
    attempt: int
    profile: str
    constants: dict[str, str]
    cores: float  # a share below 1 for a slot of a pool node split into slots
    network: bool = False
    memory_limit_mb: int | None = None
    user_id: int = 0
    transfers: Transfers = field(default_factory=Transfers)
    # a pool slot: after the command (the preparation task) succeeds, the attempt reports
    # Ready and holds its cores, idle, until it is aborted (the pool closes or shrinks)
    hold: bool = False
    # an instance of a task on a pool: it runs in its slot's working directory (TASK_PATH,
    # kept afterwards) on cores the slot already holds; the slot is (slot task uuid, slot
    # instance id), which names that directory as a task's instance would
    slot: tuple[str, int] | None = None
    # its task (or pool) grants it secrets (secretsAccessRights): their values are read at
    # the attempt's start from a SecretsSource, never carried here
    secrets: bool = False
    # CpuModel hardware constraints: the machine must have one of these models (empty: any)
    cpu_models: tuple[str, ...] = ()
    # TCP ports of the instance forwarded to the server's host while it runs
    # (domain/network.py)
    forward_ports: tuple[int, ...] = ()


# the secrets an attempt is granted, by key, read when it starts (in process, or from the
# server over the executor API)
SecretsSource = Callable[[InstanceJob], dict[str, str]]


@dataclass(frozen=True)
class Started:
    row_id: int
    at: datetime
    pid: int
    proc_start: float


@dataclass(frozen=True)
class Output:
    row_id: int
    stream: int  # 1 stdout, 2 stderr
    data: str


@dataclass(frozen=True)
class Progress:
    row_id: int
    value: float


@dataclass(frozen=True)
class Finished:
    row_id: int
    at: datetime
    exit_code: int | None
    cpu_time_sec: float = 0.0
    peak_memory_mb: int = 0
    wall_time_sec: float = 0.0
    error: str | None = None
    cancelled: bool = False
    # the attempt never got a fair run (server stopping, executor lost): requeue for free
    interrupted: bool = False
    extra: dict[str, str] = field(default_factory=dict)
    # "bucket/key" of each result object uploaded when the attempt ended
    results: tuple[str, ...] = ()
    # the attempt's share of the energy RAPL measured over its run (J); None: not measured
    # (the server estimates it from the CPU time, domain/accounting.py)
    energy_j: float | None = None


@dataclass(frozen=True)
class Transfer:
    """Progress of the download of resources (before the command) or of the upload of
    results (after it: the instance is then UploadingResults)."""

    row_id: int
    phase: str  # "download" or "upload"
    progress: float


@dataclass(frozen=True)
class SnapshotDone:
    """One instance's part of a snapshot has been uploaded (or has failed)."""

    row_id: int
    snapshot_id: str
    size: int
    objects: int
    error: str | None = None


@dataclass(frozen=True)
class Ready:
    """A pool slot is prepared (resources synced, preparation task done) and idle."""

    row_id: int
    at: datetime


InstanceEvent = Started | Output | Progress | Transfer | SnapshotDone | Ready | Finished
EventSink = Callable[[InstanceEvent], None]


@dataclass(frozen=True)
class Leftover:
    """An instance recorded as active when the server (re)started."""

    row_id: int
    pid: int | None
    proc_start: float | None
    attempts: int = 0
    cores: float = 1
    # a pool slot: its preparation ended long ago, it was only holding; it starts again
    hold: bool = False


class Executor(Protocol):
    """Runs instance attempts and reports their events through the sink it was built with."""

    @property
    def total_cores(self) -> int: ...

    def free_cores(self) -> float: ...

    def start(self, job: InstanceJob) -> None: ...

    def abort(self, row_ids: list[int]) -> None: ...

    def refresh(self, row_ids: list[int]) -> None:
        """Running instances fetch their resources' new or changed objects."""
        ...

    def snapshot(self, row_ids: list[int], snapshot_id: str, target: Upload) -> None:
        """Running instances upload their result files now; each reports SnapshotDone."""
        ...

    def adopt(self, leftovers: list[Leftover]) -> list[Leftover]:
        """At start: take over instances a previous server left running that are still
        running (on a cluster); returns the others, which the engine stops or requeues."""
        ...

    def stop(self, grace_seconds: float) -> None: ...


@dataclass(frozen=True)
class ActiveForward:
    """A port of a running instance reachable at forwarder_host:forwarder_port."""

    application_port: int
    forwarder_port: int
    forwarder_host: str
    bind_address: str


class Forwards(Protocol):
    """Forwarders of running instances' ports: opened by the executor when an instance
    starts, closed when it ends; read by the API (activeForwards)."""

    def open(self, job: InstanceJob, target_host: str) -> list[ActiveForward]: ...

    def close(self, row_id: int) -> None: ...

    def active(self, task_uuid: str) -> dict[int, list[ActiveForward]]:
        """The open forwards of a task's (or pool slot task's) instances, by instance id."""


class EnergyMeter(Protocol):
    """The machine's energy counters (RAPL), read before and after each attempt."""

    def sample(self) -> EnergySample | None:
        """None when the counters cannot be read now."""
        ...


class Clock(Protocol):
    def __call__(self) -> datetime: ...


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str


class ObjectAccess(Protocol):
    """A user's buckets as the instance runner reaches them: in process on the server, or over
    the S3 gateway from a worker elsewhere."""

    def exists(self, user_id: int, bucket: str) -> bool: ...

    def list(self, user_id: int, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, in key order."""
        ...

    def read(self, user_id: int, bucket: str, key: str) -> Iterator[bytes]: ...

    def write(self, user_id: int, bucket: str, key: str, path: Path) -> int:
        """Store the file at ``path`` as ``key``, creating the bucket when it is missing;
        returns the bytes stored."""
        ...

    def delete(self, user_id: int, bucket: str, keys: Iterable[str]) -> None: ...
