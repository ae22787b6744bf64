"""Running tasks through the API: abort, delete, output, retries, ranges, environment,
progress, cores and live counts. The machine has 2 cores, so tasks are short and the
``reaper`` fixture stops leftovers after each test."""

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import (
    NOT_ENDED,
    assert_error,
    get,
    processes_with,
    sleeper,
    submit,
    uuids,
    wait_executing,
    wait_task,
)
from tests.conftest import IN_CI, Server, make_server, sh, task_body, wait_final, wait_for
from tests.isolation import check_isolation


def test_abort_running_task(reaper: httpx.Client) -> None:
    client = reaper
    command, marker = sleeper()
    uuid = submit(client, task_body(command))
    wait_executing(client, uuid)
    wait_for(lambda: processes_with(marker), timeout=10, message="the sleep process")
    r = client.post(f"/tasks/{uuid}/abort")
    assert r.status_code == 200, r.text
    task = wait_final(client, uuid, timeout=5)
    assert task["state"] == "Cancelled"
    assert task["previousState"] == "FullyExecuting"
    assert task["endDate"] != NOT_ENDED
    assert task["runningInstanceCount"] == 0 and task["runningCoreCount"] == 0
    assert [i["state"] for i in task["completedInstances"]] == ["Cancelled"]
    wait_for(lambda: not processes_with(marker), timeout=5, message="the process to be gone")
    # aborting again is a harmless no-op
    assert client.post(f"/tasks/{uuid}/abort").status_code == 200
    assert get(client, uuid)["endDate"] == task["endDate"]


def test_abort_of_a_finished_task_is_a_noop(client: httpx.Client) -> None:
    uuid = submit(client, task_body("echo done"))
    done = wait_final(client, uuid)
    assert done["state"] == "Success"
    r = client.post(f"/tasks/{uuid}/abort")
    assert r.status_code == 200, r.text
    after = get(client, uuid)
    assert after["state"] == "Success"
    assert after["endDate"] == done["endDate"]
    assert after["stateTransitionTime"] == done["stateTransitionTime"]
    assert after["completedInstances"][0]["state"] == "Success"


def test_delete_running_task(client: httpx.Client) -> None:
    command, marker = sleeper()
    uuid = submit(client, task_body(command, shortname=f"del-{marker}"))
    wait_executing(client, uuid)
    wait_for(lambda: processes_with(marker), timeout=10, message="the sleep process")
    assert client.get("/info").json()["runningTaskCount"] == 1
    r = client.delete(f"/tasks/{uuid}")
    assert r.status_code == 200, r.text
    assert_error(client.get(f"/tasks/{uuid}"), 404)
    assert_error(client.get(f"/tasks/del-{marker}"), 404)
    assert_error(client.get(f"/tasks/{uuid}/stdout"), 404)
    assert_error(client.post(f"/tasks/{uuid}/abort"), 404)
    assert client.get("/tasks").json() == []
    info = client.get("/info").json()
    assert info["taskCount"] == 0 and info["runningTaskCount"] == 0
    wait_for(lambda: not processes_with(marker), timeout=5, message="the process to be gone")


def test_core_constraint_and_queueing(reaper: httpx.Client) -> None:
    client = reaper
    command, _ = sleeper()
    hc = [{"discriminator": "MinimumCoreHardwareConstraint", "coreCount": 2}]
    big = submit(client, task_body(command, hardwareConstraints=hc))
    task = wait_executing(client, big)
    assert task["runningCoreCount"] == 2 and task["runningInstanceCount"] == 1
    per_instance = task["status"]["runningInstancesInfo"]["perRunningInstanceInfo"]
    assert per_instance[0]["coreCount"] == 2
    summary = client.get("/tasks/summaries").json()[0]
    assert summary["runningCoreCount"] == 2
    info = client.get("/info").json()
    assert info["runningCoreCount"] == 2 and info["runningInstanceCount"] == 1
    assert info["runningTaskCount"] == 1 and info["taskCount"] == 1
    assert task["hardwareConstraints"] == hc
    # both cores are taken: a new task waits, and can be cancelled before it ever runs
    queued = submit(client, task_body("echo ran"))
    assert get(client, queued)["state"] == "Submitted"
    assert client.get("/info").json()["runningTaskCount"] == 2
    assert client.post(f"/tasks/{queued}/abort").status_code == 200
    cancelled = wait_final(client, queued, timeout=5)
    assert cancelled["state"] == "Cancelled"
    assert client.get(f"/tasks/{queued}/stdout").text == ""
    assert client.post(f"/tasks/{big}/abort").status_code == 200
    assert wait_final(client, big, timeout=5)["state"] == "Cancelled"
    info = client.get("/info").json()
    assert info["runningTaskCount"] == 0 and info["runningCoreCount"] == 0
    assert info["taskCount"] == 2


