"""boto3 against calor's S3 gateway: every operation the SDK uses, its errors, and isolation."""

import contextlib
import hashlib
import io
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import Server
from tests.s3.conftest import Account, s3_client, unique_bucket

MiB = 1024 * 1024


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _status(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def test_bucket_lifecycle(account: Callable[..., Account]) -> None:
    s3 = account().s3
    name = unique_bucket()
    assert s3.create_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    # creating a bucket one already owns is a 200, not BucketAlreadyOwnedByYou (contract §9.2)
    assert s3.create_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    s3.head_bucket(Bucket=name)
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [name]
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert _code(exc) == "BucketNotEmpty" and _status(exc) == 409
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert _status(exc) == 404
    with pytest.raises(ClientError) as exc:
        s3.list_objects(Bucket=name)
    assert _code(exc) == "NoSuchBucket"


def test_bad_bucket_names_are_refused(account: Callable[..., Account]) -> None:
    s3 = account().s3
    for bad in ("ab", "-abc", "a..b", "10.0.0.1", "x" * 64):
        with pytest.raises(ClientError) as exc:
            s3.create_bucket(Bucket=bad)
        assert _code(exc) == "InvalidBucketName", bad
    assert s3.list_buckets()["Buckets"] == []


def test_objects_round_trip_with_metadata_and_ranges(account: Callable[..., Account]) -> None:
    s3 = account().s3
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    body = bytes(range(256)) * 40
    put = s3.put_object(
        Bucket=name,
        Key="dir/sub/data.bin",
        Body=body,
        ContentType="application/x-test",
        Metadata={"owner": "calor"},
    )
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=name, Key="dir/sub/data.bin")
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-test"
    assert got["Metadata"] == {"owner": "calor"}
    assert got["ETag"] == put["ETag"]
    head = s3.head_object(Bucket=name, Key="dir/sub/data.bin")
    assert head["ContentLength"] == len(body)
    part = s3.get_object(Bucket=name, Key="dir/sub/data.bin", Range="bytes=10-19")
    assert part["Body"].read() == body[10:20]
    assert part["ContentRange"] == f"bytes 10-19/{len(body)}"
    tail = s3.get_object(Bucket=name, Key="dir/sub/data.bin", Range="bytes=-5")
    assert tail["Body"].read() == body[-5:]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=name, Key="dir/sub/data.bin", Range=f"bytes={len(body)}-")
    assert _code(exc) == "InvalidRange" and _status(exc) == 416
    # an empty object, and overwriting
    s3.put_object(Bucket=name, Key="empty", Body=b"")
    assert s3.get_object(Bucket=name, Key="empty")["Body"].read() == b""
    s3.put_object(Bucket=name, Key="empty", Body=b"now full")
    assert s3.get_object(Bucket=name, Key="empty")["Body"].read() == b"now full"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=name, Key="missing")
    assert _code(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:  # bucket and key are read together
        s3.get_object(Bucket=unique_bucket(), Key="empty")
    assert _code(exc) == "NoSuchBucket" and _status(exc) == 404
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=unique_bucket(), Key="empty")
    assert _status(exc) == 404


def test_keys_with_odd_characters(account: Callable[..., Account]) -> None:
    s3 = account().s3
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    keys = ["a b.txt", "plus+sign", "tilde~", "ünïcødé/ファイル", "q?x=1&y", "pct%2Fslash", "d//e/"]
    for key in keys:
        s3.put_object(Bucket=name, Key=key, Body=key.encode())
    for key in keys:
        assert s3.get_object(Bucket=name, Key=key)["Body"].read() == key.encode()
    listed = [o["Key"] for o in s3.list_objects(Bucket=name)["Contents"]]
    assert listed == sorted(keys, key=lambda k: k.encode())
    for bad in ("../escape", "a/../../b", "a/.."):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=name, Key=bad, Body=b"x")
        assert _code(exc) == "InvalidArgument", bad
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=name, Key="k" * 1025, Body=b"x")
    assert _code(exc) == "KeyTooLongError"


