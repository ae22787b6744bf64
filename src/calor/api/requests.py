"""Request bodies: read leniently (case-insensitive keys, unknown keys ignored), validated
strictly (a wrong type or value is a 400 that names the field).
"""

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from calor.domain.errors import BadRequest


def _alias(name: str) -> str:
    return name.replace("_", "")


def lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k).lower(): v for k, v in value.items()}
    return value


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=_alias, populate_by_name=False)

    @model_validator(mode="before")
    @classmethod
    def _case_insensitive(cls, value: Any) -> Any:
        return lower_keys(value)


def check_tags(tags: list[str] | None) -> list[str] | None:
    for tag in tags or []:
        if not tag or len(tag) > 255:
            raise ValueError("each tag must be 1 to 255 characters long")
    return tags


class KeyValue(Lenient):
    key: str = Field(min_length=1, max_length=1024)
    value: str | None = Field(default="", max_length=1_000_000)

    @field_validator("value", mode="before")
    @classmethod
    def _scalar_to_text(cls, v: Any) -> Any:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return str(v)
        return v


class RetrySettings(Lenient):
    max_total_retries: int | None = Field(default=None, ge=0, le=1_000_000)
    max_per_instance_retries: int | None = Field(default=None, ge=0, le=1_000_000)


class TaskBody(Lenient):
    name: str = Field(min_length=1, max_length=255)
    shortname: str | None = Field(default=None, min_length=1, max_length=255)
    profile: str | None = Field(default=None, max_length=128)
    pool_uuid: str | None = Field(default=None, max_length=64)
    job_uuid: str | None = Field(default=None, max_length=64)
    project_uuid: str | None = Field(default=None, max_length=64)
    instance_count: int | None = None
    advanced_ranges: str | None = Field(default=None, max_length=100_000)
    constants: list[KeyValue] | None = Field(default=None, max_length=10_000)
    constraints: list[KeyValue] | None = Field(default=None, max_length=1000)
    forced_constants: list[dict[str, Any]] | None = Field(default=None, max_length=1000)
    labels: dict[str, str] | None = None
    tags: list[str] | None = Field(default=None, max_length=1000)
    dependencies: dict[str, Any] | None = None
    advanced_resource_buckets: list[dict[str, Any]] | None = Field(default=None, max_length=1000)
    resource_buckets: list[str] | None = Field(default=None, max_length=1000)
    result_bucket: str | None = Field(default=None, max_length=255)
    results_cache_ttl_sec: int | None = None
    snapshot_whitelist: str | None = None
    snapshot_blacklist: str | None = None
    results_whitelist: str | None = None
    results_blacklist: str | None = None
    auto_delete_on_completion: bool | None = None
    completion_time_to_live: str | None = Field(default=None, max_length=64)
    wait_for_pool_resources_synchronization: bool | None = None
    upload_results_on_cancellation: bool | None = None
    hardware_constraints: list[dict[str, Any]] | None = Field(default=None, max_length=100)
    default_resources_cache_ttl_sec: int | None = None
    privileges: dict[str, Any] | None = None
    retry_settings: RetrySettings | None = None
    max_retries_per_instance: int | None = Field(default=None, ge=0, le=1_000_000)
    max_time_queue_seconds: int | None = Field(default=None, ge=0)
    scheduling_type: str | None = None
    targeted_reserved_machine_key: str | None = None
    targeted_reservation_name: str | None = None
    forced_network_rules: list[dict[str, Any]] | None = Field(default=None, max_length=1000)
    secrets_access_rights: dict[str, Any] | None = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str] | None) -> list[str] | None:
        return check_tags(tags)

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str] | None) -> dict[str, str] | None:
        if labels is not None and len(labels) > 1000:
            raise ValueError("at most 1000 labels")
        return labels


class JobBody(Lenient):
    name: str = Field(min_length=1, max_length=255)
    shortname: str | None = Field(default=None, min_length=1, max_length=255)
    pool_uuid: str | None = Field(default=None, max_length=64)
    # the SDK sends "" on create; the server decides the state
    state: str | None = None
    tags: list[str] | None = Field(default=None, max_length=1000)
    use_dependencies: bool | None = None
    max_wall_time: str | None = Field(default=None, max_length=64)
    auto_delete_on_completion: bool | None = None
    completion_time_to_live: str | None = Field(default=None, max_length=64)
    labels: dict[str, str] | None = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str] | None) -> list[str] | None:
        return check_tags(tags)


