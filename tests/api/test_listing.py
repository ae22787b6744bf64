"""Reading tasks back: shortnames, bulk submission, tags, filters, keyset paging, search,
updates, and user isolation (contract §2.2, §11)."""

from typing import Any

import httpx
import pytest

from tests.api.helpers import (
    assert_error,
    get,
    page_all,
    submit,
    task_count,
    unique,
    uuids,
)
from tests.conftest import sh, task_body, wait_final


def test_get_by_shortname(client: httpx.Client) -> None:
    shortname = unique("sn")
    uuid = submit(client, task_body("true", shortname=shortname))
    task = get(client, shortname)
    assert task["uuid"] == uuid and task["shortname"] == shortname
    # the other operations take a shortname too
    assert client.post(f"/tasks/{shortname}/abort").status_code == 200
    assert client.get(f"/tasks/{shortname}/stdout").status_code == 200
    assert client.put(f"/tasks/{shortname}", json=task_body("true", name="renamed")).is_success
    assert get(client, uuid)["name"] == "renamed"
    assert client.delete(f"/tasks/{shortname}").status_code == 200
    assert_error(client.get(f"/tasks/{uuid}"), 404)


def test_array_submission_reports_each_item_in_order(client: httpx.Client) -> None:
    shortname = unique("bulk")
    before = task_count(client)
    r = client.post(
        "/tasks",
        json=[
            task_body("true", name="first", shortname=shortname),
            task_body("true", name="bad", instanceCount=0),
            task_body("true", name="dup", shortname=shortname),
            {"name": "no-count", "profile": "docker-batch"},
            task_body("true", name="last", tags=["bulk"]),
            task_body("true", name="bad-profile", profile="nope"),
        ],
    )
    assert r.status_code == 200, r.text
    items = r.json()
    assert [i["statusCode"] for i in items] == [200, 400, 409, 400, 200, 400]
    for item in items:
        assert set(item) >= {"statusCode", "uuid", "message"}
        assert isinstance(item["message"], str) and item["message"]
        assert (item["uuid"] is not None) == (item["statusCode"] == 200)
    assert "instanceCount" in items[1]["message"]
    assert shortname in items[2]["message"]
    assert "nope" in items[5]["message"]
    assert get(client, items[0]["uuid"])["name"] == "first"
    assert get(client, items[4]["uuid"])["tags"] == ["bulk"]
    assert task_count(client) == before + 2
    # ids follow the array order, so paging returns them in that order
    listed = uuids(client.post("/tasks/paginate", json={}).json()["data"])
    assert listed[-2:] == [items[0]["uuid"], items[4]["uuid"]]


def test_empty_array_submission(client: httpx.Client) -> None:
    r = client.post("/tasks", json=[])
    assert r.status_code == 200 and r.json() == []


@pytest.fixture
def tagged(client: httpx.Client) -> dict[str, str]:
    """Five tasks: a:[a] b:[b] c:[c] ab:[a,b] none:[] (in this order)."""
    out = {}
    for key, tags in (("a", ["a"]), ("b", ["b"]), ("c", ["c"]), ("ab", ["a", "b"]), ("none", [])):
        out[key] = submit(client, task_body("true", name=f"tag-{key}", tags=tags))
    return out


@pytest.mark.parametrize("path", ["/tasks", "/tasks/summaries"])
def test_tag_query_is_or(client: httpx.Client, tagged: dict[str, str], path: str) -> None:
    def listed(query: str) -> list[str]:
        r = client.get(f"{path}?{query}")
        assert r.status_code == 200, r.text
        return uuids(r.json())

    t = tagged
    assert listed("tag=a&tag=b,c") == [t["a"], t["b"], t["c"], t["ab"]]
    assert listed("tag=a") == [t["a"], t["ab"]]
    assert listed("tag=c,zzz") == [t["c"]]
    assert listed("tag=b&tag=a") == [t["a"], t["b"], t["ab"]]  # each task once
    assert listed("tag=zzz") == []
    assert listed("tag=") == list(t.values())
    assert listed("") == list(t.values())


