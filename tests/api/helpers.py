"""Small helpers shared by the API tests (the fixtures live in tests/conftest.py)."""

import random
import re
import uuid as uuidlib
from collections.abc import Iterable
from typing import Any

import httpx
import psutil

from tests.conftest import FINAL, task_body, wait_for

DATE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
TIMESPAN_RE = re.compile(r"^(\d+\.)?\d\d:\d\d:\d\d$")
NOT_ENDED = "0001-01-01T00:00:00Z"
RUNNING = {
    "Submitted",
    "PartiallyDispatched",
    "FullyDispatched",
    "PartiallyExecuting",
    "FullyExecuting",
    "UploadingResults",
}


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuidlib.uuid4().hex[:10]}"


def sleeper() -> tuple[str, str]:
    """A long command with a unique marker in its command line, and the marker."""
    marker = f"59.{random.randrange(10**8):08d}"
    return f"sleep {marker}", marker


def assert_error(r: httpx.Response, status: int, *words: str) -> str:
    """A 4xx with a JSON ``{"message": ...}`` that mentions each of ``words``."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    body = r.json()
    assert isinstance(body, dict), body
    message = body.get("message")
    assert isinstance(message, str) and message.strip(), body
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    return message


def task_count(client: httpx.Client) -> int:
    r = client.get("/info")
    assert r.status_code == 200, r.text
    count = r.json()["taskCount"]
    summaries = client.get("/tasks/summaries").json()
    assert count == len(summaries), (count, summaries)
    return int(count)


def submit(client: httpx.Client, body: dict[str, Any] | None = None, **extra: Any) -> str:
    r = client.post("/tasks", json=body if body is not None else task_body(**extra))
    assert r.status_code == 200, r.text
    uuid = r.json()["uuid"]
    assert isinstance(uuid, str) and uuid
    return uuid


def get(client: httpx.Client, key: str) -> dict[str, Any]:
    r = client.get(f"/tasks/{key}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def wait_task(
    client: httpx.Client, uuid: str, predicate: Any, timeout: float = 30, message: str = ""
) -> dict[str, Any]:
    """Poll GET /tasks/{uuid} until ``predicate(task)`` holds."""

    def check() -> dict[str, Any] | None:
        task = get(client, uuid)
        return task if predicate(task) else None

    return wait_for(check, timeout=timeout, interval=0.05, message=message or f"task {uuid}")  # type: ignore[no-any-return]


def wait_executing(client: httpx.Client, uuid: str, timeout: float = 30) -> dict[str, Any]:
    def executing(t: dict[str, Any]) -> bool:
        assert t["state"] not in FINAL, f"task ended early: {t['state']} {t['errors']}"
        return bool(t["state"] == "FullyExecuting")

    return wait_task(client, uuid, executing, timeout, f"task {uuid} to execute")


def page_all(
    client: httpx.Client, body: dict[str, Any], path: str = "/tasks/paginate"
) -> list[list[dict[str, Any]]]:
    """Follow nextToken to the end; returns the pages."""
    pages: list[list[dict[str, Any]]] = []
    token: str | None = None
    for _ in range(100):
        r = client.post(path, json={**body, "token": token})
        assert r.status_code == 200, r.text
        env = r.json()
        assert isinstance(env["data"], list)
        assert env["token"] == token
        pages.append(env["data"])
        if not env["isTruncated"]:
            assert env["nextToken"] is None
            return pages
        assert isinstance(env["nextToken"], str) and env["nextToken"]
        token = env["nextToken"]
    raise AssertionError("paging never ended")


def uuids(items: Iterable[dict[str, Any]]) -> list[str]:
    return [item["uuid"] for item in items]


def processes_with(marker: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line mentions ``marker``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(marker in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def abort_unfinished(client: httpx.Client, timeout: float = 20) -> None:
    """Test teardown: abort what is still running and wait until it is final (frees cores)."""
    pending = [t["uuid"] for t in client.get("/tasks/summaries").json() if t["state"] in RUNNING]
    for uuid in pending:
        client.post(f"/tasks/{uuid}/abort")
    for uuid in pending:
        wait_for(
            lambda u=uuid: client.get(f"/tasks/{u}").json()["state"] in FINAL,
            timeout=timeout,
            message=f"task {uuid} to stop",
        )