class PoolBody(Lenient):
    name: str = Field(min_length=1, max_length=255)
    shortname: str | None = Field(default=None, min_length=1, max_length=255)
    profile: str | None = Field(default=None, max_length=128)
    constants: list[KeyValue] | None = Field(default=None, max_length=10_000)
    constraints: list[KeyValue] | None = Field(default=None, max_length=1000)
    forced_constants: list[dict[str, Any]] | None = Field(default=None, max_length=1000)
    instance_count: int | None = None
    tags: list[str] | None = Field(default=None, max_length=1000)
    preparation_task: dict[str, Any] | None = None
    elastic_property: dict[str, Any] | None = None
    task_default_wait_for_pool_resources_synchronization: bool | None = None
    labels: dict[str, str] | None = None
    advanced_resource_buckets: list[dict[str, Any]] | None = Field(default=None, max_length=1000)
    resource_buckets: list[str] | None = Field(default=None, max_length=1000)
    auto_delete_on_completion: bool | None = None
    completion_time_to_live: str | None = Field(default=None, max_length=64)
    hardware_constraints: list[dict[str, Any]] | None = Field(default=None, max_length=100)
    default_resources_cache_ttl_sec: int | None = None
    privileges: dict[str, Any] | None = None
    default_retry_settings: RetrySettings | None = None
    forced_network_rules: list[dict[str, Any]] | None = Field(default=None, max_length=1000)
    max_time_queue_seconds: int | None = Field(default=None, ge=0)
    scheduling_type: str | None = None
    targeted_reserved_machine_key: str | None = None
    targeted_reservation_name: str | None = None
    secrets_access_rights: dict[str, Any] | None = None
    multi_slots_settings: dict[str, Any] | None = None
    project_uuid: str | None = Field(default=None, max_length=64)
    scaling: dict[str, Any] | None = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str] | None) -> list[str] | None:
        return check_tags(tags)


class PageBody(Lenient):
    token: str | None = None
    filter: dict[str, Any] | None = None
    maximum_results: int | None = None
    # the node SDK's OrderBy / OrderType: pages go by creation, oldest or newest first
    order_by: str | None = Field(default=None, max_length=64)
    order_type: str | None = Field(default=None, max_length=16)

    def descending(self) -> bool:
        if self.order_by is not None and self.order_by.lower() not in ("creationdate", "id", ""):
            raise BadRequest(f"orderBy {self.order_by!r} is not supported; use CreationDate")
        kind = (self.order_type or "asc").lower()
        if kind not in ("asc", "desc", "ascending", "descending"):
            raise BadRequest(f"orderType must be Asc or Desc, not {self.order_type!r}")
        return kind.startswith("desc")


class SearchBody(Lenient):
    filter: dict[str, Any] | None = None
    select: dict[str, Any] | list[str] | None = None
    maximum_results: int | None = None

    def fields(self) -> list[str] | None:
        """The fields ``select`` keeps (``["a"]`` or ``{"fields": ["a"]}``); None: all."""
        if isinstance(self.select, list):
            return [str(f) for f in self.select]
        if isinstance(self.select, dict):
            raw = {str(k).lower(): v for k, v in self.select.items()}.get("fields")
            if raw is not None and not isinstance(raw, list):
                raise BadRequest("select.fields must be an array of field names")
            return [str(f) for f in raw] if raw else None
        return None


_WIRE_NAMES = {"resultscachettlsec": "ResultsCacheTTLSec"}


def _wire_name(alias: str) -> str:
    """The camelCase key a client sent, for messages (aliases are lower case)."""
    if alias in _WIRE_NAMES:
        return _WIRE_NAMES[alias]
    for model in (TaskBody, JobBody, PoolBody, RetrySettings, KeyValue, PageBody, SearchBody):
        for name in model.model_fields:
            if _alias(name) == alias:
                head, *rest = name.split("_")
                return head + "".join(w.capitalize() for w in rest)
    return alias


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + _wire_name(part)
    return out or "body"


def validation_message(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = _location(tuple(err["loc"]))
        parts.append(f"{prefix}{where}: {err['msg']}")
    return "; ".join(parts)


M = TypeVar("M", bound=BaseModel)


def _nul_at(value: Any) -> tuple[int | str, ...] | None:
    """Where a string holds a NUL character (PostgreSQL text cannot store one), if anywhere."""
    stack: list[tuple[tuple[int | str, ...], Any]] = [((), value)]
    while stack:
        loc, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return loc
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in str(key):
                    return (*loc, str(key))
                stack.append(((*loc, str(key).lower()), child))
        elif isinstance(item, list):
            stack.extend(((*loc, i), child) for i, child in enumerate(item))
    return None


def parse(model: type[M], raw: Any, prefix: str = "") -> M:
    if not isinstance(raw, dict):
        raise BadRequest(f"{prefix or 'the body'} must be a JSON object")
    nul = _nul_at(raw)
    if nul is not None:
        where = prefix + _location(nul).replace("\x00", "\\0")
        raise BadRequest(f"{where} contains a NUL character (\\u0000); remove it")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise BadRequest(validation_message(exc, prefix)) from None
