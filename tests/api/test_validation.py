"""Bad input: a 4xx with a JSON message that says what to fix, nothing changed, never a 5xx."""

import base64
import threading
from typing import Any

import httpx
import pytest

from tests.api.helpers import assert_error, get, submit, task_count, unique
from tests.conftest import Server, task_body


def _body(**changes: Any) -> dict[str, Any]:
    """A valid create body with some keys replaced (``None`` removes the key)."""
    body = task_body("true")
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


RAW_BODIES = [
    pytest.param(b'{"name": "x", "instanceCount": 1', ["JSON"], id="truncated-json"),
    pytest.param(b"{'name': 'x'}", ["JSON"], id="single-quotes"),
    pytest.param(b"", ["body"], id="empty"),
    pytest.param(b'"a task"', ["object"], id="string"),
    pytest.param(b"42", ["object"], id="number"),
    pytest.param(b"null", ["object"], id="null"),
    pytest.param(b"true", ["object"], id="bool"),
]


@pytest.mark.parametrize(("raw", "words"), RAW_BODIES)
def test_create_rejects_unparseable_body(
    client: httpx.Client, raw: bytes, words: list[str]
) -> None:
    before = task_count(client)
    r = client.post("/tasks", content=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 400, *words)
    assert task_count(client) == before


BAD_BODIES = [
    pytest.param(_body(instanceCount="abc"), ["instanceCount"], id="count-abc"),
    pytest.param(_body(instanceCount=1.5), ["instanceCount"], id="count-fraction"),
    pytest.param(_body(instanceCount=[1]), ["instanceCount"], id="count-list"),
    pytest.param(_body(instanceCount=0), ["instanceCount", "at least 1"], id="count-zero"),
    pytest.param(_body(instanceCount=-3), ["instanceCount"], id="count-negative"),
    pytest.param(_body(instanceCount=None), ["instanceCount"], id="count-missing"),
    pytest.param(_body(instanceCount=10**7), ["instanceCount", "at most"], id="count-huge"),
    pytest.param(_body(instanceCount=10**30), ["instanceCount"], id="count-bignum"),
    pytest.param(_body(tags="urgent"), ["tags"], id="tags-string"),
    pytest.param(_body(tags={"a": 1}), ["tags"], id="tags-object"),
    pytest.param(_body(tags=[1, 2]), ["tags"], id="tags-numbers"),
    pytest.param(_body(tags=[""]), ["tag"], id="tags-empty-tag"),
    pytest.param(_body(tags=["x" * 256]), ["tag", "255"], id="tags-long-tag"),
    pytest.param(_body(constants={"DOCKER_CMD": "true"}), ["constants"], id="constants-object"),
    pytest.param(_body(constants=["DOCKER_CMD=true"]), ["constants"], id="constants-strings"),
    pytest.param(_body(constants=[{"value": "true"}]), ["constants", "key"], id="constants-nokey"),
    pytest.param(_body(constants=[{"key": "", "value": "x"}]), ["key"], id="constants-emptykey"),
    pytest.param(_body(constants=[{"key": "A", "value": {"x": 1}}]), ["value"], id="const-value"),
    pytest.param(_body(profile="nope"), ["profile", "nope", "docker-batch"], id="profile"),
    pytest.param(_body(profile=7), ["profile"], id="profile-number"),
    pytest.param(_body(instanceCount=None, advancedRanges="5-2"), ["5-2"], id="ranges-reversed"),
    pytest.param(_body(instanceCount=None, advancedRanges="a-b"), ["a-b"], id="ranges-letters"),
    pytest.param(
        _body(instanceCount=None, advancedRanges=""), ["advancedRanges"], id="ranges-empty"
    ),
    pytest.param(_body(instanceCount=None, advancedRanges="1,,2"), ["empty"], id="ranges-gap"),
    pytest.param(_body(instanceCount=None, advancedRanges="-4"), ["-4"], id="ranges-negative"),
    pytest.param(
        _body(instanceCount=None, advancedRanges="0-99999999"), ["more than"], id="ranges-huge"
    ),
    pytest.param(_body(name="n" * 256), ["name", "255"], id="name-long"),
    pytest.param(_body(name=""), ["name"], id="name-empty"),
    pytest.param(_body(name=None), ["name"], id="name-missing"),
    pytest.param(_body(name=["a"]), ["name"], id="name-list"),
    pytest.param(_body(shortname="s" * 256), ["shortname", "255"], id="shortname-long"),
    pytest.param(_body(shortname=""), ["shortname"], id="shortname-empty"),
    pytest.param(_body(labels=["a"]), ["labels"], id="labels-list"),
    pytest.param(_body(retrySettings=[1]), ["retrySettings"], id="retry-list"),
    pytest.param(
        _body(retrySettings={"maxPerInstanceRetries": -1}),
        ["maxPerInstanceRetries"],
        id="retry-negative",
    ),
    pytest.param(_body(maxRetriesPerInstance="x"), ["maxRetriesPerInstance"], id="legacy-retry"),
    pytest.param(_body(completionTimeToLive="soon"), ["completionTimeToLive"], id="completion-ttl"),
    pytest.param(
        _body(hardwareConstraints=[{"discriminator": "MinimumCoreHardwareConstraint"}]),
        ["coreCount"],
        id="cores-missing",
    ),
    pytest.param(
        _body(
            hardwareConstraints=[{"discriminator": "MinimumCoreHardwareConstraint", "coreCount": 0}]
        ),
        ["coreCount"],
        id="cores-zero",
    ),
    pytest.param(_body(hardwareConstraints={"a": 1}), ["hardwareConstraints"], id="hc-object"),
    pytest.param(_body(name="bad\x00name"), ["NUL"], id="name-nul"),
    pytest.param(_body(tags=["a\x00b"]), ["NUL"], id="tag-nul"),
    pytest.param(_body(projectUuid="p\x00"), ["NUL"], id="project-nul"),
]


