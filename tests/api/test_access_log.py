"""The access log: one JSON line per API and S3 request, with the route as declared, the
status, the duration, the user and the request id the answer carries; never a token, a
credential, a signature, a bucket or an object key."""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, make_server, wait_for
from tests.s3.conftest import s3_client


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    tmp = tmp_path_factory.mktemp("access")
    path = tmp / "access.log"
    server = make_server(tmp, "sqlite", CALOR_ACCESS_LOG=str(path)).start()
    yield server, path
    server.stop()


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _line_of(path: Path, request_id: str) -> dict[str, Any]:
    """The line of that request, once written (it is, after the answer is sent)."""
    found: list[dict[str, Any]] = []

    def written() -> bool:
        found[:] = [entry for entry in _lines(path) if entry["requestId"] == request_id]
        return bool(found)

    wait_for(written, timeout=10, message=f"the access log line of {request_id}")
    return found[0]


def test_api_requests_are_logged_with_route_status_user_and_request_id(
    logged: tuple[Server, Path],
) -> None:
    server, path = logged
    token = server.new_user("logged@test.local")
    with httpx.Client(base_url=server.url, headers={"Authorization": token}) as c:
        r = c.post("/tasks", json={"name": "a", "instanceCount": 1, "constants": []})
        assert r.status_code == 200
        task = r.json()["uuid"]
        got = c.get(f"/tasks/{task}", headers={"X-Request-Id": "trace-42.a"})
        assert got.headers["x-request-id"] == "trace-42.a"
        entry = _line_of(path, "trace-42.a")
        assert entry["service"] == "api" and entry["method"] == "GET"
        assert entry["route"] == "/tasks/{key}" and entry["status"] == 200
        assert isinstance(entry["userId"], int) and entry["durationMs"] >= 0
        assert entry["bytesSent"] == len(got.content) and entry["client"] == "127.0.0.1"
        # an id that is not plain is replaced by one of the server's
        weird = c.get("/tasks", headers={"X-Request-Id": "a b;" * 50})
        assert weird.headers["x-request-id"] != "a b;" * 50
        assert _line_of(path, weird.headers["x-request-id"])["route"] == "/tasks"
    # refused: no user; a path that matches nothing is logged as such, not as sent
    anonymous = httpx.get(server.url + "/tasks", headers={"Authorization": "nope"})
    entry = _line_of(path, anonymous.headers["x-request-id"])
    assert entry["status"] == 401 and entry["userId"] is None
    pasted = f"/{token}/oops"
    missing = httpx.get(server.url + pasted, headers={"Authorization": token})
    entry = _line_of(path, missing.headers["x-request-id"])
    assert entry["status"] == 404 and entry["route"] == "(no route)"
    assert token not in path.read_text() and "logged@test.local" not in path.read_text()


def test_s3_requests_are_logged_without_bucket_key_or_signature(
    logged: tuple[Server, Path],
) -> None:
    server, path = logged
    email = f"s3-{uuid.uuid4().hex[:8]}@test.local"
    token = server.new_user(email)
    s3 = s3_client(server, email, token, signature_version="s3v4")
    bucket, key = f"secret-bucket-{uuid.uuid4().hex[:6]}", "private/frame-0001.exr"
    s3.create_bucket(Bucket=bucket)
    put = s3.put_object(Bucket=bucket, Key=key, Body=b"x" * 10)
    request_id = put["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    entry = _line_of(path, request_id)
    assert entry["service"] == "s3" and entry["method"] == "PUT"
    assert entry["route"] == "/{bucket}/{key}" and entry["status"] == 200
    assert isinstance(entry["userId"], int)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
    got = httpx.get(url)
    assert got.status_code == 200, (url, got.text)
    assert _line_of(path, got.headers["x-amz-request-id"])["route"] == "/{bucket}/{key}"
    text = path.read_text()
    signature = url.split("X-Amz-Signature=")[1].split("&")[0]
    for secret in (token, signature, bucket, "frame-0001", email):
        assert secret not in text


def test_the_access_log_can_be_turned_off(tmp_path: Path) -> None:
    server = make_server(tmp_path, "sqlite", CALOR_ACCESS_LOG="off").start()
    try:
        r = httpx.get(server.url + "/tasks", headers={"Authorization": server.new_user()})
        assert r.status_code == 200 and "x-request-id" not in r.headers
    finally:
        server.stop()
    assert '"requestId"' not in server.log()
