"""The official SDK's docker-batch flow, unchanged, on calor's Docker runtime."""

from collections.abc import Iterator

import docker
import pytest
from qarnot.connection import Connection

from tests.conftest import Server, wait_for
from tests.docker.conftest import IMAGE, containers_of
from tests.sdk.helpers import docker_task, stop_unfinished, wait_done, wait_executing


@pytest.fixture
def conn(server: Server) -> Iterator[Connection]:
    connection = Connection(client_token=server.new_user(), cluster_url=server.url)
    yield connection
    stop_unfinished(connection)
    connection._http.close()


def test_sdk_hello_world_in_an_image(conn: Connection) -> None:
    task = docker_task(conn, "echo Hello World from $INSTANCE_ID in $(cat /etc/passwd | wc -l)", 2)
    task.constants["DOCKER_REPO"] = IMAGE
    task.constants["DOCKER_TAG"] = "latest"
    task.submit()
    assert wait_done(task) == "Success"
    out = {line for line in task.stdout().splitlines() if line}
    assert out == {"0> Hello World from 0 in 2", "1> Hello World from 1 in 2"}
    assert task.completed_instances[0].peak_memory_mb >= 0


def test_sdk_fresh_stdout_and_abort(conn: Connection, engine: docker.DockerClient) -> None:
    task = docker_task(conn, "echo started; sleep 300")
    task.constants["DOCKER_REPO"] = IMAGE
    task.submit()
    wait_executing(task)
    assert wait_for(task.fresh_stdout) == "0> started\n"
    task.abort()
    assert wait_done(task) == "Cancelled"
    assert containers_of(engine, task.uuid) == []
