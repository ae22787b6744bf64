"""Pools over real HTTP (contract §2.3, §5; issue 6): slots with a preparation task, tasks on
them, elastic sizing, scaling policies, close and delete. The test server has 2 cores."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import (
    DATE_RE,
    NOT_ENDED,
    assert_error,
    get,
    page_all,
    processes_with,
    sleeper,
    submit,
    unique,
    uuids,
    wait_executing,
)
from tests.conftest import make_server, sh, task_body, wait_final, wait_for

NEVER_NULL = (
    "creationDate",
    "errors",
    "constants",
    "elasticProperty",
    "privileges",
    "defaultRetrySettings",
    "multiSlotsSettings",
    "secretsAccessRights",
    "hardwareConstraints",
    "forcedNetworkRules",
)


def pool_body(**extra: Any) -> dict[str, Any]:
    """What the Python SDK posts for ``conn.create_pool(name, "docker-batch", n)``."""
    body: dict[str, Any] = {
        "name": extra.pop("name", unique("pool")),
        "profile": "docker-batch",
        "constants": [],
        "forcedConstants": [],
        "constraints": [],
        "instanceCount": 1,
        "tags": [],
        "preparationTask": None,
        "elasticProperty": {
            "isElastic": False,
            "minTotalSlots": 0,
            "maxTotalSlots": 0,
            "minIdleSlots": 0,
            "resizePeriod": 90,
            "rampResizeFactor": 0.5,
            "minIdleTimeSeconds": 90,
        },
        "taskDefaultWaitForPoolResourcesSynchronization": False,
        "labels": {},
        "advancedResourceBuckets": [],
        "autoDeleteOnCompletion": False,
        "completionTimeToLive": "00:00:00",
        "hardwareConstraints": [],
        "defaultResourcesCacheTTLSec": None,
        "privileges": {"exportApiAndStorageCredentialsInEnvironment": False},
        "defaultRetrySettings": {"maxTotalRetries": None, "maxPerInstanceRetries": None},
        "forcedNetworkRules": [],
    }
    body.update(extra)
    return body


def elastic(low: int, high: int, idle: int = 0, idle_seconds: int = 0) -> dict[str, Any]:
    return {
        "isElastic": True,
        "minTotalSlots": low,
        "maxTotalSlots": high,
        "minIdleSlots": idle,
        "resizePeriod": 1,
        "rampResizeFactor": 1,
        "minIdleTimeSeconds": idle_seconds,
    }


@pytest.fixture
def pools(client: httpx.Client) -> Iterator[httpx.Client]:
    """The client; teardown closes its pools, so their slots give the cores back."""
    yield client
    for pool in client.get("/pools/summaries").json():
        client.post(f"/pools/{pool['uuid']}/close")
    for pool in client.get("/pools/summaries").json():
        wait_state(client, pool["uuid"], {"Closed", "Failure"})
    # and the tasks that ran outside pools
    for task in client.get("/tasks/summaries").json():
        client.post(f"/tasks/{task['uuid']}/abort")


def create_pool(client: httpx.Client, **extra: Any) -> str:
    r = client.post("/pools", json=pool_body(**extra))
    assert r.status_code == 200, r.text
    return str(r.json()["uuid"])


def get_pool(client: httpx.Client, key: str) -> dict[str, Any]:
    r = client.get(f"/pools/{key}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def wait_state(
    client: httpx.Client, key: str, states: set[str], timeout: float = 20
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        pool = get_pool(client, key)
        return pool if pool["state"] in states else None

    return wait_for(reached, timeout=timeout, interval=0.05, message=f"pool {key} in {states}")  # type: ignore[no-any-return]


def wait_capacity(client: httpx.Client, key: str, slots: int, timeout: float = 20) -> None:
    wait_for(
        lambda: get_pool(client, key)["totalSlotCapacity"] == slots,
        timeout=timeout,
        interval=0.05,
        message=f"pool {key} to have {slots} slots",
    )


def on_pool(pool: str, command: str, **extra: Any) -> dict[str, Any]:
    body = task_body(command, poolUuid=pool, **extra)
    body["profile"] = None  # as the SDK sends it for a task on a pool
    return body


def last_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("[calor]")]


PREPARE = "echo ready > prepared.txt; echo prepared $POOL_VAR"


def test_pool_with_preparation_and_tasks_on_it(pools: httpx.Client, other: httpx.Client) -> None:
    client = pools
    short = unique("short")
    pool = create_pool(
        client,
        shortname=short,
        instanceCount=2,
        tags=["p1"],
        preparationTask={"commandLine": sh(PREPARE)},
        constants=[{"key": "POOL_VAR", "value": "pool"}, {"key": "OVERRIDE", "value": "pool"}],
    )
    got = wait_state(client, pool, {"FullyExecuting"})
    assert got["uuid"] == pool and got["shortname"] == short and got["tags"] == ["p1"]
    assert got["totalSlotCapacity"] == 2 and got["runningInstanceCount"] == 2
    assert got["preparationTask"] == {"commandLine": sh(PREPARE)}
    for key in NEVER_NULL:
        assert got.get(key) is not None, key
    assert DATE_RE.match(got["creationDate"]) and got["endDate"] == NOT_ENDED
    assert isinstance(got["status"]["executionTimeByCpuModel"], list)  # never null: SDK
    # the slots' preparation is the pool's output, per slot and in all
    text = client.get(f"/pools/{pool}/stdout").text
    assert "0> prepared pool" in text and "1> prepared pool" in text, text
    assert last_lines(client.get(f"/pools/{pool}/stdout/1").text) == ["prepared pool"]
    assert "prepared pool" in client.post(f"/pools/{pool}/stdout").text
    assert client.post(f"/pools/{pool}/stdout").text == ""
    assert_error(client.get(f"/pools/{pool}/stdout/7"), 404, "7")
    # a task on the pool runs in its slots: it sees what the preparation left, the pool's
    # constants, and its own constants win
    body = on_pool(pool, sh("cat prepared.txt; echo $POOL_VAR $OVERRIDE"), instanceCount=3)
    body["constants"].append({"key": "OVERRIDE", "value": "task"})
    task = submit(client, body)
    done = wait_final(client, task)
    assert done["state"] == "Success", done
    assert done["poolUuid"] == pool and done["profile"] == "docker-batch"
    for i in range(3):
        out = last_lines(client.get(f"/tasks/{task}/stdout/{i}").text)
        assert out == ["ready", "pool task"], out
    # a task is no result of the pool's files
    assert get_pool(client, pool)["queuedOrRunningTaskInstancesCount"] == 0
    # lists, filters, pages
    assert uuids(client.get("/pools").json()) == [pool]
    assert uuids(client.get("/pools", params={"tag": "p1"}).json()) == [pool]
    assert client.get("/pools", params={"tag": "nope"}).json() == []
    summary = client.get("/pools/summaries").json()[0]
    assert summary["uuid"] == pool and summary["status"] is None
    assert "constants" not in summary
    second = create_pool(client, instanceCount=0)
    assert [uuids(p) for p in page_all(client, {"maximumResults": 1}, "/pools/paginate")] == [
        [pool],
        [second],
    ]
    by_name = {"field": "Name", "operator": "Equal", "value": got["name"]}
    r = client.post("/pools/search", json={"filter": by_name, "select": ["uuid"]})
    assert r.json() == [{"uuid": pool}]
    r = client.post("/pools/summaries/paginate", json={})
    assert uuids(r.json()["data"]) == [pool, second]
    # the slots' hidden task never shows among tasks
    assert uuids(client.get("/tasks").json()) == [task]
    assert client.get("/info").json()["taskCount"] == 1
    # another user sees none of it
    assert other.get("/pools").json() == []
    for r in (
        other.get(f"/pools/{pool}"),
        other.get(f"/pools/{short}"),
        other.get(f"/pools/{pool}/stdout"),
        other.post(f"/pools/{pool}/close"),
        other.delete(f"/pools/{pool}"),
        other.post("/tasks", json=on_pool(pool, "echo x")),
    ):
        assert_error(r, 404, "not found")
    # close, then no new tasks; delete forgets it
    assert client.post(f"/pools/{pool}/close").status_code == 200
    closed = wait_state(client, pool, {"Closed"})
    assert closed["endDate"] != NOT_ENDED and closed["totalSlotCapacity"] == 0
    assert_error(client.post("/tasks", json=on_pool(pool, "echo late")), 403, "Closed")
    assert client.post(f"/pools/{pool}/close").status_code == 200  # harmless again
    assert client.delete(f"/pools/{pool}").status_code == 200
    assert_error(client.get(f"/pools/{pool}"), 404, pool)
    assert get(client, task)["state"] == "Success"


def test_tasks_queue_for_a_busy_slot(pools: httpx.Client) -> None:
    client = pools
    pool = create_pool(client, instanceCount=1)
    wait_state(client, pool, {"FullyExecuting"})
    command, marker = sleeper()
    first = submit(client, on_pool(pool, command))
    wait_executing(client, first)
    second = submit(client, on_pool(pool, "echo second"))
    assert get(client, second)["state"] == "Submitted"
    assert get_pool(client, pool)["queuedOrRunningTaskInstancesCount"] == 2
    assert get_pool(client, pool)["poolUsage"] == 1.0
    client.post(f"/tasks/{first}/abort")
    assert wait_final(client, second)["state"] == "Success"
    assert get_pool(client, pool)["state"] == "FullyExecuting"
    wait_for(lambda: not processes_with(marker), timeout=10, message="the sleep to end")


def test_closing_cancels_the_pools_tasks(pools: httpx.Client) -> None:
    client = pools
    pool = create_pool(client, instanceCount=1)
    wait_state(client, pool, {"FullyExecuting"})
    command, marker = sleeper()
    running = submit(client, on_pool(pool, command))
    wait_executing(client, running)
    queued = submit(client, on_pool(pool, "echo never"))
    assert client.post(f"/pools/{pool}/close").status_code == 200
    for uuid in (running, queued):
        task = wait_final(client, uuid, timeout=15)
        assert task["state"] == "Cancelled"
        assert any("pool was closed" in e["message"] for e in task["errors"]), task["errors"]
    wait_state(client, pool, {"Closed"})
    wait_for(lambda: not processes_with(marker), timeout=10, message="the sleep to be killed")


def test_elastic_pool_grows_with_its_queue_and_shrinks_when_idle(pools: httpx.Client) -> None:
    client = pools
    pool = create_pool(client, instanceCount=0, elasticProperty=elastic(0, 2))
    got = get_pool(client, pool)
    assert got["state"] == "FullyExecuting" and got["totalSlotCapacity"] == 0
    task = submit(client, on_pool(pool, sh("sleep 1; echo done"), instanceCount=2))
    wait_capacity(client, pool, 2)
    assert wait_final(client, task, timeout=30)["state"] == "Success"
    wait_capacity(client, pool, 0)
    assert get_pool(client, pool)["state"] == "FullyExecuting"
    # min idle slots are kept ready
    client.put(f"/pools/{pool}", json=pool_body(name="resized", elasticProperty=elastic(0, 2, 1)))
    wait_capacity(client, pool, 1)
    assert get_pool(client, pool)["name"] == "resized"


def test_scaling_policies(pools: httpx.Client) -> None:
    client = pools
    pool = create_pool(client, instanceCount=0, elasticProperty=elastic(0, 1))
    policies = {
        "policies": [
            {
                "type": "Fixed",
                "name": "never",
                "slotsCount": 2,
                "enabledPeriods": [
                    {
                        "type": "Weekly",
                        "days": ["monday"],
                        "startTimeUtc": "00:00:00",
                        "endTimeUtc": "00:00:01",
                    }
                ],
            },
            {
                "type": "Fixed",
                "name": "one",
                "slotsCount": 1,
                "enabledPeriods": [{"type": "Always"}],
            },
        ]
    }
    assert client.put(f"/pools/{pool}/scaling", json=policies).status_code == 200
    wait_capacity(client, pool, 1)
    got = wait_state(client, pool, {"FullyExecuting"})
    assert got["activePolicyName"] == "one"
    assert got["scaling"] == policies
    for body, words in (
        ({"policies": []}, ["at least one"]),
        ({"policies": [{"type": "Sometimes"}]}, ["Fixed or ManagedTasksQueue"]),
        ({"policies": [{"type": "Fixed", "slotsCount": -1}]}, ["slotsCount"]),
        (
            {"policies": [{"type": "ManagedTasksQueue", "minTotalSlots": 3, "maxTotalSlots": 1}]},
            ["maxTotalSlots"],
        ),
        (
            {
                "policies": [
                    {"type": "Fixed", "slotsCount": 1, "enabledPeriods": [{"type": "Weekly"}]}
                ]
            },
            ["days"],
        ),
    ):
        assert_error(client.put(f"/pools/{pool}/scaling", json=body), 400, *words)
    assert get_pool(client, pool)["scaling"] == policies


def test_bad_pools_are_refused_and_change_nothing(pools: httpx.Client) -> None:
    client = pools
    short = unique("dup")
    create_pool(client, shortname=short, instanceCount=0)
    for body, status, words in (
        (pool_body(profile="no-such-profile"), 400, ["no-such-profile"]),
        (pool_body(instanceCount=-1), 400, ["instanceCount"]),
        (pool_body(instanceCount=10**6), 400, ["instanceCount"]),
        (
            pool_body(elasticProperty={"isElastic": True, "minTotalSlots": 3, "maxTotalSlots": 1}),
            400,
            ["maxTotalSlots"],
        ),
        (pool_body(scaling={"policies": [{"type": "x"}]}), 400, ["Fixed"]),
        (pool_body(preparationTask={"commandLine": 3}), 400, ["commandLine"]),
        (pool_body(completionTimeToLive="later"), 400, ["completionTimeToLive"]),
        (pool_body(multiSlotsSettings={"slotsPerNode": 0}), 400, ["slotsPerNode"]),
        (pool_body(tags=[""]), 400, ["tag"]),
        (
            pool_body(advancedResourceBuckets=[{"bucketName": "no-such-bucket"}]),
            404,
            ["no-such-bucket"],
        ),
        (pool_body(shortname=short), 409, [short]),
        ({"profile": "docker-batch"}, 400, ["name"]),
    ):
        assert_error(client.post("/pools", json=body), status, *words)
    assert len(client.get("/pools").json()) == 1
    assert_error(client.get("/pools/nope"), 404, "nope")
    assert_error(client.post("/pools/nope/close"), 404, "nope")
    bad_filter = {"filter": {"field": "ResultsCount", "operator": "Equal", "value": 1}}
    assert_error(client.post("/pools/paginate", json=bad_filter), 400, "ResultsCount")


def test_failed_preparation_fails_the_pool(pools: httpx.Client) -> None:
    client = pools
    pool = create_pool(client, instanceCount=1, preparationTask={"commandLine": sh("exit 4")})
    got = wait_state(client, pool, {"Failure"})
    assert got["errors"], got
    assert_error(client.post("/tasks", json=on_pool(pool, "echo x")), 403, "Failure")


def _hold_both_cores(client: httpx.Client) -> str:
    """A running task that holds the server's two cores (until it is aborted)."""
    command, _ = sleeper()
    hog = submit(
        client,
        task_body(
            command,
            hardwareConstraints=[
                {"discriminator": "MinimumCoreHardwareConstraint", "coreCount": 2}
            ],
        ),
    )
    wait_executing(client, hog)
    return hog


