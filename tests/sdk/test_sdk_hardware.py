"""Hardware constraints through the official SDK: the CPU models calor knows (this machine
with the local executor) are listed, searched, and honoured when a task demands one."""

import pytest
from qarnot.connection import Connection
from qarnot.exceptions import QarnotGenericException
from qarnot.hardware_constraint import CpuModelHardware, MinimumCoreHardware

from calor.runner.machine import cpu_info
from tests.conftest import task_body
from tests.sdk.helpers import docker_task, wait_done

MODEL = cpu_info()[0]


def test_search_answers_this_machines_model_as_constraints(conn: Connection) -> None:
    for query in ("", MODEL, MODEL.upper(), MODEL.split()[0].lower()):
        found = conn.search_cpu_model_constraints(query)
        assert [type(c) for c in found] == [CpuModelHardware], query
        assert found[0].to_json() == {
            "discriminator": "CpuModelHardwareConstraint",
            "cpuModel": MODEL,
        }
    assert conn.search_cpu_model_constraints("no-such-cpu-zz9") == []


def test_the_listing_names_this_machines_model(conn: Connection) -> None:
    listed = [c.to_json() for c in conn.all_hardware_constraints()]
    assert {"discriminator": "CpuModelHardwareConstraint", "cpuModel": MODEL} in listed
    assert any(c["discriminator"] == "MinimumCoreHardwareConstraint" for c in listed)


def test_a_task_demanding_this_model_runs(conn: Connection) -> None:
    task = docker_task(conn, "echo on-the-right-cpu")
    found = conn.search_cpu_model_constraints(MODEL)
    task.hardware_constraints = [found[0], MinimumCoreHardware(1)]
    task.submit()
    assert wait_done(task) == "Success"
    assert "on-the-right-cpu" in task.stdout()


def test_a_task_demanding_a_model_no_machine_has_is_refused(conn: Connection) -> None:
    task = docker_task(conn, "echo never")
    task.hardware_constraints = [CpuModelHardware("Imaginary Quantum 9000")]
    with pytest.raises(QarnotGenericException, match="CPU model"):
        task.submit()
    assert task.uuid is None
    assert conn.tasks() == []


def test_a_pool_demanding_a_model_no_machine_has_is_refused(conn: Connection) -> None:
    pool = conn.create_pool("wrong-cpu", "docker-batch", 1)
    pool.hardware_constraints = [CpuModelHardware("Imaginary Quantum 9000")]
    with pytest.raises(QarnotGenericException, match="CPU model"):
        pool.submit()
    assert conn.pools() == []


def test_bulk_submit_refuses_only_the_task_with_the_wrong_model(conn: Connection) -> None:
    good = task_body("echo ok", name="good")
    bad = task_body(
        "echo never",
        name="bad",
        hardwareConstraints=[
            {"discriminator": "CpuModelHardwareConstraint", "cpuModel": "Imaginary Quantum 9000"}
        ],
    )
    r = conn._post("/tasks", json=[good, bad])
    items = r.json()
    assert r.status_code == 200 and items[0]["uuid"] and items[1]["uuid"] is None
    assert items[1]["statusCode"] == 400 and "CPU model" in items[1]["message"]
