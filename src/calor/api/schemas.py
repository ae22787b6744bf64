"""The Qarnot wire format, in one place: request bodies to domain specs, records to JSON.

Rules that keep the official SDK alive (contract §3.2): never null for creationDate, errors,
constants, completedInstances, privileges, retrySettings, secretsAccessRights,
hardwareConstraints, forcedNetworkRules or resultsCount; status carries both by-CPU-model
arrays; dates have at most 6 fractional digits and a Z.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from calor.api.requests import JobBody, PoolBody, TaskBody
from calor.api.wire import fmt_date, fmt_timespan, parse_timespan
from calor.domain.accounting import CarbonFacts
from calor.domain.command import check_command
from calor.domain.dependencies import parse_dependencies, to_wire
from calor.domain.errors import BadRequest
from calor.domain.hardware import requirements, whole_cores
from calor.domain.job import JobRecord, JobSpec
from calor.domain.pool import PoolRecord, PoolSpec, elastic_policy, parse_policies
from calor.domain.ports import ActiveForward
from calor.domain.profiles import PROFILES
from calor.domain.ranges import format_ranges, parse_ranges
from calor.domain.secrets import mask_constants, parse_grant
from calor.domain.states import (
    ACTIVE_INSTANCE_STATES,
    FINAL_INSTANCE_STATES,
    InstanceState,
)
from calor.domain.task import InstanceRecord, TaskRecord, TaskSpec, derive
from calor.domain.transfer import SnapshotRecord
from calor.domain.users import User
from calor.services.accounting import Budget, project_uuid

DEFAULT_PROFILE = "docker-batch"
ERROR_CODE = "CALOR-INSTANCE"


def task_spec(body: TaskBody, max_instances: int) -> TaskSpec:
    """Validate a create body into a spec; every rejection says what to fix."""
    # a task on a pool takes the pool's profile (checked when the pool is)
    profile = body.profile or DEFAULT_PROFILE
    if profile not in PROFILES:
        known = ", ".join(sorted(PROFILES))
        raise BadRequest(f"profile {profile!r} does not exist; use one of: {known}")
    if body.advanced_ranges:
        ids = parse_ranges(body.advanced_ranges, max_instances)
        ranges: str | None = format_ranges(ids)
    else:
        if body.instance_count is None:
            raise BadRequest("instanceCount is required (or advancedRanges such as '0-5,10')")
        if body.instance_count < 1:
            raise BadRequest(f"instanceCount must be at least 1, not {body.instance_count}")
        if body.instance_count > max_instances:
            raise BadRequest(f"instanceCount must be at most {max_instances}")
        ids = list(range(body.instance_count))
        ranges = None
    ttl = _timespan("completionTimeToLive", body.completion_time_to_live) or 0.0
    dependencies = parse_dependencies(body.dependencies)
    hardware = body.hardware_constraints or []
    retry = body.retry_settings
    per_instance = retry.max_per_instance_retries if retry else None
    if per_instance is None:
        per_instance = body.max_retries_per_instance
    total = retry.max_total_retries if retry else None
    constants = [(c.key, c.value or "") for c in body.constants or []]
    _check_commands(constants)
    document: dict[str, Any] = {
        "constants": [{"key": k, "value": v} for k, v in constants],
        "constraints": [{"key": c.key, "value": c.value or ""} for c in body.constraints or []],
        "forcedConstants": body.forced_constants or [],
        "labels": body.labels or {},
        "tags": list(dict.fromkeys(body.tags or [])),
        "advancedResourceBuckets": body.advanced_resource_buckets or [],
        "resourceBuckets": body.resource_buckets or [],
        "resultsCacheTTLSec": body.results_cache_ttl_sec,
        "snapshotWhitelist": body.snapshot_whitelist,
        "snapshotBlacklist": body.snapshot_blacklist,
        "resultsWhitelist": body.results_whitelist,
        "resultsBlacklist": body.results_blacklist,
        "autoDeleteOnCompletion": bool(body.auto_delete_on_completion),
        "completionTimeToLive": body.completion_time_to_live or "00:00:00",
        "waitForPoolResourcesSynchronization": body.wait_for_pool_resources_synchronization,
        "uploadResultsOnCancellation": body.upload_results_on_cancellation,
        "hardwareConstraints": hardware,
        "defaultResourcesCacheTTLSec": body.default_resources_cache_ttl_sec,
        "privileges": body.privileges or {"exportApiAndStorageCredentialsInEnvironment": False},
        "retrySettings": {"maxTotalRetries": total, "maxPerInstanceRetries": per_instance},
        "maxRetriesPerInstance": per_instance or 0,
        "maxTimeQueueSeconds": body.max_time_queue_seconds,
        "schedulingType": body.scheduling_type or "Flex",
        "targetedReservedMachineKey": body.targeted_reserved_machine_key,
        "targetedReservationName": body.targeted_reservation_name,
        "forcedNetworkRules": body.forced_network_rules or [],
        "secretsAccessRights": parse_grant(body.secrets_access_rights).to_wire(),
    }
    return TaskSpec(
        name=body.name,
        shortname=body.shortname,
        profile=profile,
        instance_ids=tuple(ids),
        advanced_ranges=ranges,
        constants=tuple(constants),
        tags=tuple(document["tags"]),
        cores=requirements(hardware).cores,
        max_per_instance_retries=per_instance,
        max_total_retries=total,
        job_uuid=body.job_uuid,
        pool_uuid=body.pool_uuid,
        project_uuid=body.project_uuid,
        result_bucket=body.result_bucket,
        document=document,
        dependencies=dependencies,
        max_queue_sec=body.max_time_queue_seconds or None,
        completion_ttl_sec=ttl if body.auto_delete_on_completion else None,
    )


def _check_commands(constants: Iterable[tuple[str, str]]) -> None:
    """A DOCKER_CMD that cannot be split into words is a 400 now, not a failed instance."""
    for key, value in constants:
        if key == "DOCKER_CMD":
            check_command(value)


def _timespan(name: str, text: str | None) -> float | None:
    """A ``[d.]hh:mm:ss`` field in seconds (None when absent); a 400 says the format."""
    if text is None or text == "":
        return None
    try:
        return parse_timespan(text)
    except ValueError:
        raise BadRequest(f"{name} {text!r} must look like hh:mm:ss or d.hh:mm:ss") from None


def job_spec(body: JobBody) -> JobSpec:
    wall = _timespan("maxWallTime", body.max_wall_time)
    ttl = _timespan("completionTimeToLive", body.completion_time_to_live)
    return JobSpec(
        name=body.name,
        shortname=body.shortname,
        pool_uuid=body.pool_uuid,
        tags=tuple(dict.fromkeys(body.tags or [])),
        use_dependencies=bool(body.use_dependencies),
        max_wall_time_sec=wall or None,
        auto_delete=bool(body.auto_delete_on_completion),
        completion_ttl_sec=ttl or 0.0,
        document={
            "maxWallTime": fmt_timespan(wall) if wall else None,
            "autoDeleteOnCompletion": bool(body.auto_delete_on_completion),
            "completionTimeToLive": fmt_timespan(ttl or 0.0),
            "labels": body.labels or {},
        },
    )


def job_json(j: JobRecord) -> dict[str, Any]:
    """Contract §6; maxWallTime without fractions (the SDK misreads them)."""
    return {
        "uuid": j.uuid,
        "name": j.name,
        "shortname": j.shortname,
        "poolUuid": j.pool_uuid,
        "state": j.state.value,
        "previousState": j.previous_state.value,
        "stateTransitionTime": fmt_date(j.state_transition_time),
        "previousStateTransitionTime": fmt_date(j.previous_state_transition_time),
        "creationDate": fmt_date(j.creation_date),
        "lastModified": fmt_date(j.last_modified),
        "endDate": fmt_date(j.end_date),
        "useDependencies": j.use_dependencies,
        "tags": j.tags,
        **j.document,
    }


# -- responses --------------------------------------------------------------------------------


class HostFacts:
    """What the API reports about the machine that runs instances."""

    def __init__(
        self,
        cpu_model: str,
        ghz: float,
        forwards: Callable[[str], dict[int, list[ActiveForward]]] | None = None,
    ) -> None:
        self.cpu_model = cpu_model
        self.ghz = ghz
        # the open forwards of a task's instances, by instance id (domain/ports.Forwards)
        self.forwards = forwards


def forward_json(f: ActiveForward) -> dict[str, Any]:
    return {
        "applicationPort": f.application_port,
        "forwarderPort": f.forwarder_port,
        "forwarderHost": f.forwarder_host,
        "bindAddress": f.bind_address,
    }


def _error(inst: InstanceRecord) -> dict[str, str]:
    return {
        "code": ERROR_CODE,
        "message": f"instance {inst.instance_id}: {inst.error}",
        "debug": f"attempts: {inst.attempts}, exit code: {inst.exit_code}",
    }


def _completer(cores: float, host: HostFacts) -> Callable[[InstanceRecord], dict[str, Any]]:
    """completedInstances[] of a task, one instance at a time: made 10^5 times for a big
    task, so what every instance of the task shares is computed once."""
    ghz, model, core_count = host.ghz, host.cpu_model, whole_cores(cores)
    success = InstanceState.SUCCESS

    def completed(inst: InstanceRecord) -> dict[str, Any]:
        cpu = inst.cpu_time_sec
        return {
            "instanceId": inst.instance_id,
            "state": inst.state.value,
            "wallTimeSec": round(inst.wall_time_sec, 3),
            "execTimeSec": round(cpu, 3),
            "execTimeSecGHz": round(cpu * ghz, 3),
            "peakMemoryMB": inst.peak_memory_mb,
            "averageGHz": ghz,
            "cpuModel": model,
            "coreCount": core_count,
            "clockRatio": 1.0,
            "executionAttemptCount": inst.attempts,
            "error": _error(inst) if inst.error and inst.state is not success else None,
            "results": [f"s3://{name}" for name in inst.results] if inst.results else [],
        }

    return completed


_PHASES = {
    InstanceState.DISPATCHED: "download",
    InstanceState.EXECUTING: "execution",
    InstanceState.UPLOADING: "upload",
}


@dataclass
class _Scan:
    """What a task's (or pool's) JSON needs of its instances, gathered in one pass: a big
    task's JSON reads each of its 10^5 instances once."""

    succeeded: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    executed: list[int] = field(default_factory=list)
    started: list[int] = field(default_factory=list)
    running: list[InstanceRecord] = field(default_factory=list)
    final: list[InstanceRecord] = field(default_factory=list)
    errors: list[InstanceRecord] = field(default_factory=list)
    # of download and upload progress, each instance counting 0-100
    downloaded: float = 0.0
    uploaded: float = 0.0
    count: int = 0