def test_pool_waiting_too_long_for_cores_fails(pools: httpx.Client) -> None:
    client = pools
    hog = _hold_both_cores(client)
    pool = create_pool(client, instanceCount=1, maxTimeQueueSeconds=1)
    got = wait_state(client, pool, {"Failure"}, timeout=15)
    message = " ".join(e["message"] for e in got["errors"])
    assert "maxTimeQueueSeconds" in message, message
    client.post(f"/tasks/{hog}/abort")


def test_job_on_a_pool_runs_its_tasks_there(pools: httpx.Client) -> None:
    client = pools
    pool = create_pool(
        client, instanceCount=1, preparationTask={"commandLine": sh("echo p > p.txt")}
    )
    r = client.post("/jobs", json={"name": "on-pool", "poolUuid": pool})
    assert r.status_code == 200, r.text
    job = r.json()["uuid"]
    task = submit(client, on_pool(pool, "cat p.txt", jobUuid=job) | {"poolUuid": None})
    assert get(client, task)["poolUuid"] == pool
    assert wait_final(client, task)["state"] == "Success"
    assert last_lines(client.get(f"/tasks/{task}/stdout/0").text) == ["p"]


def test_slots_are_prepared_again_after_a_restart(tmp_path: Path) -> None:
    server = make_server(tmp_path, "sqlite").start()
    try:
        token = server.new_user()
        with httpx.Client(base_url=server.url, headers={"Authorization": token}, timeout=30) as c:
            pool = create_pool(c, instanceCount=1, preparationTask={"commandLine": "echo prep"})
            wait_state(c, pool, {"FullyExecuting"})
            server.stop()
            server.restart()
            wait_for(
                lambda: c.get(f"/pools/{pool}/stdout/0").text.count("prep\n") == 2,
                timeout=20,
                message="the slot to be prepared again",
            )
            assert get_pool(c, pool)["state"] == "FullyExecuting"
            task = submit(c, on_pool(pool, "echo after"))
            assert wait_final(c, task)["state"] == "Success"
            c.post(f"/pools/{pool}/close")
            wait_state(c, pool, {"Closed"})
    finally:
        server.stop()


