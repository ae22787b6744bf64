"""calor on a Dask cluster: instances run on the workers, events come back, placement follows
resources, abort stops them, lost workers and server restarts lose nothing."""

import signal

import httpx
import psutil

from tests.conftest import Server, sh, task_body, wait_final, wait_for
from tests.dask.conftest import Cluster


def test_instances_run_on_the_workers_and_report_back(client: httpx.Client) -> None:
    task = wait_final(
        client,
        client.post(
            "/tasks",
            json=task_body(sh('echo "hello from $INSTANCE_ID"; echo oops >&2'), instanceCount=6),
        ).json()["uuid"],
    )
    assert task["state"] == "Success", task["errors"]
    out = client.get(f"/tasks/{task['uuid']}/stdout").text
    for i in range(6):
        assert f"{i}> hello from {i}" in out
    assert client.get(f"/tasks/{task['uuid']}/stderr/3").text.endswith("oops\n")
    assert len(task["completedInstances"]) == 6
    cluster = client.get("/cluster").json()
    assert cluster["executor"] == "dask" and cluster["workers"] == 2 and cluster["cores"] == 3


def test_an_instance_no_worker_can_fit_fails_clearly(client: httpx.Client) -> None:
    body = task_body(
        "true",
        hardwareConstraints=[{"discriminator": "MinimumCoreHardwareConstraint", "coreCount": 8}],
    )
    task = wait_final(client, client.post("/tasks", json=body).json()["uuid"])
    assert task["state"] == "Failure"
    assert "no Dask worker can run this instance" in task["errors"][0]["message"]


def test_abort_stops_a_running_instance_within_two_seconds(client: httpx.Client) -> None:
    uuid = client.post("/tasks", json=task_body(sh("echo started; sleep 301"))).json()["uuid"]
    wait_for(
        lambda: client.get(f"/tasks/{uuid}/stdout/0").text.endswith("started\n"),
        timeout=60,
        message="the instance to start",
    )
    client.post(f"/tasks/{uuid}/abort")
    task = wait_final(client, uuid, timeout=2.5)
    assert task["state"] == "Cancelled"
    wait_for(lambda: not _processes("sleep 301"), timeout=5, message="the process to go")


def _processes(marker: str) -> list[int]:
    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if marker in " ".join(p.info["cmdline"] or [])
    ]


def test_a_server_killed_mid_run_reattaches_and_loses_nothing(
    client: httpx.Client, server: Server
) -> None:
    uuid = client.post(
        "/tasks", json=task_body(sh("echo before; sleep 5; echo after"), instanceCount=2)
    ).json()["uuid"]
    wait_for(
        lambda: client.get(f"/tasks/{uuid}/stdout").text.count("before") == 2,
        timeout=60,
        message="both instances to start",
    )
    server.stop(signal.SIGKILL)
    server.restart()
    task = wait_final(client, uuid, timeout=60)
    assert task["state"] == "Success", task["errors"]
    out = client.get(f"/tasks/{uuid}/stdout").text
    assert out.count("before") == 2 and out.count("after") == 2  # nothing lost, nothing twice
    assert [c["executionAttemptCount"] for c in task["completedInstances"]] == [1, 1]


def test_resources_and_results_through_the_gateway(client: httpx.Client, server: Server) -> None:
    from tests.s3.conftest import s3_client, unique_bucket

    info = client.get("/info").json()
    s3 = s3_client(server, info["email"], client.headers["Authorization"])
    inputs, outputs = unique_bucket("in"), unique_bucket("out")
    s3.create_bucket(Bucket=inputs)
    s3.put_object(Bucket=inputs, Key="n.txt", Body=b"21\n")
    body = task_body(
        sh("echo $(( $(cat n.txt) * 2 )) > answer-$INSTANCE_ID.txt"),
        instanceCount=2,
        resourceBuckets=[inputs],
        resultBucket=outputs,
    )
    task = wait_final(client, client.post("/tasks", json=body).json()["uuid"])
    assert task["state"] == "Success", task["errors"]
    for i in range(2):
        assert s3.get_object(Bucket=outputs, Key=f"answer-{i}.txt")["Body"].read() == b"42\n"
    assert task["resultsCount"] == 2


