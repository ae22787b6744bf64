"""SigV4 verification (``calor.storage.sigv4``) against what botocore really signs and sends.

Requests come from a real boto3 client whose ``before-send`` hook captures the prepared request
instead of sending it (and a few over a real socket, to see the bytes on the wire), or from
botocore's signers (``S3SigV4Auth``, ``S3SigV4QueryAuth``) on hand-made ``AWSRequest``s. The
clock botocore signs with is frozen, so every test passes ``now=`` explicitly. aws-chunked
bodies: botocore's own ``AwsChunkedWrapper`` for the unsigned trailer mode; for the signed
modes, which botocore never sends, chunks signed with botocore's key derivation, plus the
published AWS examples.
"""

import base64
import hashlib
import io
import random
import socket
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import boto3
import botocore.auth
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest, AWSResponse
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from calor.storage.sigv4 import (
    ChunkedPayload,
    IncomingRequest,
    SigV4Error,
    Verified,
    payload_sha256_ok,
    verify,
)

FROZEN = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
AMZ_DATE = "20260504T030201Z"
ALICE = "alice+s3@example.com"
BOB = "bob@example.org"
SECRETS = {ALICE: "alice-api-token/with+odd=chars", BOB: "bob-token"}
ENDPOINT = "http://127.0.0.1:9"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

S3Client = Any  # boto3 clients are dynamically typed


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    def frozen(remove_tzinfo: bool = True) -> datetime:
        return FROZEN.replace(tzinfo=None) if remove_tzinfo else FROZEN

    monkeypatch.setattr(botocore.auth, "get_current_datetime", frozen)


# -- helpers -----------------------------------------------------------------------------


_session = boto3.session.Session()
_captured: list[AWSPreparedRequest] = []
_clients: dict[tuple[str, str, str, str, str | None], S3Client] = {}


def _fake_send(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
    _captured.append(request)

    class Raw:
        def stream(self, *_: Any, **__: Any) -> Iterator[bytes]:
            yield b""

    return AWSResponse(request.url, 200, {}, Raw())


def client(
    region: str = "us-east-1",
    access: str = ALICE,
    endpoint: str = ENDPOINT,
    checksums: str = "when_supported",
    signature_version: str | None = None,
) -> S3Client:
    """A boto3 client configured like calor's users' (path style), that sends nothing."""
    cache_key = (region, access, endpoint, checksums, signature_version)
    if cache_key not in _clients:
        s3 = _session.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=access,
            aws_secret_access_key=SECRETS.get(access, "no-such-secret"),
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                request_checksum_calculation=checksums,
                signature_version=signature_version,
            ),
        )
        s3.meta.events.register("before-send.s3", _fake_send)
        _clients[cache_key] = s3
    return _clients[cache_key]


def sent(call: Callable[[], Any]) -> AWSPreparedRequest:
    """The request a boto3 call would have put on the wire."""
    _captured.clear()
    call()
    assert len(_captured) == 1
    return _captured[0]


def _text(value: str | bytes) -> str:
    # http.client writes str header values as latin-1; bytes go as they are
    return value.decode("latin-1") if isinstance(value, bytes) else value


def incoming(request: AWSPreparedRequest | AWSRequest) -> IncomingRequest:
    """What the gateway builds from the request as it arrives."""
    url = urlsplit(request.url)
    headers = {k.lower(): _text(v) for k, v in request.headers.items()}
    headers.setdefault("host", url.netloc)  # urllib3 adds it; botocore signs the same value
    query = parse_qsl(url.query, keep_blank_values=True)
    return IncomingRequest(request.method or "GET", url.path, query, headers)


def body_of(request: AWSPreparedRequest) -> bytes:
    body = request.body
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    data = body.read()
    body.seek(0)
    return bytes(data)


def check(request: IncomingRequest, now: datetime = FROZEN) -> Verified:
    return verify(request, SECRETS.get, now)


def refused(request: IncomingRequest, now: datetime = FROZEN) -> SigV4Error:
    with pytest.raises(SigV4Error) as exc:
        check(request, now)
    return exc.value


def replace(request: IncomingRequest, **changes: Any) -> IncomingRequest:
    fields = {
        "method": request.method,
        "raw_path": request.raw_path,
        "query": list(request.query),
        "headers": dict(request.headers),
    }
    fields.update(changes)
    return IncomingRequest(**fields)


def with_headers(request: IncomingRequest, **headers: str) -> IncomingRequest:
    merged = dict(request.headers)
    merged.update({k.replace("_", "-"): v for k, v in headers.items()})
    return replace(request, headers=merged)


def signed(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    access: str = ALICE,
    secret: str | None = None,
    region: str = "us-east-1",
    signer: type[SigV4Auth] = S3SigV4Auth,
) -> AWSRequest:
    request = AWSRequest(method=method, url=url, headers=dict(headers or {}), data=body)
    credentials = Credentials(access, secret if secret is not None else SECRETS[access])
    signer(credentials, "s3", region).add_auth(request)
    return request


def presigned(
    method: str,
    url: str,
    *,
    expires: int = 3600,
    headers: Mapping[str, str] | None = None,
    access: str = ALICE,
    region: str = "us-east-1",
) -> AWSRequest:
    request = AWSRequest(method=method, url=url, headers=dict(headers or {}))
    credentials = Credentials(access, SECRETS[access])
    S3SigV4QueryAuth(credentials, "s3", region, expires=expires).add_auth(request)
    return request


