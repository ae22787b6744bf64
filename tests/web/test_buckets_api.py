"""GET /buckets, /buckets/{name}/objects and /buckets/{name}/objects/{key}: the dashboard's
token-authenticated view of a user's buckets, over real HTTP on both databases."""

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.api.helpers import DATE_RE, assert_error
from tests.conftest import Server

KEYS = {
    "a.txt": (b"alpha\n", "text/plain"),
    "dir/b.bin": (bytes(range(256)) * 40, "application/octet-stream"),
    "dir/sub/c.txt": (b"c", "text/plain"),
    "dir/sub/d.txt": (b"dd", "text/plain"),
    "sp ace/é ü.txt": ("été\n".encode(), "text/plain; charset=utf-8"),
}


def s3(server: Server, email: str, token: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.storage_url,
        aws_access_key_id=email,
        aws_secret_access_key=token,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


class Owner:
    def __init__(self, server: Server) -> None:
        self.email = f"web-{uuid.uuid4().hex[:8]}@test.local"
        self.token = server.new_user(self.email)
        self.s3 = s3(server, self.email, self.token)
        self.http = httpx.Client(
            base_url=server.url, headers={"Authorization": self.token}, timeout=30
        )


@pytest.fixture
def owner(server: Server) -> Iterator[Owner]:
    o = Owner(server)
    yield o
    o.http.close()


@pytest.fixture
def bucket(owner: Owner) -> str:
    name = f"web-{uuid.uuid4().hex[:10]}"
    owner.s3.create_bucket(Bucket=name)
    for key, (body, ctype) in KEYS.items():
        owner.s3.put_object(Bucket=name, Key=key, Body=body, ContentType=ctype)
    return name


def test_buckets_need_a_token(server: Server) -> None:
    for path in ("/buckets", "/buckets/x-bucket/objects", "/buckets/x-bucket/objects/k"):
        assert httpx.get(server.url + path).status_code == 401
        r = httpx.get(server.url + path, headers={"Authorization": "not-a-token"})
        assert r.status_code == 401


def test_list_buckets(owner: Owner, bucket: str) -> None:
    empty = f"web-empty-{uuid.uuid4().hex[:6]}"
    owner.s3.create_bucket(Bucket=empty)
    r = owner.http.get("/buckets")
    assert r.status_code == 200, r.text
    found = {b["name"]: b for b in r.json()}
    assert set(found) == {bucket, empty}
    assert found[bucket]["objectCount"] == len(KEYS)
    assert found[bucket]["bytesUsed"] == sum(len(b) for b, _ in KEYS.values())
    assert DATE_RE.match(found[bucket]["creationDate"])
    assert found[empty]["objectCount"] == 0 and found[empty]["bytesUsed"] == 0


def test_list_objects_flat_and_by_folder(owner: Owner, bucket: str) -> None:
    flat = owner.http.get(f"/buckets/{bucket}/objects").json()
    assert [o["key"] for o in flat["objects"]] == sorted(KEYS)
    assert flat["prefixes"] == [] and flat["nextToken"] is None
    first = flat["objects"][0]
    assert first["size"] == len(KEYS["a.txt"][0]) and len(first["etag"]) == 32
    assert DATE_RE.match(first["lastModified"])

    top = owner.http.get(f"/buckets/{bucket}/objects", params={"delimiter": "/"}).json()
    assert [o["key"] for o in top["objects"]] == ["a.txt"]
    assert top["prefixes"] == ["dir/", "sp ace/"]

    inner = owner.http.get(
        f"/buckets/{bucket}/objects", params={"prefix": "dir/", "delimiter": "/"}
    ).json()
    assert [o["key"] for o in inner["objects"]] == ["dir/b.bin"]
    assert inner["prefixes"] == ["dir/sub/"]


def test_list_objects_pages(owner: Owner, bucket: str) -> None:
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        r = owner.http.get(
            f"/buckets/{bucket}/objects", params={"maximumResults": 2, "token": token}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["objects"]) <= 2
        seen += [o["key"] for o in body["objects"]]
        pages += 1
        if body["nextToken"] is None:
            break
        token = body["nextToken"]
    assert seen == sorted(KEYS) and pages == 3


def test_list_objects_bad_input(owner: Owner, bucket: str) -> None:
    for bad in ("0", "1001", "-1"):
        r = owner.http.get(f"/buckets/{bucket}/objects", params={"maximumResults": bad})
        assert_error(r, 400, "maximumResults")
    assert_error(
        owner.http.get(f"/buckets/{bucket}/objects", params={"maximumResults": "many"}),
        400,
        "maximumResults",
    )
    assert_error(owner.http.get("/buckets/no-such-bucket-here/objects"), 404, "no-such-bucket")
    assert_error(owner.http.get("/buckets/a/objects"), 400, "bucket name")


def test_download(owner: Owner, bucket: str) -> None:
    r = owner.http.get(f"/buckets/{bucket}/objects/dir/b.bin")
    assert r.status_code == 200, r.text
    assert r.content == KEYS["dir/b.bin"][0]
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-length"] == str(len(KEYS["dir/b.bin"][0]))
    assert r.headers["content-disposition"].startswith('attachment; filename="b.bin"')
    assert r.headers["x-content-type-options"] == "nosniff"

    key = "sp ace/é ü.txt"
    r = owner.http.get(f"/buckets/{bucket}/objects/{quote(key)}")
    assert r.status_code == 200, r.text
    assert r.content == KEYS[key][0]
    assert r.headers["content-type"].startswith("text/plain")
    assert "filename*=UTF-8''%C3%A9%20%C3%BC.txt" in r.headers["content-disposition"]

    assert_error(owner.http.get(f"/buckets/{bucket}/objects/dir/none.txt"), 404, "dir/none.txt")
    assert_error(owner.http.get("/buckets/no-such-bucket-here/objects/a.txt"), 404, "bucket")


def test_another_users_bucket_is_not_found(server: Server, owner: Owner, bucket: str) -> None:
    other = Owner(server)
    try:
        assert other.http.get("/buckets").json() == []
        assert_error(other.http.get(f"/buckets/{bucket}/objects"), 404, bucket)
        assert_error(other.http.get(f"/buckets/{bucket}/objects/a.txt"), 404, bucket)
        # the owner's bucket is untouched
        assert owner.http.get(f"/buckets/{bucket}/objects/a.txt").content == b"alpha\n"
    finally:
        other.http.close()
