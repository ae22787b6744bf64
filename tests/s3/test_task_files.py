"""Buckets in the task lifecycle over the real wire: resources copied into TASK_PATH, results
uploaded to the result bucket, PATCH re-sync, snapshots (contract §9.3)."""

import os
import uuid as uuid_
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, make_server, sh, task_body, wait_final, wait_for
from tests.s3.conftest import Account, S3Client, s3_client, unique_bucket


@pytest.fixture
def acc(account: Callable[..., Account]) -> Account:
    return account()


@pytest.fixture
def api(server: Server, acc: Account) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": acc.token}, timeout=30) as c:
        yield c


def _bucket(s3: S3Client, files: dict[str, bytes] | None = None) -> str:
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    for key, data in (files or {}).items():
        s3.put_object(Bucket=name, Key=key, Body=data)
    return name


def _keys(s3: S3Client, bucket: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def _submit(api: httpx.Client, command: str, **extra: Any) -> str:
    answer = api.post("/tasks", json=task_body(command, **extra))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["uuid"])


def _wait_executing(api: httpx.Client, uuid: str) -> None:
    wait_for(
        lambda: api.get(f"/tasks/{uuid}").json()["state"] == "FullyExecuting",
        message="the task to run",
    )


# a command that waits (up to 60 s) until the named file appears in TASK_PATH
def _until(name: str) -> str:
    return f"i=0; while [ ! -e {name} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"


def test_resources_are_copied_in_with_prefix_filtering_and_stripping(
    api: httpx.Client, acc: Account
) -> None:
    whole = _bucket(acc.s3, {"a.txt": b"A", "dir/b.txt": b"B", "dir/": b""})
    virtual = _bucket(acc.s3, {"in/x/c.txt": b"C", "in/d.txt": b"D", "other/e.txt": b"E"})
    uuid = _submit(
        api,
        sh("find . -type f | sort; cat a.txt dir/b.txt x/c.txt d.txt"),
        resourceBuckets=[whole],
        advancedResourceBuckets=[
            {
                "bucketName": virtual,
                "filtering": {"prefixFiltering": {"prefix": "in/"}},
                "resourcesTransformation": {"stripPrefix": {"prefix": "in/"}},
            }
        ],
    )
    task = wait_final(api, uuid)
    assert task["state"] == "Success", task["errors"]
    out = api.get(f"/tasks/{uuid}/stdout/0").text
    assert "./a.txt\n./d.txt\n./dir/b.txt\n./x/c.txt\nABCD" in out
    assert "e.txt" not in out
    assert task["status"]["downloadProgress"] == 100.0


def test_a_missing_resource_bucket_or_bad_filter_is_refused_at_submit(
    api: httpx.Client, acc: Account
) -> None:
    before = api.get("/info").json()["taskCount"]
    answer = api.post("/tasks", json=task_body("true", resourceBuckets=["no-such-bucket-x"]))
    assert answer.status_code == 404 and "no-such-bucket-x" in answer.json()["message"]
    answer = api.post(
        "/tasks",
        json=task_body(
            "true",
            advancedResourceBuckets=[{"bucketName": "nope-nope", "filtering": {}}],
        ),
    )
    assert answer.status_code == 404
    answer = api.post("/tasks", json=task_body("true", resultsWhitelist="(unclosed"))
    assert answer.status_code == 400 and "resultsWhitelist" in answer.json()["message"]
    # in an array, only the bad item is refused
    good = _bucket(acc.s3)
    answer = api.post(
        "/tasks",
        json=[task_body("true", resourceBuckets=[good]), task_body("true", resourceBuckets=["zz"])],
    )
    items = answer.json()
    assert items[0]["statusCode"] == 200 and items[1]["statusCode"] == 404, items
    assert api.get("/info").json()["taskCount"] == before + 1


