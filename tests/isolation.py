"""What an instance of one user must not see, whatever the runtime: the server's data dir, its
database and key, the object store's files, and another user's running instance's files. The
probe reports each one it could read; the tests of each runtime run it."""

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import Server, wait_final
from tests.s3.conftest import s3_client

# each check prints LEAK when it could read what it names; "checked" ends a complete run
_CHECKS = [
    ("listing", 'ls -A "{data}" 2>/dev/null | grep -q -e calor.db -e secret.key'),
    ("database", 'cat "{data}/calor.db" >/dev/null 2>&1'),
    ("key", 'cat "{data}/secret.key" >/dev/null 2>&1'),
    ("blobs", 'ls -AR "{data}/blobs" 2>/dev/null | grep -q .'),
    ("workdir", 'ls -A "{data}/work/{other}" 2>/dev/null | grep -q .'),
    ("other", 'cat "{data}/work/{other}/0/task/mine.txt" >/dev/null 2>&1'),
]


def probe(data_dir: str, other_task: str) -> str:
    """The probe as DOCKER_CMD (no single quote inside, for the word splitting)."""
    lines = [
        f"if {check.format(data=data_dir, other=other_task)}; then echo LEAK {name}; fi"
        for name, check in _CHECKS
    ]
    return "sh -c '" + "; ".join([*lines, "echo checked"]) + "'"


def check_isolation(
    server: Server,
    body: Callable[[str], dict[str, Any]],
    wait_running: Callable[[httpx.Client, str], object],
) -> str:
    """User A stores an object and runs a task that writes a file and waits; user B's task
    runs the probe. Returns B's output, after checking that nothing leaked."""
    email = f"iso-{uuid.uuid4().hex[:8]}@test.local"
    token_a = server.new_user(email)
    s3 = s3_client(server, email, token_a, signature_version="s3v4")
    bucket = f"private-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="frame.exr", Body=b"A's data")
    headers_a = {"Authorization": token_a}
    with httpx.Client(base_url=server.url, headers=headers_a, timeout=30) as a:
        r = a.post("/tasks", json=body("sh -c 'echo secret > mine.txt; sleep 120'"))
        assert r.status_code == 200, r.text
        task_a = r.json()["uuid"]
        wait_running(a, task_a)
        headers_b = {"Authorization": server.new_user()}
        try:
            with httpx.Client(base_url=server.url, headers=headers_b, timeout=30) as b:
                r = b.post("/tasks", json=body(probe(str(server.data_dir), task_a)))
                assert r.status_code == 200, r.text
                task_b = r.json()["uuid"]
                done = wait_final(b, task_b, timeout=120)
                out = b.get(f"/tasks/{task_b}/stdout").text
        finally:
            a.post(f"/tasks/{task_a}/abort")
    assert done["state"] == "Success", (done["state"], done["errors"], out)
    assert "checked" in out, out
    assert "LEAK" not in out, out
    return out