def url_request(url: str, method: str = "GET", **headers: str) -> IncomingRequest:
    """A presigned URL as a browser or curl sends it."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    return IncomingRequest(method, parts.path, query, {"host": parts.netloc, **headers})


def authorization(request: IncomingRequest) -> dict[str, str]:
    _, _, rest = request.headers["authorization"].partition(" ")
    return dict(part.strip().split("=", 1) for part in rest.split(","))


# -- header-signed requests as boto3 sends them -------------------------------------------

OPERATIONS: dict[str, Callable[[S3Client], Any]] = {
    "put_object": lambda s3: s3.put_object(
        Bucket="bkt", Key="dir/obj.txt", Body=b"hello", Metadata={"m": "1"}
    ),
    "get_object": lambda s3: s3.get_object(Bucket="bkt", Key="dir/obj.txt", Range="bytes=0-1"),
    "head_object": lambda s3: s3.head_object(Bucket="bkt", Key="k"),
    "delete_object": lambda s3: s3.delete_object(Bucket="bkt", Key="k"),
    "list_buckets": lambda s3: s3.list_buckets(),
    "head_bucket": lambda s3: s3.head_bucket(Bucket="bkt"),
    "create_bucket": lambda s3: s3.create_bucket(Bucket="bkt"),
    "list_objects": lambda s3: s3.list_objects(
        Bucket="bkt", Prefix="a b/ü+~", Marker="m&k=1", Delimiter="/", EncodingType="url"
    ),
    "list_objects_v2": lambda s3: s3.list_objects_v2(
        Bucket="bkt", Prefix="p/", StartAfter="p/x y", MaxKeys=10
    ),
    "delete_objects": lambda s3: s3.delete_objects(
        Bucket="bkt", Delete={"Objects": [{"Key": "a"}, {"Key": "b c"}]}
    ),
    "create_multipart_upload": lambda s3: s3.create_multipart_upload(Bucket="bkt", Key="big"),
    "upload_part": lambda s3: s3.upload_part(
        Bucket="bkt", Key="big", UploadId="up/1+2=3", PartNumber=2, Body=b"x" * 100
    ),
    "list_parts": lambda s3: s3.list_parts(Bucket="bkt", Key="big", UploadId="u1"),
    "abort_multipart_upload": lambda s3: s3.abort_multipart_upload(
        Bucket="bkt", Key="big", UploadId="u1"
    ),
    "copy_object": lambda s3: s3.copy_object(
        Bucket="bkt", Key="copy", CopySource={"Bucket": "src", "Key": "a b"}
    ),
}


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-3"])
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_what_boto3_sends_verifies(operation: str, region: str) -> None:
    request = sent(lambda: OPERATIONS[operation](client(region)))
    got = check(incoming(request))
    auth = authorization(incoming(request))
    assert got.access_key == ALICE and got.secret == SECRETS[ALICE]
    assert got.region == region and got.date == "20260504" and got.amz_date == AMZ_DATE
    assert got.signature == auth["Signature"] and not got.presigned
    assert got.payload == _text(request.headers["X-Amz-Content-SHA256"])
    assert payload_sha256_ok(got, body_of(request))


def test_query_parameters_are_canonicalised_from_their_decoded_values() -> None:
    request = sent(lambda: OPERATIONS["list_objects"](client()))
    assert "encoding-type=url" in request.url and "prefix=a%20b%2F%C3%BC%2B~" in request.url
    got = incoming(request)
    assert ("prefix", "a b/ü+~") in got.query and ("marker", "m&k=1") in got.query
    check(got)
    # the order parameters come in does not matter, only their names and values
    check(replace(got, query=list(reversed(got.query))))


def test_a_bare_sub_resource_is_signed_as_name_equals() -> None:
    request = sent(lambda: OPERATIONS["delete_objects"](client()))
    assert request.url.endswith("/bkt?delete")
    assert incoming(request).query == [("delete", "")]
    check(incoming(request))


def test_repeated_query_names_sort_by_value() -> None:
    request = signed("GET", "http://s3.test/bkt?tag=b&x=1&tag=a&tag=")
    got = incoming(request)
    assert [v for k, v in got.query if k == "tag"] == ["b", "a", ""]
    check(got)


# -- keys: the path as botocore sends it ----------------------------------------------------

KEYS = {
    "space": ("a b.txt", "/bkt/a%20b.txt"),
    "plus": ("a+b", "/bkt/a%2Bb"),
    "tilde": ("~user/x~", "/bkt/~user/x~"),
    "unicode": ("ünï/çødé/ключ/鍵", None),
    "emoji": ("😀 smile", "/bkt/%F0%9F%98%80%20smile"),
    "double slash": ("a//b", "/bkt/a//b"),
    "leading slash": ("/lead", "/bkt//lead"),
    "trailing slash": ("dir/", "/bkt/dir/"),
    "encoded slash": ("x%2Fy", "/bkt/x%252Fy"),
    "dot segments": ("./a/../b", "/bkt/./a/../b"),
    "dot dot": ("..", "/bkt/.."),
    "url syntax": ("q?x#y&z=1;p", "/bkt/q%3Fx%23y%26z%3D1%3Bp"),
    "sub-delims": ("!$'()*,:@", "/bkt/%21%24%27%28%29%2A%2C%3A%40"),
    "percent": ("100%", "/bkt/100%25"),
}


@pytest.mark.parametrize("name", sorted(KEYS))
def test_keys_verify_exactly_as_botocore_sends_them(name: str) -> None:
    key, expected_path = KEYS[name]
    for call in (
        lambda s3: s3.put_object(Bucket="bkt", Key=key, Body=b"data"),
        lambda s3: s3.get_object(Bucket="bkt", Key=key),
    ):
        request = incoming(sent(lambda: call(client("eu-west-3"))))  # noqa: B023
        if expected_path is not None:
            assert request.raw_path == expected_path
        # what the gateway does to find the object: decode once, '+' is a plus
        assert unquote(request.raw_path.split("/", 2)[2]) == key
        check(request)


def test_a_key_in_another_form_is_another_signature() -> None:
    request = incoming(sent(lambda: client().get_object(Bucket="bkt", Key="a b")))
    for other in ("/bkt/a+b", "/bkt/a%2520b", "/bkt/a%20b/", "/bkt//a%20b", "/bkt/A%20b"):
        assert refused(replace(request, raw_path=other)).code == "SignatureDoesNotMatch"


def test_a_path_signed_as_sent_and_one_signed_s3_encoded_both_verify() -> None:
    # a signer that sends "!" raw and signs it raw (as botocore signs any path it is given)
    raw = signed("GET", "http://s3.test/bkt/it's!")
    assert incoming(raw).raw_path == "/bkt/it's!"
    check(incoming(raw))
    # a signer that encodes the key the S3 way for the signature but sends it raw
    encoded = incoming(signed("GET", "http://s3.test/bkt/it%27s%21"))
    check(replace(encoded, raw_path="/bkt/it's!"))
    # lower-case escapes, signed as sent or upper-cased
    check(incoming(signed("GET", "http://s3.test/bkt/%c3%a9")))
    check(replace(incoming(signed("GET", "http://s3.test/bkt/%C3%A9")), raw_path="/bkt/%c3%a9"))


def test_raw_non_ascii_bytes_on_the_wire_verify_as_their_escapes() -> None:
    request = incoming(signed("GET", "http://s3.test/bkt/%C3%A9"))
    # ASGI hands the raw path over as latin-1 text
    check(replace(request, raw_path=b"/bkt/\xc3\xa9".decode("latin-1")))


def test_the_bytes_on_the_wire_verify() -> None:
    """boto3 over a real socket: the request line and headers exactly as they arrive."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(5)
    heads: list[bytes] = []

    def serve() -> None:
        for _ in range(3):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                if b"expect: 100-continue" in head.lower():
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(rest) < length:
                    rest += conn.recv(65536)
                heads.append(head)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        s3 = _session.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}",
            region_name="eu-west-3",
            aws_access_key_id=ALICE,
            aws_secret_access_key=SECRETS[ALICE],
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        s3.get_object(Bucket="bkt", Key="./a b/../ü+~//%2F")
        s3.put_object(Bucket="bkt", Key="k", Body=b"payload", Metadata={"who": "me"})
        s3.list_objects(Bucket="bkt", Prefix="a b", EncodingType="url")
    finally:
        server.close()
        thread.join(5)
    assert len(heads) == 3
    for head in heads:
        line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = line.split(" ")
        path, _, query = target.partition("?")
        headers = {}
        for header in header_lines:
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        request = IncomingRequest(method, path, parse_qsl(query, keep_blank_values=True), headers)
        assert check(request).region == "eu-west-3"
    assert heads[0].startswith(b"GET /bkt/./a%20b/../%C3%BC%2B~//%252F HTTP/1.1")