def _page(client: httpx.Client, flt: dict[str, Any] | None, **extra: Any) -> list[str]:
    r = client.post("/tasks/paginate", json={"filter": flt, **extra})
    assert r.status_code == 200, r.text
    return uuids(r.json()["data"])


def _eq(field: str, value: Any, op: str = "Equal") -> dict[str, Any]:
    return {"field": field, "operator": op, "value": value}


def test_tag_filters_and_or(client: httpx.Client, tagged: dict[str, str]) -> None:
    t = tagged
    both = {"operator": "And", "filters": [_eq("Tags", "a"), _eq("Tags", "b")]}
    either = {"operator": "Or", "filters": [_eq("Tags", "a"), _eq("Tags", "c")]}
    assert _page(client, both) == [t["ab"]]
    assert _page(client, either) == [t["a"], t["c"], t["ab"]]
    assert _page(client, _eq("Tags", "a")) == [t["a"], t["ab"]]
    assert _page(client, _eq("Tags", "a", "NotEqual")) == [t["b"], t["c"], t["none"]]
    assert _page(client, {"operator": "And", "filters": []}) == list(t.values())
    assert _page(client, {"operator": "Or", "filters": []}) == []
    nested = {
        "operator": "Or",
        "filters": [both, {"operator": "And", "filters": [_eq("Tags", "c"), _eq("Name", "tag-c")]}],
    }
    assert _page(client, nested) == [t["c"], t["ab"]]
    # the SDK's exact wire form (contract §11.2)
    sdk = {
        "filter": {
            "operator": "Or",
            "filters": [
                {"field": "Tags", "operator": "Equal", "value": "a"},
                {"field": "Tags", "operator": "Equal", "value": "c"},
            ],
        },
        "maximumResults": None,
        "token": None,
    }
    assert uuids(client.post("/tasks/paginate", json=sdk).json()["data"]) == _page(client, either)


def test_field_filters(client: httpx.Client) -> None:
    prefix = unique("pre")
    one = submit(client, task_body("true", name=f"{prefix}-one"))
    two = submit(client, task_body("true", name=f"{prefix}-two", instanceCount=2))
    bad = submit(client, task_body(sh("exit 3"), name=f"other-{prefix}"))
    special = submit(client, task_body("true", name="50%_off.x"))
    for uuid in (one, two, bad, special):
        wait_final(client, uuid)
    assert _page(client, _eq("Name", f"/^{prefix}/", "Like")) == [one, two]
    assert _page(client, _eq("Name", f"/{prefix}/", "Like")) == [one, two, bad]
    assert _page(client, _eq("Name", "/^other-.*$/", "Like")) == [bad]
    assert _page(client, _eq("Name", "/(one|two)$/", "Like")) == [one, two]
    # LIKE wildcards in a literal prefix are literal
    assert _page(client, _eq("Name", "/^50%_/", "Like")) == [special]
    assert _page(client, _eq("Name", "/^50%_off\\.x/", "Like")) == [special]
    assert _page(client, _eq("Name", "/^5_%/", "Like")) == []
    assert _page(client, _eq("State", "Failure")) == [bad]
    assert _page(client, _eq("State", "Success", "NotEqual")) == [bad]
    assert _page(
        client, {"field": "State", "operator": "In", "values": ["Failure", "Success"]}
    ) == [
        one,
        two,
        bad,
        special,
    ]
    assert _page(client, _eq("InstanceCount", 1, "GreaterThan")) == [two]
    assert _page(client, _eq("InstanceCount", "2", "GreaterThanOrEqual")) == [two]
    assert _page(client, _eq("InstanceCount", 2, "LessThan")) == [one, bad, special]
    assert _page(client, _eq("Uuid", two)) == [two]
    assert _page(client, _eq("Profile", "docker-batch")) == [one, two, bad, special]
    combined = {
        "operator": "And",
        "filters": [_eq("Name", f"/^{prefix}/", "Like"), _eq("InstanceCount", 2, "LessThan")],
    }
    assert _page(client, combined) == [one]


