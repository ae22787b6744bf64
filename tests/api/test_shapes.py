"""Wire shapes the clients parse strictly (contract §3.2-§3.5, §10, §11.4)."""

from typing import Any

import httpx

from tests.api.helpers import (
    DATE_RE,
    NOT_ENDED,
    TIMESPAN_RE,
    get,
    submit,
    uuids,
    wait_executing,
)
from tests.conftest import task_body, wait_final

NEVER_NULL = (
    "creationDate",
    "errors",
    "constants",
    "completedInstances",
    "privileges",
    "retrySettings",
    "secretsAccessRights",
    "hardwareConstraints",
    "forcedNetworkRules",
    "resultsCount",
)
DATES = ("creationDate", "stateTransitionTime", "previousStateTransitionTime", "lastModified")
SUMMARY_FIELDS = {
    "uuid",
    "name",
    "shortname",
    "profile",
    "poolUuid",
    "jobUuid",
    "progress",
    "runningInstanceCount",
    "runningCoreCount",
    "executionTime",
    "wallTime",
    "state",
    "previousState",
    "instanceCount",
    "maxRetriesPerInstance",
    "stateTransitionTime",
    "previousStateTransitionTime",
    "lastModified",
    "creationDate",
    "endDate",
    "waitForPoolResourcesSynchronization",
}
NOT_IN_SUMMARY = {"status", "constants", "resourceBuckets", "errors", "tags", "labels"}
STATES = {
    "Submitted",
    "PartiallyDispatched",
    "FullyDispatched",
    "PartiallyExecuting",
    "FullyExecuting",
    "UploadingResults",
    "Success",
    "Failure",
    "Cancelled",
}


def check_full(task: dict[str, Any]) -> None:
    for key in NEVER_NULL:
        assert key in task and task[key] is not None, key
    for key in ("errors", "constants", "completedInstances", "hardwareConstraints"):
        assert isinstance(task[key], list), key
    assert isinstance(task["forcedNetworkRules"], list)
    for key in ("privileges", "retrySettings", "secretsAccessRights"):
        assert isinstance(task[key], dict), key
    assert isinstance(task["resultsCount"], int)
    for key in DATES:
        assert DATE_RE.match(task[key]), (key, task[key])
    assert DATE_RE.match(task["endDate"]) or task["endDate"] == NOT_ENDED
    for key in ("executionTime", "wallTime", "completionTimeToLive"):
        assert TIMESPAN_RE.match(task[key]), (key, task[key])
    assert task["state"] in STATES and task["previousState"] in STATES
    assert isinstance(task["progress"], float) and 0.0 <= task["progress"] <= 100.0
    status = task["status"]
    assert isinstance(status["executionTimeByCpuModel"], list)
    assert isinstance(status["executionTimeGhzByCpuModel"], list)
    for item in status["executionTimeByCpuModel"]:
        assert {"model", "time", "core"} <= item.keys()
    for item in status["executionTimeGhzByCpuModel"]:
        assert {"model", "timeGhz", "clockRatio", "core"} <= item.keys()
    for key in ("downloadTime", "environmentTime", "executionTime", "uploadTime", "wallTime"):
        assert TIMESPAN_RE.match(status[key]), (key, status[key])
        assert isinstance(status[key + "Sec"], float)
    for key in ("timestamp", "lastUpdateTimestamp"):
        assert DATE_RE.match(status[key]), (key, status[key])
    for key in ("succeededRange", "executedRange", "failedRange", "startedOnceRange"):
        assert isinstance(status[key], str)


def check_summary(summary: dict[str, Any]) -> None:
    assert summary.keys() >= SUMMARY_FIELDS, SUMMARY_FIELDS - summary.keys()
    assert not NOT_IN_SUMMARY & summary.keys(), NOT_IN_SUMMARY & summary.keys()
    for key in DATES:
        assert DATE_RE.match(summary[key]), (key, summary[key])
    for key in ("executionTime", "wallTime"):
        assert TIMESPAN_RE.match(summary[key]), (key, summary[key])