def test_progress_from_docker_progress_regex(reaper: httpx.Client) -> None:
    client = reaper
    command, _ = sleeper()
    body = task_body(sh(f'echo "progress 42%"; {command}'))
    body["constants"].append({"key": "DOCKER_PROGRESS1", "value": r"progress (\d+)%"})
    uuid = submit(client, body)
    task = wait_task(
        client,
        uuid,
        lambda t: t["state"] == "FullyExecuting" and t["progress"] == 42.0,
        timeout=20,
        message="progress 42",
    )
    assert task["status"]["executionProgress"] == 42.0
    running = task["status"]["runningInstancesInfo"]["perRunningInstanceInfo"]
    assert running[0]["progress"] == 42.0
    assert client.get("/tasks/summaries").json()[0]["progress"] == 42.0
    assert client.post(f"/tasks/{uuid}/abort").status_code == 200


def test_progress_is_100_when_done(client: httpx.Client) -> None:
    body = task_body('echo "progress 10%"')
    body["constants"].append({"key": "DOCKER_PROGRESS1", "value": r"progress (\d+)%"})
    assert wait_final(client, submit(client, body))["progress"] == 100.0


def _touch_go(text: str) -> None:
    for path in re.findall(r"path=(\S+)", text):
        assert Path(path).is_absolute(), path
        (Path(path) / "go").touch()


def test_fresh_output_cursors(client: httpx.Client) -> None:
    command = (
        'echo "one $INSTANCE_ID"; echo "path=$TASK_PATH"; '
        "while [ ! -f go ]; do sleep 0.02; done; "
        'echo "two $INSTANCE_ID"'
    )
    uuid = submit(client, task_body(sh(command), instanceCount=2))
    full = wait_for(
        lambda: (t := client.get(f"/tasks/{uuid}/stdout").text).count("path=") == 2 and t,
        timeout=20,
        message="both instances to print their path",
    )
    first = client.post(f"/tasks/{uuid}/stdout").text
    assert "0> one 0\n" in first and "1> one 1\n" in first
    assert "two" not in first
    assert client.post(f"/tasks/{uuid}/stdout").text == ""
    _touch_go(full)
    assert wait_final(client, uuid)["state"] == "Success"
    second = client.post(f"/tasks/{uuid}/stdout").text
    assert sorted(second.splitlines()) == ["0> two 0", "1> two 1"]
    assert client.post(f"/tasks/{uuid}/stdout").text == ""
    # per-instance cursors are independent of the task-level one and of each other
    inst0 = client.post(f"/tasks/{uuid}/stdout/0").text
    assert "one 0\n" in inst0 and inst0.endswith("two 0\n")
    assert "one 1" not in inst0 and "two 1" not in inst0
    assert not any(line.startswith("0> ") for line in inst0.splitlines())
    assert client.post(f"/tasks/{uuid}/stdout/0").text == ""
    inst1 = client.post(f"/tasks/{uuid}/stdout/1").text
    assert "one 1\n" in inst1 and inst1.endswith("two 1\n")
    # stderr cursors are separate from stdout's
    assert client.post(f"/tasks/{uuid}/stderr").text == ""
    # the full output stays whole
    everything = client.get(f"/tasks/{uuid}/stdout").text
    for part in ("0> one 0", "1> one 1", "0> two 0", "1> two 1"):
        assert part in everything
    assert client.get(f"/tasks/{uuid}/stdout/1").text == inst1


def test_stderr(client: httpx.Client) -> None:
    uuid = submit(client, task_body(sh("echo out; echo err >&2; echo err2 >&2")))
    wait_final(client, uuid)
    assert client.get(f"/tasks/{uuid}/stderr").text == "0> err\n0> err2\n"
    assert client.get(f"/tasks/{uuid}/stderr/0").text == "err\nerr2\n"
    out = client.get(f"/tasks/{uuid}/stdout").text
    assert "0> out\n" in out and "err" not in out
    assert client.post(f"/tasks/{uuid}/stderr").text == "0> err\n0> err2\n"
    assert client.post(f"/tasks/{uuid}/stderr").text == ""
    assert client.post(f"/tasks/{uuid}/stderr/0").text == "err\nerr2\n"
    # the stdout cursor did not move
    assert "0> out\n" in client.post(f"/tasks/{uuid}/stdout").text


