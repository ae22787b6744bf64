"""Images from a private registry: pulled with DOCKER_REGISTRY_LOGIN / _PASSWORD, refused
clearly without them. The registry is Debian's docker-registry (the CNCF distribution), on
loopback with htpasswd auth; loopback registries need no TLS for the engine."""

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from tests.conftest import IN_CI, free_port, sh, wait_final, wait_for
from tests.docker.conftest import IMAGE, image_task

USER, PASSWORD = "alice", "s3cret"


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, engine: docker.DockerClient
) -> Iterator[str]:
    """A private registry holding IMAGE as <registry>/private/busybox:<unique tag>."""
    if not (shutil.which("docker-registry") and shutil.which("htpasswd")):
        if IN_CI:
            pytest.fail("CI=true but docker-registry/htpasswd are missing: .ci/run installs them")
        pytest.skip("needs Debian's docker-registry and apache2-utils")
    root = tmp_path_factory.mktemp("registry")
    (root / "htpasswd").write_text(
        subprocess.run(
            ["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True
        ).stdout
    )
    address = f"127.0.0.1:{free_port()}"
    (root / "config.yml").write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: {address}\n"
        f"auth:\n  htpasswd:\n    realm: calor-test\n    path: {root / 'htpasswd'}\n"
    )
    with open(root / "log", "wb") as log:
        proc = subprocess.Popen(
            ["docker-registry", "serve", str(root / "config.yml")], stdout=log, stderr=log
        )
    try:
        wait_for(
            lambda: _answers(f"http://{address}/v2/"), timeout=20, message="the registry to listen"
        )
        tag = uuid.uuid4().hex[:8]
        repo = f"{address}/private/busybox"
        engine.images.get(IMAGE).tag(repo, tag)
        auth = {"username": USER, "password": PASSWORD}
        for line in engine.images.push(repo, tag, auth_config=auth, stream=True, decode=True):
            assert "error" not in line, line
        engine.images.remove(f"{repo}:{tag}")  # only the registry has it now
        yield f"{repo}:{tag}"
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 401  # up, and asking for credentials
    except httpx.HTTPError:
        return False


def _credentials(login: str, password: str) -> list[dict[str, str]]:
    return [
        {"key": "DOCKER_REGISTRY_LOGIN", "value": login},
        {"key": "DOCKER_REGISTRY_PASSWORD", "value": password},
    ]


def test_wrong_credentials_are_a_clear_error(client: httpx.Client, registry: str) -> None:
    uuid_ = client.post(
        "/tasks",
        json=image_task("echo never", image=registry, constants=_credentials(USER, "wrong")),
    ).json()["uuid"]
    task = wait_final(client, uuid_)
    assert task["state"] == "Failure"
    message = task["errors"][0]["message"]
    assert message.startswith(f"instance 0: image {registry} not found or registry unreachable")
    assert "unauthorized" in message or "authentication required" in message


def test_private_image_is_pulled_with_the_credentials(
    client: httpx.Client, registry: str, engine: docker.DockerClient, tmp_path: Path
) -> None:
    uuid_ = client.post(
        "/tasks",
        json=image_task(
            sh("echo pulled $INSTANCE_ID"),
            image=registry,
            instanceCount=3,  # three instances wait for one pull
            constants=_credentials(USER, PASSWORD),
        ),
    ).json()["uuid"]
    task = wait_final(client, uuid_)
    assert task["state"] == "Success", task
    assert client.get(f"/tasks/{uuid_}/stdout/2").text == "pulled 2\n"
    assert engine.images.get(registry)  # now local: the next task uses it without pulling
