"""Account and platform endpoints: settings, info, profiles, hardware constraints (§2.1, §8)."""

import httpx
import pytest

from tests.api.helpers import assert_error
from tests.conftest import Server

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


BIG = 2**64  # was a 500 "Integer exceeds 64-bit range" once it reached the JSON encoder


@pytest.mark.parametrize(
    "query",
    [
        f"offset={BIG}",
        f"limit={BIG}",
        f"Offset={BIG}",
        f"Limit={BIG}",
        f"offset={2**31}",
        "offset=-1",
        "Limit=-5",
        "limit=1.5",
    ],
)
def test_hardware_constraint_paging_out_of_range_is_400(client: httpx.Client, query: str) -> None:
    name = query.split("=")[0]
    assert_error(client.get(f"/hardware-constraints?{query}"), 400, name)


def test_hardware_constraint_paging_bounds(client: httpx.Client) -> None:
    total = client.get("/hardware-constraints").json()["total"]
    edge = client.get(f"/hardware-constraints?offset={2**31 - 1}&limit={2**31 - 1}").json()
    assert edge == {"data": [], "offset": 2**31 - 1, "limit": 1000, "total": total}
    assert client.get("/hardware-constraints?limit=0").json()["limit"] == 1


def test_cpu_model_search_shape_and_order(client: httpx.Client) -> None:
    everything = client.get("/hardware-constraints/cpu-model-constraints/search").json()
    assert everything and all(
        set(c) == {"discriminator", "cpuModel"}
        and c["discriminator"] == "CpuModelHardwareConstraint"
        for c in everything
    )
    model = everything[0]["cpuModel"]
    first_word = model.split()[0]
    r = client.get(
        "/hardware-constraints/cpu-model-constraints/search", params={"cpuModel": first_word}
    )
    assert r.status_code == 200 and r.json()[0]["cpuModel"] == model
    none = client.get(
        "/hardware-constraints/cpu-model-constraints/search", params={"cpuModel": "zz9-plural"}
    )
    assert none.json() == []
    listed = client.get("/hardware-constraints").json()["data"]
    assert {"discriminator": "CpuModelHardwareConstraint", "cpuModel": model} in listed
    too_long = client.get(
        "/hardware-constraints/cpu-model-constraints/search", params={"cpuModel": "x" * 300}
    )
    assert_error(too_long, 400, "cpuModel")


def test_cpu_model_search_needs_a_user(server: Server) -> None:
    r = httpx.get(server.url + "/hardware-constraints/cpu-model-constraints/search")
    assert r.status_code == 401