def test_retry_succeeds_on_second_attempt(client: httpx.Client) -> None:
    command = 'echo "attempt $CALOR_ATTEMPT"; [ "$CALOR_ATTEMPT" -ge 2 ]'
    body = task_body(
        sh(command), retrySettings={"maxPerInstanceRetries": 1, "maxTotalRetries": None}
    )
    task = wait_final(client, submit(client, body))
    assert task["state"] == "Success", task["errors"]
    assert task["errors"] == []
    assert [i["executionAttemptCount"] for i in task["completedInstances"]] == [2]
    assert task["completedInstances"][0]["error"] is None
    out = client.get(f"/tasks/{task['uuid']}/stdout/0").text
    assert "attempt 1\n" in out and "attempt 2\n" in out


def test_retry_starts_in_a_clean_working_directory(client: httpx.Client) -> None:
    """Attempt 1 leaves many files behind; the retry reuses TASK_PATH and must find it
    empty and existing (not removed under it by attempt 1's cleanup)."""
    command = (
        'if [ "$CALOR_ATTEMPT" -lt 2 ]; then mkdir junk && cd junk && seq 2000 | xargs touch; '
        'exit 1; fi; echo "files=$(ls -A | wc -l)"'
    )
    body = task_body(sh(command), retrySettings={"maxPerInstanceRetries": 1})
    for _ in range(2):
        task = wait_final(client, submit(client, body))
        assert task["state"] == "Success", task["errors"]
        out = client.get(f"/tasks/{task['uuid']}/stdout/0").text
        assert "files=0\n" in out


def test_retries_run_out_with_a_clear_error(client: httpx.Client) -> None:
    command = 'echo "attempt $CALOR_ATTEMPT"; exit 3'
    body = task_body(sh(command), retrySettings={"maxPerInstanceRetries": 1})
    task = wait_final(client, submit(client, body))
    assert task["state"] == "Failure"
    inst = task["completedInstances"][0]
    assert inst["state"] == "Failure" and inst["executionAttemptCount"] == 2
    assert inst["error"] is not None and "exited with code 3" in inst["error"]["message"]
    assert len(task["errors"]) == 1
    error = task["errors"][0]
    assert {"code", "message", "debug"} <= error.keys()
    assert "exited with code 3" in error["message"]
    assert error["message"].count("instance 0") == 1, error["message"]
    assert task["status"]["failedRange"] == "0"
    out = client.get(f"/tasks/{task['uuid']}/stdout/0").text
    assert out.count("attempt ") == 2


def test_no_retry_by_default(client: httpx.Client) -> None:
    task = wait_final(client, submit(client, task_body(sh("exit 3"))))
    assert task["state"] == "Failure"
    assert task["completedInstances"][0]["executionAttemptCount"] == 1
    assert "exited with code 3" in task["errors"][0]["message"]


def test_legacy_max_retries_per_instance(client: httpx.Client) -> None:
    body = task_body(sh('[ "$CALOR_ATTEMPT" -ge 3 ]'), maxRetriesPerInstance=2)
    task = wait_final(client, submit(client, body))
    assert task["state"] == "Success", task["errors"]
    assert task["completedInstances"][0]["executionAttemptCount"] == 3
    assert task["maxRetriesPerInstance"] == 2
    assert task["retrySettings"]["maxPerInstanceRetries"] == 2


def test_max_total_retries_caps_the_task(client: httpx.Client) -> None:
    body = task_body(
        sh("exit 1"),
        instanceCount=2,
        retrySettings={"maxPerInstanceRetries": 5, "maxTotalRetries": 1},
    )
    task = wait_final(client, submit(client, body))
    assert task["state"] == "Failure"
    attempts = sorted(i["executionAttemptCount"] for i in task["completedInstances"])
    assert attempts == [1, 2]


