"""Operator limits from CALOR_LIMIT_* environment variables, over the real server."""

import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import make_server, task_body, wait_final


def test_output_beyond_the_limit_is_discarded_with_a_notice(tmp_path: Path) -> None:
    server = make_server(
        tmp_path, "sqlite", CALOR_LIMIT_MAX_OUTPUT_BYTES_PER_INSTANCE="10000"
    ).start()
    try:
        token = server.new_user()
        with httpx.Client(base_url=server.url, headers={"Authorization": token}) as c:
            uuid_ = c.post(
                "/tasks",
                json=task_body("yes calor | head -c 1000000; echo done >&2", instanceCount=2),
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
