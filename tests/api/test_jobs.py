"""Jobs and task dependencies over real HTTP (contract §2.4, §3.1, §6; issue 6)."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.api.helpers import (
    DATE_RE,
    NOT_ENDED,
    assert_error,
    get,
    page_all,
    processes_with,
    sleeper,
    submit,
    task_count,
    unique,
    uuids,
    wait_executing,
)
from tests.conftest import FINAL, Server, make_server, sh, task_body, wait_final, wait_for

HC_ALL_CORES = [{"discriminator": "MinimumCoreHardwareConstraint", "coreCount": 2}]


def job_body(**extra: Any) -> dict[str, Any]:
    """What the Python SDK posts for ``Job(conn, name, use_dependencies=...)``."""
    body: dict[str, Any] = {
        "name": extra.pop("name", unique("job")),
        "poolUuid": None,
        "shortname": None,
        "state": "",
        "tags": [],
        "useDependencies": False,
        "maxWallTime": None,
        "autoDeleteOnCompletion": False,
        "completionTimeToLive": "00:00:00",
    }
    body.update(extra)
    return body


def create_job(client: httpx.Client, **extra: Any) -> str:
    r = client.post("/jobs/", json=job_body(**extra))
    assert r.status_code == 200, r.text
    return str(r.json()["uuid"])


def get_job(client: httpx.Client, key: str) -> dict[str, Any]:
    r = client.get(f"/jobs/{key}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def wait_job(client: httpx.Client, key: str, state: str, timeout: float = 20) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        job = get_job(client, key)
        return job if job["state"] == state else None

    return wait_for(reached, timeout=timeout, interval=0.05, message=f"job {key} {state}")  # type: ignore[no-any-return]


def in_job(job: str, command: str = "echo hello", **extra: Any) -> dict[str, Any]:
    return task_body(command, jobUuid=job, **extra)


def depends(*uuids_: str) -> dict[str, Any]:
    return {"dependsOn": list(uuids_)}


def parse_date(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def started_at(client: httpx.Client, uuid: str) -> datetime:
    """When the task's command started, as it printed it (``date +%s.%N``, same host)."""
    out = client.get(f"/tasks/{uuid}/stdout/0").text.split()
    return datetime.fromtimestamp(float(out[-1]), UTC)


# -- jobs ------------------------------------------------------------------------------------


def test_job_create_read_and_list(client: httpx.Client, other: httpx.Client) -> None:
    short = unique("short")
    job = create_job(
        client, shortname=short, tags=["j1", "j2"], useDependencies=True, maxWallTime="1.02:00:00"
    )
    got = get_job(client, job)
    assert got["uuid"] == job and got["shortname"] == short
    assert got["state"] == "Active" and got["previousState"] == "Active"
    assert got["useDependencies"] is True
    assert got["maxWallTime"] == "1.02:00:00"  # no fractions: the SDK misreads them
    assert got["tags"] == ["j1", "j2"] and got["poolUuid"] is None
    assert got["autoDeleteOnCompletion"] is False and got["completionTimeToLive"] == "00:00:00"
    for key in ("creationDate", "lastModified", "stateTransitionTime"):
        assert DATE_RE.match(got[key]), got[key]
    assert got["endDate"] == NOT_ENDED
    # by shortname, and the trailing slash is optional
    assert get_job(client, short)["uuid"] == job
    plain = client.post("/jobs", json=job_body(tags=["j2"]))
    assert plain.status_code == 200, plain.text
    second = plain.json()["uuid"]
    # lists, tag filters, paging and search
    assert uuids(client.get("/jobs").json()) == [job, second]
    assert uuids(client.get("/jobs", params={"tag": "j1"}).json()) == [job]
    assert uuids(client.get("/jobs", params=[("tag", "nope"), ("tag", "j1,j2")]).json()) == [
        job,
        second,
    ]
    pages = page_all(client, {"maximumResults": 1}, "/jobs/paginate")
    assert [uuids(p) for p in pages] == [[job], [second]]
    tag_filter = {"field": "Tags", "operator": "Equal", "value": "j1"}
    r = client.post("/jobs/paginate", json={"filter": tag_filter})
    assert uuids(r.json()["data"]) == [job]
    name_filter = {"field": "Name", "operator": "Equal", "value": got["name"]}
    r = client.post("/jobs/search", json={"filter": name_filter, "select": ["uuid", "state"]})
    assert r.json() == [{"uuid": job, "state": "Active"}]
    # another user sees none of it, and cannot use it
    assert other.get("/jobs").json() == []
    assert other.post("/jobs/paginate", json={}).json()["data"] == []
    for r in (
        other.get(f"/jobs/{job}"),
        other.get(f"/jobs/{short}"),
        other.get(f"/jobs/{job}/tasks"),
        other.post(f"/jobs/{job}/terminate"),
        other.delete(f"/jobs/{job}", params={"force": "True"}),
        other.post("/tasks", json=in_job(job)),
    ):
        assert_error(r, 404, "not found")
    assert get_job(client, job)["state"] == "Active"


