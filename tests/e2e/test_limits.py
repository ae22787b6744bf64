"""Operator limits from CALOR_LIMIT_* environment variables, over the real server."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS, make_server, sh, task_body, wait_final, wait_for


def test_output_beyond_the_limit_is_discarded_with_a_notice(tmp_path: Path) -> None:
    server = make_server(
        tmp_path, "sqlite", CALOR_LIMIT_MAX_OUTPUT_BYTES_PER_INSTANCE="10000"
    ).start()
    try:
        token = server.new_user()
        with httpx.Client(base_url=server.url, headers={"Authorization": token}) as c:
            uuid_ = c.post(
                "/tasks",
                json=task_body(sh("yes calor | head -c 1000000; echo done >&2"), instanceCount=2),
            ).json()["uuid"]
            task = wait_final(c, uuid_)
            # the process ran to its end; only what it wrote past the cap was dropped
            assert task["state"] == "Success"
            for instance in (0, 1):
                out = c.get(f"/tasks/{uuid_}/stdout/{instance}").text
                err = c.get(f"/tasks/{uuid_}/stderr/{instance}").text
                header, _, program_output = out.partition("\n")
                assert header.startswith("[calor] host runtime")
                assert 9000 < len(program_output) <= 10000
                assert set(program_output.splitlines()[:-1]) == {"calor"}
                assert "[calor] output limit of 10000 bytes reached" in err
                assert "done" not in err
    finally:
        server.stop()


def test_a_bad_limit_stops_serve_with_a_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "calor", "serve", "--data-dir", str(tmp_path / "d")],
        env={"CALOR_LIMIT_PAGE_MAX": "lots", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "CALOR_LIMIT_PAGE_MAX='lots' is not a number" in result.stderr
    assert not (tmp_path / "d").exists()


def test_page_size_limit_applies(tmp_path: Path) -> None:
    server = make_server(tmp_path, "sqlite", CALOR_LIMIT_PAGE_MAX="3").start()
    try:
        token = server.new_user()
        with httpx.Client(base_url=server.url, headers={"Authorization": token}) as c:
            for i in range(5):
                c.post("/tasks", json=task_body("true", name=f"t{i}"))
            page = c.post("/tasks/summaries/paginate", json={"maximumResults": 100}).json()
            assert len(page["data"]) == 3
            assert page["nextToken"]
    finally:
        server.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_task_limit_per_user_is_exact_under_concurrent_submits(
    tmp_path: Path, backend: str
) -> None:
    server = make_server(tmp_path, backend, CALOR_LIMIT_MAX_TASKS_PER_USER="5").start()
    try:
        token = server.new_user()
        with httpx.Client(base_url=server.url, headers={"Authorization": token}) as c:
            assert c.post("/tasks", json=[task_body("true")] * 2).status_code == 200
            # an array that does not fit is refused whole
            refused = c.post("/tasks", json=[task_body("true")] * 4)
            assert refused.status_code == 403
            assert "maximum number of tasks reached (5)" in refused.json()["message"]
            assert c.get("/info").json()["taskCount"] == 2

            def submit(_: int) -> int:
                return c.post("/tasks", json=task_body("true")).status_code

            with ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(submit, range(12)))
            assert sorted(codes) == [200] * 3 + [403] * 9
            listed = c.get("/tasks/summaries").json()
            assert len(listed) == 5 and c.get("/info").json()["taskCount"] == 5

            # deleting a task makes room for exactly one more
            assert c.delete(f"/tasks/{listed[0]['uuid']}").status_code in (200, 204)
            assert c.get("/info").json()["taskCount"] == 4
            assert submit(0) == 200 and submit(0) == 403
        # another user has a budget of their own
        other = server.new_user()
        with httpx.Client(base_url=server.url, headers={"Authorization": other}) as c:
            assert c.post("/tasks", json=task_body("true")).status_code == 200
    finally:
        server.stop()


def test_pool_and_job_limits(tmp_path: Path) -> None:
    server = make_server(
        tmp_path, "sqlite", CALOR_LIMIT_MAX_POOLS_PER_USER="1", CALOR_LIMIT_MAX_JOBS_PER_USER="1"
    ).start()
    try:
        token = server.new_user()
        with httpx.Client(base_url=server.url, headers={"Authorization": token}) as c:
            pool = {"name": "p", "profile": "docker-batch", "instanceCount": 0}
            assert c.post("/pools", json=pool).status_code == 200
            assert c.post("/jobs/", json={"name": "j"}).status_code == 200
            # the SDK turns these messages into MaxPoolException / MaxJobException
            r = c.post("/pools", json=pool)
            assert r.status_code == 403 and "maximum number of pools reached" in r.text
            r = c.post("/jobs/", json={"name": "j2"})
            assert r.status_code == 403 and "maximum number of jobs reached" in r.text
            assert len(c.get("/pools").json()) == 1 and len(c.get("/jobs").json()) == 1
            info = c.get("/info").json()
            assert (info["maxPool"], info["poolCount"], info["runningPoolCount"]) == (1, 1, 1)
    finally:
        server.stop()


def test_max_running_tasks_per_user(tmp_path: Path) -> None:
    """A user's tasks beyond maxRunningTask wait in Submitted while cores are free; other users
    are not held up, and the next task starts when one ends."""
    server = make_server(tmp_path, "sqlite", CALOR_LIMIT_MAX_RUNNING_TASKS_PER_USER="1").start()
    try:
        a = httpx.Client(base_url=server.url, headers={"Authorization": server.new_user()})
        b = httpx.Client(base_url=server.url, headers={"Authorization": server.new_user()})

        def submit(c: httpx.Client, command: str) -> str:
            return str(c.post("/tasks", json=task_body(command)).json()["uuid"])

        def state(c: httpx.Client, uuid: str) -> str:
            return str(c.get(f"/tasks/{uuid}").json()["state"])

        first = submit(a, "sleep 59.71")
        second = submit(a, "echo second")
        wait_for(lambda: state(a, first) == "FullyExecuting", timeout=20, message="first")
        other = submit(b, "echo other")  # the second core is free: b's task runs
        assert wait_final(b, other)["state"] == "Success"
        assert state(a, second) == "Submitted"
        assert a.get("/info").json()["maxRunningTask"] == 1
        a.post(f"/tasks/{first}/abort")
        assert wait_final(a, second)["state"] == "Success"
        # nothing runs any more: the next one starts at once
        assert wait_final(a, submit(a, "echo third"))["state"] == "Success"
        a.delete(f"/tasks/{second}")
        a.close()
        b.close()
    finally:
        server.stop()
