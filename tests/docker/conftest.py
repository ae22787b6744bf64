"""Fixtures of the Docker tests: a calor server on the test engine, and that engine's client."""

from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest

from tests.conftest import Server, docker_host, make_server, task_body

IMAGE = "calor-test/busybox"  # built by .ci/docker.sh from busybox-static, no registry


def docker_env() -> dict[str, str]:
    return {
        "CALOR_RUNTIME": "docker",
        "DOCKER_HOST": docker_host(),
        # the test engine has no bridge: profiles with network share the host's
        "CALOR_DOCKER_NETWORK": "host",
        "CALOR_CORES": "2",
    }


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=docker_host())
    yield client
    client.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("docker"), "sqlite", **docker_env()).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    token = server.new_user()
    with httpx.Client(base_url=server.url, headers={"Authorization": token}, timeout=30) as c:
        yield c
        # give the cores back for the next test
        for task in c.get("/tasks/summaries").json():
            if task["state"] not in ("Success", "Failure", "Cancelled"):
                c.post(f"/tasks/{task['uuid']}/abort")


def image_task(command: str, *, image: str = IMAGE, **extra: Any) -> dict[str, Any]:
    """A docker-batch task body running ``command`` in ``image`` (repo[:tag])."""
    repo, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:  # no tag; the colon was a registry's port
        repo, tag = image, ""
    constants = extra.pop("constants", [])
    body = task_body(command, **extra)
    body["constants"] = [
        {"key": "DOCKER_REPO", "value": repo},
        {"key": "DOCKER_TAG", "value": tag or "latest"},
        *body["constants"],
        *constants,
    ]
    return body


def containers_of(engine: docker.DockerClient, task_uuid: str) -> list[Any]:
    return list(engine.containers.list(all=True, filters={"label": f"calor.task={task_uuid}"}))