def test_listing_v1_v2_with_prefix_delimiter_and_paging(account: Callable[..., Account]) -> None:
    s3 = account().s3
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    keys = [f"logs/2026/{i:02d}.txt" for i in range(7)] + ["logs/top.txt", "other/x", "root"]
    keys += [f"logs/dir{i}/f" for i in range(3)]
    for key in keys:
        s3.put_object(Bucket=name, Key=key, Body=b"")
    everything = sorted(keys)

    pages = s3.get_paginator("list_objects").paginate(Bucket=name, PaginationConfig={"PageSize": 3})
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == everything
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=name, PaginationConfig={"PageSize": 4}
    )
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == everything

    top = s3.list_objects(Bucket=name, Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["root"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["logs/", "other/"]
    logs = s3.list_objects_v2(Bucket=name, Prefix="logs/", Delimiter="/")
    assert [o["Key"] for o in logs["Contents"]] == ["logs/top.txt"]
    assert [p["Prefix"] for p in logs["CommonPrefixes"]] == [
        "logs/2026/",
        "logs/dir0/",
        "logs/dir1/",
        "logs/dir2/",
    ]
    # paging through common prefixes, one entry per page
    seen: list[str] = []
    marker = ""
    while True:
        page = s3.list_objects(Bucket=name, Prefix="logs/", Delimiter="/", MaxKeys=1, Marker=marker)
        entries = [o["Key"] for o in page.get("Contents", [])]
        entries += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        seen += entries
        if not page["IsTruncated"]:
            break
        marker = page["NextMarker"]
    assert seen == ["logs/2026/", "logs/dir0/", "logs/dir1/", "logs/dir2/", "logs/top.txt"]


def test_encoding_type_url(account: Callable[..., Account], server: Server) -> None:
    acc = account()
    name = unique_bucket()
    acc.s3.create_bucket(Bucket=name)
    acc.s3.put_object(Bucket=name, Key="sp ace/ü", Body=b"")
    # boto3 asks for encoding-type=url and decodes the keys itself
    listed = acc.s3.list_objects(Bucket=name)
    assert [o["Key"] for o in listed["Contents"]] == ["sp ace/ü"]
    # boto3 presigns with SigV2 unless told otherwise; calor verifies SigV4 only, and says so
    v2_url = acc.s3.generate_presigned_url("list_objects", Params={"Bucket": name})
    answer = httpx.get(v2_url)
    assert answer.status_code == 400 and "AWS4-HMAC-SHA256" in answer.text
    v4 = s3_client(server, acc.email, acc.token, signature_version="s3v4")
    url = v4.generate_presigned_url("list_objects", Params={"Bucket": name, "EncodingType": "url"})
    xml = httpx.get(url).text
    assert "<Key>sp%20ace/%C3%BC</Key>" in xml and "<EncodingType>url</EncodingType>" in xml


def test_copy_and_delete_objects(account: Callable[..., Account]) -> None:
    s3 = account().s3
    src, dst = unique_bucket(), unique_bucket()
    s3.create_bucket(Bucket=src)
    s3.create_bucket(Bucket=dst)
    s3.put_object(Bucket=src, Key="a", Body=b"alpha", Metadata={"m": "1"})
    copied = s3.copy_object(Bucket=dst, Key="b", CopySource={"Bucket": src, "Key": "a"})
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"alpha").hexdigest()}"'
    got = s3.get_object(Bucket=dst, Key="b")
    assert got["Body"].read() == b"alpha" and got["Metadata"] == {"m": "1"}
    s3.copy_object(
        Bucket=dst,
        Key="c",
        CopySource={"Bucket": src, "Key": "a"},
        Metadata={"m": "2"},
        MetadataDirective="REPLACE",
    )
    assert s3.head_object(Bucket=dst, Key="c")["Metadata"] == {"m": "2"}

    for i in range(5):
        s3.put_object(Bucket=src, Key=f"k{i}", Body=b"")
    result = s3.delete_objects(
        Bucket=src,
        Delete={"Objects": [{"Key": "k0"}, {"Key": "k1"}, {"Key": "never-existed"}]},
    )
    assert sorted(d["Key"] for d in result["Deleted"]) == ["k0", "k1", "never-existed"]
    quiet = s3.delete_objects(Bucket=src, Delete={"Objects": [{"Key": "k2"}], "Quiet": True})
    assert "Deleted" not in quiet
    left = [o["Key"] for o in s3.list_objects(Bucket=src)["Contents"]]
    assert left == ["a", "k3", "k4"]