def test_results_are_uploaded_filtered_and_counted(api: httpx.Client, acc: Account) -> None:
    inputs = _bucket(acc.s3, {"input.txt": b"in", "touched.txt": b"old"})
    out = unique_bucket("out")  # created by calor on the first upload
    uuid = _submit(
        api,
        sh(
            "mkdir -p sub && echo r$INSTANCE_ID > sub/r$INSTANCE_ID.txt && echo log > x.log "
            "&& echo new > touched.txt && echo skip > skip.tmp"
        ),
        instanceCount=2,
        resourceBuckets=[inputs],
        resultBucket=out,
        resultsWhitelist=r"\.(txt|log)$",
        resultsBlacklist=r"^x\.log$",
    )
    task = wait_final(api, uuid)
    assert task["state"] == "Success", task["errors"]
    assert _keys(acc.s3, out) == {
        "sub/r0.txt": b"r0\n",
        "sub/r1.txt": b"r1\n",
        "touched.txt": b"new\n",  # an input the instance changed is a result
    }
    assert task["resultsCount"] == 2  # one per instance that added objects
    results = {c["instanceId"]: sorted(c["results"]) for c in task["completedInstances"]}
    assert results == {
        0: [f"s3://{out}/sub/r0.txt", f"s3://{out}/touched.txt"],
        1: [f"s3://{out}/sub/r1.txt", f"s3://{out}/touched.txt"],
    }
    assert task["status"]["uploadProgress"] == 100.0


def test_results_on_cancellation_only_when_asked(api: httpx.Client, acc: Account) -> None:
    outs = {}
    for flag in (True, False):
        outs[flag] = unique_bucket("out")
        uuid = _submit(
            api,
            sh("echo partial > part.txt; echo ready; sleep 60"),
            resultBucket=outs[flag],
            uploadResultsOnCancellation=flag,
        )
        # the file exists once the command says so (not merely once it started)
        wait_for(
            lambda uuid=uuid: api.get(f"/tasks/{uuid}/stdout/0").text.endswith("ready\n"),
            message="the command to write its file",
        )
        assert api.post(f"/tasks/{uuid}/abort").status_code == 200
        task = wait_final(api, uuid)
        assert task["state"] == "Cancelled"
        assert task["resultsCount"] == (1 if flag else 0)
    assert _keys(acc.s3, outs[True]) == {"part.txt": b"partial\n"}
    assert outs[False] not in [b["Name"] for b in acc.s3.list_buckets()["Buckets"]]


def test_patch_makes_running_instances_fetch_new_resources(api: httpx.Client, acc: Account) -> None:
    inputs = _bucket(acc.s3, {"first.txt": b"1"})
    uuid = _submit(
        api, sh(f"{_until('late.txt')}; cat first.txt late.txt"), resourceBuckets=[inputs]
    )
    _wait_executing(api, uuid)
    acc.s3.put_object(Bucket=inputs, Key="late.txt", Body=b"2")
    assert api.patch(f"/tasks/{uuid}").status_code == 200
    task = wait_final(api, uuid)
    assert task["state"] == "Success", task["errors"]
    assert api.get(f"/tasks/{uuid}/stdout/0").text.endswith("12")


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root server gives users uids")
def test_resources_are_the_instances_own_when_it_runs_as_its_users_uid(
    tmp_path: Path,
) -> None:
    """Without a sandbox a root server runs the instance as its user's uid: the resources
    it got at start and those a PATCH fetched later are its own to change."""
    server = make_server(tmp_path, "sqlite", CALOR_SANDBOX="off").start()
    try:
        email = f"uid-{uuid_.uuid4().hex[:8]}@test.local"
        token = server.new_user(email)
        s3 = s3_client(server, email, token, signature_version="s3v4")
        inputs = _bucket(s3, {"first.txt": b"1"})
        with httpx.Client(base_url=server.url, headers={"Authorization": token}) as api:
            command = f"echo a >> first.txt && {_until('late.txt')} && echo b >> late.txt && id -u"
            uuid = _submit(api, sh(command), resourceBuckets=[inputs])
            _wait_executing(api, uuid)
            s3.put_object(Bucket=inputs, Key="late.txt", Body=b"2")
            assert api.patch(f"/tasks/{uuid}").status_code == 200
            task = wait_final(api, uuid)
            out = api.get(f"/tasks/{uuid}/stdout/0").text
        assert task["state"] == "Success", (task["errors"], out)
        assert int(out.splitlines()[-1]) >= 1000
    finally:
        server.stop()