@pytest.mark.parametrize(("body", "words"), BAD_BODIES)
def test_create_rejects_bad_fields(
    client: httpx.Client, body: dict[str, Any], words: list[str]
) -> None:
    before = task_count(client)
    assert_error(client.post("/tasks", json=body), 400, *words)
    assert task_count(client) == before


def test_unknown_job_or_pool_is_404(client: httpx.Client) -> None:
    before = task_count(client)
    assert_error(client.post("/tasks", json=_body(jobUuid="no-such-job")), 404, "no-such-job")
    assert_error(client.post("/tasks", json=_body(poolUuid="no-such-pool")), 404, "no-such-pool")
    assert task_count(client) == before


def test_array_submission_limits_and_item_shapes(client: httpx.Client) -> None:
    before = task_count(client)
    # an item that is not an object is reported in its slot
    r = client.post("/tasks", json=[1, "x", None])
    assert r.status_code == 200, r.text
    items = r.json()
    assert [i["statusCode"] for i in items] == [400, 400, 400]
    assert all(i["uuid"] is None and i["message"] for i in items)
    assert "[0]" in items[0]["message"]
    # a request with too many items is rejected as a whole
    assert_error(client.post("/tasks", json=[{}] * 10_001), 400, "at most")
    assert task_count(client) == before


def test_oversized_body_is_413(client: httpx.Client) -> None:
    before = task_count(client)
    filler = "x" * (65 * 1024 * 1024)
    raw = b'{"name": "big", "profile": "docker-batch", "instanceCount": 1, "labels": {"x": "'
    raw += filler.encode() + b'"}}'
    r = client.post("/tasks", content=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 413, "larger than")
    assert task_count(client) == before


def test_oversized_chunked_body_is_413(client: httpx.Client) -> None:
    """No Content-Length: the limit holds while the body streams in."""
    before = task_count(client)

    def chunks() -> Any:
        yield b'{"name": "big", "instanceCount": 1, "labels": {"x": "'
        block = b"y" * (1024 * 1024)
        for _ in range(66):
            yield block
        yield b'"}}'

    r = client.post("/tasks", content=chunks(), headers={"Content-Type": "application/json"})
    assert_error(r, 413, "larger than")
    assert task_count(client) == before


def test_duplicate_shortname_is_409(client: httpx.Client) -> None:
    shortname = unique("short")
    first = submit(client, task_body("true", shortname=shortname))
    before = task_count(client)
    assert_error(client.post("/tasks", json=task_body("true", shortname=shortname)), 409, shortname)
    assert task_count(client) == before
    assert get(client, shortname)["uuid"] == first


def test_concurrent_duplicate_shortnames_give_one_task(server: Server, token: str) -> None:
    """Racing submissions of one shortname: one 200, the rest 409, never a 5xx."""
    shortname = unique("race")
    barrier = threading.Barrier(8)
    codes: list[int] = []
    lock = threading.Lock()

    def post() -> None:
        with httpx.Client(base_url=server.url, headers={"Authorization": token}) as c:
            body = task_body("true", shortname=shortname)
            barrier.wait()
            code = c.post("/tasks", json=body).status_code
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [409] * 7, codes
    with httpx.Client(base_url=server.url, headers={"Authorization": token}) as c:
        assert task_count(c) == 1


def _filter(flt: Any) -> dict[str, Any]:
    return {"filter": flt}


def _leaf(field: Any, operator: Any, value: Any) -> dict[str, Any]:
    return {"field": field, "operator": operator, "value": value}


def _deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = _leaf("Name", "Equal", "x")
    for _ in range(levels):
        node = {"operator": "And", "filters": [node]}
    return node


