"""Newest-first paging, and new tasks made from old ones: clone, retry, resume, recover
(contract §2.2, §11.4)."""

import httpx

from tests.api.helpers import assert_error, get, page_all, sleeper, submit, task_count, uuids
from tests.conftest import sh, task_body, wait_final


def test_pages_newest_first(client: httpx.Client) -> None:
    made = [submit(client, name=f"order-{i}") for i in range(5)]
    body = {"maximumResults": 2, "orderBy": "CreationDate", "orderType": "Desc"}
    pages = page_all(client, body)
    assert [uuids(p) for p in pages] == [made[4:2:-1], made[2:0:-1], made[:1]]
    pages = page_all(client, body, "/tasks/summaries/paginate")
    assert [u for p in pages for u in uuids(p)] == made[::-1]
    flt = {"field": "Name", "operator": "In", "values": ["order-1", "order-3"]}
    r = client.post("/tasks/paginate", json={**body, "filter": flt})
    assert uuids(r.json()["data"]) == [made[3], made[1]]
    assert uuids(page_all(client, {"OrderType": "asc"})[0]) == made
    assert_error(client.post("/tasks/paginate", json={"orderType": "sideways"}), 400, "orderType")
    assert_error(client.post("/tasks/paginate", json={"orderBy": "Name"}), 400, "orderBy")


def test_clone_with_overrides(client: httpx.Client) -> None:
    source = submit(
        client,
        task_body(sh("echo $GREETING"), instanceCount=2, tags=["a"], shortname="original"),
    )
    source_task = wait_final(client, source)
    r = client.post(f"/tasks/{source}/clone", json={"name": "copy", "Tags": ["b"]})
    assert r.status_code == 200, r.text
    copy = get(client, r.json()["uuid"])
    assert copy["name"] == "copy" and copy["tags"] == ["b"]
    assert copy["shortname"] == copy["uuid"]  # a shortname is never copied: it is unique
    assert copy["instanceCount"] == 2
    assert copy["constants"] == source_task["constants"]
    assert wait_final(client, copy["uuid"])["state"] == "Success"
    # with no body, an exact copy
    r = client.post(f"/tasks/{source}/clone")
    assert get(client, r.json()["uuid"])["name"] == source_task["name"]


def test_retry_resume_and_recover_run_only_those_instances(client: httpx.Client) -> None:
    failing = submit(
        client, task_body(sh('[ "$INSTANCE_ID" = 1 ] && exit 1; echo ok'), instanceCount=3)
    )
    assert wait_final(client, failing)["state"] == "Failure"
    fixed = {"constants": [{"key": "DOCKER_CMD", "value": "echo fixed"}]}
    r = client.post(f"/tasks/{failing}/retry", json=fixed)
    assert r.status_code == 200, r.text
    retried = wait_final(client, r.json()["uuid"])
    assert retried["state"] == "Success" and retried["advancedRanges"] == "1"
    assert [i["instanceId"] for i in retried["completedInstances"]] == [1]
    assert_error(client.post(f"/tasks/{failing}/resume"), 400, "cancelled")
    # cancelled instances: resume; both kinds: recover
    command, _ = sleeper()
    cancelled = submit(client, task_body(command, instanceCount=2))
    client.post(f"/tasks/{cancelled}/abort")
    assert wait_final(client, cancelled)["state"] == "Cancelled"
    r = client.post(f"/tasks/{cancelled}/resume", json={"constants": fixed["constants"]})
    resumed = wait_final(client, r.json()["uuid"])
    assert resumed["state"] == "Success" and resumed["advancedRanges"] == "0-1"
    r = client.post(f"/tasks/{failing}/recover", json=fixed)
    assert get(client, r.json()["uuid"])["advancedRanges"] == "1"


def test_bad_copies_change_nothing(client: httpx.Client, other: httpx.Client) -> None:
    source = submit(client)
    wait_final(client, source)
    before = task_count(client)
    assert_error(client.post(f"/tasks/{source}/clone", json=[1]), 400, "object")
    assert_error(
        client.post(f"/tasks/{source}/clone", json={"instanceCount": 0}), 400, "instanceCount"
    )
    assert_error(client.post(f"/tasks/{source}/retry"), 400, "failure")
    assert_error(client.post("/tasks/no-such-task/clone"), 404, "no-such-task")
    assert_error(other.post(f"/tasks/{source}/clone"), 404, source)
    assert task_count(client) == before