# -- who signed ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "access",
    [ALICE, BOB, "first.last@sub.example.co.uk", "we/ird=key@example.com", "AKIAIOSFODNN7EXAMPLE"],
)
def test_access_keys_are_whatever_precedes_the_scope(access: str) -> None:
    secret = f"secret-of-{access}"
    request = incoming(signed("GET", "http://s3.test/bkt/k", access=access, secret=secret))
    got = verify(request, {access: secret}.get, FROZEN)
    assert got.access_key == access and got.secret == secret
    url = AWSRequest(method="GET", url="http://s3.test/bkt/k")
    S3SigV4QueryAuth(Credentials(access, secret), "s3", "us-east-1").add_auth(url)
    by_url = verify(url_request(url.url), {access: secret}.get, FROZEN)
    assert by_url.access_key == access and by_url.presigned


def test_an_e_mail_access_key_is_percent_encoded_in_a_presigned_url() -> None:
    url = presigned("GET", "http://s3.test/bkt/k", access=ALICE).url
    assert "X-Amz-Credential=alice%2Bs3%40example.com%2F20260504%2F" in url
    assert check(url_request(url)).access_key == ALICE


def test_a_wrong_secret_does_not_match() -> None:
    request = incoming(signed("GET", "http://s3.test/bkt/k", secret="not-the-token"))
    error = refused(request)
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)


def test_an_unknown_access_key_is_refused_as_such() -> None:
    s3 = client(access="nobody@example.com")
    error = refused(incoming(sent(lambda: s3.list_buckets())))
    assert (error.code, error.status) == ("InvalidAccessKeyId", 403)
    asked: list[str] = []

    def secret_for(access: str) -> str | None:
        asked.append(access)
        return None

    with pytest.raises(SigV4Error):
        verify(incoming(sent(lambda: s3.list_buckets())), secret_for, FROZEN)
    assert asked == ["nobody@example.com"]


def test_a_region_is_whatever_the_client_signed_for() -> None:
    for region in ("us-east-1", "eu-west-3", "calor-local", "ap-southeast-2"):
        request = incoming(signed("GET", "http://s3.test/bkt", region=region))
        assert check(request).region == region


# -- tampering ----------------------------------------------------------------------------


def _put() -> IncomingRequest:
    return incoming(
        sent(
            lambda: client().put_object(
                Bucket="bkt", Key="k", Body=b"body", ContentType="text/plain", Metadata={"a": "1"}
            )
        )
    )


def _flip_last(text: str) -> str:
    return text[:-1] + ("1" if text[-1] == "0" else "0")


TAMPERINGS: dict[str, Callable[[IncomingRequest], IncomingRequest]] = {
    "method": lambda r: replace(r, method="DELETE"),
    "path": lambda r: replace(r, raw_path="/bkt/k2"),
    "bucket": lambda r: replace(r, raw_path="/other/k"),
    "query added": lambda r: replace(r, query=[*r.query, ("acl", "")]),
    "signed header changed": lambda r: with_headers(r, content_type="text/html"),
    "metadata changed": lambda r: with_headers(r, x_amz_meta_a="2"),
    "payload hash changed": lambda r: with_headers(r, x_amz_content_sha256=EMPTY_SHA256),
    "payload made unsigned": lambda r: with_headers(r, x_amz_content_sha256="UNSIGNED-PAYLOAD"),
    "host changed": lambda r: with_headers(r, host="evil.test:9"),
    "time shifted": lambda r: with_headers(r, x_amz_date="20260504T030202Z"),
    "signature": lambda r: with_headers(r, authorization=_flip_last(r.headers["authorization"])),
}


@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_a_tampered_request_does_not_match(tampering: str) -> None:
    request = _put()
    check(request)
    error = refused(TAMPERINGS[tampering](request))
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)


def test_a_tampered_listing_query_does_not_match() -> None:
    request = incoming(sent(lambda: OPERATIONS["list_objects"](client())))
    changed = [(k, "other" if k == "prefix" else v) for k, v in request.query]
    assert refused(replace(request, query=changed)).code == "SignatureDoesNotMatch"
    dropped = [(k, v) for k, v in request.query if k != "marker"]
    assert refused(replace(request, query=dropped)).code == "SignatureDoesNotMatch"


def test_unsigned_amz_headers_are_refused_and_other_headers_ignored() -> None:
    request = _put()
    check(with_headers(request, user_agent="something else", expect="100-continue"))
    error = refused(with_headers(request, x_amz_copy_source="/victim/secret"))
    assert (error.code, error.status) == ("AccessDenied", 403)
    assert "x-amz-copy-source" in error.message
    url = presigned("PUT", "http://s3.test/bkt/k").url
    error = refused(url_request(url, "PUT", **{"x-amz-meta-owner": "mallory"}))
    assert error.code == "AccessDenied" and "x-amz-meta-owner" in error.message


def test_host_must_be_signed() -> None:
    request = _put()
    auth = request.headers["authorization"].replace("host;", "")
    error = refused(with_headers(request, authorization=auth))
    assert error.code == "AccessDenied" and "host" in error.message