def test_bad_jobs_are_refused_and_change_nothing(client: httpx.Client) -> None:
    short = unique("dup")
    create_job(client, shortname=short)
    for body, status, words in (
        (job_body(maxWallTime="soon"), 400, ["maxWallTime"]),
        (job_body(completionTimeToLive="1 hour"), 400, ["completionTimeToLive"]),
        (job_body(name=""), 400, ["name"]),
        (job_body(tags=[""]), 400, ["tag"]),
        (job_body(poolUuid="no-such-pool"), 404, ["no-such-pool"]),
        (job_body(shortname=short), 409, [short]),
        ({"shortname": "x"}, 400, ["name"]),
    ):
        assert_error(client.post("/jobs/", json=body), status, *words)
    assert len(client.get("/jobs").json()) == 1
    assert_error(client.get("/jobs/no-such-job"), 404, "no-such-job")
    assert_error(client.delete("/jobs/no-such-job"), 404, "no-such-job")
    job = create_job(client)
    assert_error(client.delete(f"/jobs/{job}", params={"force": "maybe"}), 400, "force")
    bad_filter = {"filter": {"field": "ResultsCount", "operator": "Equal", "value": 1}}
    assert_error(client.post("/jobs/paginate", json=bad_filter), 400, "ResultsCount")
    assert get_job(client, job)["state"] == "Active"


def test_job_tasks_terminate_and_no_new_tasks(reaper: httpx.Client) -> None:
    client = reaper
    job = create_job(client, useDependencies=True)
    command, marker = sleeper()
    first = submit(client, in_job(job, command))
    waiting = submit(client, in_job(job, dependencies=depends(first)))
    assert get(client, first)["jobUuid"] == job
    listed = client.get(f"/jobs/{job}/tasks").json()
    assert uuids(listed) == [first, waiting]
    assert listed[1]["dependencies"]["state"] == "waiting"
    wait_executing(client, first)
    assert get(client, waiting)["state"] == "Submitted"
    assert client.post(f"/jobs/{job}/terminate").status_code == 200
    # the running task is killed, the waiting one never runs; then the job is complete
    done = wait_job(client, job, "Completed")
    assert done["previousState"] == "Terminating" and done["endDate"] != NOT_ENDED
    for uuid in (first, waiting):
        task = wait_final(client, uuid, timeout=10)
        assert task["state"] == "Cancelled"
        assert any("job was terminated" in e["message"] for e in task["errors"]), task["errors"]
    wait_for(lambda: not processes_with(marker), timeout=10, message="the sleep to be killed")
    assert_error(client.post("/tasks", json=in_job(job)), 403, "Completed")
    assert client.post(f"/jobs/{job}/terminate").status_code == 200  # harmless again
    assert get_job(client, job)["state"] == "Completed"


