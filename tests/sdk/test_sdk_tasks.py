"""One task's life through the official ``qarnot`` SDK against a real calor server: submit
and run, output (full, fresh, per instance, stderr), abort, delete, retries, advanced ranges
and failures. Tasks are docker-batch tasks run by the host runtime (DOCKER_CMD via sh -c)."""

import re
from datetime import datetime
from pathlib import Path

import pytest
from qarnot.connection import Connection
from qarnot.exceptions import MissingTaskException, MissingTaskInstanceException
from qarnot.retry_settings import RetrySettings

from tests.conftest import sh, wait_for
from tests.sdk.helpers import (
    HEADER,
    RUNNING,
    docker_task,
    fresh_state,
    processes_with,
    sleeper,
    unique,
    wait_done,
    wait_executing,
)


def test_submit_with_constants_and_tags_then_read_it_back(conn: Connection) -> None:
    shortname = unique("short")
    command = sh('echo "const=$MY_CONST"; echo "id=$INSTANCE_ID"')
    task = docker_task(conn, command, tags=["alpha", "beta"], shortname=shortname)
    task.constants["MY_CONST"] = "hello world"
    assert task.state == "UnSubmitted" and task.uuid is None
    task.submit()
    assert task.uuid
    assert task.state in RUNNING | {"Success"}
    assert wait_done(task) == "Success"

    again = conn.retrieve_task(task.uuid)
    assert again.uuid == task.uuid
    assert again.name == task.name and again.shortname == shortname
    assert again.profile == "docker-batch"
    assert again.instancecount == 1
    assert sorted(again.tags) == ["alpha", "beta"]
    assert again.constants["MY_CONST"] == "hello world"
    assert again.constants["DOCKER_CMD"] == command
    assert isinstance(again.creation_date, datetime)
    assert again.state == "Success" and again.previous_state in RUNNING
    assert again.errors == []
    assert again.progress == 100.0
    assert again.status.succeeded_range == "0" and again.status.failed_range in ("", None)
    [done] = again.completed_instances
    assert done.instance_id == 0 and done.state == "Success"
    assert done.execution_attempt_count == 1
    # the shortname is another key for the same task
    assert conn.retrieve_task(shortname).uuid == task.uuid

    out = task.stdout()
    lines = out.splitlines()
    assert lines[0].startswith(f"0> {HEADER}"), out
    assert lines[1:] == ["0> const=hello world", "0> id=0"], out
    own = task.stdout(0)
    assert own.startswith(HEADER) and own.endswith("const=hello world\nid=0\n"), own


def test_run_with_job_timeout_on_a_quick_task(conn: Connection) -> None:
    """run(job_timeout=) waits then always aborts: aborting a finished task must be a no-op."""
    task = docker_task(conn, "echo ran")
    task.run(job_timeout=2)
    assert fresh_state(task) == "Success"
    assert "0> ran\n" in task.stdout()
    assert task.completed_instances[0].state == "Success"


def test_fresh_stdout_and_per_instance_output(conn: Connection) -> None:
    command = (
        'echo "one $INSTANCE_ID"; echo "path=$TASK_PATH"; '
        "while [ ! -f go ]; do sleep 0.02; done; "
        'echo "two $INSTANCE_ID"'
    )
    task = docker_task(conn, sh(command), instances=2)
    task.submit()
    full = wait_for(
        lambda: (out := task.stdout()).count("path=") == 2 and out,
        timeout=20,
        message="both instances to print their path",
    )
    first = task.fresh_stdout()
    assert "0> one 0\n" in first and "1> one 1\n" in first
    assert "two" not in first
    assert task.fresh_stdout() == ""
    # a per-instance cursor is its own: instance 1 has not been read yet
    inst1 = task.fresh_stdout(1)
    assert "one 1\n" in inst1 and "one 0" not in inst1
    assert not any(line.startswith("1> ") for line in inst1.splitlines())
    assert task.fresh_stdout(1) == ""

    for path in re.findall(r"path=(\S+)", full):
        assert Path(path).is_absolute(), path
        (Path(path) / "go").touch()
    assert wait_done(task) == "Success"

    second = task.fresh_stdout()
    assert sorted(second.splitlines()) == ["0> two 0", "1> two 1"]
    assert task.fresh_stdout() == ""
    assert task.fresh_stdout(1) == "two 1\n"
    inst0 = task.fresh_stdout(0)
    assert inst0.startswith(HEADER) and "one 0\n" in inst0 and inst0.endswith("two 0\n")
    assert task.fresh_stdout(0) == ""
    # the full output stays whole, at both levels
    everything = task.stdout()
    for part in ("0> one 0\n", "1> one 1\n", "0> two 0\n", "1> two 1\n"):
        assert part in everything
    assert task.stdout(1) == inst1 + "two 1\n"
    with pytest.raises(MissingTaskInstanceException):
        task.stdout(2)
    with pytest.raises(MissingTaskInstanceException):
        task.fresh_stdout(7)