def test_slots_per_node_and_auto_delete(pools: httpx.Client) -> None:
    client = pools
    pool = create_pool(
        client,
        instanceCount=1,
        multiSlotsSettings={"slotsPerNode": 2},
        hardwareConstraints=[{"discriminator": "MinimumCoreHardwareConstraint", "coreCount": 2}],
        autoDeleteOnCompletion=True,
        completionTimeToLive="00:00:01",
    )
    got = wait_state(client, pool, {"FullyExecuting"})
    # one node of 2 cores split in 2 slots of 1 core
    assert got["totalSlotCapacity"] == 2 and got["runningCoreCount"] == 2
    assert got["multiSlotsSettings"] == {"slotsPerNode": 2}
    task = submit(client, on_pool(pool, sh("echo $INSTANCE_ID"), instanceCount=2))
    assert wait_final(client, task)["state"] == "Success"
    client.post(f"/pools/{pool}/close")
    wait_for(
        lambda: client.get(f"/pools/{pool}").status_code == 404,
        timeout=15,
        message="the closed pool to be deleted after its TTL",
    )


def test_slots_of_a_node_share_its_cores(pools: httpx.Client) -> None:
    """Issue 12: 1 node x 3 slots on a 2-core server started 2 slots and hung short of
    FullyExecuting. The 3 slots share the node's core (a third each)."""
    client = pools
    pool = create_pool(client, instanceCount=1, multiSlotsSettings={"slotsPerNode": 3})
    got = wait_state(client, pool, {"FullyExecuting"})
    assert got["totalSlotCapacity"] == 3 and got["runningCoreCount"] == 1
    assert got["errors"] == []
    command, _ = sleeper()
    task = submit(client, on_pool(pool, command, instanceCount=3))
    wait_for(
        lambda: get(client, task)["runningInstanceCount"] == 3,
        timeout=20,
        message="3 instances running at once, one per slot",
    )
    # the node holds one core: the other one still runs a task of its own
    other = submit(client, task_body("echo beside"))
    assert wait_final(client, other)["state"] == "Success"
    client.post(f"/tasks/{task}/abort")


