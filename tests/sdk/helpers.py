"""Helpers of the SDK tests: build docker-batch tasks and wait on them without long sleeps.

The SDK's ``task.wait()`` naps up to 10 s between polls and ``task.state`` is cached for 5 s,
so the helpers force a refresh (``task.update(True)``) and poll with ``wait_for``.
"""

import random
import uuid as uuidlib
from collections.abc import Iterable

import psutil
from qarnot.connection import Connection
from qarnot.task import RUNNING_DOWNLOADING_STATES, Task

from tests.conftest import wait_for

FINAL = {"Success", "Failure", "Cancelled"}
RUNNING = set(RUNNING_DOWNLOADING_STATES)
HEADER = "[calor] host runtime"


def unique(prefix: str = "sdk") -> str:
    return f"{prefix}-{uuidlib.uuid4().hex[:10]}"


def docker_task(
    conn: Connection,
    command: str,
    instances: int | str = 1,
    name: str | None = None,
    tags: list[str] | None = None,
    shortname: str | None = None,
) -> Task:
    """A not yet submitted docker-batch task running ``command`` (an int count or a range)."""
    task = conn.create_task(name or unique(), "docker-batch", instances, shortname=shortname)
    task.constants["DOCKER_CMD"] = command
    if tags is not None:
        task.tags = tags
    return task


def fresh_state(task: Task) -> str:
    """The task state as the server has it now (bypasses the SDK's 5 s cache)."""
    task.update(True)
    return str(task.state)


def wait_done(task: Task, timeout: float = 30) -> str:
    """Drive the SDK's own ``wait()`` with a short timeout until it says the task is finished;
    the state it stopped on must be a final one (not PendingCancel or another odd string)."""
    wait_for(
        lambda: task.wait(timeout=0.05),
        timeout=timeout,
        interval=0.01,
        message=f"task {task.uuid} to finish",
    )
    state = str(task.state)
    assert state in FINAL, f"wait() returned on a non-final state {state!r}"
    return state


def wait_executing(task: Task, timeout: float = 30) -> None:
    def executing() -> bool:
        state = fresh_state(task)
        assert state not in FINAL, f"task ended early: {state} {task.errors}"
        return state == "FullyExecuting"

    wait_for(executing, timeout=timeout, interval=0.02, message=f"task {task.uuid} to execute")


def sleeper() -> tuple[str, str]:
    """A long command with a unique marker in its command line, and the marker."""
    marker = f"59.{random.randrange(10**8):08d}"
    return f"sleep {marker}", marker


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


def uuids(tasks: Iterable[Task]) -> list[str]:
    return [str(t.uuid) for t in tasks]


def stop_unfinished(conn: Connection, timeout: float = 20) -> None:
    """Teardown: abort what this user still runs and wait until it is final (frees cores)."""
    pending = [t for t in conn.all_tasks(summary=False) if t.state not in FINAL]
    for task in pending:
        task.abort()
    for task in pending:
        wait_done(task, timeout)