def test_a_signed_header_missing_from_the_request_does_not_match() -> None:
    request = _put()
    headers = {k: v for k, v in request.headers.items() if k != "content-type"}
    assert refused(replace(request, headers=headers)).code == "SignatureDoesNotMatch"


# -- time ---------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-14, 14, 0])
def test_clocks_within_fifteen_minutes_are_fine(offset: int) -> None:
    check(_put(), FROZEN + timedelta(minutes=offset))


@pytest.mark.parametrize("offset", [-16, 16, 24 * 60])
def test_a_skewed_clock_is_refused(offset: int) -> None:
    error = refused(_put(), FROZEN + timedelta(minutes=offset))
    assert (error.code, error.status) == ("RequestTimeTooSkewed", 403)


def test_a_naive_now_is_utc() -> None:
    check(_put(), FROZEN.replace(tzinfo=None))


def test_the_date_header_stands_in_for_x_amz_date() -> None:
    # botocore signs with Date (and drops X-Amz-Date) when the caller set a Date header
    request = signed("GET", "http://s3.test/bkt/k", headers={"Date": "whatever"})
    assert "X-Amz-Date" not in request.headers
    got = incoming(request)
    assert got.headers["date"] == "Mon, 04 May 2026 03:02:01 -0000"
    assert check(got).amz_date == AMZ_DATE
    assert refused(got, FROZEN + timedelta(hours=1)).code == "RequestTimeTooSkewed"
    assert refused(with_headers(got, date="yesterday")).code == "AccessDenied"


def test_a_credential_date_other_than_the_request_date_is_malformed() -> None:
    request = _put()
    auth = request.headers["authorization"].replace("/20260504/", "/20260503/")
    error = refused(with_headers(request, authorization=auth))
    assert (error.code, error.status) == ("AuthorizationHeaderMalformed", 400)


# -- the Authorization header's syntax ------------------------------------------------------


def test_the_authorization_header_tolerates_spacing() -> None:
    request = _put()
    auth = request.headers["authorization"]
    assert ", SignedHeaders=" in auth  # botocore's spacing
    for variant in (
        auth.replace(", ", ","),
        auth.replace(", ", " ,   "),
        auth.replace("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256    ") + "  ",
    ):
        check(with_headers(request, authorization=variant))


MALFORMED_AUTHORIZATIONS: dict[str, Callable[[str], str]] = {
    "algorithm": lambda a: a.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
    "no signature": lambda a: a.split(", Signature=")[0],
    "unknown component": lambda a: a.replace("Credential=", "Credentials="),
    "repeated component": lambda a: a + ", Signature=" + "0" * 64,
    "service": lambda a: a.replace("/s3/", "/ec2/"),
    "terminator": lambda a: a.replace("aws4_request", "aws5_request"),
    "empty region": lambda a: a.replace("/us-east-1/", "//"),
    "no access key": lambda a: a.replace(f"Credential={ALICE}/", "Credential="),
    "upper-case signed header": lambda a: a.replace("SignedHeaders=", "SignedHeaders=Host;"),
    "repeated signed header": lambda a: a.replace("SignedHeaders=", "SignedHeaders=host;"),
    "short signature": lambda a: a[:-2],
    "signature not hex": lambda a: a[:-1] + "g",
}


@pytest.mark.parametrize("malformation", sorted(MALFORMED_AUTHORIZATIONS))
def test_malformed_authorization_headers(malformation: str) -> None:
    request = _put()
    auth = MALFORMED_AUTHORIZATIONS[malformation](request.headers["authorization"])
    error = refused(with_headers(request, authorization=auth))
    assert (error.code, error.status) == ("AuthorizationHeaderMalformed", 400)


def test_an_upper_case_signature_is_the_same_signature() -> None:
    request = _put()
    auth = request.headers["authorization"]
    head, _, signature = auth.rpartition("Signature=")
    check(with_headers(request, authorization=f"{head}Signature={signature.upper()}"))


def test_x_amz_content_sha256_is_required_and_must_be_a_known_mode() -> None:
    # plain SigV4 (not S3's flavour) does not send x-amz-content-sha256: S3 refuses that
    plain = incoming(signed("GET", "http://s3.test/bkt/k", signer=SigV4Auth))
    assert "x-amz-content-sha256" not in plain.headers
    error = refused(plain)
    assert (error.code, error.status) == ("MissingSecurityHeader", 400)
    nonsense = incoming(
        signed(
            "GET",
            "http://s3.test/bkt/k",
            headers={"X-Amz-Content-SHA256": "whatever"},
            signer=SigV4Auth,
        )
    )
    error = refused(nonsense)
    assert (error.code, error.status) == ("InvalidArgument", 400)


def test_both_auth_mechanisms_at_once_are_refused() -> None:
    url = presigned("GET", "http://s3.test/bkt/k").url
    request = url_request(url, authorization=_put().headers["authorization"])
    error = refused(request)
    assert (error.code, error.status) == ("InvalidArgument", 400)


def test_an_unsigned_request_is_refused() -> None:
    error = refused(IncomingRequest("GET", "/bkt/k", [], {"host": "s3.test"}))
    assert (error.code, error.status) == ("AccessDenied", 403)


# -- payload hashes -------------------------------------------------------------------------


def test_the_declared_payload_hash_is_checked_against_the_body() -> None:
    request = sent(lambda: client().put_object(Bucket="bkt", Key="k", Body=b"hello"))
    got = check(incoming(request))
    assert got.payload == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert payload_sha256_ok(got, b"hello")
    assert not payload_sha256_ok(got, b"hellO")
    assert not payload_sha256_ok(got, b"")


def test_an_upper_case_declared_hash_is_reported_lower_case() -> None:
    digest = "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824"
    # S3SigV4Auth would put its own (lower-case) hash: the plain signer keeps the header given
    request = signed(
        "PUT",
        "http://s3.test/bkt/k",
        body=b"hello",
        headers={"X-Amz-Content-SHA256": digest},
        signer=SigV4Auth,
    )
    got = check(incoming(request))
    assert got.payload == digest.lower()
    assert payload_sha256_ok(got, b"hello") and not payload_sha256_ok(got, b"bye")