def test_terminating_an_idle_job_completes_it_at_once(client: httpx.Client) -> None:
    job = create_job(client)
    ran = submit(client, in_job(job))
    assert wait_final(client, ran)["state"] == "Success"
    assert client.post(f"/jobs/{job}/terminate").status_code == 200
    got = get_job(client, job)
    assert got["state"] == "Completed" and got["previousState"] == "Terminating"
    assert get(client, ran)["state"] == "Success" and get(client, ran)["errors"] == []


def test_max_wall_time_terminates_the_job(reaper: httpx.Client) -> None:
    client = reaper
    job = create_job(client, maxWallTime="00:00:02")
    command, _ = sleeper()
    uuid = submit(client, in_job(job, command))
    wait_executing(client, uuid)
    got = wait_job(client, job, "Completed", timeout=15)
    assert got["previousState"] == "Terminating"
    task = get(client, uuid)
    assert task["state"] == "Cancelled"
    assert any("maxWallTime" in e["message"] for e in task["errors"]), task["errors"]
    elapsed = parse_date(got["endDate"]) - parse_date(got["creationDate"])
    assert 2 <= elapsed.total_seconds() < 10, elapsed


def test_delete_job(reaper: httpx.Client) -> None:
    client = reaper
    before = task_count(client)
    job = create_job(client)
    command, marker = sleeper()
    running = submit(client, in_job(job, command))
    wait_executing(client, running)
    # not without force while a task runs, and nothing changes
    assert_error(client.delete(f"/jobs/{job}", params={"force": "False"}), 403, "force")
    assert_error(client.delete(f"/jobs/{job}"), 403, "unfinished")
    assert get(client, running)["state"] == "FullyExecuting"
    assert task_count(client) == before + 1
    # force aborts and deletes the job and its tasks
    assert client.delete(f"/jobs/{job}", params={"force": "True"}).status_code == 200
    assert_error(client.get(f"/jobs/{job}"), 404, job)
    assert_error(client.get(f"/tasks/{running}"), 404, running)
    assert task_count(client) == before
    wait_for(lambda: not processes_with(marker), timeout=10, message="the sleep to be killed")
    # a job whose tasks have all ended goes without force
    quiet = create_job(client)
    ended = submit(client, in_job(quiet))
    wait_final(client, ended)
    assert client.delete(f"/jobs/{quiet}").status_code == 200
    assert client.get(f"/tasks/{ended}").status_code == 404
    assert task_count(client) == before


# -- dependencies ------------------------------------------------------------------------------

STAMP = "date +%s.%N"


def test_diamond_runs_in_dependency_order(client: httpx.Client) -> None:
    job = create_job(client, useDependencies=True)
    top = submit(client, in_job(job, sh(f"sleep 0.5; {STAMP}"), name="top"))
    left = submit(client, in_job(job, sh(f"sleep 0.3; {STAMP}"), dependencies=depends(top)))
    advanced = {"advancedDependsOn": [{"taskUuid": top, "taskFinalStateCondition": ["success"]}]}
    right = submit(client, in_job(job, STAMP, dependencies=advanced))
    bottom = submit(client, in_job(job, STAMP, dependencies=depends(left, right)))
    waiting = get(client, bottom)
    assert waiting["state"] == "Submitted"
    assert waiting["dependencies"] == {
        "dependsOn": [left, right],
        "advancedDependsOn": [],
        "state": "waiting",
    }
    tasks = {u: wait_final(client, u, timeout=30) for u in (top, left, right, bottom)}
    assert {t["state"] for t in tasks.values()} == {"Success"}, tasks
    ends = {u: parse_date(t["endDate"]) for u, t in tasks.items()}
    for child, parents in ((left, [top]), (right, [top]), (bottom, [left, right])):
        start = started_at(client, child)
        for parent in parents:
            assert start >= ends[parent], (child, parent, start, ends[parent])
    assert tasks[bottom]["dependencies"]["state"] == "dependencyConditionsFulfilled"
    assert tasks[right]["dependencies"]["advancedDependsOn"] == [
        {
            "taskUuid": top,
            "taskFinalStateCondition": ["success"],
            "state": "dependencyConditionsFulfilled",
            "actualFinalState": "success",
        }
    ]
    # tasks without dependencies show none
    assert tasks[top]["dependencies"]["dependsOn"] == []


