"""Port forwarding to running instances (domain/network.py, executors/forwarder.py) on the host
runtime: a task whose instance listens on a declared TCP port gets a forwarder on this host's
loopback; connecting to it reaches the instance; when the instance ends it is gone."""

import socket
from typing import Any

import httpx
import pytest

from tests.api.helpers import assert_error
from tests.conftest import free_port, sh, task_body, wait_final, wait_for


def listening_task(port: int, marker: str, **extra: Any) -> dict[str, Any]:
    """A docker-network task serving its TASK_PATH over HTTP on ``port`` (inbound rule)."""
    body = task_body(
        sh(f"echo {marker} > marker.txt; exec python3 -m http.server {port} --bind 127.0.0.1"),
        profile="docker-network",
        forcedNetworkRules=[
            {"inbound": True, "proto": "tcp", "port": str(port), "name": "web"},
            # outbound rules and inbound ones without a port forward nothing
            {"inbound": False, "proto": "tcp", "publicHost": "example.org", "publicPort": "443"},
            {"inbound": True, "proto": "tcp", "to": "10.0.0.0/8"},
        ],
        **extra,
    )
    return body


def active_forwards(client: httpx.Client, uuid_: str) -> list[dict[str, Any]]:
    task = client.get(f"/tasks/{uuid_}").json()
    info = (task.get("status") or {}).get("runningInstancesInfo") or {}
    return [f for i in info.get("perRunningInstanceInfo") or [] for f in i["activeForwards"]]


def fetch(host: str, port: int, path: str) -> str | None:
    try:
        r = httpx.get(f"http://{host}:{port}{path}", timeout=2)
    except httpx.HTTPError:
        return None  # the instance's server is not listening yet
    return r.text if r.status_code == 200 else None


def refused(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        try:
            s.connect((host, port))
        except OSError:
            return True
        return False


def test_a_forwarded_port_reaches_the_instance_until_it_ends(
    reaper: httpx.Client, other: httpx.Client
) -> None:
    client = reaper
    port = free_port()
    r = client.post("/tasks", json=listening_task(port, "hello-through-the-forwarder"))
    assert r.status_code == 200, r.text
    uuid_ = r.json()["uuid"]
    forwards = wait_for(lambda: active_forwards(client, uuid_), message="an active forward")
    assert len(forwards) == 1
    fwd = forwards[0]
    assert fwd["applicationPort"] == port
    assert fwd["forwarderHost"] == "127.0.0.1" and fwd["bindAddress"] == "127.0.0.1"
    assert fwd["forwarderPort"] != port and 0 < fwd["forwarderPort"] < 65536
    answer = wait_for(
        lambda: fetch(fwd["forwarderHost"], fwd["forwarderPort"], "/marker.txt"),
        message="the instance's answer through the forwarder",
    )
    assert answer.strip() == "hello-through-the-forwarder"

    listing = client.get(f"/v1/network/tasks/{uuid_}/port-forward")
    assert listing.status_code == 200, listing.text
    assert listing.json() == {
        "0": {
            "web": {
                "name": "web",
                "enabled": True,
                "applicationType": None,
                "proto": "tcp",
                "port": port,
                "allowedIPs": "127.0.0.1/32",
                "access": {"publicHost": "127.0.0.1", "publicPort": fwd["forwarderPort"]},
            }
        }
    }
    # another user sees neither the task nor its forwards
    assert_error(other.get(f"/v1/network/tasks/{uuid_}/port-forward"), 404)

    assert client.post(f"/tasks/{uuid_}/abort").status_code == 200
    assert wait_final(client, uuid_)["state"] == "Cancelled"
    assert active_forwards(client, uuid_) == []
    assert refused(fwd["forwarderHost"], fwd["forwarderPort"])
    after = client.get(f"/v1/network/tasks/{uuid_}/port-forward").json()
    assert after["0"]["web"]["enabled"] is False and after["0"]["web"]["access"] is None


def test_ssh_profile_forwards_port_22(reaper: httpx.Client) -> None:
    profile = reaper.get("/profiles/docker-network-ssh").json()
    assert "DOCKER_SSH" in {c["name"] for c in profile["constants"]}
    body = task_body("sleep 59.4242", profile="docker-network-ssh")
    uuid_ = reaper.post("/tasks", json=body).json()["uuid"]
    forwards = wait_for(lambda: active_forwards(reaper, uuid_), message="the ssh forward")
    assert [f["applicationPort"] for f in forwards] == [22]
    ssh = reaper.get(f"/v1/network/tasks/{uuid_}/port-forward").json()["0"]
    assert ssh["port-22"]["applicationType"] == "ssh" and ssh["port-22"]["enabled"]


def test_an_instance_without_forwarded_ports_has_none(reaper: httpx.Client) -> None:
    body = task_body("sleep 59.4343", profile="docker-network")
    uuid_ = reaper.post("/tasks", json=body).json()["uuid"]
    wait_for(
        lambda: reaper.get(f"/tasks/{uuid_}").json()["state"] == "FullyExecuting",
        message="the task to run",
    )
    assert active_forwards(reaper, uuid_) == []
    assert reaper.get(f"/v1/network/tasks/{uuid_}/port-forward").json() == {"0": {}}


@pytest.mark.parametrize(
    ("profile", "rule", "words"),
    [
        ("docker-batch", {"inbound": True, "proto": "tcp", "port": "8080"}, ["network", "8080"]),
        ("docker-network", {"inbound": True, "proto": "udp", "port": "53"}, ["TCP"]),
        ("docker-network", {"inbound": True, "proto": "tcp", "port": "http"}, ["port"]),
        ("docker-network", {"inbound": True, "proto": "tcp", "port": 70000}, ["port"]),
        ("docker-network", {"inbound": True, "proto": "tcp", "port": 2**64}, ["port"]),
    ],
)
def test_a_forward_calor_cannot_honour_is_refused(
    client: httpx.Client, profile: str, rule: dict[str, Any], words: list[str]
) -> None:
    body = task_body("echo never", profile=profile, forcedNetworkRules=[rule])
    if rule["port"] == 2**64:  # beyond what the JSON parser takes: still a 400
        r = client.post(
            "/tasks",
            content=httpx.Request("POST", "/", json=body).content,
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 400
    else:
        assert_error(client.post("/tasks", json=body), 400, *words)
    assert client.get("/tasks").json() == []


def test_port_forward_of_an_unknown_task_is_404(client: httpx.Client) -> None:
    assert_error(client.get("/v1/network/tasks/no-such-task/port-forward"), 404)