def test_versioning_and_object_versions_as_the_sdk_purges(
    account: Callable[..., Account],
) -> None:
    s3 = account().s3
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    for i in range(3):
        s3.put_object(Bucket=name, Key=f"v{i}", Body=b"x")
    assert "Status" not in s3.get_bucket_versioning(Bucket=name)
    versions = s3.list_object_versions(Bucket=name)
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in versions["Versions"]] == [
        (f"v{i}", "null", True) for i in range(3)
    ]
    # the SDK's bucket.delete(): delete every version, then the bucket
    s3.delete_objects(
        Bucket=name,
        Delete={"Objects": [{"Key": v["Key"], "VersionId": "null"} for v in versions["Versions"]]},
    )
    s3.delete_bucket(Bucket=name)


def test_multipart_upload_as_boto3_does_it(account: Callable[..., Account]) -> None:
    s3 = account().s3
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    data = (b"calor-" * (21 * MiB // 6 + 1))[: 21 * MiB]
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB)
    s3.upload_fileobj(io.BytesIO(data), name, "big.bin", Config=config)
    parts = [data[i : i + 8 * MiB] for i in range(0, len(data), 8 * MiB)]
    md5s = b"".join(hashlib.md5(p).digest() for p in parts)
    expected = f'"{hashlib.md5(md5s).hexdigest()}-{len(parts)}"'
    head = s3.head_object(Bucket=name, Key="big.bin")
    assert head["ETag"] == expected and head["ContentLength"] == len(data)
    out = io.BytesIO()
    s3.download_fileobj(name, "big.bin", out, Config=config)  # ranged GETs
    assert out.getvalue() == data


def test_multipart_errors_list_parts_and_abort(account: Callable[..., Account]) -> None:
    s3 = account().s3
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    upload = s3.create_multipart_upload(Bucket=name, Key="m")["UploadId"]
    p1 = s3.upload_part(Bucket=name, Key="m", UploadId=upload, PartNumber=1, Body=b"a" * 100)
    p2 = s3.upload_part(Bucket=name, Key="m", UploadId=upload, PartNumber=2, Body=b"b" * 100)
    listed = s3.list_parts(Bucket=name, Key="m", UploadId=upload)
    assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [(1, 100), (2, 100)]
    uploads = s3.list_multipart_uploads(Bucket=name)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("m", upload)]
    with pytest.raises(ClientError) as exc:  # a first part under 5 MiB
        s3.complete_multipart_upload(
            Bucket=name,
            Key="m",
            UploadId=upload,
            MultipartUpload={
                "Parts": [
                    {"PartNumber": 1, "ETag": p1["ETag"]},
                    {"PartNumber": 2, "ETag": p2["ETag"]},
                ]
            },
        )
    assert _code(exc) == "EntityTooSmall"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=name,
            Key="m",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0000"'}]},
        )
    assert _code(exc) == "InvalidPart"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=name,
            Key="m",
            UploadId=upload,
            MultipartUpload={
                "Parts": [
                    {"PartNumber": 2, "ETag": p2["ETag"]},
                    {"PartNumber": 1, "ETag": p1["ETag"]},
                ]
            },
        )
    assert _code(exc) == "InvalidPartOrder"
    # a single small part is a valid upload
    done = s3.complete_multipart_upload(
        Bucket=name,
        Key="m",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": p2["ETag"]}]},
    )
    assert done["ETag"].endswith('-1"')
    assert s3.get_object(Bucket=name, Key="m")["Body"].read() == b"b" * 100
    # a copy is one part: the MD5 of the whole, though its source's ETag is a multipart one
    copied = s3.copy_object(Bucket=name, Key="m2", CopySource={"Bucket": name, "Key": "m"})
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"b" * 100).hexdigest()}"'
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=name, Key="m", UploadId=upload)
    assert _code(exc) == "NoSuchUpload"

    aborted = s3.create_multipart_upload(Bucket=name, Key="gone")["UploadId"]
    s3.upload_part(Bucket=name, Key="gone", UploadId=aborted, PartNumber=1, Body=b"z")
    s3.abort_multipart_upload(Bucket=name, Key="gone", UploadId=aborted)
    assert s3.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    with pytest.raises(ClientError):
        s3.head_object(Bucket=name, Key="gone")