def test_advanced_ranges_set_instance_ids(client: httpx.Client) -> None:
    body = task_body(sh('echo "id=$INSTANCE_ID count=$INSTANCE_COUNT"'), advancedRanges="0-2,5")
    del body["instanceCount"]
    uuid = submit(client, body)
    task = wait_final(client, uuid)
    assert task["state"] == "Success"
    assert task["advancedRanges"] == "0-2,5"
    assert task["instanceCount"] == 4
    assert sorted(i["instanceId"] for i in task["completedInstances"]) == [0, 1, 2, 5]
    assert task["status"]["succeededRange"] == "0-2,5"
    for i in (0, 1, 2, 5):
        assert client.get(f"/tasks/{uuid}/stdout/{i}").text.endswith(f"id={i} count=4\n")
    assert_error(client.get(f"/tasks/{uuid}/stdout/3"), 404)
    assert "5> id=5 count=4\n" in client.get(f"/tasks/{uuid}/stdout").text


def test_environment_seen_by_the_command(client: httpx.Client) -> None:
    command = (
        'echo "id=$INSTANCE_ID frame=$FRAME_ID count=$INSTANCE_COUNT const=$MY_CONST"; '
        'echo "path=$TASK_PATH"; echo "pwd=$(pwd)"; echo "repo=$DOCKER_REPO"'
    )
    body = task_body(sh(command), instanceCount=2)
    body["constants"].append({"key": "MY_CONST", "value": "hello world"})
    uuid = submit(client, body)
    assert wait_final(client, uuid)["state"] == "Success"
    paths = set()
    for i in (0, 1):
        out = client.get(f"/tasks/{uuid}/stdout/{i}").text
        assert f"id={i} frame={i} count=2 const=hello world\n" in out
        path = re.search(r"^path=(.*)$", out, re.M)
        pwd = re.search(r"^pwd=(.*)$", out, re.M)
        assert path and pwd and path.group(1) == pwd.group(1)
        assert Path(path.group(1)).is_absolute()
        paths.add(path.group(1))
        assert "repo=library/ubuntu\n" in out  # profile defaults are constants too
    assert len(paths) == 2


def test_command_problems_fail_with_a_reason(client: httpx.Client) -> None:
    empty = wait_final(client, submit(client, task_body("")))
    assert empty["state"] == "Failure"
    assert "DOCKER_CMD" in empty["errors"][0]["message"]
    missing = wait_final(client, submit(client, task_body("no-such-command-xyz")))
    assert missing["state"] == "Failure"
    assert "127" in missing["errors"][0]["message"]


SPACED = "printf '[%s]\\n' 'a  b' \"c d\" e\\ f ${ARGS}"


def test_docker_cmd_is_run_as_words_without_a_shell(client: httpx.Client) -> None:
    """Issue 12: calor added a `/bin/sh -c` of its own, so the user's `sh -c "..."` went
    through two shells ($i eaten) and `#` started a comment."""
    loop = submit(client, task_body('sh -c "for i in 1 2 3; do echo line$i; done"'))
    frame = submit(client, task_body("echo from node #${FRAME_ID}!", advancedRanges="7"))
    spaced = submit(client, task_body(SPACED))
    body = get(client, spaced)
    assert body["constants"][0]["value"] == SPACED  # stored as submitted
    for uuid in (loop, frame, spaced):
        assert wait_final(client, uuid)["state"] == "Success"
    assert client.get(f"/tasks/{loop}/stdout/0").text.endswith("line1\nline2\nline3\n")
    assert client.get(f"/tasks/{frame}/stdout/7").text.endswith("from node #7!\n")
    # ${ARGS} is not a variable of the instance: it stays as written
    assert client.get(f"/tasks/{spaced}/stdout/0").text.endswith(
        "[a  b]\n[c d]\n[e f]\n[${ARGS}]\n"
    )


def test_a_command_that_cannot_be_split_is_refused_at_submit(client: httpx.Client) -> None:
    before = client.get("/info").json()["taskCount"]
    message = assert_error(
        client.post("/tasks", json=task_body('sh -c "echo unclosed')), 400, "DOCKER_CMD"
    )
    assert "unterminated double quote" in message
    assert_error(client.post("/tasks", json=task_body("echo dangling\\")), 400, "backslash")
    assert client.get("/info").json()["taskCount"] == before