def test_instant_snapshot_uploads_while_running(api: httpx.Client, acc: Account) -> None:
    inputs = _bucket(acc.s3, {"in.txt": b"i"})
    out = unique_bucket("out")
    uuid = _submit(
        api,
        sh(f"echo early > early.txt; echo no > early.skip; {_until('go')}; echo late > late.txt"),
        resourceBuckets=[inputs],
        resultBucket=out,
        snapshotBlacklist=r"\.skip$",
    )
    _wait_executing(api, uuid)
    wait_for(lambda: api.get(f"/tasks/{uuid}/stdout/0").status_code == 200)
    # the file is written right at start; the snapshot sees it once the shell has run it
    snap = wait_for(
        lambda: _snapshot_when_written(api, uuid, acc.s3, out), message="a snapshot with a file"
    )
    status = api.get(f"/tasks/{uuid}/snapshot/{snap}").json()
    assert status["taskUuid"] == uuid and status["status"] == "Success"
    assert status["transferredSize"] == len(b"early\n")
    assert api.get(f"/tasks/{uuid}").json()["resultsCount"] >= 1
    acc.s3.put_object(Bucket=inputs, Key="go", Body=b"")
    api.patch(f"/tasks/{uuid}")
    task = wait_final(api, uuid)
    assert task["state"] == "Success", task["errors"]
    assert set(_keys(acc.s3, out)) == {"early.txt", "early.skip", "late.txt"}


def _snapshot_when_written(api: httpx.Client, uuid: str, s3: S3Client, out: str) -> str | None:
    answer = api.post(f"/tasks/{uuid}/snapshot", json={})
    assert answer.status_code == 200, answer.text
    snap = str(answer.json()["id"])
    status = wait_for(
        lambda: _settled(api.get(f"/tasks/{uuid}/snapshot/{snap}").json()),
        message="the snapshot to settle",
    )
    assert status["status"] == "Success", status
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    if out in buckets and "early.txt" in _keys(s3, out):
        assert "early.skip" not in _keys(s3, out)  # the task's snapshot blacklist
        return snap
    return None


def _settled(status: dict[str, Any]) -> dict[str, Any] | None:
    return status if status["status"] in ("Success", "Failure") else None


def test_periodic_snapshots_and_snapshot_errors(api: httpx.Client, acc: Account) -> None:
    inputs = _bucket(acc.s3)
    out = unique_bucket("out")
    uuid = _submit(
        api,
        sh(f"echo tick > tick.txt; {_until('go')}"),
        resourceBuckets=[inputs],
        resultBucket=out,
    )
    bad = api.post(f"/tasks/{uuid}/snapshot/periodic", json={"interval": -1})
    assert bad.status_code == 400
    bad = api.post(f"/tasks/{uuid}/snapshot/periodic", json={"interval": "soon"})
    assert bad.status_code == 400
    answer = api.post(
        f"/tasks/{uuid}/snapshot/periodic", json={"interval": 1, "bucketPrefix": "snap/"}
    )
    assert answer.status_code == 200, answer.text
    assert api.get(f"/tasks/{uuid}").json()["snapshotInterval"] == 1
    buckets = lambda: [b["Name"] for b in acc.s3.list_buckets()["Buckets"]]  # noqa: E731
    wait_for(
        lambda: out in buckets() and "snap/tick.txt" in _keys(acc.s3, out),
        timeout=30,
        message="a periodic snapshot",
    )
    assert api.get(f"/tasks/{uuid}/snapshot/not-an-id").status_code == 404
    acc.s3.put_object(Bucket=inputs, Key="go", Body=b"")
    api.patch(f"/tasks/{uuid}")
    task = wait_final(api, uuid)
    assert task["state"] == "Success"
    # a finished task cannot be snapshot
    answer = api.post(f"/tasks/{uuid}/snapshot", json={})
    assert answer.status_code == 403 and "not running" in answer.json()["message"]
    # a task without a result bucket needs one in the request
    plain = _submit(api, sh(_until("never")))
    _wait_executing(api, plain)
    answer = api.post(f"/tasks/{plain}/snapshot", json={})
    assert answer.status_code == 400 and "bucket" in answer.json()["message"]
    api.delete(f"/tasks/{plain}")