def test_failed_dependency_stops_its_dependants_with_a_clear_error(client: httpx.Client) -> None:
    job = create_job(client, useDependencies=True)
    failing = submit(client, in_job(job, sh("sleep 0.3; exit 3")))
    child = submit(client, in_job(job, "echo never", dependencies=depends(failing)))
    grandchild = submit(client, in_job(job, "echo never", dependencies=depends(child)))
    on_failure = submit(
        client,
        in_job(
            job,
            "echo cleanup",
            dependencies={
                "advancedDependsOn": [{"taskUuid": failing, "taskFinalStateCondition": ["Failure"]}]
            },
        ),
    )
    on_anything = submit(
        client,
        in_job(
            job,
            "echo always",
            dependencies={
                "advancedDependsOn": [{"taskUuid": failing, "taskFinalStateCondition": None}]
            },
        ),
    )
    assert wait_final(client, failing)["state"] == "Failure"
    for uuid, cause in ((child, failing), (grandchild, child)):
        task = wait_final(client, uuid)
        assert task["state"] == "Cancelled", task
        assert task["dependencies"]["state"] == "dependencyConditionsNotFulfilled"
        message = " ".join(e["message"] for e in task["errors"])
        assert cause in message and "dependencies can no longer be met" in message, message
        assert client.get(f"/tasks/{uuid}/stdout").text == ""
    for uuid, text in ((on_failure, "cleanup"), (on_anything, "always")):
        task = wait_final(client, uuid)
        assert task["state"] == "Success", task
        assert client.get(f"/tasks/{uuid}/stdout/0").text.splitlines()[-1] == text
        [entry] = task["dependencies"]["advancedDependsOn"]
        assert entry["actualFinalState"] == "failure" and entry["taskUuid"] == failing


def test_dependencies_on_ended_tasks_decide_at_submit(client: httpx.Client) -> None:
    job = create_job(client, useDependencies=True)
    good = submit(client, in_job(job))
    bad = submit(client, in_job(job, "exit 1"))
    wait_final(client, good)
    wait_final(client, bad)
    runs = submit(client, in_job(job, dependencies=depends(good)))
    assert wait_final(client, runs)["state"] == "Success"
    never = submit(client, in_job(job, dependencies=depends(good, bad)))
    task = get(client, never)  # settled in the submit's own transaction
    assert task["state"] == "Cancelled", task
    assert bad in task["errors"][0]["message"]


def test_bad_dependencies_are_refused_and_change_nothing(
    client: httpx.Client, other: httpx.Client
) -> None:
    job = create_job(client, useDependencies=True)
    plain_job = create_job(client)
    elsewhere = create_job(client, useDependencies=True)
    mine = submit(client, in_job(job))
    foreign = submit(client, in_job(elsewhere))
    theirs_job = create_job(other, useDependencies=True)
    theirs = submit(other, in_job(theirs_job))
    before = task_count(client)
    for body, status, words in (
        (task_body(dependencies=depends(mine)), 400, ["useDependencies"]),
        (in_job(plain_job, dependencies=depends(mine)), 400, ["useDependencies"]),
        (in_job(job, dependencies=depends("no-such-task")), 404, ["no-such-task"]),
        (in_job(job, dependencies=depends(foreign)), 404, [foreign]),
        (in_job(job, dependencies=depends(theirs)), 404, [theirs]),
        (in_job(job, dependencies=depends(mine, mine)), 400, ["twice"]),
        (in_job(job, dependencies={"dependsOn": "x"}), 400, ["dependsOn"]),
        (
            in_job(
                job,
                dependencies={
                    "advancedDependsOn": [{"taskUuid": mine, "taskFinalStateCondition": ["maybe"]}]
                },
            ),
            400,
            ["maybe"],
        ),
        (in_job(job, dependencies={"advancedDependsOn": [{}]}), 400, ["taskUuid"]),
    ):
        assert_error(client.post("/tasks", json=body), status, *words)
    assert task_count(client) == before
    # in an array, the bad item is reported in its slot and the good one is created
    r = client.post(
        "/tasks",
        json=[in_job(job, dependencies=depends("nope")), in_job(job, dependencies=depends(mine))],
    )
    items = r.json()
    assert [i["statusCode"] for i in items] == [404, 200], items
    assert wait_final(client, items[1]["uuid"])["state"] == "Success"


