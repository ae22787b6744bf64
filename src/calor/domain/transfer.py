"""What moves between buckets and an instance's TASK_PATH (contract §9.3), read from a task.

Inputs are resource buckets, each optionally narrowed to a key prefix, with a prefix stripped
from the keys on the way in. Outputs are the files an instance created or changed, narrowed by
a whitelist and a blacklist (regular expressions searched in the path relative to TASK_PATH,
with "/" separators), uploaded to the result bucket under an optional prefix.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from calor.domain.errors import BadRequest


@dataclass(frozen=True)
class ResourceSource:
    bucket: str
    prefix: str = ""  # only keys under it are copied
    strip_prefix: str = ""  # removed from the start of each key to make the file's path


@dataclass(frozen=True)
class FileFilter:
    whitelist: str | None = None
    blacklist: str | None = None

    def wanted(self, path: str) -> bool:
        if self.whitelist and not re.search(self.whitelist, path):
            return False
        return not (self.blacklist and re.search(self.blacklist, path))


@dataclass(frozen=True)
class Upload:
    """Where a set of files goes: a bucket, a key prefix, and which files."""

    bucket: str
    prefix: str = ""
    filter: FileFilter = field(default_factory=FileFilter)


@dataclass(frozen=True)
class Transfers:
    resources: tuple[ResourceSource, ...] = ()
    results: Upload | None = None
    upload_results_on_cancellation: bool = False
    snapshot_filter: FileFilter = field(default_factory=FileFilter)


@dataclass(frozen=True)
class SnapshotRecord:
    id: str
    task_uuid: str
    trigger_date: datetime
    last_update: datetime
    config: dict[str, Any]
    status: str
    size_to_upload: int
    transferred_size: int
    error: str | None


@dataclass(frozen=True)
class SnapshotPlan:
    """A snapshot to carry out: which running instances upload where."""

    snapshot_id: str
    row_ids: list[int]
    target: Upload


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _nested(entry: Mapping[str, Any], outer: str, inner: str) -> str:
    """``entry[outer][inner]["prefix"]`` with any key case, "" when absent or not a string."""

    def get(obj: Any, name: str) -> Any:
        if not isinstance(obj, Mapping):
            return None
        for key, value in obj.items():
            if isinstance(key, str) and key.lower() == name.lower():
                return value
        return None

    return _text(get(get(get(entry, outer), inner), "prefix"))


def resource_sources(document: Mapping[str, Any]) -> tuple[ResourceSource, ...]:
    """Both input forms, merged as the SDK merges them (duplicates kept: same files twice)."""
    sources: list[ResourceSource] = []
    for entry in document.get("advancedResourceBuckets") or []:
        if not isinstance(entry, Mapping):
            continue
        name = _text(entry.get("bucketName") or entry.get("BucketName"))
        if name:
            sources.append(
                ResourceSource(
                    name,
                    _nested(entry, "filtering", "prefixFiltering"),
                    _nested(entry, "resourcesTransformation", "stripPrefix"),
                )
            )
    sources.extend(ResourceSource(n) for n in document.get("resourceBuckets") or [] if n)
    return tuple(sources)


def transfers(document: Mapping[str, Any], result_bucket: str | None) -> Transfers:
    results = None
    if result_bucket:
        results = Upload(
            result_bucket,
            _text(document.get("resultsBucketPrefix")),
            FileFilter(document.get("resultsWhitelist"), document.get("resultsBlacklist")),
        )
    return Transfers(
        resources=resource_sources(document),
        results=results,
        upload_results_on_cancellation=bool(document.get("uploadResultsOnCancellation")),
        snapshot_filter=FileFilter(
            document.get("snapshotWhitelist"), document.get("snapshotBlacklist")
        ),
    )


def check_patterns(named: Iterable[tuple[str, str | None]]) -> None:
    """A white- or blacklist that is not a valid regular expression is the caller's error."""
    for name, pattern in named:
        if pattern is None:
            continue
        try:
            re.compile(pattern)
        except re.error as exc:
            raise BadRequest(f"{name} is not a valid regular expression: {exc}") from None


def destination(key: str, source: ResourceSource) -> str | None:
    """The path under TASK_PATH of a resource object, or None when it makes no file (a
    directory marker, or a key that is nothing but the stripped prefix)."""
    if source.strip_prefix and key.startswith(source.strip_prefix):
        key = key[len(source.strip_prefix) :]
    key = key.lstrip("/")
    if not key or key.endswith("/"):
        return None
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None  # the gateway refuses such keys; an external store might still hold one
    return "/".join(parts)


def snapshot_target(
    request: Mapping[str, Any], document: Mapping[str, Any], result_bucket: str | None
) -> Upload:
    """Where a snapshot goes: the request's bucket, prefix and filters, else the task's."""
    bucket = _text(request.get("bucket")) or result_bucket
    if not bucket:
        raise BadRequest("the task has no resultBucket and the snapshot names no bucket")
    whitelist = request.get("whitelist") or document.get("snapshotWhitelist")
    blacklist = request.get("blacklist") or document.get("snapshotBlacklist")
    check_patterns([("whitelist", whitelist), ("blacklist", blacklist)])
    return Upload(bucket, _text(request.get("bucketPrefix")), FileFilter(whitelist, blacklist))


def snapshot_config(request: Mapping[str, Any]) -> dict[str, str | None]:
    """The request's snapshot settings as GET /tasks/{uuid}/snapshot/{id} reports them."""
    return {
        name: (request.get(name) if isinstance(request.get(name), str) else None)
        for name in ("whitelist", "blacklist", "bucket", "bucketPrefix")
    }