def test_signatures_are_checked(account: Callable[..., Account], server: Server) -> None:
    acc = account(region="eu-west-3")  # any region in the credential scope
    name = unique_bucket()
    acc.s3.create_bucket(Bucket=name)
    acc.s3.put_object(Bucket=name, Key="k", Body=b"secret data")

    wrong = s3_client(server, acc.email, acc.token + "x")
    with pytest.raises(ClientError) as exc:
        wrong.list_objects(Bucket=name)
    assert _code(exc) == "SignatureDoesNotMatch" and _status(exc) == 403
    unknown = s3_client(server, "nobody@test.local", acc.token)
    with pytest.raises(ClientError) as exc:
        unknown.get_object(Bucket=name, Key="k")
    assert _code(exc) == "InvalidAccessKeyId"
    anonymous = httpx.get(f"{server.storage_url}/{name}/k")
    assert anonymous.status_code == 403 and "<Code>AccessDenied</Code>" in anonymous.text

    url = acc.s3.generate_presigned_url("get_object", Params={"Bucket": name, "Key": "k"})
    assert httpx.get(url).content == b"secret data"
    tampered = url.replace("/k?", "/k2?")
    assert httpx.get(tampered).status_code == 403
    expired = acc.s3.generate_presigned_url(
        "get_object", Params={"Bucket": name, "Key": "k"}, ExpiresIn=-10
    )
    answer = httpx.get(expired)
    assert answer.status_code == 403 and "expired" in answer.text


def test_a_signed_body_that_was_altered_is_refused(
    account: Callable[..., Account], server: Server
) -> None:
    acc = account()
    name = unique_bucket()
    acc.s3.create_bucket(Bucket=name)

    def tamper(request: object, **_: object) -> None:
        request.body = b"tampered"  # type: ignore[attr-defined]
        request.headers["Content-Length"] = "8"  # type: ignore[attr-defined]

    # over plain HTTP boto3 signs the body's sha256; send another body under that signature
    signing = s3_client(server, acc.email, acc.token)
    signing.meta.events.register("before-send.s3.PutObject", tamper)
    with pytest.raises(ClientError) as exc:
        signing.put_object(Bucket=name, Key="k", Body=b"original")
    assert _code(exc) == "XAmzContentSHA256Mismatch"
    assert acc.s3.list_objects(Bucket=name).get("Contents", []) == []