BAD_FILTERS = [
    pytest.param(_filter(_leaf("Colour", "Equal", "red")), ["Colour", "Name"], id="unknown-field"),
    pytest.param(_filter(_leaf(None, "Equal", "red")), ["field"], id="no-field"),
    pytest.param(_filter(_leaf("Name", "Resembles", "x")), ["Resembles"], id="unknown-operator"),
    pytest.param(_filter(_leaf("Name", None, "x")), ["operator"], id="no-operator"),
    pytest.param(_filter({"operator": "And"}), ["filters"], id="and-without-filters"),
    pytest.param(_filter({"operator": "Or", "filters": {"a": 1}}), ["filters"], id="filters-obj"),
    pytest.param(_filter({"operator": "And", "filters": ["Name"]}), ["filter"], id="child-str"),
    pytest.param(_filter(_deep(40)), ["deeper"], id="too-deep"),
    pytest.param(
        _filter(
            {"operator": "Or", "filters": [_leaf("Name", "Equal", str(i)) for i in range(300)]}
        ),
        ["more than"],
        id="too-many-leaves",
    ),
    pytest.param(
        _filter(_leaf("CreationDate", "GreaterThan", "yesterday")), ["yesterday"], id="bad-date"
    ),
    pytest.param(_filter(_leaf("CreationDate", "LessThan", 12)), ["date"], id="date-number"),
    pytest.param(_filter(_leaf("Name", "Like", "/[unclosed/")), ["regex"], id="bad-regex"),
    pytest.param(_filter(_leaf("Name", "Like", 5)), ["regex"], id="like-number"),
    pytest.param(_filter(_leaf("InstanceCount", "Like", "/1/")), ["Like"], id="like-int"),
    pytest.param(_filter(_leaf("InstanceCount", "Equal", "abc")), ["number"], id="int-abc"),
    pytest.param(_filter(_leaf("InstanceCount", "GreaterThan", True)), ["number"], id="int-bool"),
    pytest.param(_filter(_leaf("InstanceCount", "Equal", 10**30)), ["InstanceCount"], id="int-big"),
    pytest.param(
        _filter(_leaf("InstanceCount", "LessThan", 2**63)), ["InstanceCount"], id="int-63"
    ),
    pytest.param(_filter(_leaf("Tags", "GreaterThan", "a")), ["Tags"], id="tags-ordering"),
    pytest.param(_filter(_leaf("Name", "Equal", {"a": 1})), ["string"], id="value-object"),
    pytest.param(_filter(_leaf("Name", "In", list(range(1001)))), ["1000"], id="in-too-many"),
    pytest.param(_filter(_leaf("Name", "Equal", "a\x00b")), ["NUL"], id="value-nul"),
    pytest.param(_filter("Name = x"), ["filter"], id="filter-string"),
    pytest.param(_filter([_leaf("Name", "Equal", "x")]), ["filter"], id="filter-list"),
    pytest.param({"maximumResults": "many"}, ["maximumResults"], id="max-results-text"),
]


@pytest.mark.parametrize("path", ["/tasks/paginate", "/tasks/summaries/paginate", "/tasks/search"])
@pytest.mark.parametrize(("body", "words"), BAD_FILTERS)
def test_bad_filters_are_400(
    client: httpx.Client, path: str, body: dict[str, Any], words: list[str]
) -> None:
    assert_error(client.post(path, json=body), 400, *words)


@pytest.mark.parametrize("path", ["/tasks/paginate", "/tasks/search"])
def test_malformed_list_bodies_are_400(client: httpx.Client, path: str) -> None:
    headers = {"Content-Type": "application/json"}
    assert_error(client.post(path, content=b'{"filter": ', headers=headers), 400, "JSON")
    assert_error(client.post(path, json=[1]), 400, "object")
    assert_error(client.post(path, json="filter"), 400, "object")


def test_regex_the_database_cannot_run_is_not_a_5xx(client: httpx.Client) -> None:
    """Python-only regex syntax (named groups) is valid for the parser; the answer is 200 or 400."""
    submit(client, task_body("true", name="abc"))
    r = client.post("/tasks/paginate", json=_filter(_leaf("Name", "Like", "/(?P<g>ab)c/")))
    if r.status_code == 200:
        assert [t["name"] for t in r.json()["data"]] == ["abc"]
    else:
        assert_error(r, 400, "regex")


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "page_token",
    [
        "not-a-token",
        "%%%",
        _token("other:5"),
        _token("calor:abc"),
        _token("calor:" + "9" * 30),
        _token("calor:-" + "9" * 30),
        "a\x00b",
    ],
)
def test_bad_page_token_is_400(client: httpx.Client, page_token: str) -> None:
    for path in ("/tasks/paginate", "/tasks/summaries/paginate"):
        assert_error(client.post(path, json={"token": page_token}), 400, "token")