def test_unsigned_payloads_always_pass_the_hash_check() -> None:
    s3 = _session.client(
        "s3",
        endpoint_url="https://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id=ALICE,
        aws_secret_access_key=SECRETS[ALICE],
        config=Config(
            s3={"addressing_style": "path", "payload_signing_enabled": False},
            request_checksum_calculation="when_required",
        ),
    )
    s3.meta.events.register("before-send.s3", _fake_send)
    request = sent(lambda: s3.put_object(Bucket="bkt", Key="k", Body=b"hello"))
    got = check(incoming(request))
    assert got.payload == "UNSIGNED-PAYLOAD"
    assert payload_sha256_ok(got, b"anything at all")


# -- presigned URLs ----------------------------------------------------------------------


def v4_presigner() -> S3Client:
    return client(signature_version="s3v4")


def test_boto3_presigns_with_sigv2_in_us_east_1_unless_told_s3v4() -> None:
    params = {"Bucket": "bkt", "Key": "k"}
    default = client("us-east-1").generate_presigned_url("get_object", Params=params)
    query = dict(parse_qsl(urlsplit(default).query))
    assert set(query) == {"AWSAccessKeyId", "Signature", "Expires"}
    error = refused(url_request(default))
    assert (error.code, error.status) == ("InvalidRequest", 400)
    assert "AWS4-HMAC-SHA256" in error.message
    # the same client's header-signed requests are SigV4 all the same
    check(incoming(sent(lambda: client("us-east-1").get_object(**params))))
    # as are presigned URLs when asked for, or in a region that never had SigV2
    for url in (
        v4_presigner().generate_presigned_url("get_object", Params=params),
        client("eu-west-3").generate_presigned_url("get_object", Params=params),
    ):
        assert check(url_request(url)).presigned


def test_a_sigv2_authorization_header_is_refused_as_such() -> None:
    request = with_headers(_put(), authorization="AWS alice:c2lnbmF0dXJl")
    assert refused(request).code == "InvalidRequest"


def test_presigned_urls_from_boto3_verify() -> None:
    s3 = client("eu-west-3")
    for method, operation, params in [
        ("GET", "get_object", {"Bucket": "bkt", "Key": "a b/ü+~//x"}),
        ("PUT", "put_object", {"Bucket": "bkt", "Key": "up load"}),
        ("GET", "list_objects", {"Bucket": "bkt", "EncodingType": "url", "Prefix": "p q"}),
        ("DELETE", "delete_object", {"Bucket": "bkt", "Key": "k"}),
        ("HEAD", "head_object", {"Bucket": "bkt", "Key": "k"}),
        (
            "GET",
            "get_object",
            {"Bucket": "bkt", "Key": "k", "ResponseContentDisposition": 'attachment; f="x y"'},
        ),
    ]:
        url = s3.generate_presigned_url(operation, Params=params, ExpiresIn=600)
        request = url_request(url, method, **{"user-agent": "curl/8"})
        got = check(request, FROZEN + timedelta(seconds=599))
        signature = dict(request.query)["X-Amz-Signature"]
        assert got.presigned and got.payload == "UNSIGNED-PAYLOAD"
        assert got.region == "eu-west-3" and got.signature == signature
        assert got.amz_date == AMZ_DATE and got.access_key == ALICE
        assert refused(replace(request, method="POST")).code == "SignatureDoesNotMatch"


def test_a_presigned_url_expires() -> None:
    url = v4_presigner().generate_presigned_url(
        "get_object", Params={"Bucket": "bkt", "Key": "k"}, ExpiresIn=60
    )
    request = url_request(url)
    check(request, FROZEN + timedelta(seconds=60))
    error = refused(request, FROZEN + timedelta(seconds=61))
    assert (error.code, error.status, error.message) == ("AccessDenied", 403, "Request has expired")


def test_a_presigned_url_with_a_negative_lifetime_has_expired() -> None:
    url = v4_presigner().generate_presigned_url(
        "get_object", Params={"Bucket": "bkt", "Key": "k"}, ExpiresIn=-10
    )
    assert "X-Amz-Expires=-10" in url
    error = refused(url_request(url))
    assert (error.code, error.message) == ("AccessDenied", "Request has expired")


def test_a_presigned_url_from_the_future_is_not_valid_yet() -> None:
    request = url_request(presigned("GET", "http://s3.test/bkt/k").url)
    check(request, FROZEN - timedelta(minutes=14))
    error = refused(request, FROZEN - timedelta(minutes=16))
    assert error.code == "AccessDenied" and "not valid yet" in error.message


def test_a_presigned_url_lives_at_most_a_week() -> None:
    check(url_request(presigned("GET", "http://s3.test/k", expires=604800).url))
    error = refused(url_request(presigned("GET", "http://s3.test/k", expires=604801).url))
    assert (error.code, error.status) == ("AuthorizationQueryParametersError", 400)


def test_a_tampered_presigned_url_does_not_match() -> None:
    url = v4_presigner().generate_presigned_url(
        "get_object", Params={"Bucket": "bkt", "Key": "k"}, ExpiresIn=60
    )
    for tampered in (
        url.replace("/k?", "/k2?"),
        url.replace("X-Amz-Expires=60", "X-Amz-Expires=600"),
        url + "&versionId=1",
        url.replace("127.0.0.1:9", "127.0.0.1:10"),
    ):
        assert refused(url_request(tampered)).code == "SignatureDoesNotMatch"


def test_a_presigned_url_with_signed_headers_needs_them() -> None:
    url = v4_presigner().generate_presigned_url(
        "put_object",
        Params={"Bucket": "bkt", "Key": "k", "ContentType": "text/plain"},
        ExpiresIn=60,
    )
    assert "X-Amz-SignedHeaders=content-type%3Bhost" in url
    check(url_request(url, "PUT", **{"content-type": "text/plain"}))
    assert refused(url_request(url, "PUT")).code == "SignatureDoesNotMatch"
    wrong = url_request(url, "PUT", **{"content-type": "text/html"})
    assert refused(wrong).code == "SignatureDoesNotMatch"


