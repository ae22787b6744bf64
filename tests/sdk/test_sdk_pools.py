"""The official SDK's pool flows against calor, unchanged: a fixed pool with a preparation task
and tasks on its slots, an elastic pool that grows with its queue and shrinks back, listing,
output, close and delete. The SDK has no ``wait()`` for pools: the tests poll the pool's state
with a forced refresh (``pool.update(True)``), as the SDK samples do."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from qarnot.connection import Connection
from qarnot.exceptions import (
    MissingPoolException,
    MissingPoolInstanceException,
)
from qarnot.pool import Pool

from tests.conftest import sh, wait_for
from tests.sdk.helpers import (
    HEADER,
    processes_with,
    sleeper,
    unique,
    wait_done,
    wait_executing,
)

GATE = 'echo "path=$TASK_PATH"; while [ ! -f go ]; do sleep 0.02; done; '


@pytest.fixture
def opened(conn: Connection) -> Iterator[list[str]]:
    """Uuids of the pools a test opened. Teardown deletes those still there (DELETE closes
    the pool, which releases its slots), so the next test on this server gets its cores."""
    uuids: list[str] = []
    yield uuids
    for uuid in uuids:
        conn._delete(f"/pools/{uuid}")  # 404 when the test deleted it already


def fresh_pool_state(pool: Pool) -> str:
    """The pool state as the server has it now (bypasses the SDK's 5 s cache)."""
    pool.update(True)
    return str(pool.state)


def wait_pool(pool: Pool, states: set[str], timeout: float = 30) -> str:
    def reached() -> str | None:
        state = fresh_pool_state(pool)
        if state == "Failure" and "Failure" not in states:
            raise AssertionError(f"pool {pool.uuid} failed: {pool.errors}")
        return state if state in states else None

    return wait_for(reached, timeout=timeout, message=f"pool {pool.uuid} to be in {states}")


def slots(pool: Pool) -> tuple[int, int]:
    """(totalSlotCapacity, queuedOrRunningTaskInstancesCount), fresh from the server."""
    pool.update(True)
    return pool.total_slot_capacity, pool.queued_or_running_task_instances_count


def open_gates(output: str, count: int) -> None:
    """Let go the instances that printed their TASK_PATH and wait for a ``go`` file there."""
    paths = set(re.findall(r"path=(\S+)", output))
    assert len(paths) == count, output
    for path in paths:
        assert Path(path).is_absolute(), path
        (Path(path) / "go").touch()


def test_pool_with_a_preparation_task_runs_tasks_in_its_slots(
    conn: Connection, opened: list[str]
) -> None:
    tag, shortname = unique("pool-tag"), unique("pool-short")
    pool = conn.create_pool(unique("pool"), "docker-batch", 2, shortname=shortname)
    pool.preparation_command_line = sh(
        'echo "prepared by slot $INSTANCE_ID" > prepared.txt; echo "slot $INSTANCE_ID ready"'
    )
    pool.constants["GREETING"] = "hello from the pool"
    pool.constants["WHO"] = "pool"
    pool.tags = [tag]
    assert pool.state == "UnSubmitted"
    pool.submit()
    assert pool.uuid
    opened.append(pool.uuid)
    wait_pool(pool, {"FullyExecuting"})
    assert pool.instancecount == 2 and pool.total_slot_capacity == 2
    assert pool.is_elastic is False
    assert pool.preparation_command_line.startswith("sh -c 'echo \"prepared by slot")
    assert pool.constants["GREETING"] == "hello from the pool"
    assert pool.errors == []

    # a task on the pool: 3 instances on 2 slots, in the slots' working directories, with the
    # pool's constants (the task's own override them)
    task = conn.create_task(unique(), pool, 3)
    task.constants["DOCKER_CMD"] = sh('cat prepared.txt; echo "$GREETING, $WHO $INSTANCE_ID"')
    task.constants["WHO"] = "task"
    task.submit()
    assert wait_done(task) == "Success"
    assert task.pool.uuid == pool.uuid
    assert sorted(i.instance_id for i in task.completed_instances) == [0, 1, 2]
    for instance in range(3):
        own = task.stdout(instance)
        lines = own.splitlines()
        assert lines[0].startswith(HEADER), own
        assert re.fullmatch(r"prepared by slot [01]", lines[1]), own
        assert lines[2:] == [f"hello from the pool, task {instance}"], own
    # none of the task's output is the pool's, and the preparation's is not the task's
    assert "ready" not in task.stdout()

    # the pool's output is its slots' preparation, prefixed by slot at the pool level
    out = pool.stdout()
    assert "0> slot 0 ready\n" in out and "1> slot 1 ready\n" in out, out
    assert "hello from the pool" not in out
    assert pool.stdout(1).endswith("slot 1 ready\n")
    assert not any(line.startswith("1> ") for line in pool.stdout(1).splitlines())
    assert "0> slot 0 ready\n" in pool.fresh_stdout()
    assert pool.fresh_stdout() == ""
    assert pool.stderr() == ""
    with pytest.raises(MissingPoolInstanceException):
        pool.stdout(5)

    # the connection lists and finds it, by uuid and by shortname
    assert pool.uuid in [p.uuid for p in conn.pools()]
    assert [p.uuid for p in conn.all_pools(tags=[tag])] == [pool.uuid]
    assert [p.uuid for p in conn.all_pools(summary=False, tags=[tag])] == [pool.uuid]
    assert [p.uuid for p in conn.pools(tags_intersect=[tag, "other"])] == []
    found = conn.retrieve_pool(pool.uuid)
    assert found.name == pool.name and found.profile == "docker-batch" and found.tags == [tag]
    assert conn.retrieve_pool(shortname).uuid == pool.uuid

    pool.close()
    assert wait_pool(pool, {"Closed"}, timeout=20) == "Closed"
    uuid = pool.uuid
    pool.delete()
    assert pool.state == "Deleted" and pool.uuid is None
    with pytest.raises(MissingPoolException):
        conn.retrieve_pool(uuid)
    assert uuid not in [p.uuid for p in conn.pools()]
    # the task that ran on it is still there
    assert wait_done(task) == "Success"


def test_elastic_pool_grows_with_its_queue_and_shrinks_back(
    conn: Connection, opened: list[str]
) -> None:
    pool = conn.create_elastic_pool(
        unique("elastic"),
        "docker-batch",
        minimum_total_slots=0,
        maximum_total_slots=2,
        minimum_idle_slots=0,
        minimum_idle_time_seconds=0,
        resize_factor=1,
        resize_period=1,
    )
    pool.submit()
    assert pool.uuid
    opened.append(pool.uuid)
    pool.update(True)
    assert pool.is_elastic is True
    assert (pool.elastic_minimum_slots, pool.elastic_maximum_slots) == (0, 2)
    assert pool.elastic_resize_period == 1
    assert pool.state not in ("Failure", "Closed")
    assert slots(pool) == (0, 0)

    task = conn.create_task(unique(), pool, 2)
    task.constants["DOCKER_CMD"] = sh(GATE + 'echo "done $INSTANCE_ID"')
    task.submit()
    # the queue makes the pool grow to its maximum; both instances run and wait at the gate
    wait_for(lambda: slots(pool) == (2, 2), timeout=20, message="the pool to grow to 2 slots")
    output = wait_for(
        lambda: (out := task.stdout()).count("path=") == 2 and out,
        timeout=20,
        message="both instances to start on the new slots",
    )
    assert fresh_pool_state(pool) == "FullyExecuting"
    open_gates(output, 2)
    assert wait_done(task) == "Success"
    assert "0> done 0\n" in task.stdout() and "1> done 1\n" in task.stdout()
    # idle slots go (minimum_idle_time_seconds=0): back to none
    wait_for(lambda: slots(pool) == (0, 0), timeout=20, message="the pool to shrink to 0")
    assert fresh_pool_state(pool) == "FullyExecuting"
    # and grows again for the next task
    again = conn.create_task(unique(), pool, 1)
    again.constants["DOCKER_CMD"] = sh('echo "again $INSTANCE_ID"')
    again.submit()
    assert wait_done(again) == "Success"
    assert "0> again 0\n" in again.stdout()
    wait_for(lambda: slots(pool) == (0, 0), timeout=20, message="the pool to shrink to 0 again")

    uuid = pool.uuid
    pool.delete()
    with pytest.raises(MissingPoolException):
        conn.retrieve_pool(uuid)


def elastic(conn: Connection) -> Pool:
    return conn.create_elastic_pool(
        unique("elastic"), "docker-batch", 0, 2, 0, 0, resize_factor=1, resize_period=1
    )


def test_closing_an_elastic_pool_that_never_had_slots(conn: Connection, opened: list[str]) -> None:
    pool = elastic(conn)
    pool.submit()
    opened.append(pool.uuid)
    assert slots(pool) == (0, 0)
    pool.close()
    assert wait_pool(pool, {"Closed"}, timeout=10) == "Closed"


def test_closing_an_elastic_pool_that_shrank_to_no_slots(
    conn: Connection, opened: list[str]
) -> None:
    pool = elastic(conn)
    pool.submit()
    opened.append(pool.uuid)
    task = conn.create_task(unique(), pool, 1)
    task.constants["DOCKER_CMD"] = "echo ran"
    task.submit()
    assert wait_done(task) == "Success"
    wait_for(lambda: slots(pool) == (0, 0), timeout=20, message="the pool to shrink to 0")
    pool.close()
    assert wait_pool(pool, {"Closed"}, timeout=10) == "Closed"


def test_closing_a_pool_cancels_its_tasks(conn: Connection, opened: list[str]) -> None:
    pool = conn.create_pool(unique("pool"), "docker-batch", 1)
    pool.submit()
    opened.append(pool.uuid)
    wait_pool(pool, {"FullyExecuting"})
    command, marker = sleeper()
    running = conn.create_task(unique(), pool, 1)
    running.constants["DOCKER_CMD"] = command
    running.submit()
    wait_executing(running)
    # the only slot is busy: this one waits in the queue
    queued = conn.create_task(unique(), pool, 1)
    queued.constants["DOCKER_CMD"] = "echo never"
    queued.submit()
    wait_for(
        lambda: slots(pool) == (1, 2), timeout=10, message="both tasks to be counted on the pool"
    )
    assert processes_with(marker)

    pool.close()
    assert wait_done(running) == "Cancelled"
    assert wait_done(queued) == "Cancelled"
    for task in (running, queued):
        assert any("its pool was closed" in e.message for e in task.errors), task.errors
    assert "never" not in queued.stdout()
    wait_for(lambda: not processes_with(marker), timeout=10, message="the sleep to be killed")
    assert wait_pool(pool, {"Closed"}, timeout=20) == "Closed"
    # closing it again is harmless
    pool.close()
    assert fresh_pool_state(pool) == "Closed"
