"""Crash and shutdown: SIGKILL mid-run loses nothing and leaves nothing running; SIGTERM drains."""

import signal
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import BACKENDS, FINAL, Server, make_server, sh, task_body, wait_final, wait_for


def _marked_processes(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _client(server: Server, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": token}, timeout=30)


@pytest.mark.parametrize(
    ("backend", "sandbox"),
    [(b, "auto") for b in BACKENDS] + [("sqlite", "off")],
)
def test_sigkill_mid_run_loses_nothing_and_leaves_nothing(
    tmp_path: Path, backend: str, sandbox: str
) -> None:
    server = make_server(tmp_path, backend, CALOR_CORES="2", CALOR_SANDBOX=sandbox).start()
    marker = f"calor-crash-{uuid.uuid4().hex[:8]}"
    try:
        token = server.new_user()
        with _client(server, token) as c:
            # runs long on attempt 1 only, so a retry after the crash finishes at once
            retried = c.post(
                "/tasks",
                json=task_body(
                    sh(
                        'if [ "$CALOR_ATTEMPT" = 1 ]; then sleep 120; fi; '
                        f"echo attempt $CALOR_ATTEMPT # {marker}"
                    ),
                    name="retried",
                    retrySettings={"maxPerInstanceRetries": 1},
                ),
            ).json()["uuid"]
            doomed = c.post(
                "/tasks", json=task_body(sh(f"sleep 120 # {marker}"), name="no-retry")
            ).json()["uuid"]
            queued = c.post("/tasks", json=task_body("echo queued", name="queued")).json()["uuid"]
            wait_for(
                lambda: all(
                    c.get(f"/tasks/{u}").json()["state"] == "FullyExecuting"
                    for u in (retried, doomed)
                ),
                message="both long tasks to run",
            )
            assert c.get(f"/tasks/{queued}").json()["state"] == "Submitted"
            wait_for(lambda: len(_marked_processes(marker)) >= 2, message="instance processes")

        server.stop(signal.SIGKILL)
        server.restart()

        with _client(server, token) as c:
            done = {u: wait_final(c, u) for u in (retried, doomed, queued)}
            assert done[queued]["state"] == "Success"
            assert done[retried]["state"] == "Success"
            assert done[retried]["completedInstances"][0]["executionAttemptCount"] == 2
            assert "attempt 2" in c.get(f"/tasks/{retried}/stdout").text
            assert done[doomed]["state"] == "Failure"
            message = done[doomed]["errors"][0]["message"]
            assert "server stopped" in message
            summaries = c.get("/tasks/summaries").json()
            assert {t["uuid"] for t in summaries} == {retried, doomed, queued}
            assert all(t["state"] in FINAL for t in summaries)
        wait_for(lambda: not _marked_processes(marker), timeout=10, message="no leftovers")
    finally:
        server.stop(signal.SIGKILL)
        for proc in _marked_processes(marker):
            proc.kill()


def test_sigterm_drains_and_requeues_running_work(tmp_path: Path) -> None:
    server = make_server(tmp_path, "sqlite", CALOR_DRAIN_SECONDS="0.5").start()
    marker = f"calor-drain-{uuid.uuid4().hex[:8]}"
    try:
        token = server.new_user()
        with _client(server, token) as c:
            u = c.post("/tasks", json=task_body(sh(f"sleep 120 # {marker}"))).json()["uuid"]
            wait_for(lambda: c.get(f"/tasks/{u}").json()["state"] == "FullyExecuting")
        # uvicorn re-raises SIGTERM once its graceful shutdown (our drain included) is done
        assert server.stop(signal.SIGTERM, timeout=20) in (0, -signal.SIGTERM)
        assert not _marked_processes(marker)
        server.restart()
        with _client(server, token) as c:
            # the interrupted attempt does not count: the instance runs again as attempt 1
            task = wait_for(
                lambda: (t := c.get(f"/tasks/{u}").json())["state"] == "FullyExecuting" and t,
                message="the task to run again",
            )
            running = task["status"]["runningInstancesInfo"]["perRunningInstanceInfo"]
            assert running[0]["executionAttemptCount"] == 1
            c.post(f"/tasks/{u}/abort")
            assert wait_final(c, u)["state"] == "Cancelled"
    finally:
        server.stop(signal.SIGKILL)
        for proc in _marked_processes(marker):
            proc.kill()
