"""The official SDK's hello world and its bucket flow, unchanged, with instances on Dask."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from qarnot.connection import Connection

from tests.conftest import Server, sh
from tests.s3.test_sdk_task_files import test_sdk_run_with_resources_and_results as bucket_flow
from tests.sdk.helpers import docker_task, wait_done


@pytest.fixture
def conn(server: Server) -> Iterator[Connection]:
    connection = Connection(client_token=server.new_user(), cluster_url=server.url)
    yield connection
    connection._http.close()


def test_sdk_hello_world_on_dask(conn: Connection) -> None:
    task = docker_task(conn, sh("echo Hello World from $INSTANCE_ID"), 3)
    task.submit()
    assert wait_done(task) == "Success"
    lines = {line.split("] ")[-1] for line in task.stdout().splitlines() if "Hello" in line}
    assert lines == {f"{i}> Hello World from {i}" for i in range(3)}


def test_sdk_bucket_flow_on_dask(conn: Connection, tmp_path: Path) -> None:
    bucket_flow(conn, tmp_path)
