"""A pool on the Docker runtime: slots prepare in the pool's image, and tasks on the pool run in
containers of that image that see the slot's working directory (issue 6)."""

import httpx

from tests.conftest import sh, wait_final, wait_for
from tests.docker.conftest import IMAGE


def test_pool_slots_and_tasks_run_in_containers(client: httpx.Client) -> None:
    image = [{"key": "DOCKER_REPO", "value": IMAGE}, {"key": "DOCKER_TAG", "value": "latest"}]
    r = client.post(
        "/pools",
        json={
            "name": "docker-pool",
            "profile": "docker-batch",
            "instanceCount": 1,
            "constants": image,
            "preparationTask": {
                "commandLine": sh('echo "warm $(hostname)" > "$TASK_PATH/prepared"')
            },
        },
    )
    assert r.status_code == 200, r.text
    pool = r.json()["uuid"]
    wait_for(
        lambda: client.get(f"/pools/{pool}").json()["state"] == "FullyExecuting",
        timeout=30,
        message="the pool to be prepared",
    )
    r = client.post(
        "/tasks",
        json={
            "name": "on-docker-pool",
            "poolUuid": pool,
            "instanceCount": 2,
            "constants": [
                {"key": "DOCKER_CMD", "value": sh('cat "$TASK_PATH/prepared"; ls /bin/busybox')}
            ],
        },
    )
    assert r.status_code == 200, r.text
    task = r.json()["uuid"]
    done = wait_final(client, task, timeout=60)
    assert done["state"] == "Success", (done["errors"], client.get(f"/tasks/{task}/stderr").text)
    for i in (0, 1):
        out = client.get(f"/tasks/{task}/stdout/{i}").text
        assert out.startswith("warm "), out  # what the preparation left in the slot
    assert client.post(f"/pools/{pool}/close").status_code == 200
    wait_for(
        lambda: client.get(f"/pools/{pool}").json()["state"] == "Closed",
        timeout=30,
        message="the pool to close",
    )
