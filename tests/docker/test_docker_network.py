"""Port forwarding on the Docker runtime: a container of a profile with network that listens
on a declared port is reached through the server's forwarder (the test engine has no bridge:
containers with network share the host's, so the forwarder reaches them on loopback)."""

import httpx

from tests.api.test_network import active_forwards, fetch, refused
from tests.conftest import free_port, sh, wait_final, wait_for
from tests.docker.conftest import image_task


def test_a_containers_forwarded_port_reaches_it_until_it_ends(client: httpx.Client) -> None:
    port = free_port()
    body = image_task(
        sh(f"echo from-the-container > index.html; exec httpd -f -p 127.0.0.1:{port}"),
        profile="docker-network",
        forcedNetworkRules=[{"inbound": True, "proto": "tcp", "port": port}],
    )
    r = client.post("/tasks", json=body)
    assert r.status_code == 200, r.text
    uuid_ = r.json()["uuid"]
    fwd = wait_for(lambda: active_forwards(client, uuid_), message="an active forward")[0]
    assert fwd["applicationPort"] == port and fwd["forwarderHost"] == "127.0.0.1"
    answer = wait_for(
        lambda: fetch(fwd["forwarderHost"], fwd["forwarderPort"], "/index.html"),
        message="the container's answer through the forwarder",
    )
    assert answer.strip() == "from-the-container"
    client.post(f"/tasks/{uuid_}/abort")
    assert wait_final(client, uuid_)["state"] == "Cancelled"
    assert active_forwards(client, uuid_) == []
    assert refused(fwd["forwarderHost"], fwd["forwarderPort"])


def test_a_container_without_network_gets_no_forward(client: httpx.Client) -> None:
    body = image_task(
        "echo never", forcedNetworkRules=[{"inbound": True, "proto": "tcp", "port": 80}]
    )
    r = client.post("/tasks", json=body)
    assert r.status_code == 400 and "no network" in r.json()["message"]
