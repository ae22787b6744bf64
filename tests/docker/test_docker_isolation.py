"""In a container an instance sees nothing of the server nor of other users, runs with the
engine's default capabilities and no more, cannot gain privileges, and never gets the
engine's socket."""

from typing import Any

import docker
import httpx

from tests.api.helpers import wait_executing
from tests.conftest import Server
from tests.docker.conftest import containers_of, image_task
from tests.isolation import check_isolation


def test_an_instance_sees_nothing_of_the_server_nor_of_other_users(
    server: Server, engine: docker.DockerClient
) -> None:
    configs: list[dict[str, Any]] = []

    def running(client: httpx.Client, uuid: str) -> object:
        task = wait_executing(client, uuid)
        [container] = containers_of(engine, uuid)
        configs.append(container.attrs["HostConfig"])
        return task

    check_isolation(server, image_task, running)
    [host] = configs
    assert host["Privileged"] is False
    assert not host.get("CapAdd")
    assert "no-new-privileges:true" in (host.get("SecurityOpt") or [])
    mounts = [*(host.get("Binds") or []), *(m.get("Source", "") for m in host.get("Mounts") or [])]
    assert mounts and not any("docker.sock" in m for m in mounts), mounts
    assert not any(m.startswith(str(server.data_dir) + ":") for m in host.get("Binds") or [])