def test_creation_date_filters(client: httpx.Client) -> None:
    ids = [submit(client, task_body("true", name=f"d{i}")) for i in range(3)]
    dates = [get(client, u)["creationDate"] for u in ids]
    assert dates == sorted(dates)
    assert _page(client, _eq("CreationDate", dates[0], "GreaterThan")) == ids[1:]
    assert _page(client, _eq("CreationDate", dates[1], "GreaterThanOrEqual")) == ids[1:]
    assert _page(client, _eq("CreationDate", dates[2], "LessThan")) == ids[:2]
    assert _page(client, _eq("CreationDate", dates[1])) == [ids[1]]
    # other ISO forms: an offset, .NET's seven fractional digits, no zone (read as UTC)
    assert _page(client, _eq("CreationDate", "2000-01-01T00:00:00+02:00", "GreaterThan")) == ids
    assert _page(client, _eq("CreationDate", "2000-01-01T00:00:00.1234567Z", "LessThan")) == []
    assert _page(client, _eq("CreationDate", "2999-01-01T00:00:00", "LessThan")) == ids


def test_keyset_paging(client: httpx.Client) -> None:
    ids = [submit(client, task_body("true", name=f"p{i}")) for i in range(7)]
    pages = page_all(client, {"maximumResults": 3})
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [u for p in pages for u in uuids(p)] == ids
    summaries = page_all(client, {"maximumResults": 3}, path="/tasks/summaries/paginate")
    assert [u for p in summaries for u in uuids(p)] == ids
    # a page size that divides the count exactly still ends with nextToken null
    pages = page_all(client, {"maximumResults": 7})
    assert [u for p in pages for u in uuids(p)] == ids
    # the filter applies across pages
    odd = {"operator": "In", "field": "Name", "value": ["p1", "p3", "p5"]}
    pages = page_all(client, {"maximumResults": 2, "filter": odd})
    assert [u for p in pages for u in uuids(p)] == [ids[1], ids[3], ids[5]]
    # zero, negative and huge sizes are clamped, not rejected
    for size in (0, -5, 10**6):
        pages = page_all(client, {"maximumResults": size})
        assert [u for p in pages for u in uuids(p)] == ids


def test_keyset_paging_is_stable_under_changes(client: httpx.Client) -> None:
    ids = [submit(client, task_body("true", name=f"s{i}")) for i in range(6)]
    first = client.post("/tasks/paginate", json={"maximumResults": 2}).json()
    assert uuids(first["data"]) == ids[:2]
    # deleting a task already seen and adding a new one do not shift the next pages
    assert client.delete(f"/tasks/{ids[0]}").status_code == 200
    late = submit(client, task_body("true", name="late"))
    second = client.post(
        "/tasks/paginate", json={"maximumResults": 2, "token": first["nextToken"]}
    ).json()
    assert uuids(second["data"]) == ids[2:4]
    # the same token read again gives the same page
    again = client.post(
        "/tasks/paginate", json={"maximumResults": 2, "token": first["nextToken"]}
    ).json()
    assert uuids(again["data"]) == ids[2:4]
    # deleting the task a token points at does not break it
    assert client.delete(f"/tasks/{ids[3]}").status_code == 200
    rest = client.post(
        "/tasks/paginate", json={"maximumResults": 5, "token": second["nextToken"]}
    ).json()
    assert uuids(rest["data"]) == [ids[4], ids[5], late]
    assert rest["nextToken"] is None and rest["isTruncated"] is False


def test_search_select_and_maximum(client: httpx.Client) -> None:
    a = submit(client, task_body("true", name="srch-a", tags=["s"]))
    b = submit(client, task_body("true", name="srch-b", tags=["s"]))
    submit(client, task_body("true", name="srch-c"))
    flt = {"field": "Tags", "operator": "Equal", "value": "s"}
    r = client.post("/tasks/search", json={"filter": flt, "select": ["Uuid", "Name"]})
    assert r.status_code == 200, r.text
    assert r.json() == [{"uuid": a, "name": "srch-a"}, {"uuid": b, "name": "srch-b"}]
    r = client.post("/tasks/search", json={"filter": flt, "select": {"fields": ["name", "Tags"]}})
    assert r.json() == [{"name": "srch-a", "tags": ["s"]}, {"name": "srch-b", "tags": ["s"]}]
    r = client.post("/tasks/search", json={"maximumResults": 2, "select": ["uuid"]})
    assert r.json() == [{"uuid": a}, {"uuid": b}]
    full = client.post("/tasks/search", json={"filter": flt, "select": None}).json()
    assert uuids(full) == [a, b] and "status" in full[0] and "constants" in full[0]
    assert_error(client.post("/tasks/search", json={"select": {"fields": "name"}}), 400, "fields")


