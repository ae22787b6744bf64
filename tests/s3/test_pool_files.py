"""A pool's resource buckets in its slots, tasks' results out of a slot, and a PATCH re-sync
that waitForPoolResourcesSynchronization tasks wait for (issue 6)."""

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Server, sh, task_body, wait_final, wait_for
from tests.s3.conftest import Account, unique_bucket


@pytest.fixture
def api(server: Server, account: object) -> Iterator[tuple[httpx.Client, Account]]:
    acc: Account = account()  # type: ignore[operator]
    with httpx.Client(base_url=server.url, headers={"Authorization": acc.token}, timeout=30) as c:
        yield c, acc
        for pool in c.get("/pools/summaries").json():
            c.post(f"/pools/{pool['uuid']}/close")


def on_pool(pool: str, command: str, **extra: object) -> dict[str, object]:
    body = task_body(command, poolUuid=pool, **extra)
    body["profile"] = None
    return body


def output(api: httpx.Client, task: str) -> list[str]:
    text = api.get(f"/tasks/{task}/stdout/0").text
    return [line for line in text.splitlines() if not line.startswith("[calor]")]


def test_pool_resources_results_and_resync(api: tuple[httpx.Client, Account]) -> None:
    client, acc = api
    source, results = unique_bucket(), unique_bucket()
    acc.s3.create_bucket(Bucket=source)
    acc.s3.put_object(Bucket=source, Key="in.txt", Body=b"v1")
    r = client.post(
        "/pools",
        json={
            "name": "files",
            "profile": "docker-batch",
            "instanceCount": 1,
            "advancedResourceBuckets": [{"bucketName": source}],
            "preparationTask": {"commandLine": sh("echo prep > prep.txt")},
        },
    )
    assert r.status_code == 200, r.text
    pool = r.json()["uuid"]
    assert client.get(f"/pools/{pool}").json()["resourceBuckets"] == [source]
    first = client.post(
        "/tasks",
        json=on_pool(pool, sh("cat in.txt; echo; echo out > out.txt"), resultBucket=results),
    ).json()["uuid"]
    done = wait_final(client, first)
    assert done["state"] == "Success", done
    assert output(client, first) == ["v1"]
    # only what the task wrote is its result, not the pool's files
    assert [o["Key"] for o in acc.s3.list_objects_v2(Bucket=results)["Contents"]] == ["out.txt"]
    assert done["completedInstances"][0]["results"] == [f"s3://{results}/out.txt"]
    # the pool's resources change; a task that waits for the re-sync sees the new ones
    acc.s3.put_object(Bucket=source, Key="in.txt", Body=b"v2")
    assert client.patch(f"/pools/{pool}").status_code == 200
    second = client.post(
        "/tasks",
        json=on_pool(pool, "cat in.txt", waitForPoolResourcesSynchronization=True),
    ).json()["uuid"]
    assert wait_final(client, second)["state"] == "Success"
    assert output(client, second) == ["v2"]
    client.post(f"/pools/{pool}/close")
    wait_for(
        lambda: client.get(f"/pools/{pool}").json()["state"] == "Closed",
        message="the pool to close",
    )
