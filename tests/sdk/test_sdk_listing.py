"""Listing, filtering, bulk submission, accounts and isolation through the official ``qarnot``
SDK against a real calor server."""

from typing import Any

import httpx
import pytest
from qarnot.connection import Connection
from qarnot.exceptions import (
    MissingProfileException,
    MissingTaskException,
    QarnotGenericException,
    UnauthorizedException,
)
from qarnot.task import Task

from tests.conftest import Server
from tests.sdk.conftest import Connect
from tests.sdk.helpers import (
    FINAL,
    docker_task,
    fresh_state,
    sleeper,
    unique,
    uuids,
    wait_done,
    wait_executing,
)


def read_pages(conn: Connection, maximum: int, **options: Any) -> list[list[str]]:
    """Follow ``tasks_page`` tokens to the end; returns the uuids page by page."""
    pages: list[list[str]] = []
    token = None
    for _ in range(50):
        page = conn.tasks_page(token=token, maximum=maximum, **options)
        assert page.token == token
        pages.append(uuids(page.page_data))
        if not page.is_truncated:
            assert page.next_token is None
            return pages
        assert page.next_token
        token = page.next_token
    raise AssertionError("paging never ended")


def test_submit_tasks_in_bulk(conn: Connection) -> None:
    tasks = [docker_task(conn, f'echo "bulk {i}"', name=f"bulk-{i}") for i in range(3)]
    conn.submit_tasks(tasks)
    ids = uuids(tasks)
    assert all(ids) and len(set(ids)) == 3
    for i, task in enumerate(tasks):
        # the answer came back in request order: each object got its own task's uuid
        assert conn.retrieve_task(task.uuid).name == f"bulk-{i}"
        assert wait_done(task) == "Success"
        assert f"0> bulk {i}\n" in task.stdout()
    assert sorted(uuids(conn.all_tasks())) == sorted(ids)


def test_submit_tasks_reports_a_bad_item_and_keeps_the_good_ones(conn: Connection) -> None:
    first = docker_task(conn, "true", name="first")
    bad = conn.create_task("bad", "no-such-profile", 1)
    last = docker_task(conn, "true", name="last")
    with pytest.raises(QarnotGenericException, match="no-such-profile"):
        conn.submit_tasks([first, bad, last])
    assert bad.uuid is None
    assert first.uuid and last.uuid
    assert conn.retrieve_task(first.uuid).name == "first"
    assert conn.retrieve_task(last.uuid).name == "last"
    assert sorted(t.name for t in conn.all_tasks()) == ["first", "last"]


def test_all_tasks_and_tasks_page(conn: Connection) -> None:
    tasks = [docker_task(conn, "true", name=f"page-{i}") for i in range(7)]
    conn.submit_tasks(tasks)  # one request: the creation times may tie
    expected = set(uuids(tasks))

    listed = uuids(conn.all_tasks())
    assert len(listed) == 7 and set(listed) == expected
    full = list(conn.all_tasks(summary=False))
    assert sorted(t.name for t in full) == [f"page-{i}" for i in range(7)]

    for summary in (True, False):
        pages = read_pages(conn, 3, summary=summary)
        assert [len(p) for p in pages] == [3, 3, 1]
        flat = [u for p in pages for u in p]
        assert len(flat) == len(set(flat)) and set(flat) == expected
        assert flat == listed  # one stable order
    # summaries carry the basics without a refetch, and upgrade on demand
    summary_page = conn.tasks_page(maximum=7)
    assert not summary_page.is_truncated and summary_page.next_token is None
    by_uuid = {t.uuid: t for t in summary_page.page_data}
    for task in tasks:
        assert by_uuid[task.uuid].name == task.name
        assert by_uuid[task.uuid].profile == "docker-batch"
        assert by_uuid[task.uuid].constants["DOCKER_CMD"] == "true"


def test_paging_survives_a_delete_between_pages(conn: Connection) -> None:
    tasks = [docker_task(conn, "true", name=f"del-{i}") for i in range(6)]
    for task in tasks:
        task.submit()
    first = conn.tasks_page(maximum=2)
    seen = uuids(first.page_data)
    assert len(seen) == 2 and first.is_truncated
    # deleting an already-read task must not make the next pages skip one
    gone = next(t for t in tasks if t.uuid == seen[0])
    gone.delete()
    token = first.next_token
    while token:
        page = conn.tasks_page(token=token, maximum=2)
        seen += uuids(page.page_data)
        token = page.next_token if page.is_truncated else None
    assert len(seen) == len(set(seen)) == 6
    assert set(seen) == {t.uuid for t in tasks if t is not gone} | {seen[0]}


def test_tag_filters_any_and_all(conn: Connection) -> None:
    tagged = {
        "red": ["red"],
        "red-blue": ["red", "blue"],
        "blue": ["blue"],
        "green": ["green"],
        "bare": [],
    }
    tasks = [docker_task(conn, "true", name=n, tags=t) for n, t in tagged.items()]
    conn.submit_tasks(tasks)

    def names(**filters: list[str]) -> list[str]:
        return sorted(t.name for t in conn.all_tasks(**filters))

    assert names() == sorted(tagged)
    assert names(tags=["red"]) == ["red", "red-blue"]
    assert names(tags=["red", "blue"]) == ["blue", "red", "red-blue"]
    assert names(tags=["red", "green"]) == ["green", "red", "red-blue"]
    assert names(tags_intersect=["red", "blue"]) == ["red-blue"]
    assert names(tags_intersect=["blue"]) == ["blue", "red-blue"]
    assert names(tags_intersect=["red", "green"]) == []
    assert names(tags=["nope"]) == []
    # given both, the SDK sends only tags_intersect
    assert names(tags=["green"], tags_intersect=["red", "blue"]) == ["red-blue"]
    # filtered results page too
    pages = read_pages(conn, 2, tags=["red", "blue"])
    assert [len(p) for p in pages] == [2, 1]
    got = {t.uuid: t.name for t in tasks}
    assert sorted(got[u] for p in pages for u in p) == ["blue", "red", "red-blue"]
    for task in conn.all_tasks(tags=["blue"]):
        assert "blue" in task.tags