def test_constants_are_never_replaced_by_instance_variables(client: httpx.Client) -> None:
    """The hosted documentation: every constant ends up as an environment variable. A
    constant named like an instance variable keeps its value; the others are calor's."""
    body = task_body(sh('echo "rank=$QRANK size=$QSIZE id=$INSTANCE_ID"'), instanceCount=2)
    body["constants"] += [{"key": "QRANK", "value": "mine"}, {"key": "QSIZE", "value": "all"}]
    uuid = submit(client, body)
    assert wait_final(client, uuid)["state"] == "Success"
    for i in (0, 1):
        assert client.get(f"/tasks/{uuid}/stdout/{i}").text.endswith(f"rank=mine size=all id={i}\n")


def test_cpu_time_counts_the_whole_command(client: httpx.Client) -> None:
    """execTimeSec (and the energy estimated from it) is the command's own CPU time, in the
    sandbox too: bubblewrap's init once hid it (2 ms reported for 0.25 s of CPU)."""
    busy = sh("i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
    task = wait_final(client, submit(client, task_body(busy)))
    assert task["state"] == "Success", task["errors"]
    [instance] = task["completedInstances"]
    assert instance["execTimeSec"] >= 0.05, instance


def test_output_with_a_nul_byte_does_not_wedge_the_task(client: httpx.Client) -> None:
    uuid = submit(client, task_body(sh(r"printf 'a\000b\n'; echo done")))
    task = wait_final(client, uuid, timeout=20)
    assert task["state"] == "Success"
    out = client.get(f"/tasks/{uuid}/stdout/0").text
    assert out.endswith("done\n") and "a" in out and "b\n" in out


def test_info_running_counts(reaper: httpx.Client) -> None:
    client = reaper
    command, _ = sleeper()
    uuid = submit(client, task_body(command))
    finished = submit(client, task_body("true"))
    wait_final(client, finished)
    wait_executing(client, uuid)
    info = client.get("/info").json()
    assert info["taskCount"] == 2
    assert info["runningTaskCount"] == 1
    assert info["runningInstanceCount"] == 1 and info["runningCoreCount"] == 1
    assert uuids(client.get("/tasks?tag=").json()) == [uuid, finished]
    client.post(f"/tasks/{uuid}/abort")
    wait_final(client, uuid, timeout=5)
    info = client.get("/info").json()
    assert info["taskCount"] == 2 and info["runningTaskCount"] == 0
    assert info["runningInstanceCount"] == 0


@pytest.mark.skipif(shutil.which("bwrap") is None and not IN_CI, reason="needs bubblewrap")
def test_an_instance_sees_nothing_of_the_server_nor_of_other_users(server: Server) -> None:
    """The host runtime in its bubblewrap sandbox: the data dir, the database, the key, the
    blobs and another user's running instance are out of sight (tests/isolation.py)."""

    def running(client: httpx.Client, uuid: str) -> object:
        return wait_executing(client, uuid)

    check_isolation(server, task_body, running)


def test_a_server_without_a_sandbox_says_so_at_start(tmp_path: Path) -> None:
    server = make_server(tmp_path, "sqlite", CALOR_SANDBOX="off").start()
    try:
        log = server.log()
    finally:
        server.stop()
    assert "runtime: host (without a sandbox" in log
    if os.geteuid() == 0:  # each user's instances as a uid of their own
        assert "an unprivileged uid of their own" in log and "cannot read the data dir" in log
    else:
        assert "warning: instances run unsandboxed" in log and "install bubblewrap" in log


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root server can give users uids")
def test_without_bubblewrap_each_user_runs_as_an_unprivileged_uid_of_their_own(
    tmp_path: Path,
) -> None:
    """The same probe as in the sandbox, on a root server with no sandbox: the data dir is
    closed (0700), and every user's instances run as a uid of their own."""
    server = make_server(tmp_path, "sqlite", CALOR_SANDBOX="off").start()
    try:
        check_isolation(server, task_body, wait_executing)
        uids = []
        for _ in range(2):
            with httpx.Client(
                base_url=server.url, headers={"Authorization": server.new_user()}
            ) as c:
                task = submit(c, task_body(sh("id -u; id -g; touch here && echo wrote")))
                assert wait_final(c, task)["state"] == "Success"
                text = c.get(f"/tasks/{task}/stdout").text
                out = [line.split("> ", 1)[-1] for line in text.splitlines()]
                uid, gid = int(out[-3]), int(out[-2])
                assert out[-1] == "wrote" and uid == gid and uid >= 1000, out
                uids.append(uid)
        assert uids[0] != uids[1]
        assert (server.data_dir.stat().st_mode & 0o777) == 0o700
    finally:
        server.stop()