def _scan(instances: Iterable[InstanceRecord]) -> _Scan:
    out = _Scan()
    for i in instances:
        out.count += 1
        state = i.state
        if i.attempts > 0:
            out.started.append(i.instance_id)
        if state in FINAL_INSTANCE_STATES:
            out.executed.append(i.instance_id)
            out.final.append(i)
            out.downloaded += 100.0
            out.uploaded += 100.0
            if state is InstanceState.SUCCESS:
                out.succeeded.append(i.instance_id)
            elif state is InstanceState.FAILURE:
                out.failed.append(i.instance_id)
                if i.error:
                    out.errors.append(i)
        elif state in ACTIVE_INSTANCE_STATES:
            out.running.append(i)
            if state is InstanceState.DISPATCHED:
                out.downloaded += i.transfer_progress
            else:
                out.downloaded += 100.0
                if state is InstanceState.UPLOADING:
                    out.uploaded += i.transfer_progress
    return out


def _mean(total: float, count: int) -> float:
    return round(total / count, 2) if count else 0.0


def _status(
    t: TaskRecord,
    now: datetime,
    host: HostFacts,
    exec_sec: float,
    wall_sec: float,
    scan: _Scan,
) -> dict[str, Any]:
    succeeded, failed, executed, started = scan.succeeded, scan.failed, scan.executed, scan.started
    running = scan.running
    forwards = host.forwards(t.uuid) if host.forwards is not None and running else {}
    per_running: list[dict[str, Any]] = [
        {
            "phase": _PHASES.get(i.state, "environment"),
            "instanceId": i.instance_id,
            "coreCount": whole_cores(t.cores),
            "maxFrequencyGHz": host.ghz,
            "currentFrequencyGHz": host.ghz,
            "cpuUsage": 0.0,
            "maxMemoryMB": 0,
            "currentMemoryMB": 0,
            "memoryUsage": 0.0,
            "networkInKbps": 0.0,
            "networkOutKbps": 0.0,
            "progress": i.progress,
            "executionTimeSec": (now - i.started_at).total_seconds() if i.started_at else 0.0,
            "executionTimeGHz": 0.0,
            "cpuModel": host.cpu_model,
            "clockRatio": 1.0,
            "executionAttemptCount": i.attempts,
            "activeForwards": [forward_json(f) for f in forwards.get(i.instance_id, [])],
            "vpnConnections": [],
        }
        for i in running
    ]
    stamp = fmt_date(now)
    return {
        "timestamp": stamp,
        "lastUpdateTimestamp": fmt_date(t.last_modified),
        "downloadProgress": _mean(scan.downloaded, scan.count),
        "executionProgress": t.progress,
        "uploadProgress": _mean(scan.uploaded, scan.count),
        "instanceCount": len(running),
        "downloadTime": "00:00:00",
        "downloadTimeSec": 0.0,
        "environmentTime": "00:00:00",
        "environmentTimeSec": 0.0,
        "executionTime": fmt_timespan(exec_sec),
        "executionTimeSec": round(exec_sec, 3),
        "uploadTime": "00:00:00",
        "uploadTimeSec": 0.0,
        "wallTime": fmt_timespan(wall_sec),
        "wallTimeSec": round(wall_sec, 3),
        "succeededRange": format_ranges(succeeded),
        "executedRange": format_ranges(executed),
        "failedRange": format_ranges(failed),
        "startedOnceRange": format_ranges(started),
        "executionTimeByCpuModel": [
            {"model": host.cpu_model, "time": round(exec_sec, 3), "core": whole_cores(t.cores)}
        ],
        "executionTimeGhzByCpuModel": [
            {
                "model": host.cpu_model,
                "timeGhz": round(exec_sec * host.ghz, 3),
                "clockRatio": 1.0,
                "core": whole_cores(t.cores),
            }
        ],
        "runningInstancesInfo": {
            "timestamp": stamp,
            "averageFrequencyGHz": host.ghz,
            "maxFrequencyGHz": host.ghz,
            "minFrequencyGHz": host.ghz,
            "averageMaxFrequencyGHz": host.ghz,
            "averageCpuUsage": 0.0,
            "clusterPowerIndicator": 1.0,
            "averageMemoryUsage": 0.0,
            "averageNetworkInKbps": 0.0,
            "averageNetworkOutKbps": 0.0,
            "totalNetworkInKbps": 0.0,
            "totalNetworkOutKbps": 0.0,
            "snapshotResults": [],
            "runningCoreCountByCpuModel": [
                {
                    "model": host.cpu_model,
                    "core": whole_cores(len(running) * t.cores),
                    "runningCoreCount": whole_cores(len(running) * t.cores),
                }
            ],
            "perRunningInstanceInfo": per_running,
        },
    }