def test_wrong_token_raises_unauthorized(server: Server, connect: Connect) -> None:
    with pytest.raises(UnauthorizedException):
        Connection(client_token="not-a-token", cluster_url=server.url)
    with pytest.raises(UnauthorizedException):
        Connection(client_token=server.new_user() + "x", cluster_url=server.url)
    # every call maps 401, not only the start-up GET /settings
    conn = connect()
    task = docker_task(conn, "true")
    task.submit()
    good = conn._http.headers["Authorization"]
    conn._http.headers["Authorization"] = "not-a-token"
    try:
        with pytest.raises(UnauthorizedException):
            conn.retrieve_task(task.uuid)
        with pytest.raises(UnauthorizedException):
            list(conn.all_tasks())
        with pytest.raises(UnauthorizedException):
            conn.user_info  # noqa: B018
        with pytest.raises(UnauthorizedException):
            task.stdout()
    finally:
        conn._http.headers["Authorization"] = good
    assert conn.retrieve_task(task.uuid).uuid == task.uuid


def test_users_never_see_each_others_tasks(server: Server, connect: Connect) -> None:
    alice_token = server.new_user()
    alice, bob = connect(alice_token), connect()
    secret = docker_task(alice, "echo secret", name="alice-task", tags=["shared"])
    secret.submit()
    assert wait_done(secret) == "Success"
    mine = docker_task(bob, "true", name="bob-task", tags=["shared"])
    mine.submit()

    with pytest.raises(MissingTaskException):
        bob.retrieve_task(secret.uuid)
    assert uuids(bob.all_tasks()) == [mine.uuid]
    assert uuids(bob.all_tasks(summary=False)) == [mine.uuid]
    assert uuids(bob.all_tasks(tags=["shared"])) == [mine.uuid]
    assert uuids(bob.all_tasks(tags_intersect=["shared"])) == [mine.uuid]
    assert uuids(bob.tasks_page().page_data) == [mine.uuid]
    assert uuids(alice.all_tasks()) == [secret.uuid]
    assert bob.user_info.task_count == 1 and alice.user_info.task_count == 1

    # bob holding alice's task object still cannot read, abort or delete it
    raw = httpx.get(f"{server.url}/tasks/{secret.uuid}", headers={"Authorization": alice_token})
    assert raw.status_code == 200
    stolen = Task.from_json(bob, raw.json())
    with pytest.raises(MissingTaskException):
        stolen.stdout()
    with pytest.raises(MissingTaskException):
        stolen.fresh_stdout()
    with pytest.raises(MissingTaskException):
        stolen.abort()
    with pytest.raises(MissingTaskException):
        stolen.delete()
    assert fresh_state(secret) == "Success"
    assert "0> secret\n" in secret.stdout()
    assert "0> secret\n" in secret.fresh_stdout()  # bob's fresh read did not consume it


def test_profiles(conn: Connection) -> None:
    assert "docker-batch" in conn.profiles_names()
    profiles = {p.name: dict(p.constants) for p in conn.profiles()}
    assert "docker-batch" in profiles
    assert profiles["docker-batch"]["DOCKER_REPO"] == "library/ubuntu"
    assert "DOCKER_CMD" in profiles["docker-batch"]
    profile = conn.retrieve_profile("docker-batch")
    assert profile.name == "docker-batch"
    assert dict(profile.constants) == profiles["docker-batch"]
    with pytest.raises(MissingProfileException):
        conn.retrieve_profile("no-such-profile")
    assert conn.profile_details("no-such-profile") is None


def test_user_info_counts(server: Server, connect: Connect) -> None:
    email = f"{unique('user')}@test.local"
    conn = connect(server.new_user(email))
    info = conn.user_info
    assert info.email == email
    assert info.task_count == 0 and info.running_task_count == 0
    command, _ = sleeper()
    task = docker_task(conn, command)
    task.submit()
    wait_executing(task)
    info = conn.user_info
    assert info.task_count == 1 and info.running_task_count == 1
    assert info.running_instance_count == 1 and info.running_core_count >= 1
    task.abort()
    assert wait_done(task, timeout=5) == "Cancelled"
    info = conn.user_info
    assert info.task_count == 1 and info.running_task_count == 0
    assert info.running_instance_count == 0 and info.running_core_count == 0
    assert all(t.state in FINAL for t in conn.all_tasks())


def test_cluster_url_with_a_trailing_slash(server: Server) -> None:
    """The official sample config ends the URL with '/', so every path starts with '//'."""
    conn = Connection(client_token=server.new_user(), cluster_url=server.url + "/")
    try:
        task = docker_task(conn, "echo slash")
        task.submit()
        assert wait_done(task) == "Success"
        assert "0> slash\n" in task.fresh_stdout()
        assert uuids(conn.all_tasks()) == [task.uuid]
        assert conn.retrieve_task(task.uuid).name == task.name
        assert conn.retrieve_profile("docker-batch").name == "docker-batch"
    finally:
        conn._http.close()
