"""Leniency (contract §3.1, §10, §11.1): key case, unknown keys, nulls, slashes, C# filters."""

from typing import Any

import httpx
import pytest

from tests.api.helpers import get, submit, task_count, unique, uuids
from tests.conftest import task_body


def raw(client: httpx.Client, path: str) -> str:
    """An absolute URL, so that httpx keeps a leading ``//`` (as the SDK's concatenation does)."""
    return str(client.base_url).rstrip("/") + path


def test_pascal_and_mixed_case_create_keys(client: httpx.Client) -> None:
    shortname = unique("pascal")
    r = client.post(
        "/tasks",
        json={
            "Name": "pascal-task",
            "ShortName": shortname,
            "PROFILE": "docker-batch",
            "iNsTaNcEcOuNt": 2,
            "Constants": [{"Key": "DOCKER_CMD", "VALUE": "true"}, {"KEY": "N", "Value": 5}],
            "Tags": ["p1", "p2"],
            "Labels": {"team": "x"},
            "RetrySettings": {"MaxPerInstanceRetries": 2, "maxTotalRetries": 3},
            "ResultsCacheTTLSec": 60,
            "AutoDeleteOnCompletion": False,
        },
    )
    assert r.status_code == 200, r.text
    task = get(client, r.json()["uuid"])
    assert task["name"] == "pascal-task"
    assert task["shortname"] == shortname
    assert task["instanceCount"] == 2
    assert task["tags"] == ["p1", "p2"]
    assert task["labels"] == {"team": "x"}
    assert {"key": "N", "value": "5"} in task["constants"]
    assert task["retrySettings"] == {"maxTotalRetries": 3, "maxPerInstanceRetries": 2}
    assert task["ResultsCacheTTLSec"] == 60
    assert get(client, shortname)["uuid"] == task["uuid"]


def test_unknown_keys_are_ignored_and_nulls_accepted(client: httpx.Client) -> None:
    body: dict[str, Any] = task_body(
        "true",
        frobnicate=1,
        Extra={"deep": [1, 2]},
        tags=None,
        labels=None,
        dependencies=None,
        resultBucket=None,
        retrySettings=None,
        privileges=None,
        hardwareConstraints=None,
        forcedNetworkRules=None,
        secretsAccessRights=None,
        advancedResourceBuckets=None,
        schedulingType=None,
        poolUuid=None,
        jobUuid=None,
        shortname=None,
    )
    task = get(client, submit(client, body))
    assert "frobnicate" not in task and "Extra" not in task and "extra" not in task
    assert task["tags"] == []
    for key in ("hardwareConstraints", "forcedNetworkRules", "constants"):
        assert isinstance(task[key], list), key
    for key in ("privileges", "retrySettings", "secretsAccessRights"):
        assert isinstance(task[key], dict), key
    assert task["shortname"] == task["uuid"]


@pytest.mark.parametrize("path", ["/tasks/", "//tasks", "//tasks/", "/tasks//"])
def test_create_with_lenient_paths(client: httpx.Client, path: str) -> None:
    before = task_count(client)
    r = client.post(raw(client, path), json=task_body("true"))
    assert r.status_code == 200, r.text
    assert task_count(client) == before + 1


def test_reads_with_lenient_paths(client: httpx.Client) -> None:
    uuid = submit(client, task_body("true", shortname=unique("slash")))
    for path in ("/tasks/", "//tasks", "/tasks/summaries/", "//tasks//summaries/"):
        r = client.get(raw(client, path))
        assert r.status_code == 200, (path, r.text)
        assert uuids(r.json()) == [uuid], path
    for path in (f"/tasks/{uuid}/", f"//tasks/{uuid}", f"//tasks//{uuid}//"):
        r = client.get(raw(client, path))
        assert r.status_code == 200, (path, r.text)
        assert r.json()["uuid"] == uuid
    for path in ("//info", "/info/", "//settings/", "/profiles/", "/profiles/docker-batch/"):
        assert client.get(raw(client, path)).status_code == 200, path
    for path in ("/tasks/paginate/", "//tasks/summaries/paginate/", "/tasks/search/"):
        r = client.post(raw(client, path), json={})
        assert r.status_code == 200, (path, r.text)
        data = r.json() if isinstance(r.json(), list) else r.json()["data"]
        assert uuids(data) == [uuid]
    assert client.post(raw(client, f"//tasks/{uuid}/stdout/")).status_code == 200
    assert client.post(raw(client, f"//tasks/{uuid}/abort/")).status_code == 200