def test_deleting_a_dependency_cancels_its_dependants(reaper: httpx.Client) -> None:
    client = reaper
    job = create_job(client, useDependencies=True)
    command, _ = sleeper()
    parent = submit(client, in_job(job, command))
    child = submit(client, in_job(job, dependencies=depends(parent)))
    wait_executing(client, parent)
    assert client.delete(f"/tasks/{parent}").status_code == 200
    task = wait_final(client, child)
    assert task["state"] == "Cancelled"
    assert parent in task["errors"][0]["message"]


# -- queue limits and auto-deletion ------------------------------------------------------------


def test_max_time_queue_seconds_fails_a_task_left_waiting(reaper: httpx.Client) -> None:
    client = reaper
    command, _ = sleeper()
    hog = submit(client, task_body(command, hardwareConstraints=HC_ALL_CORES))
    wait_executing(client, hog)
    starved = submit(client, task_body("echo never", maxTimeQueueSeconds=1))
    assert get(client, starved)["maxTimeQueueSeconds"] == 1
    task = wait_final(client, starved, timeout=15)
    assert task["state"] == "Failure", task
    message = " ".join(e["message"] for e in task["errors"])
    assert "maxTimeQueueSeconds" in message, message
    assert get(client, hog)["state"] == "FullyExecuting"
    # a task that gets its cores in time is not affected
    client.post(f"/tasks/{hog}/abort")
    fine = submit(client, task_body("echo fine", maxTimeQueueSeconds=30))
    assert wait_final(client, fine)["state"] == "Success"


def test_auto_delete_on_completion(client: httpx.Client) -> None:
    before = task_count(client)
    keep = submit(client, task_body(autoDeleteOnCompletion=False, completionTimeToLive="00:00:01"))
    goes = submit(client, task_body(autoDeleteOnCompletion=True, completionTimeToLive="00:00:01"))
    assert wait_final(client, goes)["state"] == "Success"
    wait_for(
        lambda: client.get(f"/tasks/{goes}").status_code == 404,
        timeout=15,
        message="the task to be deleted after its TTL",
    )
    assert get(client, keep)["state"] in FINAL
    assert task_count(client) == before + 1
    job = create_job(client, autoDeleteOnCompletion=True, completionTimeToLive="00:00:01")
    inside = submit(client, in_job(job))
    wait_final(client, inside)
    assert get_job(client, job)["state"] == "Active"  # a job completes when terminated
    assert client.post(f"/jobs/{job}/terminate").status_code == 200
    wait_for(
        lambda: client.get(f"/jobs/{job}").status_code == 404,
        timeout=15,
        message="the job to be deleted after its TTL",
    )
    assert client.get(f"/tasks/{inside}").status_code == 404
    assert task_count(client) == before + 1


def test_deadlines_survive_a_restart(tmp_path: Path) -> None:
    """Wall times and TTLs are stored dates: a restarted server still enforces them."""
    server: Server = make_server(tmp_path, "sqlite").start()
    try:
        token = server.new_user()
        with httpx.Client(base_url=server.url, headers={"Authorization": token}, timeout=30) as c:
            job = create_job(c, maxWallTime="00:00:03")
            server.stop()
            server.restart()
            wait_job(c, job, "Completed", timeout=20)
    finally:
        server.stop()