def test_a_killed_worker_leads_to_a_retry_elsewhere(client: httpx.Client, cluster: Cluster) -> None:
    cluster.add_worker("doomed", 4)  # the only one with 4 cores: the instance lands there
    try:
        body = task_body(
            sh('echo "attempt $CALOR_ATTEMPT"; [ "$CALOR_ATTEMPT" -gt 1 ] || sleep 300'),
            retrySettings={"maxPerInstanceRetries": 1},
            hardwareConstraints=[
                {"discriminator": "MinimumCoreHardwareConstraint", "coreCount": 4}
            ],
        )
        uuid = client.post("/tasks", json=body).json()["uuid"]
        wait_for(
            lambda: client.get(f"/tasks/{uuid}/stdout/0").text.endswith("attempt 1\n"),
            timeout=60,
            message="the first attempt to run",
        )
        cluster.kill("doomed")
        # the retry also needs 4 cores: a new worker of that size takes it
        cluster.add_worker("rescue", 4)
        task = wait_final(client, uuid, timeout=90)
        assert task["state"] == "Success", task["errors"]
        assert "attempt 2" in client.get(f"/tasks/{uuid}/stdout/0").text
    finally:
        if "rescue" in cluster.procs:
            cluster.kill("rescue")


def _workers_used(client: httpx.Client, body: dict[str, object]) -> list[str]:
    task = wait_final(client, client.post("/tasks", json=body).json()["uuid"], timeout=90)
    assert task["state"] == "Success", task["errors"]
    out = client.get(f"/tasks/{task['uuid']}/stdout").text
    # TASK_PATH is under the worker's CALOR_WORKER_DIR, named after the worker (conftest)
    return [
        w
        for line in out.splitlines()
        if "where=" in line
        for w in ("big", "small")
        if f"/{w}/calor/" in line
    ]


def test_instances_spread_over_both_workers(client: httpx.Client) -> None:
    used = _workers_used(client, task_body(sh('sleep 1; echo "where=$TASK_PATH"'), instanceCount=6))
    assert len(used) == 6 and set(used) == {"big", "small"}, used


def test_a_two_core_instance_lands_only_where_it_fits(client: httpx.Client) -> None:
    body = task_body(
        sh('echo "where=$TASK_PATH"'),
        instanceCount=4,
        hardwareConstraints=[{"discriminator": "MinimumCoreHardwareConstraint", "coreCount": 2}],
    )
    assert _workers_used(client, body) == ["big"] * 4


def test_worker_cpu_models_are_searched_and_honoured(client: httpx.Client) -> None:
    """Each worker says its CPU model (asked by the server with client.run): the search lists
    it, a task demanding it runs on a worker that has it, one demanding another is a 400."""
    from calor.runner.machine import cpu_info

    model = cpu_info()[0]  # the workers run on this machine
    found = client.get("/hardware-constraints/cpu-model-constraints/search").json()
    assert found == [{"discriminator": "CpuModelHardwareConstraint", "cpuModel": model}]
    demand = [{"discriminator": "CpuModelHardwareConstraint", "cpuModel": model}]
    r = client.post("/tasks", json=task_body("echo right-cpu", hardwareConstraints=demand))
    assert r.status_code == 200, r.text
    assert wait_final(client, r.json()["uuid"])["state"] == "Success"
    wrong = [{"discriminator": "CpuModelHardwareConstraint", "cpuModel": "Imaginary Quantum 9"}]
    r = client.post("/tasks", json=task_body("echo never", hardwareConstraints=wrong))
    assert r.status_code == 400 and model in r.json()["message"]
