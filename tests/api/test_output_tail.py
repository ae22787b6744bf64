"""``?tail=N`` on the output endpoints: the last N characters, read from the newest chunks
(a calor extension the dashboard's log panel uses)."""

import httpx

from tests.api.helpers import assert_error, submit
from tests.conftest import task_body, wait_final


def test_tail_returns_the_last_characters(client: httpx.Client) -> None:
    uuid = submit(client, task_body("seq 1 3000", instanceCount=2))
    assert wait_final(client, uuid)["state"] == "Success"
    whole = client.get(f"/tasks/{uuid}/stdout/1").text
    assert whole.endswith("2999\n3000\n")
    assert client.get(f"/tasks/{uuid}/stdout/1", params={"tail": 10}).text == whole[-10:]
    assert client.get(f"/tasks/{uuid}/stdout/1", params={"tail": 10**7}).text == whole
    everything = client.get(f"/tasks/{uuid}/stdout").text
    assert client.get(f"/tasks/{uuid}/stdout", params={"tail": 500}).text == everything[-500:]
    # the fresh cursor is not moved by a tail
    assert client.post(f"/tasks/{uuid}/stdout/1").text == whole
    for bad in ("0", "-3", "x"):
        assert_error(client.get(f"/tasks/{uuid}/stdout", params={"tail": bad}), 400, "tail")
