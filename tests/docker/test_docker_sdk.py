"""The official SDK's docker-batch flow, unchanged, on calor's Docker runtime."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from qarnot.connection import Connection

from tests.conftest import Server, sh, wait_for
from tests.docker.conftest import IMAGE, containers_of
from tests.sdk.helpers import docker_task, stop_unfinished, wait_done, wait_executing


@pytest.fixture
def conn(server: Server) -> Iterator[Connection]:
    connection = Connection(client_token=server.new_user(), cluster_url=server.url)
    yield connection
    stop_unfinished(connection)
    connection._http.close()


def test_sdk_hello_world_in_an_image(conn: Connection) -> None:
    task = docker_task(
        conn, sh("echo Hello World from $INSTANCE_ID in $(cat /etc/passwd | wc -l)"), 2
    )
    task.constants["DOCKER_REPO"] = IMAGE
    task.constants["DOCKER_TAG"] = "latest"
    task.submit()
    assert wait_done(task) == "Success"
    out = {line for line in task.stdout().splitlines() if line}
    assert out == {"0> Hello World from 0 in 2", "1> Hello World from 1 in 2"}
    assert task.completed_instances[0].peak_memory_mb >= 0


def test_sdk_fresh_stdout_and_abort(conn: Connection, engine: docker.DockerClient) -> None:
    task = docker_task(conn, sh("echo started; sleep 300"))
    task.constants["DOCKER_REPO"] = IMAGE
    task.submit()
    wait_executing(task)
    assert wait_for(task.fresh_stdout) == "0> started\n"
    task.abort()
    assert wait_done(task) == "Cancelled"
    assert containers_of(engine, task.uuid) == []


def test_sdk_resources_in_and_results_out_of_a_container(conn: Connection, tmp_path: Path) -> None:
    """Resources land in the mounted TASK_PATH; what the container writes there comes back."""
    resources = conn.create_bucket(f"in-{uuid.uuid4().hex[:10]}")
    resources.add_string("from a bucket\n", "data/input.txt")
    results = conn.create_bucket(f"out-{uuid.uuid4().hex[:10]}")
    task = docker_task(conn, sh('cp data/input.txt "$TASK_PATH/copy.txt" && pwd > where.txt'))
    task.constants["DOCKER_REPO"] = IMAGE
    task.resources = [resources]
    task.results = results
    task.submit()
    assert wait_done(task) == "Success", task.errors
    out = tmp_path / "out"
    task.download_results(str(out))
    assert (out / "copy.txt").read_text() == "from a bucket\n"
    assert (out / "where.txt").read_text() == "/job\n"
    assert not (out / "data").exists()