def test_a_presigned_url_may_sign_the_payload_hash() -> None:
    digest = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    request = presigned("PUT", "http://s3.test/bkt/k", headers={"X-Amz-Content-SHA256": digest})
    got = incoming(request)
    assert "x-amz-content-sha256" in dict(got.query)["X-Amz-SignedHeaders"]
    verified = check(got)
    assert verified.payload == digest and payload_sha256_ok(verified, b"hello")
    assert not payload_sha256_ok(verified, b"other")


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda q: [(k, v) for k, v in q if k != "X-Amz-Expires"], "missing: X-Amz-Expires"),
        (lambda q: [*q, ("X-Amz-Date", AMZ_DATE)], "more than once"),
        (
            lambda q: [(k, "AWS4-HMAC-SHA1" if k == "X-Amz-Algorithm" else v) for k, v in q],
            "only supports",
        ),
        (lambda q: [(k, "soon" if k == "X-Amz-Expires" else v) for k, v in q], "number"),
        (lambda q: [(k, "2026-05-04" if k == "X-Amz-Date" else v) for k, v in q], "format"),
        (
            lambda q: [
                (k, v.replace("/s3/", "/sqs/") if k == "X-Amz-Credential" else v) for k, v in q
            ],
            "service",
        ),
        (
            lambda q: [
                (k, v.replace("/20260504/", "/20260505/") if k == "X-Amz-Credential" else v)
                for k, v in q
            ],
            "date",
        ),
    ],
)
def test_malformed_presigned_urls(
    edit: Callable[[list[tuple[str, str]]], list[tuple[str, str]]], fragment: str
) -> None:
    request = url_request(presigned("GET", "http://s3.test/bkt/k").url)
    error = refused(replace(request, query=edit(list(request.query))))
    assert (error.code, error.status) == ("AuthorizationQueryParametersError", 400)
    assert fragment in error.message


def test_a_presigned_url_must_sign_host() -> None:
    request = url_request(presigned("GET", "http://s3.test/bkt/k").url)
    query = [(k, "" if k == "X-Amz-SignedHeaders" else v) for k, v in request.query]
    assert refused(replace(request, query=query)).code == "AuthorizationQueryParametersError"
    query = [(k, "x-amz-date" if k == "X-Amz-SignedHeaders" else v) for k, v in request.query]
    error = refused(replace(request, query=query, headers={**request.headers, "x-amz-date": "1"}))
    assert error.code == "AccessDenied" and "host" in error.message


# -- aws-chunked: signed chunks -----------------------------------------------------------


class _DeclaredPayloadAuth(S3SigV4Auth):
    """botocore's S3 signer, declaring a streaming payload mode botocore never uses itself."""

    def __init__(self, credentials: Credentials, region: str, mode: str) -> None:
        super().__init__(credentials, "s3", region)
        self._mode = mode

    def payload(self, request: AWSRequest) -> str:
        return self._mode


def _chunk_signature(
    signer: S3SigV4Auth, request: AWSRequest, kind: str, previous: str, digest: str
) -> str:
    scope = signer.credential_scope(request)
    amz_date = request.context["timestamp"]
    parts = [kind, amz_date, scope, previous]
    if kind == "AWS4-HMAC-SHA256-PAYLOAD":
        parts.append(EMPTY_SHA256)
    parts.append(digest)
    return str(signer.signature("\n".join(parts), request))


def streaming_upload(
    data: bytes,
    sizes: list[int],
    *,
    trailers: Mapping[str, str] | None = None,
    region: str = "eu-west-3",
    decoded_length: int | None = None,
) -> tuple[IncomingRequest, bytes]:
    """A PUT signed by botocore in a signed streaming mode, and its aws-chunked body."""
    assert sum(sizes) == len(data)
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailers is not None else "")
    headers = {
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(
            len(data) if decoded_length is None else decoded_length
        ),
    }
    if trailers is not None:
        headers["X-Amz-Trailer"] = ",".join(trailers)
    request = AWSRequest(method="PUT", url="http://s3.test/bkt/big%20file", headers=headers)
    signer = _DeclaredPayloadAuth(Credentials(ALICE, SECRETS[ALICE]), region, mode)
    signer.add_auth(request)
    previous = request.headers["Authorization"].rsplit("Signature=", 1)[1]
    body = bytearray()
    offset = 0
    for size in [*sizes, 0]:
        chunk = data[offset : offset + size]
        offset += size
        previous = _chunk_signature(
            signer, request, "AWS4-HMAC-SHA256-PAYLOAD", previous, hashlib.sha256(chunk).hexdigest()
        )
        body += b"%x;chunk-signature=%s\r\n" % (size, previous.encode())
        if size:
            body += chunk + b"\r\n"
    if trailers is not None:
        canonical = "".join(f"{k}:{v}\n" for k, v in sorted(trailers.items()))
        signature = _chunk_signature(
            signer,
            request,
            "AWS4-HMAC-SHA256-TRAILER",
            previous,
            hashlib.sha256(canonical.encode()).hexdigest(),
        )
        for name, value in trailers.items():
            body += f"{name}:{value}\r\n".encode()
        body += f"x-amz-trailer-signature:{signature}\r\n".encode()
    body += b"\r\n"
    return incoming(request), bytes(body)


def decode(
    verified: Verified, body: bytes, pieces: Iterator[bytes] | None, length: int | None
) -> tuple[bytes, dict[str, str]]:
    """Decode ``body`` fed in ``pieces`` (default: at once), declaring ``length``."""
    decoder = ChunkedPayload(verified, length)
    out = bytearray()
    for piece in pieces if pieces is not None else [body]:
        out += decoder.feed(piece)
    decoder.finish()
    return bytes(out), decoder.trailers


def byte_by_byte(body: bytes) -> Iterator[bytes]:
    return (body[i : i + 1] for i in range(len(body)))