def test_stderr(conn: Connection) -> None:
    task = docker_task(conn, sh("echo out; echo err1 >&2; echo err2 >&2"))
    task.submit()
    assert wait_done(task) == "Success"
    assert task.stderr() == "0> err1\n0> err2\n"
    assert task.stderr(0) == "err1\nerr2\n"
    assert "err" not in task.stdout()
    assert task.fresh_stderr() == "0> err1\n0> err2\n"
    assert task.fresh_stderr() == ""
    assert task.fresh_stderr(0) == "err1\nerr2\n"
    assert task.fresh_stderr(0) == ""
    # reading stderr moved no stdout cursor
    assert "0> out\n" in task.fresh_stdout()
    with pytest.raises(MissingTaskInstanceException):
        task.stderr(1)
    with pytest.raises(MissingTaskInstanceException):
        task.fresh_stderr(1)


def test_abort_a_running_task(conn: Connection) -> None:
    command, marker = sleeper()
    task = docker_task(conn, command)
    task.submit()
    wait_executing(task)
    wait_for(lambda: processes_with(marker), timeout=10, message="the sleep process")
    assert task.running_instance_count == 1
    task.abort()
    assert wait_done(task, timeout=5) == "Cancelled"  # quickly, not after the sleep
    assert task.previous_state == "FullyExecuting"
    assert [i.state for i in task.completed_instances] == ["Cancelled"]
    assert task.running_instance_count == 0 and task.running_core_count == 0
    wait_for(lambda: not processes_with(marker), timeout=5, message="the sleep to be killed")
    # aborting a finished task is harmless, and wait() returns at once
    task.abort()
    assert fresh_state(task) == "Cancelled"
    assert task.wait(timeout=30) is True


def test_delete_a_finished_and_a_running_task(conn: Connection) -> None:
    done = docker_task(conn, "echo bye")
    done.submit()
    assert wait_done(done) == "Success"
    done_uuid = done.uuid
    stale = conn.retrieve_task(done_uuid)
    done.delete()
    assert done.uuid is None and done.state == "Deleted"
    with pytest.raises(MissingTaskException):
        conn.retrieve_task(done_uuid)
    with pytest.raises(MissingTaskException):
        stale.stdout()
    with pytest.raises(MissingTaskException):
        stale.delete()

    command, marker = sleeper()
    running = docker_task(conn, command)
    running.submit()
    wait_executing(running)
    wait_for(lambda: processes_with(marker), timeout=10, message="the sleep process")
    running_uuid = running.uuid
    assert conn.user_info.running_task_count == 1
    running.delete()
    with pytest.raises(MissingTaskException):
        conn.retrieve_task(running_uuid)
    assert list(conn.all_tasks()) == []
    info = conn.user_info
    assert info.task_count == 0 and info.running_task_count == 0
    wait_for(lambda: not processes_with(marker), timeout=5, message="the sleep to be killed")


def test_retry_settings_rerun_a_failed_instance(conn: Connection) -> None:
    task = docker_task(conn, sh('echo "attempt $CALOR_ATTEMPT"; [ "$CALOR_ATTEMPT" = 2 ]'))
    task.retry_settings = RetrySettings(maxPerInstanceRetries=1)
    task.submit()
    assert wait_done(task) == "Success", task.errors
    assert conn.retrieve_task(task.uuid).retry_settings == RetrySettings(None, 1)
    [inst] = task.completed_instances
    assert inst.state == "Success" and inst.execution_attempt_count == 2
    assert task.errors == []
    out = task.stdout(0)
    assert "attempt 1\n" in out and "attempt 2\n" in out

    # the same command without retry settings fails on its first attempt
    once = docker_task(conn, sh('echo "attempt $CALOR_ATTEMPT"; [ "$CALOR_ATTEMPT" = 2 ]'))
    once.submit()
    assert wait_done(once) == "Failure"
    assert once.completed_instances[0].execution_attempt_count == 1
    assert "attempt 2" not in once.stdout(0)


def test_failing_instance_reports_completed_instances_and_errors(conn: Connection) -> None:
    command = 'if [ "$INSTANCE_ID" = 1 ]; then echo "about to fail" >&2; exit 3; fi; echo fine'
    task = docker_task(conn, sh(command), instances=2)
    task.submit()
    assert wait_done(task) == "Failure"
    states = {i.instance_id: i.state for i in task.completed_instances}
    assert states == {0: "Success", 1: "Failure"}
    assert task.status.succeeded_range == "0" and task.status.failed_range == "1"
    assert len(task.errors) == 1
    [error] = task.errors
    assert isinstance(error.code, str) and error.code
    assert "exited with code 3" in error.message and "instance 1" in error.message
    assert task.stderr(1) == "about to fail\n"
    assert "fine\n" in task.stdout(0)


def test_advanced_ranges_are_the_instance_ids(conn: Connection) -> None:
    task = docker_task(conn, sh('echo "id=$INSTANCE_ID count=$INSTANCE_COUNT"'), instances="0-2,5")
    assert task.instancecount == 0 and task.advanced_range == "0-2,5"
    task.submit()
    assert wait_done(task) == "Success"
    again = conn.retrieve_task(task.uuid)
    assert again.advanced_range == "0-2,5"
    assert again.instancecount == 4
    assert sorted(i.instance_id for i in again.completed_instances) == [0, 1, 2, 5]
    assert again.status.succeeded_range == "0-2,5"
    for i in (0, 1, 2, 5):
        assert task.stdout(i).endswith(f"id={i} count=4\n")
    assert "5> id=5 count=4\n" in task.stdout()
    with pytest.raises(MissingTaskInstanceException):
        task.stdout(3)