def test_one_user_never_sees_another_users_buckets(account: Callable[..., Account]) -> None:
    alice, bob = account(), account()
    name = unique_bucket()
    alice.s3.create_bucket(Bucket=name)
    alice.s3.put_object(Bucket=name, Key="private", Body=b"alice's")
    assert bob.s3.list_buckets()["Buckets"] == []
    for call in (
        lambda: bob.s3.head_bucket(Bucket=name),
        lambda: bob.s3.list_objects(Bucket=name),
        lambda: bob.s3.get_object(Bucket=name, Key="private"),
        lambda: bob.s3.put_object(Bucket=name, Key="intrusion", Body=b"x"),
        lambda: bob.s3.delete_object(Bucket=name, Key="private"),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert _status(exc) == 404
    # names are per user: bob may have a bucket of the same name, and it is another bucket
    bob.s3.create_bucket(Bucket=name)
    assert bob.s3.list_objects(Bucket=name).get("Contents", []) == []
    assert alice.s3.get_object(Bucket=name, Key="private")["Body"].read() == b"alice's"


def test_info_counts_buckets_and_bytes(account: Callable[..., Account], server: Server) -> None:
    acc = account()
    for _ in range(2):
        name = unique_bucket()
        acc.s3.create_bucket(Bucket=name)
    acc.s3.put_object(Bucket=name, Key="a", Body=b"12345")
    acc.s3.put_object(Bucket=name, Key="b", Body=b"678")
    acc.s3.put_object(Bucket=name, Key="a", Body=b"1")  # replaced: 5 bytes less, 1 more
    info = httpx.get(f"{server.url}/info", headers={"Authorization": acc.token}).json()
    assert info["bucketCount"] == 2
    assert info["usedQuotaBytesBucket"] == 4
    assert info["maxBucket"] > 0 and info["quotaBytesBucket"] > 0
    storage = httpx.get(f"{server.url}/settings", headers={"Authorization": acc.token}).json()
    assert storage["storage"] == server.storage_url


def test_concurrent_puts_of_one_new_key_all_succeed(
    account: Callable[..., Account], server: Server
) -> None:
    """Last writer wins, as in S3; the bucket's byte count stays exact."""
    acc = account()
    name = unique_bucket()
    acc.s3.create_bucket(Bucket=name)
    clients = [s3_client(server, acc.email, acc.token) for _ in range(8)]
    for round_ in range(3):
        key = f"same-{round_}"
        with ThreadPoolExecutor(len(clients)) as pool:
            done = list(
                pool.map(
                    lambda c, key=key: c.put_object(Bucket=name, Key=key, Body=b"x" * 10),
                    clients,
                )
            )
        assert all(d["ResponseMetadata"]["HTTPStatusCode"] == 200 for d in done)
    listed = acc.s3.list_objects_v2(Bucket=name)["Contents"]
    assert sorted(o["Key"] for o in listed) == ["same-0", "same-1", "same-2"]
    info = httpx.get(f"{server.url}/info", headers={"Authorization": acc.token}).json()
    assert info["usedQuotaBytesBucket"] == 30


def _as_boto3_sends_over_tls(
    acc: Account,
    server: Server,
    call: Callable[[Any], Any],
    alter: Callable[[bytes], bytes] = lambda body: body,
) -> Any:
    """The request boto3 would send to an https endpoint on the gateway's host and port (there,
    it streams bodies aws-chunked with a CRC trailer); the signature covers the host, not the
    scheme, so the same bytes replayed over http must be accepted."""
    port = server.storage_url.rsplit(":", 1)[1]
    s3 = boto3.client(
        "s3",
        endpoint_url=f"https://127.0.0.1:{port}",
        aws_access_key_id=acc.email,
        aws_secret_access_key=acc.token,
        region_name="eu-west-3",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    captured: list[AWSPreparedRequest] = []

    def grab(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        captured.append(request)

        class Raw:
            def stream(self, *_: Any, **__: Any) -> Iterator[bytes]:
                yield b""

        return AWSResponse(request.url, 200, {}, Raw())

    s3.meta.events.register("before-send.s3", grab)
    with contextlib.suppress(Exception):  # the fake answer does not parse: never mind
        call(s3)
    (request,) = captured
    body = request.body.read() if hasattr(request.body, "read") else request.body
    headers = {
        k: v.decode("latin-1") if isinstance(v, bytes) else v
        for k, v in request.headers.items()
        if k.lower() not in ("transfer-encoding", "content-length")
    }
    return httpx.request(
        request.method,
        request.url.replace("https://", "http://", 1),
        headers=headers,
        content=alter(body),
    )


def test_aws_chunked_bodies_with_checksum_trailers(
    account: Callable[..., Account], server: Server
) -> None:
    acc = account()
    name = unique_bucket()
    acc.s3.create_bucket(Bucket=name)
    data = bytes(range(256)) * 4096 * 3  # 3 MiB

    answer = _as_boto3_sends_over_tls(
        acc, server, lambda s3: s3.put_object(Bucket=name, Key="chunked", Body=data)
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert acc.s3.get_object(Bucket=name, Key="chunked")["Body"].read() == data

    upload = acc.s3.create_multipart_upload(Bucket=name, Key="parts")["UploadId"]
    answer = _as_boto3_sends_over_tls(
        acc,
        server,
        lambda s3: s3.upload_part(
            Bucket=name, Key="parts", UploadId=upload, PartNumber=1, Body=data
        ),
    )
    assert answer.status_code == 200, answer.text
    acc.s3.complete_multipart_upload(
        Bucket=name,
        Key="parts",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": answer.headers["etag"]}]},
    )
    assert acc.s3.get_object(Bucket=name, Key="parts")["Body"].read() == data

    # a body altered in transit fails its checksum trailer and stores nothing
    def flip(body: bytes) -> bytes:
        at = len(body) // 2
        return body[:at] + bytes([body[at] ^ 1]) + body[at + 1 :]

    answer = _as_boto3_sends_over_tls(
        acc, server, lambda s3: s3.put_object(Bucket=name, Key="bad", Body=data), flip
    )
    assert answer.status_code == 400 and "<Code>BadDigest</Code>" in answer.text
    with pytest.raises(ClientError):
        acc.s3.head_object(Bucket=name, Key="bad")