def test_running_task_shape(reaper: httpx.Client) -> None:
    client = reaper
    uuid = submit(client, task_body("sleep 30", tags=["shape"]))
    submitted = get(client, uuid)
    check_full(submitted)
    assert submitted["endDate"] == NOT_ENDED
    task = wait_executing(client, uuid)
    check_full(task)
    assert task["endDate"] == NOT_ENDED
    assert task["previousState"] != "FullyExecuting"
    assert task["completedInstances"] == []
    assert task["runningInstanceCount"] == 1
    running = task["status"]["runningInstancesInfo"]["perRunningInstanceInfo"]
    assert [i["instanceId"] for i in running] == [0]
    assert running[0]["phase"] == "execution"
    assert task["status"]["startedOnceRange"] == "0"
    check_summary(client.get("/tasks/summaries").json()[0])
    for item in client.get("/tasks").json():
        check_full(item)


def test_finished_task_shape(client: httpx.Client) -> None:
    uuid = submit(client, task_body("true", instanceCount=2))
    task = wait_final(client, uuid)
    check_full(task)
    assert task["state"] == "Success"
    assert DATE_RE.match(task["endDate"]) and task["endDate"] != NOT_ENDED
    assert task["endDate"] >= task["creationDate"]
    assert task["stateTransitionTime"] == task["endDate"]
    assert task["status"]["succeededRange"] == "0-1"
    assert task["status"]["executedRange"] == "0-1"
    assert task["status"]["failedRange"] == ""
    instances = task["completedInstances"]
    assert sorted(i["instanceId"] for i in instances) == [0, 1]
    for inst in instances:
        assert {
            "instanceId",
            "state",
            "wallTimeSec",
            "execTimeSec",
            "execTimeSecGHz",
            "peakMemoryMB",
            "averageGHz",
            "cpuModel",
            "coreCount",
            "clockRatio",
            "executionAttemptCount",
            "error",
            "results",
        } <= inst.keys()
        assert inst["state"] == "Success"
        assert inst["error"] is None
        assert inst["executionAttemptCount"] == 1
    summary = client.get("/tasks/summaries").json()[0]
    check_summary(summary)
    assert DATE_RE.match(summary["endDate"])


def test_paginate_envelopes(client: httpx.Client) -> None:
    for path in ("/tasks/paginate", "/tasks/summaries/paginate"):
        r = client.post(path, json={"token": None, "filter": None, "maximumResults": None})
        assert r.status_code == 200, r.text
        env = r.json()
        assert {"data", "token", "nextToken", "isTruncated"} <= env.keys()
        assert env["data"] == [] and env["nextToken"] is None and env["isTruncated"] is False
    first = submit(client, task_body("true"))
    submit(client, task_body("true"))
    env = client.post("/tasks/paginate", json={"maximumResults": 1}).json()
    assert uuids(env["data"]) == [first]
    assert env["isTruncated"] is True and isinstance(env["nextToken"], str)
    check_full(env["data"][0])
    env = client.post("/tasks/summaries/paginate", json={"maximumResults": 1}).json()
    check_summary(env["data"][0])
    search = client.post("/tasks/search", json={}).json()
    assert isinstance(search, list) and len(search) == 2
    check_full(search[0])


def test_advanced_ranges_task_shape(client: httpx.Client) -> None:
    uuid = submit(client, {**task_body("true"), "instanceCount": None, "advancedRanges": "3,1-2"})
    task = get(client, uuid)
    assert task["advancedRanges"] == "1-3"
    assert task["instanceCount"] == 3
    summary = client.get("/tasks/summaries").json()[0]
    assert summary["advancedRanges"] == "1-3"


def test_account_shapes(client: httpx.Client) -> None:
    settings = client.get("/settings").json()
    assert "storage" in settings
    info = client.get("/info").json()
    for key in ("email", "taskCount", "maxTask", "runningTaskCount", "maxRunningTask"):
        assert key in info, key
    quota = info["computingQuotas"]["user"]["flex"]
    assert {"maxCores", "runningCoresCount", "maxInstances", "runningInstancesCount"} <= set(quota)
    assert isinstance(info["projects"], list)
