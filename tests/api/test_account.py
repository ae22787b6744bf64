"""Account and platform endpoints: settings, info, profiles, hardware constraints (§2.1, §8)."""

import httpx
import pytest

from tests.api.helpers import assert_error

DOCKER_DEFAULTS = {
    "DOCKER_REPO": "library/ubuntu",
    "DOCKER_TAG": "latest",
    "DOCKER_CMD": "",
    "DOCKER_PROGRESS1": "",
}


def test_profiles_list(client: httpx.Client) -> None:
    r = client.get("/profiles")
    assert r.status_code == 200, r.text
    names = r.json()
    assert isinstance(names, list) and all(isinstance(n, str) for n in names)
    assert "docker-batch" in names
    for name in names:
        assert client.get(f"/profiles/{name}").json()["name"] == name


def test_docker_batch_profile_constants(client: httpx.Client) -> None:
    r = client.get("/profiles/docker-batch")
    assert r.status_code == 200, r.text
    profile = r.json()
    assert profile["name"] == "docker-batch"
    constants = profile["constants"]
    assert all(set(c) == {"name", "value", "description"} for c in constants)
    by_name = {c["name"]: c["value"] for c in constants}
    for name, value in DOCKER_DEFAULTS.items():
        assert by_name.get(name) == value, name
    for name in ("DOCKER_PROGRESS2", "DOCKER_PROGRESS3", "DOCKER_WORKDIR", "DOCKER_USER"):
        assert name in by_name


@pytest.mark.parametrize("name", ["nope", "Docker-Batch", "docker-batch-x"])
def test_unknown_profile_is_404(client: httpx.Client, name: str) -> None:
    assert_error(client.get(f"/profiles/{name}"), 404, name)


def test_hardware_constraints_envelope_and_paging(client: httpx.Client) -> None:
    r = client.get("/hardware-constraints")
    assert r.status_code == 200, r.text
    env = r.json()
    assert set(env) >= {"data", "offset", "limit", "total"}
    assert env["offset"] == 0 and env["limit"] == 50
    assert env["total"] == len(env["data"]) and env["total"] > 0
    for item in env["data"]:
        assert isinstance(item["discriminator"], str)
    cores = [
        c["coreCount"] for c in env["data"] if c["discriminator"] == "MinimumCoreHardwareConstraint"
    ]
    assert cores and cores == list(range(1, len(cores) + 1))
    # the SDK's paging loop: offset/limit until offset + limit >= total
    seen = []
    offset = 0
    while True:
        page = client.get(f"/hardware-constraints?limit=1&offset={offset}").json()
        assert page["limit"] == 1 and page["offset"] == offset and page["total"] == env["total"]
        seen.extend(page["data"])
        if offset + page["limit"] >= page["total"]:
            break
        offset += 1
    assert seen == env["data"]
    beyond = client.get(f"/hardware-constraints?offset={env['total'] + 5}").json()
    assert beyond["data"] == [] and beyond["total"] == env["total"]


def test_hardware_constraints_accept_documented_spelling(client: httpx.Client) -> None:
    """The docs spell the parameters ``Limit``/``Offset`` (contract §2.1)."""
    everything = client.get("/hardware-constraints").json()["data"]
    page = client.get("/hardware-constraints?Limit=1&Offset=1").json()
    assert page["limit"] == 1 and page["offset"] == 1
    assert page["data"] == everything[1:2]


def test_info_and_settings(client: httpx.Client) -> None:
    info = client.get("/info").json()
    assert "@" in info["email"]
    assert info["taskCount"] == 0 and info["runningTaskCount"] == 0
    assert info["maxTask"] > 0 and info["maxRunningTask"] > 0
    assert info["computingQuotas"]["user"]["flex"]["maxCores"] >= 1
    settings = client.get("/settings")
    assert settings.status_code == 200
    assert "storage" in settings.json()