def test_pascal_case_filters(client: httpx.Client) -> None:
    name = unique("pf")
    want = submit(client, task_body("true", name=name, tags=["pf"]))
    submit(client, task_body("true", name=name + "-other"))
    body = {
        "Filter": {
            "Operator": "AND",
            "Filters": [
                {"Field": "Name", "Operator": "Equal", "Value": name},
                {"FIELD": "tags", "OPERATOR": "equal", "VALUE": "pf"},
            ],
        },
        "MaximumResults": 10,
        "Token": None,
    }
    for path in ("/tasks/paginate", "/tasks/summaries/paginate", "/tasks/search"):
        r = client.post(path, json=body)
        assert r.status_code == 200, r.text
        data = r.json() if isinstance(r.json(), list) else r.json()["data"]
        assert uuids(data) == [want], path


@pytest.mark.parametrize("key", ["values", "value", "Values", "VALUE"])
def test_in_and_not_in_accept_value_and_values(client: httpx.Client, key: str) -> None:
    a = submit(client, task_body("true", name="in-a", tags=["x"]))
    b = submit(client, task_body("true", name="in-b", tags=["y"]))
    c = submit(client, task_body("true", name="in-c", tags=["z"]))

    def find(flt: dict[str, Any]) -> list[str]:
        r = client.post("/tasks/paginate", json={"filter": flt})
        assert r.status_code == 200, r.text
        return uuids(r.json()["data"])

    assert find({"field": "Name", "operator": "In", key: ["in-a", "in-c"]}) == [a, c]
    assert find({"field": "Name", "operator": "NotIn", key: ["in-a", "in-c"]}) == [b]
    assert find({"field": "Tags", "operator": "In", key: ["y", "z", "nope"]}) == [b, c]
    assert find({"field": "Tags", "operator": "NotIn", key: ["x"]}) == [b, c]
    assert find({"field": "Uuid", "operator": "In", key: [b]}) == [b]


def test_in_with_a_single_scalar_and_equal_with_values(client: httpx.Client) -> None:
    a = submit(client, task_body("true", name="scalar-a"))
    submit(client, task_body("true", name="scalar-b"))
    for flt in (
        {"field": "Name", "operator": "In", "value": "scalar-a"},
        {"field": "Name", "operator": "Equal", "values": ["scalar-a"]},
    ):
        r = client.post("/tasks/paginate", json={"filter": flt})
        assert r.status_code == 200, r.text
        assert uuids(r.json()["data"]) == [a]


def test_select_keys_are_case_insensitive(client: httpx.Client) -> None:
    uuid = submit(client, task_body("true", name="sel"))
    r = client.post("/tasks/search", json={"Select": {"Fields": ["UUID", "Name"]}})
    assert r.status_code == 200, r.text
    assert r.json() == [{"uuid": uuid, "name": "sel"}]


def test_body_less_list_posts(client: httpx.Client) -> None:
    """The SDK may post /paginate with no body; that means "first page, no filter"."""
    uuid = submit(client, task_body("true"))
    for path in ("/tasks/paginate", "/tasks/summaries/paginate"):
        r = client.post(path)
        assert r.status_code == 200, r.text
        assert uuids(r.json()["data"]) == [uuid]
    r = client.post("/tasks/search")
    assert r.status_code == 200, r.text
    assert uuids(r.json()) == [uuid]
