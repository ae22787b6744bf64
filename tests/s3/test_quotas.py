"""Storage limits set by the operator: reported in GET /info and enforced by the gateway and by
result uploads."""

import uuid
from collections.abc import Iterator

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server, make_server, sh, task_body, wait_final
from tests.s3.conftest import s3_client, unique_bucket


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(
        tmp_path_factory.mktemp("quota"),
        "sqlite",
        CALOR_LIMIT_MAX_BUCKETS_PER_USER="2",
        CALOR_LIMIT_MAX_STORAGE_BYTES_PER_USER="100",
    ).start()
    yield srv
    srv.stop()


def test_bucket_and_byte_quotas(limited: Server) -> None:
    email = f"q-{uuid.uuid4().hex[:8]}@test.local"
    token = limited.new_user(email)
    s3 = s3_client(limited, email, token)
    api = httpx.Client(base_url=limited.url, headers={"Authorization": token}, timeout=30)
    info = api.get("/info").json()
    assert (info["maxBucket"], info["quotaBytesBucket"]) == (2, 100)

    first, second = unique_bucket(), unique_bucket()
    s3.create_bucket(Bucket=first)
    s3.create_bucket(Bucket=second)
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=unique_bucket())
    assert exc.value.response["Error"]["Code"] == "QuotaExceeded"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    s3.create_bucket(Bucket=first)  # one already owned is still a 200

    s3.put_object(Bucket=first, Key="a", Body=b"x" * 60)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=second, Key="b", Body=b"x" * 50)
    assert exc.value.response["Error"]["Code"] == "QuotaExceeded"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=second, Key="b")  # nothing was stored
    s3.put_object(Bucket=first, Key="a", Body=b"x" * 90)  # a replacement counts the difference
    assert api.get("/info").json()["usedQuotaBytesBucket"] == 90

    # a result upload over the quota fails the instance with a message that says so
    answer = api.post(
        "/tasks", json=task_body(sh("head -c 50 /dev/zero > big.bin"), resultBucket=second)
    )
    task = wait_final(api, answer.json()["uuid"])
    assert task["state"] == "Failure"
    assert "quota" in task["errors"][0]["message"]
    api.close()