def test_token_type_is_checked(client: httpx.Client) -> None:
    assert_error(client.post("/tasks/paginate", json={"token": 5}), 400, "token")


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": ""}, {"Authorization": "wrong-token"}, {"Authorization": "Bearer x"}],
    ids=["missing", "empty", "unknown", "bearer-unknown"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/settings"),
        ("GET", "/info"),
        ("GET", "/tasks"),
        ("GET", "/tasks/summaries"),
        ("POST", "/tasks"),
        ("POST", "/tasks/paginate"),
        ("POST", "/tasks/search"),
        ("GET", "/profiles"),
        ("GET", "/hardware-constraints"),
        ("GET", "/tasks/00000000-0000-0000-0000-000000000000"),
        ("DELETE", "/tasks/00000000-0000-0000-0000-000000000000"),
    ],
)
def test_bad_token_is_401_json(
    server: Server, method: str, path: str, headers: dict[str, str]
) -> None:
    kwargs: dict[str, Any] = {"json": task_body("true")} if method == "POST" else {}
    r = httpx.request(method, server.url + path, headers=headers, **kwargs)
    assert_error(r, 401)


def test_rejected_token_creates_nothing(server: Server, client: httpx.Client) -> None:
    before = task_count(client)
    r = httpx.post(server.url + "/tasks", json=task_body("true"), headers={"Authorization": "x"})
    assert_error(r, 401)
    assert task_count(client) == before


@pytest.mark.parametrize("scheme", ["Bearer ", "bearer ", "BEARER   "])
def test_bearer_prefix_is_accepted(server: Server, token: str, scheme: str) -> None:
    r = httpx.get(server.url + "/info", headers={"Authorization": scheme + token})
    assert r.status_code == 200, r.text
    assert "@" in r.json()["email"]


# -- unknown objects --------------------------------------------------------------------------

MISSING = "4f1c2a7e-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("PUT", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/abort"),
        ("GET", "/stdout"),
        ("POST", "/stdout"),
        ("GET", "/stderr"),
        ("POST", "/stderr"),
        ("GET", "/stdout/0"),
        ("POST", "/stderr/0"),
    ],
)
@pytest.mark.parametrize("key", [MISSING, "no-such-shortname", "a%00b", "%E2%98%83"])
def test_unknown_task_is_404(client: httpx.Client, method: str, suffix: str, key: str) -> None:
    kwargs: dict[str, Any] = {"json": task_body("true")} if method == "PUT" else {}
    r = client.request(method, f"/tasks/{key}{suffix}", **kwargs)
    assert_error(r, 404, "not found")


def test_missing_instance_output_is_404(client: httpx.Client) -> None:
    uuid = submit(client, task_body("true", instanceCount=2))
    for stream in ("stdout", "stderr"):
        for method in ("GET", "POST"):
            assert client.request(method, f"/tasks/{uuid}/{stream}/1").status_code == 200
            assert_error(client.request(method, f"/tasks/{uuid}/{stream}/2"), 404, "instance 2")
            assert_error(client.request(method, f"/tasks/{uuid}/{stream}/-1"), 404, "instance")
            assert_error(client.request(method, f"/tasks/{uuid}/{stream}/abc"), 400, "integer")


def test_bad_update_changes_nothing(client: httpx.Client) -> None:
    uuid = submit(client, task_body("true", name="keep-me", tags=["a"]))
    assert_error(client.put(f"/tasks/{uuid}", json={"name": ""}), 400, "name")
    assert_error(client.put(f"/tasks/{uuid}", content=b"{", headers={}), 400, "JSON")
    assert_error(client.put(f"/tasks/{uuid}", json=task_body("true", tags="b")), 400, "tags")
    task = get(client, uuid)
    assert task["name"] == "keep-me"
    assert task["tags"] == ["a"]


def test_unknown_endpoint_and_method_are_json(client: httpx.Client) -> None:
    assert_error(client.get("/nothing-here"), 404, "endpoint")
    assert_error(client.delete("/tasks"), 405, "method")


def test_unknown_profile_is_404(client: httpx.Client) -> None:
    assert_error(client.get("/profiles/nope"), 404, "nope")


@pytest.mark.parametrize("query", ["limit=abc", "offset=x"])
def test_bad_hardware_constraint_paging_is_400(client: httpx.Client, query: str) -> None:
    assert_error(client.get(f"/hardware-constraints?{query}"), 400)


def test_tag_query_with_nul_is_not_a_5xx(client: httpx.Client) -> None:
    for path in ("/tasks", "/tasks/summaries"):
        r = client.get(path, params={"tag": "a\x00b"})
        if r.status_code == 200:
            assert r.json() == []
        else:
            assert_error(r, 400, "tag")
