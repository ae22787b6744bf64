"""The documentation page's flow with plain HTTP: submit, follow, read output."""

import httpx

from tests.conftest import sh, task_body, wait_final


def test_submit_run_and_read_output(client: httpx.Client) -> None:
    r = client.post(
        "/tasks", json=task_body(sh('echo "hello $INSTANCE_ID"'), instanceCount=2, tags=["smoke"])
    )
    assert r.status_code == 200, r.text
    uuid = r.json()["uuid"]
    task = wait_final(client, uuid)
    assert task["state"] == "Success"
    assert task["progress"] == 100.0
    assert sorted(i["instanceId"] for i in task["completedInstances"]) == [0, 1]
    out = client.get(f"/tasks/{uuid}/stdout").text
    assert "0> hello 0\n" in out and "1> hello 1\n" in out
    assert client.get(f"/tasks/{uuid}/stdout/1").text.endswith("hello 1\n")


def test_missing_token_is_401_json(server) -> None:  # type: ignore[no-untyped-def]
    r = httpx.get(server.url + "/tasks/summaries")
    assert r.status_code == 401
    assert r.json()["message"]
