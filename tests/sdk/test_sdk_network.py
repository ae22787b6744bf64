"""The README's forwarding example through the official SDK: forced_network_rules declare the
port, status.running_instances_info...active_forward says where to connect."""

import httpx
from qarnot.connection import Connection
from qarnot.forced_network_rule import ForcedNetworkRule

from tests.conftest import free_port, sh, wait_for
from tests.sdk.helpers import unique, wait_done


def test_sdk_reads_active_forwards_and_reaches_the_instance(conn: Connection) -> None:
    port = free_port()
    task = conn.create_task(unique(), "docker-network", 1)
    task.constants["DOCKER_CMD"] = sh(
        f"echo via-sdk > marker.txt; exec python3 -m http.server {port} --bind 127.0.0.1"
    )
    task.forced_network_rules = [
        ForcedNetworkRule(inbound=True, proto="tcp", port=str(port), name="web")
    ]
    task.submit()

    def forward() -> object:
        task.update(True)
        status = task.status
        infos = status.running_instances_info.per_running_instance_info if status else []
        return infos[0].active_forward[0] if infos and infos[0].active_forward else None

    fwd = wait_for(forward, message="the SDK to see an active forward")
    assert fwd.application_port == port and fwd.forwarder_host == "127.0.0.1"

    def answer() -> str | None:
        try:
            r = httpx.get(f"http://{fwd.forwarder_host}:{fwd.forwarder_port}/marker.txt")
        except httpx.HTTPError:
            return None
        return r.text if r.status_code == 200 else None

    assert wait_for(answer, message="the instance's answer").strip() == "via-sdk"
    assert [r.port for r in conn.retrieve_task(task.uuid).forced_network_rules] == [str(port)]
    task.abort()
    assert wait_done(task) == "Cancelled"