def random_slices(body: bytes, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    offset = 0
    while offset < len(body):
        size = rng.choice([0, 1, 2, 3, rng.randint(1, 200), rng.randint(1, 5000)])
        yield body[offset : offset + size]
        offset += size


DATA = random.Random(7).randbytes(9000)


def _split(kind: str, body: bytes) -> Iterator[bytes]:
    if kind == "whole":
        return iter([body])
    if kind == "bytes":
        return byte_by_byte(body)
    return random_slices(body, int(kind.removeprefix("random")))


def segments(body: bytes) -> tuple[list[bytes], bytes]:
    """The chunks of an aws-chunked body (header, data, CRLF each; the last the empty one),
    and what follows them."""
    chunks = []
    position = 0
    while True:
        header_end = body.index(b"\r\n", position)
        size = int(body[position:header_end].split(b";")[0], 16)
        end = header_end + 2 + size + (2 if size else 0)
        chunks.append(body[position:end])
        position = end
        if not size:
            return chunks, body[position:]


@pytest.mark.parametrize("split", ["whole", "bytes", "random1", "random2", "random3"])
def test_signed_chunks_decode_at_any_split(split: str) -> None:
    request, body = streaming_upload(DATA, [4096, 4096, 808])
    verified = check(request)
    assert verified.payload == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    assert payload_sha256_ok(verified, b"not the data: the chunks carry the check")
    out, trailers = decode(verified, body, _split(split, body), len(DATA))
    assert out == DATA and trailers == {}


def test_a_single_empty_chunk_is_an_empty_body() -> None:
    request, body = streaming_upload(b"", [])
    assert decode(check(request), body, None, 0) == (b"", {})


def _fails(verified: Verified, body: bytes, length: int | None, split: str = "whole") -> SigV4Error:
    decoder = ChunkedPayload(verified, length)
    with pytest.raises(SigV4Error) as exc:
        for piece in _split(split, body):
            decoder.feed(piece)
        decoder.finish()
    # once failed, always failed
    with pytest.raises(SigV4Error):
        decoder.finish()
    return exc.value


@pytest.mark.parametrize("split", ["whole", "bytes", "random4"])
def test_a_tampered_chunk_is_rejected(split: str) -> None:
    request, body = streaming_upload(DATA, [4096, 4096, 808])
    verified = check(request)
    position = len(segments(body)[0][0]) - 1000  # inside the first chunk's data
    tampered = body[:position] + bytes([body[position] ^ 1]) + body[position + 1 :]
    error = _fails(verified, tampered, len(DATA), split)
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)


def test_the_chunk_that_failed_raises_before_later_data_is_returned() -> None:
    request, body = streaming_upload(DATA, [4096, 4096, 808])
    chunks, _ = segments(body)
    first = bytearray(chunks[0])
    first[100] ^= 0xFF
    decoder = ChunkedPayload(check(request), len(DATA))
    handed = decoder.feed(bytes(first[:-2]))
    assert len(handed) == 4096  # handed back, but not yet vouched for
    with pytest.raises(SigV4Error) as exc:
        decoder.feed(bytes(first[-2:]) + b"".join(chunks[1:]))
    assert exc.value.code == "SignatureDoesNotMatch"


def _reorder(body: bytes) -> bytes:
    chunks, rest = segments(body)
    return b"".join([chunks[1], chunks[0], *chunks[2:]]) + rest


def _drop_second(body: bytes) -> bytes:
    chunks, rest = segments(body)
    return b"".join([chunks[0], *chunks[2:]]) + rest


def _first_signature(body: bytes, signature: bytes) -> bytes:
    start = body.index(b"chunk-signature=") + len(b"chunk-signature=")
    return body[:start] + signature + body[start + 64 :]


BROKEN_BODIES: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "chunk signature forged": (lambda b: _first_signature(b, b"0" * 64), "SignatureDoesNotMatch"),
    "chunk signature too short": (lambda b: _first_signature(b, b"0" * 63), "InvalidArgument"),
    "chunks reordered": (_reorder, "SignatureDoesNotMatch"),
    "chunk dropped": (_drop_second, "SignatureDoesNotMatch"),
    "final chunk missing": (lambda b: b[: b.rindex(b"0;chunk-signature")], "IncompleteBody"),
    "truncated in data": (lambda b: b[:5000], "IncompleteBody"),
    "truncated in a header": (lambda b: b[: b.index(b"\r\n") - 10], "IncompleteBody"),
    "no signature": (lambda b: b.replace(b";chunk-signature=", b";x=", 1), "InvalidArgument"),
    "bad size": (lambda b: b"z" + b[1:], "InvalidArgument"),
    "missing CRLF after data": (
        lambda b: b.replace(b"\r\n1000;", b"XX1000;", 1),
        "InvalidArgument",
    ),
    "garbage after the end": (lambda b: b + b"more", "InvalidArgument"),
    "trailer in a mode without one": (
        lambda b: b[:-2] + b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n",
        "InvalidArgument",
    ),
}


@pytest.mark.parametrize("broken", sorted(BROKEN_BODIES))
def test_broken_signed_bodies_are_refused(broken: str) -> None:
    request, body = streaming_upload(DATA, [4096, 4096, 808])
    verified = check(request)
    change, code = BROKEN_BODIES[broken]
    changed = change(body)
    assert changed != body
    for split in ("whole", "bytes"):
        error = _fails(verified, changed, len(DATA), split)
        assert error.code == code, (split, error)
        assert error.status == (403 if code == "SignatureDoesNotMatch" else 400)


def test_the_decoded_length_must_be_the_declared_one() -> None:
    request, body = streaming_upload(DATA, [4096, 4096, 808])
    verified = check(request)
    error = _fails(verified, body, len(DATA) + 1)
    assert (error.code, error.status) == ("IncompleteBody", 400)
    error = _fails(verified, body, len(DATA) - 1)
    assert (error.code, error.status) == ("InvalidArgument", 400)
    # unknown length: whatever the chunks hold
    assert decode(verified, body, None, None)[0] == DATA


def test_a_declared_length_that_is_signed_differently_does_not_verify() -> None:
    request, _ = streaming_upload(DATA, [9000])
    changed = with_headers(request, x_amz_decoded_content_length="1")
    assert refused(changed).code == "SignatureDoesNotMatch"


def test_a_chunk_header_line_cannot_grow_forever() -> None:
    request, _ = streaming_upload(DATA, [9000])
    decoder = ChunkedPayload(check(request), None)
    with pytest.raises(SigV4Error) as exc:
        decoder.feed(b"1" * 10000)
    assert exc.value.code == "InvalidArgument"


def test_only_streaming_modes_are_chunked() -> None:
    verified = check(_put())
    with pytest.raises(ValueError):
        ChunkedPayload(verified, None)


# -- aws-chunked: the signed trailer --------------------------------------------------------


def _crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


@pytest.mark.parametrize("split", ["whole", "bytes", "random5"])
def test_a_signed_trailer_is_verified_and_collected(split: str) -> None:
    trailers = {"x-amz-checksum-crc32": _crc32(DATA)}
    request, body = streaming_upload(DATA, [8192, 808], trailers=trailers)
    verified = check(request)
    assert verified.payload == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    out, got = decode(verified, body, _split(split, body), len(DATA))
    assert out == DATA and got == trailers