def test_put_updates_name_and_tags(client: httpx.Client) -> None:
    uuid = submit(client, task_body("true", name="before", tags=["old", "keep"]))
    created = get(client, uuid)
    r = client.put(f"/tasks/{uuid}", json=task_body("true", name="after", tags=["new", "keep"]))
    assert r.is_success, r.text
    task = get(client, uuid)
    assert task["name"] == "after"
    assert sorted(task["tags"]) == ["keep", "new"]
    assert task["creationDate"] == created["creationDate"]
    assert task["lastModified"] >= created["lastModified"]
    assert uuids(client.get("/tasks?tag=old").json()) == []
    assert uuids(client.get("/tasks?tag=new").json()) == [uuid]
    assert _page(client, _eq("Name", "after")) == [uuid]
    assert _page(client, _eq("Name", "before")) == []
    # clearing tags
    assert client.put(f"/tasks/{uuid}", json=task_body("true", name="after", tags=[])).is_success
    assert get(client, uuid)["tags"] == []
    assert uuids(client.get("/tasks?tag=keep").json()) == []


def test_info_counts_follow_submissions_and_deletes(client: httpx.Client) -> None:
    assert client.get("/info").json()["taskCount"] == 0
    ids = [submit(client, task_body("true")) for _ in range(3)]
    assert client.get("/info").json()["taskCount"] == 3
    for uuid in ids:
        wait_final(client, uuid)
    info = client.get("/info").json()
    assert info["taskCount"] == 3 and info["runningTaskCount"] == 0
    assert info["runningInstanceCount"] == 0 and info["runningCoreCount"] == 0
    assert client.delete(f"/tasks/{ids[1]}").status_code == 200
    assert client.get("/info").json()["taskCount"] == 2
    assert_error(client.delete(f"/tasks/{ids[1]}"), 404)
    assert client.get("/info").json()["taskCount"] == 2


def test_users_are_isolated(client: httpx.Client, other: httpx.Client) -> None:
    shortname = unique("mine")
    mine = submit(client, task_body("true", name="private", shortname=shortname, tags=["iso"]))
    wait_final(client, mine)
    for key in (mine, shortname):
        for method, suffix in (
            ("GET", ""),
            ("PUT", ""),
            ("PATCH", ""),
            ("POST", "/abort"),
            ("GET", "/stdout"),
            ("POST", "/stdout"),
            ("GET", "/stderr/0"),
            ("DELETE", ""),
        ):
            kwargs: dict[str, Any] = {"json": task_body("true")} if method == "PUT" else {}
            r = other.request(method, f"/tasks/{key}{suffix}", **kwargs)
            assert_error(r, 404)
    # nothing of A's shows up in B's lists, pages, searches or counts
    assert other.get("/tasks").json() == []
    assert other.get("/tasks/summaries?tag=iso").json() == []
    everything = {"filter": None}
    by_uuid = {"filter": {"field": "Uuid", "operator": "Equal", "value": mine}}
    for path in ("/tasks/paginate", "/tasks/summaries/paginate"):
        for body in (everything, by_uuid):
            assert other.post(path, json=body).json()["data"] == []
    assert other.post("/tasks/search", json=by_uuid).json() == []
    info = other.get("/info").json()
    assert info["taskCount"] == 0 and info["runningTaskCount"] == 0
    # B may use the same shortname for its own task, and A's task is untouched
    theirs = submit(other, task_body("true", name="theirs", shortname=shortname))
    assert get(other, shortname)["uuid"] == theirs
    task = get(client, shortname)
    assert task["uuid"] == mine and task["name"] == "private" and task["state"] == "Success"
    assert uuids(client.get("/tasks").json()) == [mine]
    assert client.get("/info").json()["taskCount"] == 1
    # and B's task is just as invisible to A
    assert_error(client.get(f"/tasks/{theirs}"), 404)