def task_summary(t: TaskRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "uuid": t.uuid,
        "name": t.name,
        "shortname": t.shortname,
        "profile": t.profile,
        "poolUuid": t.pool_uuid,
        "jobUuid": t.job_uuid,
        "progress": t.progress,
        "runningInstanceCount": t.running_instance_count,
        "runningCoreCount": t.running_core_count,
        "executionTime": fmt_timespan(t.execution_time_sec),
        "wallTime": fmt_timespan(t.wall_time_sec),
        "state": t.state.value,
        "previousState": t.previous_state.value,
        "instanceCount": t.instance_count,
        "maxRetriesPerInstance": t.document.get("maxRetriesPerInstance", 0),
        "stateTransitionTime": fmt_date(t.state_transition_time),
        "previousStateTransitionTime": fmt_date(t.previous_state_transition_time),
        "lastModified": fmt_date(t.last_modified),
        "creationDate": fmt_date(t.creation_date),
        "endDate": fmt_date(t.end_date),
        "waitForPoolResourcesSynchronization": t.document.get(
            "waitForPoolResourcesSynchronization"
        ),
    }
    if t.advanced_ranges:
        out["advancedRanges"] = t.advanced_ranges
    return out


_ECHOED = (
    "constants",
    "constraints",
    "forcedConstants",
    "labels",
    "advancedResourceBuckets",
    "resourceBuckets",
    "snapshotWhitelist",
    "snapshotBlacklist",
    "resultsWhitelist",
    "resultsBlacklist",
    "autoDeleteOnCompletion",
    "completionTimeToLive",
    "uploadResultsOnCancellation",
    "hardwareConstraints",
    "defaultResourcesCacheTTLSec",
    "privileges",
    "retrySettings",
    "maxTimeQueueSeconds",
    "schedulingType",
    "targetedReservedMachineKey",
    "targetedReservationName",
    "forcedNetworkRules",
    "secretsAccessRights",
)