def test_a_tampered_or_unsigned_trailer_is_refused() -> None:
    trailers = {"x-amz-checksum-crc32": _crc32(DATA)}
    request, body = streaming_upload(DATA, [9000], trailers=trailers)
    verified = check(request)
    forged = body.replace(trailers["x-amz-checksum-crc32"].encode(), _crc32(b"other").encode())
    assert _fails(verified, forged, len(DATA)).code == "SignatureDoesNotMatch"
    start = body.index(b"x-amz-trailer-signature:")
    unsigned = body[:start] + body[body.index(b"\r\n", start) + 2 :]
    assert _fails(verified, unsigned, len(DATA)).code == "SignatureDoesNotMatch"
    added = body.replace(
        b"x-amz-trailer-signature", b"x-amz-meta-extra:1\r\nx-amz-trailer-signature"
    )
    assert _fails(verified, added, len(DATA)).code == "SignatureDoesNotMatch"


# -- aws-chunked: AWS's published examples ----------------------------------------------------
# https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html and
# sigv4-streaming-trailers.html: a 66560-byte object of "a", in 64 KiB, 1 KiB and empty chunks.

AWS_SECRETS = {"AKIAIOSFODNN7EXAMPLE": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
AWS_NOW = datetime(2013, 5, 24, 0, 1, tzinfo=UTC)


def _aws_example(trailer: bool) -> IncomingRequest:
    signed_headers = [
        "content-encoding",
        "content-length",
        "host",
        "x-amz-content-sha256",
        "x-amz-date",
        "x-amz-decoded-content-length",
        "x-amz-storage-class",
    ]
    seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    headers = {
        "host": "s3.amazonaws.com",
        "x-amz-date": "20130524T000000Z",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "66560",
        "content-length": "66824",
    }
    if trailer:
        del headers["content-length"]
        headers["x-amz-content-sha256"] += "-TRAILER"
        headers["x-amz-trailer"] = "x-amz-checksum-crc32c"
        signed_headers = [*signed_headers[:1], *signed_headers[2:], "x-amz-trailer"]
        seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
    headers["authorization"] = (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        f"SignedHeaders={';'.join(signed_headers)},Signature={seed}"
    )
    return IncomingRequest("PUT", "/examplebucket/chunkObject.txt", [], headers)


def _aws_chunk(size: int, signature: str) -> bytes:
    data = b"a" * size
    return b"%x;chunk-signature=%s\r\n" % (size, signature.encode()) + (
        data + b"\r\n" if size else b""
    )


def test_the_aws_streaming_example() -> None:
    verified = verify(_aws_example(trailer=False), AWS_SECRETS.get, AWS_NOW)
    body = (
        _aws_chunk(65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648")
        + _aws_chunk(1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497")
        + _aws_chunk(0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9")
        + b"\r\n"
    )
    assert len(body) == 66824  # the example's Content-Length
    assert decode(verified, body, random_slices(body, 6), 66560) == (b"a" * 66560, {})


@pytest.mark.parametrize("layout", ["sdk", "aws-doc"])
def test_the_aws_streaming_trailer_example(layout: str) -> None:
    verified = verify(_aws_example(trailer=True), AWS_SECRETS.get, AWS_NOW)
    trailer = (
        b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
        b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n"
    )
    body = (
        _aws_chunk(65536, "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2")
        + _aws_chunk(1024, "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7")
        + _aws_chunk(0, "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992")
        # the SDKs end the trailer with an empty line; AWS's page puts one before it
        + (trailer + b"\r\n" if layout == "sdk" else b"\r\n" + trailer)
    )
    out, trailers = decode(verified, body, random_slices(body, 8), 66560)
    assert out == b"a" * 66560 and trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}


# -- aws-chunked: the unsigned trailer botocore sends -------------------------------------


@pytest.mark.parametrize("operation", ["put_object", "upload_part"])
def test_botocore_checksum_trailer_upload(operation: str) -> None:
    # over https botocore moves the checksum to an aws-chunked trailer (AwsChunkedWrapper)
    s3 = client("eu-west-3", endpoint="https://127.0.0.1:9")
    data = DATA * 3
    if operation == "put_object":
        request = sent(lambda: s3.put_object(Bucket="bkt", Key="a b", Body=data))
    else:
        request = sent(
            lambda: s3.upload_part(Bucket="bkt", Key="k", UploadId="u", PartNumber=1, Body=data)
        )
    got = incoming(request)
    assert got.headers["content-encoding"] == "aws-chunked"
    assert got.headers["x-amz-trailer"] == "x-amz-checksum-crc32"
    assert got.headers["transfer-encoding"] == "chunked"
    verified = check(got)
    assert verified.payload == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    body = body_of(request)
    assert body.endswith(f"0\r\nx-amz-checksum-crc32:{_crc32(data)}\r\n\r\n".encode())
    length = int(got.headers["x-amz-decoded-content-length"])
    for split in ("whole", "bytes", "random9"):
        out, trailers = decode(verified, body, _split(split, body), length)
        assert out == data and trailers == {"x-amz-checksum-crc32": _crc32(data)}


@pytest.mark.parametrize("chunk_size", [1, 5, 64, 4096])
def test_aws_chunked_wrapper_bodies_with_many_chunks(chunk_size: int) -> None:
    s3 = client(endpoint="https://127.0.0.1:9")
    verified = check(incoming(sent(lambda: s3.put_object(Bucket="b", Key="k", Body=b"x"))))
    data = DATA[:700]
    wrapper = AwsChunkedWrapper(
        io.BytesIO(data),
        checksum_cls=Crc32Checksum,
        checksum_name="x-amz-checksum-crc32",
        chunk_size=chunk_size,
    )
    body = wrapper.read()
    # a bare chunk: no chunk-signature extension in this mode
    assert body.startswith(b"%x\r\n" % min(chunk_size, len(data)))
    out, trailers = decode(verified, body, random_slices(body, chunk_size), len(data))
    assert out == data and trailers == {"x-amz-checksum-crc32": _crc32(data)}
    out, _ = decode(verified, body, byte_by_byte(body), None)
    assert out == data


def test_an_unsigned_trailer_body_cut_short_is_incomplete() -> None:
    s3 = client(endpoint="https://127.0.0.1:9")
    request = sent(lambda: s3.put_object(Bucket="b", Key="k", Body=DATA))
    verified = check(incoming(request))
    body = body_of(request)
    for cut in (len(body) // 2, body.index(b"0\r\nx-amz"), len(body) - 5):
        error = _fails(verified, body[:cut], None)
        assert (error.code, error.status) == ("IncompleteBody", 400)