def test_a_pool_that_can_never_fit_is_refused(pools: httpx.Client) -> None:
    client = pools
    before = len(client.get("/pools/summaries").json())
    message = assert_error(
        client.post("/pools", json=pool_body(instanceCount=3)), 400, "3 cores", "has 2"
    )
    assert "at most 2 nodes" in message and "slotsPerNode" in message
    big_node = [{"discriminator": "MinimumCoreHardwareConstraint", "coreCount": 4}]
    assert_error(
        client.post("/pools", json=pool_body(instanceCount=1, hardwareConstraints=big_node)),
        400,
        "4 cores",
    )
    assert len(client.get("/pools/summaries").json()) == before
    # an elastic pool grows as far as the cores allow: only its minimum must fit
    assert client.post("/pools", json=pool_body(elasticProperty=elastic(0, 5))).status_code == 200


def test_slots_waiting_for_cores_say_so(pools: httpx.Client) -> None:
    client = pools
    hog = _hold_both_cores(client)
    pool = create_pool(client, instanceCount=2)
    waiting = wait_for(
        lambda: [e["message"] for e in get_pool(client, pool)["errors"]],
        timeout=10,
        message="the pool to say why its slots wait",
    )
    assert "2 of the pool's 2 slots wait for free cores" in waiting[0], waiting
    assert get_pool(client, pool)["state"] != "FullyExecuting"
    client.post(f"/tasks/{hog}/abort")
    assert wait_state(client, pool, {"FullyExecuting"})["errors"] == []