def task_full(t: TaskRecord, now: datetime, host: HostFacts) -> dict[str, Any]:
    out, completed = task_full_streamed(t, now, host)
    out["completedInstances"] = list(completed)
    return out


def task_full_streamed(
    t: TaskRecord, now: datetime, host: HostFacts
) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """The full task but its completedInstances, and those one at a time: a task of 10^5
    instances is answered without holding 10^5 of them as JSON objects at once."""
    out = task_summary(t)
    if t.state.value in ("Success", "Failure", "Cancelled") or not t.instances:
        exec_sec, wall_sec, progress = t.execution_time_sec, t.wall_time_sec, t.progress
    else:
        live = derive(t.instances, t.cores, False, now)
        exec_sec, wall_sec, progress = live.execution_time_sec, live.wall_time_sec, live.progress
    out["executionTime"] = fmt_timespan(exec_sec)
    out["wallTime"] = fmt_timespan(wall_sec)
    out["progress"] = progress
    out["projectUuid"] = t.project_uuid
    out["resultBucket"] = t.result_bucket
    out["resultsCount"] = t.results_count
    out["snapshotInterval"] = t.snapshot_interval
    out["tags"] = t.tags
    for key in _ECHOED:
        out[key] = t.document.get(key)
    out["constants"] = mask_constants(out["constants"])
    out["dependencies"] = (
        to_wire(t.dependencies, t.dependency_state)
        if t.dependency_state
        else {"dependsOn": [], "advancedDependsOn": [], "state": None}
    )
    if t.document.get("resultsCacheTTLSec") is not None:
        out["ResultsCacheTTLSec"] = t.document["resultsCacheTTLSec"]
    scan = _scan(t.instances)
    out["errors"] = [*t.errors, *(_error(i) for i in scan.errors[:100])]
    out["status"] = _status(t, now, host, exec_sec, wall_sec, scan)
    return out, map(_completer(t.cores, host), scan.final)


def select_fields(full: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """``select`` of /tasks/search: keep the named fields (PascalCase or camelCase)."""
    wanted = {f.lower() for f in fields}
    return {k: v for k, v in full.items() if k.lower() in wanted}


def snapshot_json(s: SnapshotRecord) -> dict[str, Any]:
    return {
        "id": s.id,
        "taskUuid": s.task_uuid,
        "triggerDate": fmt_date(s.trigger_date),
        "lastUpdateDate": fmt_date(s.last_update),
        "snapshotConfig": s.config,
        "status": s.status,
        "sizeToUpload": s.size_to_upload,
        "transferredSize": s.transferred_size,
    }


# -- pools (contract §5) --------------------------------------------------------------------

DEFAULT_ELASTIC = {
    "isElastic": False,
    "minTotalSlots": 0,
    "maxTotalSlots": 0,
    "minIdleSlots": 0,
    "resizePeriod": 90,
    "rampResizeFactor": 1.0,
    "minIdleTimeSeconds": 0,
}


def pool_spec(body: PoolBody, max_slots: int) -> PoolSpec:
    """Validate a pool body; every rejection says what to fix."""
    profile = body.profile or DEFAULT_PROFILE
    if profile not in PROFILES:
        known = ", ".join(sorted(PROFILES))
        raise BadRequest(f"profile {profile!r} does not exist; use one of: {known}")
    count = body.instance_count if body.instance_count is not None else 1
    multi = {str(k).lower(): v for k, v in (body.multi_slots_settings or {}).items()}
    per_node = multi.get("slotspernode")
    per_node = 1 if per_node is None else per_node
    if isinstance(per_node, bool) or not isinstance(per_node, int) or per_node < 1:
        raise BadRequest("multiSlotsSettings.slotsPerNode must be a whole number >= 1")
    if count < 0 or count * per_node > max_slots:
        raise BadRequest(f"instanceCount x slotsPerNode must be between 0 and {max_slots}")
    elastic_raw = body.elastic_property or {}
    scaling = body.scaling or {}
    policies = parse_policies(scaling.get("policies") if isinstance(scaling, dict) else None)
    elastic = elastic_policy(elastic_raw)
    ttl = _timespan("completionTimeToLive", body.completion_time_to_live) or 0.0
    hardware = body.hardware_constraints or []
    node_cores = requirements(hardware).cores
    preparation = (body.preparation_task or {}).get("commandLine")
    if preparation is not None and not isinstance(preparation, str):
        raise BadRequest("preparationTask.commandLine must be a string")
    if preparation:
        check_command(preparation, "preparationTask.commandLine")
    _check_commands((c.key, c.value or "") for c in body.constants or [])
    period = elastic_raw.get("resizePeriod") if isinstance(elastic_raw, dict) else None
    retry = body.default_retry_settings
    document: dict[str, Any] = {
        "profile": profile,
        "constants": [{"key": c.key, "value": c.value or ""} for c in body.constants or []],
        "constraints": [{"key": c.key, "value": c.value or ""} for c in body.constraints or []],
        "forcedConstants": body.forced_constants or [],
        "labels": body.labels or {},
        "instanceCount": count,
        "preparationTask": {"commandLine": preparation} if preparation else None,
        "elasticProperty": {**DEFAULT_ELASTIC, **elastic_raw},
        "taskDefaultWaitForPoolResourcesSynchronization": bool(
            body.task_default_wait_for_pool_resources_synchronization
        ),
        "advancedResourceBuckets": body.advanced_resource_buckets or [],
        "resourceBuckets": body.resource_buckets or [],
        "autoDeleteOnCompletion": bool(body.auto_delete_on_completion),
        "completionTimeToLive": body.completion_time_to_live or "00:00:00",
        "hardwareConstraints": hardware,
        "defaultResourcesCacheTTLSec": body.default_resources_cache_ttl_sec,
        "privileges": body.privileges or {"exportApiAndStorageCredentialsInEnvironment": False},
        "defaultRetrySettings": {
            "maxTotalRetries": retry.max_total_retries if retry else None,
            "maxPerInstanceRetries": retry.max_per_instance_retries if retry else None,
        },
        "forcedNetworkRules": body.forced_network_rules or [],
        "maxTimeQueueSeconds": body.max_time_queue_seconds,
        "schedulingType": body.scheduling_type or "Flex",
        "targetedReservedMachineKey": body.targeted_reserved_machine_key,
        "targetedReservationName": body.targeted_reservation_name,
        "secretsAccessRights": parse_grant(body.secrets_access_rights).to_wire(),
        "multiSlotsSettings": {"slotsPerNode": per_node},
        "projectUuid": body.project_uuid,
    }
    if scaling:
        document["scaling"] = scaling
    return PoolSpec(
        name=body.name,
        shortname=body.shortname,
        profile=profile,
        tags=tuple(dict.fromkeys(body.tags or [])),
        # the slots of a node share its cores (3 slots of a 1-core node: a third each)
        cores=node_cores / per_node,
        slots=count * per_node,
        policies=policies,
        elastic=bool(policies) or elastic is not None,
        resize_period_sec=float(period)
        if isinstance(period, (int, float)) and period > 0
        else 90.0,
        preparation=preparation,
        max_queue_sec=body.max_time_queue_seconds or None,
        completion_ttl_sec=ttl if body.auto_delete_on_completion else None,
        document=document,
    )


def pool_summary(p: PoolRecord) -> dict[str, Any]:
    return {
        "uuid": p.uuid,
        "name": p.name,
        "shortname": p.shortname,
        "profile": p.profile,
        "state": p.state.value,
        "previousState": p.previous_state.value,
        "stateTransitionTime": fmt_date(p.state_transition_time),
        "previousStateTransitionTime": fmt_date(p.previous_state_transition_time),
        "lastModified": fmt_date(p.last_modified),
        "creationDate": fmt_date(p.creation_date),
        "endDate": fmt_date(p.end_date),
        "instanceCount": p.document.get("instanceCount", 0),
        "tags": p.tags,
        "status": None,
        "runningInstanceCount": None,
        "runningCoreCount": None,
    }


def pool_full(p: PoolRecord, now: datetime, host: HostFacts) -> dict[str, Any]:
    out = {**p.document, **pool_summary(p)}
    out["constants"] = mask_constants(out.get("constants"))
    slots = p.slots
    live = [i for i in slots.instances if i.state not in FINAL_INSTANCE_STATES] if slots else []
    running = [i for i in live if i.state in ACTIVE_INSTANCE_STATES]
    if slots is not None and slots.instances:
        d = derive(slots.instances, slots.cores, False, now)
        exec_sec, wall_sec = d.execution_time_sec, d.wall_time_sec
    else:
        exec_sec = wall_sec = 0.0
    out["runningInstanceCount"] = len(running)
    out["runningCoreCount"] = whole_cores(len(running) * p.cores)
    out["executionTime"] = fmt_timespan(exec_sec)
    out["wallTime"] = fmt_timespan(wall_sec)
    out["status"] = (
        _status(slots, now, host, exec_sec, wall_sec, _scan(slots.instances)) if slots else None
    )
    failed = [i for i in slots.instances if i.state is InstanceState.FAILURE] if slots else []
    out["errors"] = [
        *(slots.errors if slots else []),
        *[_error(i) for i in failed if i.error],
        *[{"code": "CALOR-POOL-WAITING", "message": note, "debug": ""} for note in p.notes],
    ]
    names = [b.get("bucketName") for b in p.document.get("advancedResourceBuckets") or []]
    out["resourceBuckets"] = [*(p.document.get("resourceBuckets") or []), *filter(None, names)]
    out["totalSlotCapacity"] = len(live)
    out["poolUsage"] = round(min(1.0, p.busy_slots / len(live)), 4) if live else 0.0
    out["queuedOrRunningTaskInstancesCount"] = p.task_instances
    out["credits"] = p.credits
    if p.active_policy is not None:
        out["activePolicyName"] = p.active_policy
    return out


# -- usage, credits, quotas and carbon (contract §2.1) ---------------------------------------


def quota_json(
    max_cores: int, running_cores: float, max_instances: int, running: int
) -> dict[str, Any]:
    return {
        "maxCores": max_cores,
        "runningCoresCount": round(running_cores),
        "maxInstances": max_instances,
        "runningInstancesCount": running,
    }


def projects_json(user: User) -> list[dict[str, Any]]:
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


def _cents(credits: float) -> int:
    return round(credits * 100)


def budget_json(uuid: str, budget: Budget) -> dict[str, Any]:
    """A user's budget as the project budgets answer lists it (it has no expiry)."""
    return {
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
