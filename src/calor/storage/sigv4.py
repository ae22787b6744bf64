"""AWS Signature Version 4 verification for the S3 gateway, as the official SDKs sign.

Two forms are accepted: the ``Authorization`` header and presigned URLs (``X-Amz-*`` query
parameters). Bodies sent with ``Content-Encoding: aws-chunked`` are decoded, and their chunk and
trailer signatures checked, by :class:`ChunkedPayload`.

What the caller must hand over, and why it matters:

- ``IncomingRequest.raw_path`` is the path as it came on the wire, still percent-encoded
  (non-ASCII bytes, if a client sent any raw, as latin-1 characters, which is what ASGI's
  ``raw_path.decode("latin-1")`` gives). The object key must then be decoded from it with
  ``urllib.parse.unquote`` (never ``unquote_plus``: ``+`` in a path is a plus sign), which is the
  decoding under which the accepted canonical forms agree.
- Header names lower-case; a header sent several times joined with ``","`` as SigV4 does.
- A verified body is only trustworthy once its check passed: for a declared SHA-256 once
  :func:`payload_sha256_ok` is true, for aws-chunked once :meth:`ChunkedPayload.finish` returned.
"""

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_MODES = frozenset(
    {STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER}
)

MAX_SKEW = timedelta(minutes=15)
MAX_EXPIRES = 604800  # seven days, S3's limit for a presigned URL

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_SCOPE_DATE = re.compile(r"\d{8}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_CHUNK_SIZE = re.compile(r"[0-9a-fA-F]{1,16}")
_EXPIRES = re.compile(r"-?\d{1,12}")

_CONTENT_SHA256 = "x-amz-content-sha256"
_AUTH_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)

# aws-chunked framing limits: a chunk header is "<hex>;chunk-signature=<64 hex>", a trailer a
# few checksum lines; anything far longer is garbage or an attempt to make us buffer.
_MAX_CHUNK_LINE = 4096
_MAX_TRAILER_BYTES = 16384


class SigV4Error(Exception):
    """A request S3 would refuse; ``code`` and ``status`` are what S3 answers."""

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    raw_path: str
    query: list[tuple[str, str]]
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Verified:
    access_key: str
    secret: str
    region: str
    date: str
    amz_date: str
    signature: str
    payload: str
    presigned: bool


def verify(
    request: IncomingRequest, secret_for: Callable[[str], str | None], now: datetime
) -> Verified:
    """Check the request's SigV4 signature (header or presigned form) and return who signed it.

    ``secret_for`` maps an access key to its secret (None: no such key). ``now`` should be
    timezone-aware; a naive one is taken as UTC.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    names = {name for name, _ in request.query}
    presigned = any(p in names for p in _AUTH_PARAMS)
    if presigned and "authorization" in request.headers:
        raise SigV4Error(
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified",
            400,
        )
    if presigned:
        return _verify_presigned(request, secret_for, now)
    authorization = request.headers.get("authorization")
    if authorization is not None and not authorization.startswith("AWS "):
        return _verify_header(request, secret_for, now)
    if authorization is not None or {"AWSAccessKeyId", "Signature"} <= names:
        # SigV2, which boto3 still uses for presigned URLs in us-east-1 and the other regions
        # that once accepted it, unless the client is configured with signature_version="s3v4".
        raise SigV4Error(
            "InvalidRequest",
            f"The authorization mechanism you have provided is not supported. "
            f"Please use {ALGORITHM}.",
            400,
        )
    raise SigV4Error("AccessDenied", "the request is not signed")


def payload_sha256_ok(verified: Verified, body: bytes) -> bool:
    """Whether ``body`` matches the SHA-256 the client declared (and signed).

    True when no hash was declared (UNSIGNED-PAYLOAD, presigned URLs, STREAMING-* modes, whose
    chunks :class:`ChunkedPayload` checks).
    """
    if not _HEX64.fullmatch(verified.payload):
        return True
    return hmac.compare_digest(hashlib.sha256(body).hexdigest(), verified.payload)


# -- the two forms -----------------------------------------------------------------------------


def _verify_header(
    request: IncomingRequest, secret_for: Callable[[str], str | None], now: datetime
) -> Verified:
    malformed = "AuthorizationHeaderMalformed"
    fields = _parse_authorization(request.headers["authorization"])
    access_key, scope_date, region = _parse_credential(fields["Credential"], malformed)
    signed_headers = _parse_signed_headers(fields["SignedHeaders"], malformed)
    signature = _parse_signature(fields["Signature"], malformed)

    amz_date, timestamp = _request_time(request.headers)
    if scope_date != amz_date[:8]:
        raise SigV4Error(
            malformed,
            f"Invalid credential date {scope_date}: it is not the date of the request ({amz_date})",
            400,
        )
    if abs(now - timestamp) > MAX_SKEW:
        raise SigV4Error(
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
        )

    declared = request.headers.get(_CONTENT_SHA256)
    if declared is None:
        # SigV4 for S3 always carries it (botocore sends it on every S3 request) and AWS
        # refuses its absence rather than guessing a payload mode.
        raise SigV4Error(
            "MissingSecurityHeader",
            "Missing required header for this request: x-amz-content-sha256",
            400,
        )
    return _signed(
        request,
        request.query,
        signed_headers,
        declared,
        secret_for,
        Verified(access_key, "", region, scope_date, amz_date, signature, "", presigned=False),
    )


def _verify_presigned(
    request: IncomingRequest, secret_for: Callable[[str], str | None], now: datetime
) -> Verified:
    malformed = "AuthorizationQueryParametersError"
    params: dict[str, str] = {}
    for name, value in request.query:
        if name in _AUTH_PARAMS:
            if name in params:
                raise SigV4Error(malformed, f"{name} is given more than once", 400)
            params[name] = value
    missing = [name for name in _AUTH_PARAMS if name not in params]
    if missing:
        raise SigV4Error(
            malformed,
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
            f"X-Amz-Expires parameters (missing: {', '.join(missing)})",
            400,
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise SigV4Error(malformed, f"X-Amz-Algorithm only supports {ALGORITHM}", 400)
    access_key, scope_date, region = _parse_credential(params["X-Amz-Credential"], malformed)
    signed_headers = _parse_signed_headers(params["X-Amz-SignedHeaders"], malformed)
    signature = _parse_signature(params["X-Amz-Signature"], malformed)

    amz_date = params["X-Amz-Date"]
    timestamp = _parse_amz_date(amz_date, malformed)
    if scope_date != amz_date[:8]:
        raise SigV4Error(
            malformed,
            f"Invalid credential date {scope_date}: it is not the date of X-Amz-Date ({amz_date})",
            400,
        )
    expires_text = params["X-Amz-Expires"]
    if not _EXPIRES.fullmatch(expires_text):
        raise SigV4Error(malformed, "X-Amz-Expires should be a number", 400)
    expires = int(expires_text)
    if expires > MAX_EXPIRES:
        raise SigV4Error(
            malformed,
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES}",
            400,
        )
    if timestamp - now > MAX_SKEW:
        raise SigV4Error("AccessDenied", "Request is not valid yet")
    # A lifetime of zero or less (botocore happily signs ExpiresIn=-10) is a URL that has
    # already expired, which is how S3 answers it too.
    if expires <= 0 or now > timestamp + timedelta(seconds=expires):
        raise SigV4Error("AccessDenied", "Request has expired")

    # The body of a presigned request is unknown when the URL is made, so its hash is
    # UNSIGNED-PAYLOAD, unless the signer chose to sign an x-amz-content-sha256 header.
    declared = UNSIGNED_PAYLOAD
    if _CONTENT_SHA256 in signed_headers and _CONTENT_SHA256 in request.headers:
        declared = request.headers[_CONTENT_SHA256]
    return _signed(
        request,
        [(k, v) for k, v in request.query if k != "X-Amz-Signature"],
        signed_headers,
        declared,
        secret_for,
        Verified(access_key, "", region, scope_date, amz_date, signature, "", presigned=True),
    )


def _signed(
    request: IncomingRequest,
    query: list[tuple[str, str]],
    signed_headers: list[str],
    declared: str,
    secret_for: Callable[[str], str | None],
    claimed: Verified,
) -> Verified:
    """The part both forms share once their fields are parsed: the payload mode, the signed
    headers, then the signature recomputed with the access key's secret. ``claimed`` is what
    the request says (its secret and payload are filled in here)."""
    payload = _payload_mode(declared)
    _check_signed_headers(request.headers, signed_headers)
    secret = _secret(secret_for, claimed.access_key)
    expected = _expected_signatures(
        request,
        query,
        signed_headers,
        declared,
        secret=secret,
        amz_date=claimed.amz_date,
        region=claimed.region,
    )
    _match(claimed.signature, expected)
    return replace(claimed, secret=secret, payload=payload)


# -- parsing -----------------------------------------------------------------------------------


def _parse_authorization(value: str) -> dict[str, str]:
    malformed = "AuthorizationHeaderMalformed"
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SigV4Error(
            malformed,
            f"The authorization mechanism you have provided is not supported. "
            f"Please use {ALGORITHM}.",
            400,
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, eq, component = part.strip().partition("=")
        if not eq or name not in ("Credential", "SignedHeaders", "Signature"):
            raise SigV4Error(malformed, f"the authorization header is malformed: {part!r}", 400)
        if name in fields:
            raise SigV4Error(malformed, f"the authorization header repeats {name}", 400)
        fields[name] = component.strip()
    for name in ("Credential", "SignedHeaders", "Signature"):
        if name not in fields:
            raise SigV4Error(malformed, f"the authorization header has no {name}", 400)
    return fields


def _parse_credential(credential: str, code: str) -> tuple[str, str, str]:
    # From the right: the access key is an e-mail address, which may hold anything but the
    # four scope fields cannot.
    parts = credential.rsplit("/", 4)
    if len(parts) != 5 or not parts[0]:
        raise SigV4Error(
            code,
            f"the Credential {credential!r} is not <access key>/<date>/<region>/s3/aws4_request",
            400,
        )
    access_key, date, region, service, terminator = parts
    if not _SCOPE_DATE.fullmatch(date):
        raise SigV4Error(code, f"invalid credential date {date!r}", 400)
    if not region:
        raise SigV4Error(code, "the credential has no region", 400)
    if service != SERVICE:
        raise SigV4Error(code, f"the credential is for service {service!r}, not 's3'", 400)
    if terminator != TERMINATOR:
        raise SigV4Error(code, f"the credential must end with {TERMINATOR}", 400)
    return access_key, date, region


def _parse_signed_headers(value: str, code: str) -> list[str]:
    names = value.split(";")
    for name in names:
        if not name or name != name.strip().lower():
            raise SigV4Error(code, f"invalid SignedHeaders {value!r}", 400)
    if len(set(names)) != len(names):
        raise SigV4Error(code, f"SignedHeaders {value!r} repeats a header", 400)
    return names


def _parse_signature(value: str, code: str) -> str:
    if not _HEX64.fullmatch(value):
        raise SigV4Error(code, "the signature must be 64 hexadecimal characters", 400)
    return value.lower()


def _parse_amz_date(value: str, code: str) -> datetime:
    if _AMZ_DATE.fullmatch(value):
        try:
            return datetime.strptime(value, _AMZ_DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            pass
    raise SigV4Error(code, f"X-Amz-Date {value!r} is not in the yyyyMMddTHHmmssZ format", 400)


def _request_time(headers: Mapping[str, str]) -> tuple[str, datetime]:
    """The request's timestamp as it enters the string to sign, and as a datetime."""
    invalid = SigV4Error(
        "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
    )
    amz_date = headers.get("x-amz-date")
    if amz_date is not None:
        try:
            timestamp = _parse_amz_date(amz_date, "AccessDenied")
        except SigV4Error:
            raise invalid from None
        return amz_date, timestamp
    http_date = headers.get("date")
    if http_date is None:
        raise invalid
    try:
        parsed = parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        raise invalid from None
    # "-0000" (what botocore's formatdate writes) parses as naive: it means UTC.
    timestamp = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return timestamp.strftime(_AMZ_DATE_FORMAT), timestamp


def _payload_mode(declared: str) -> str:
    if declared == UNSIGNED_PAYLOAD or declared in STREAMING_MODES:
        return declared
    if _HEX64.fullmatch(declared):
        # The signature covers the value as sent; callers compare it with a lower-case digest.
        return declared.lower()
    raise SigV4Error(
        "InvalidArgument",
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER "
        "or a valid sha256 value.",
        400,
    )


def _check_signed_headers(headers: Mapping[str, str], signed: list[str]) -> None:
    signed_set = set(signed)
    # An x-amz-* header changes what S3 does (copy source, metadata, ACL, ...): one the client
    # did not sign could have been added by anyone, e.g. the holder of a presigned PUT URL.
    # x-amz-content-sha256 is the exception S3 makes: the header form signs its value as the
    # payload hash anyway, and a presigned request ignores it unless signed.
    unsigned = sorted(
        name
        for name in headers
        if name.startswith("x-amz-") and name not in signed_set and name != _CONTENT_SHA256
    )
    if "host" not in signed_set:
        unsigned.insert(0, "host")
    if unsigned:
        raise SigV4Error(
            "AccessDenied",
            "There were headers present in the request which were not signed: "
            + ", ".join(unsigned),
        )
    for name in signed:
        if name not in headers:
            raise SigV4Error(
                "SignatureDoesNotMatch", f"the signed header {name!r} is not in the request"
            )


def _secret(secret_for: Callable[[str], str | None], access_key: str) -> str:
    secret = secret_for(access_key)
    if secret is None:
        raise SigV4Error(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        )
    return secret


def _match(signature: str, expected: list[str]) -> None:
    # Every candidate is compared, so the time taken does not tell which one came close.
    matched = False
    for candidate in expected:
        matched |= hmac.compare_digest(candidate.encode("ascii"), signature.encode("ascii"))
    if not matched:
        raise SigV4Error(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )


# -- canonical request -------------------------------------------------------------------------


def _expected_signatures(
    request: IncomingRequest,
    query: list[tuple[str, str]],
    signed_headers: list[str],
    payload_hash: str,
    *,
    secret: str,
    amz_date: str,
    region: str,
) -> list[str]:
    key = _signing_key(secret, amz_date[:8], region)
    scope = f"{amz_date[:8]}/{region}/{SERVICE}/{TERMINATOR}"
    rest = "\n".join(
        [
            _canonical_query(query),
            _canonical_headers(request.headers, signed_headers),
            ";".join(signed_headers),
            payload_hash,
        ]
    )
    signatures = []
    for uri in _canonical_uris(request.raw_path):
        canonical = f"{request.method.upper()}\n{uri}\n{rest}"
        string_to_sign = "\n".join(
            [ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()]
        )
        signatures.append(_hmac_hex(key, string_to_sign))
    return signatures


def _canonical_uris(raw_path: str) -> list[str]:
    """The canonical URIs a signer may have used for this path; the first is S3's own.

    S3 signs each path segment URI-encoded once (no double encoding, no ``.``/``..``/``//``
    normalisation). botocore signs the path exactly as it sends it, which it already encoded
    that way (``quote(key, safe="/~")``), so both agree for every key botocore sends. A client
    that sends characters S3 would have encoded (``!``, ``+``, lower-case ``%2f``, ...) may have
    signed them as sent: the raw path is a second candidate. Both decode (with ``unquote``) to
    the same object key, so accepting either never lets a signature name another object.
    """
    if not raw_path:
        return ["/"]
    try:
        wire = raw_path.encode("latin-1")
    except UnicodeEncodeError:
        wire = raw_path.encode("utf-8")
    canonical = "/".join(quote(unquote_to_bytes(segment), safe="") for segment in wire.split(b"/"))
    return [canonical] if canonical == raw_path else [canonical, raw_path]


def _canonical_query(query: list[tuple[str, str]]) -> str:
    """Names and values URI-encoded (unreserved ``A-Za-z0-9-_.~`` kept), sorted by name then
    value, ``name=`` for a parameter without a value."""
    pairs = sorted((_uri_encode(name), _uri_encode(value)) for name, value in query)
    return "&".join(f"{name}={value}" for name, value in pairs)


def _canonical_headers(headers: Mapping[str, str], signed_headers: list[str]) -> str:
    # str.split() collapses runs of any whitespace, not only spaces: exactly what botocore's
    # SigV4Auth._header_value does, so the odd tab in a value still verifies.
    return "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed_headers)


def _signing_key(secret: str, date: str, region: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode("utf-8"), hashlib.sha256).digest()
    for part in (region, SERVICE, TERMINATOR):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def _uri_encode(value: str) -> str:
    return quote(value, safe="")  # quote keeps A-Za-z0-9 and -_.~ whatever ``safe`` says


def _hmac_hex(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


# -- aws-chunked bodies ------------------------------------------------------------------------

_HEADER, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkedPayload:
    """Decodes an aws-chunked body (Content-Encoding: aws-chunked, x-amz-content-sha256
    STREAMING-*), verifying each chunk signature for the signed modes, and collecting trailer
    headers (e.g. x-amz-checksum-crc32) for the *-TRAILER modes.

    The framing, per chunk: ``<hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n``; then a
    zero-size chunk, the trailer lines (``name:value\\r\\n``, the signed-trailer mode ending with
    ``x-amz-trailer-signature:<sig>\\r\\n``) and an empty line. botocore's ``AwsChunkedWrapper``
    (STREAMING-UNSIGNED-PAYLOAD-TRAILER) writes ``<hex>\\r\\n<data>\\r\\n`` chunks and ends with
    ``0\\r\\nx-amz-checksum-crc32:<base64>\\r\\n\\r\\n``.

    :meth:`feed` hands data back as soon as it is framed, before the signature of its chunk
    (which follows the data) could be checked; it raises as soon as a chunk turns out forged.
    Nothing fed may be committed before :meth:`finish` returned.
    """

    trailers: dict[str, str]

    def __init__(self, verified: Verified, decoded_length: int | None) -> None:
        if verified.payload not in STREAMING_MODES:
            raise ValueError(f"{verified.payload!r} is not an aws-chunked payload mode")
        self.trailers = {}
        self._signed = verified.payload in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER)
        self._with_trailer = verified.payload.endswith("-TRAILER")
        self._key = _signing_key(verified.secret, verified.date, verified.region)
        self._amz_date = verified.amz_date
        self._scope = f"{verified.date}/{verified.region}/{SERVICE}/{TERMINATOR}"
        self._previous = verified.signature
        self._expected_length = decoded_length
        self._decoded = 0
        self._buffer = bytearray()
        self._state = _HEADER
        self._chunk_signature = ""
        self._chunk_digest = hashlib.sha256()
        self._remaining = 0
        self._trailer_bytes = 0
        self._trailer_signature: str | None = None
        self._seen_trailer_line = False
        self._blank = False
        self._error: SigV4Error | None = None

    def feed(self, data: bytes) -> bytes:
        if self._error is not None:
            raise self._error
        try:
            return self._feed(data)
        except SigV4Error as exc:
            self._error = exc
            raise

    def finish(self) -> None:
        if self._error is not None:
            raise self._error
        try:
            self._finish()
        except SigV4Error as exc:
            self._error = exc
            raise

    # -- the state machine ---------------------------------------------------------------------

    def _feed(self, data: bytes) -> bytes:
        self._buffer += data
        out = bytearray()
        while True:
            if self._state == _HEADER:
                line = self._line(_MAX_CHUNK_LINE)
                if line is None:
                    break
                self._start_chunk(line)
            elif self._state == _DATA:
                if not self._buffer:
                    break
                take = min(self._remaining, len(self._buffer))
                piece = bytes(self._buffer[:take])
                del self._buffer[:take]
                self._chunk_digest.update(piece)
                self._remaining -= take
                self._decoded += take
                if self._expected_length is not None and self._decoded > self._expected_length:
                    raise SigV4Error(
                        "InvalidArgument",
                        "the aws-chunked body is longer than x-amz-decoded-content-length",
                        400,
                    )
                out += piece
                if self._remaining == 0:
                    self._state = _DATA_END
            elif self._state == _DATA_END:
                if len(self._buffer) < 2:
                    break
                if self._buffer[:2] != b"\r\n":
                    raise _malformed("a chunk's data is not followed by CRLF")
                del self._buffer[:2]
                self._verify_chunk()
                self._state = _HEADER
            elif self._state == _TRAILER:
                line = self._line(_MAX_TRAILER_BYTES)
                if line is None:
                    break
                if line:
                    self._trailer_line(line)
                elif self._with_trailer and not self._seen_trailer_line and not self._blank:
                    # AWS's own example of a signed trailer puts an empty line between the
                    # zero-size chunk and the trailer; the SDKs follow RFC 7230 (trailer, then
                    # the empty line). Both are taken: the trailer then ends at end of stream.
                    self._blank = True
                else:
                    self._end_trailer()
            else:
                if self._buffer:
                    raise _malformed("data after the end of the aws-chunked body")
                break
        return bytes(out)

    def _finish(self) -> None:
        if self._state == _TRAILER and not self._buffer:
            # Some encoders stop after the last trailer line (or the zero-size chunk) without
            # the closing empty line; nothing is lost, so accept it.
            self._end_trailer()
        if self._state != _DONE:
            raise SigV4Error(
                "IncompleteBody", "The request body terminated unexpectedly (aws-chunked)", 400
            )
        if self._expected_length is not None and self._decoded != self._expected_length:
            raise SigV4Error(
                "IncompleteBody",
                f"You did not provide the number of bytes specified by "
                f"x-amz-decoded-content-length ({self._decoded} of {self._expected_length})",
                400,
            )

    def _line(self, limit: int) -> str | None:
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > limit:
                raise _malformed("an aws-chunked header line is too long")
            return None
        raw = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if len(raw) > limit:
            raise _malformed("an aws-chunked header line is too long")
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise _malformed("an aws-chunked header line is not ASCII") from None

    def _start_chunk(self, line: str) -> None:
        size_text, *extensions = line.split(";")
        size_text = size_text.strip()
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise _malformed(f"invalid aws-chunked chunk size {size_text[:32]!r}")
        signature = ""
        for extension in extensions:
            name, _, value = extension.strip().partition("=")
            if name == "chunk-signature":
                signature = value.strip()
        if self._signed and not _HEX64.fullmatch(signature):
            raise _malformed("a chunk has no valid chunk-signature")
        self._chunk_signature = signature.lower()
        self._chunk_digest = hashlib.sha256()
        self._remaining = int(size_text, 16)
        if self._remaining:
            self._state = _DATA
        else:
            # The final, empty chunk is signed like the others; what follows it is the trailer.
            self._verify_chunk()
            self._state = _TRAILER

    def _verify_chunk(self) -> None:
        if not self._signed:
            return
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                self._amz_date,
                self._scope,
                self._previous,
                EMPTY_SHA256,
                self._chunk_digest.hexdigest(),
            ]
        )
        self._previous = self._check(string_to_sign, self._chunk_signature, "chunk")

    def _trailer_line(self, line: str) -> None:
        self._seen_trailer_line = True
        self._trailer_bytes += len(line) + 2
        if self._trailer_bytes > _MAX_TRAILER_BYTES:
            raise _malformed("the aws-chunked trailer is too long")
        name, colon, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if not colon or not name:
            raise _malformed(f"invalid aws-chunked trailer line {line[:64]!r}")
        if name == "x-amz-trailer-signature":
            if self._trailer_signature is not None:
                raise _malformed("the trailer has two signatures")
            self._trailer_signature = value
            return
        if not self._with_trailer:
            raise _malformed("trailing headers in a payload mode without a trailer")
        if name in self.trailers:
            raise _malformed(f"the trailer repeats {name}")
        self.trailers[name] = value

    def _end_trailer(self) -> None:
        self._state = _DONE
        if self._signed and self._with_trailer:
            if self._trailer_signature is None or not _HEX64.fullmatch(self._trailer_signature):
                raise SigV4Error(
                    "SignatureDoesNotMatch", "the trailer has no valid x-amz-trailer-signature"
                )
            canonical = "".join(
                f"{name}:{value}\n" for name, value in sorted(self.trailers.items())
            )
            string_to_sign = "\n".join(
                [
                    "AWS4-HMAC-SHA256-TRAILER",
                    self._amz_date,
                    self._scope,
                    self._previous,
                    hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
                ]
            )
            self._previous = self._check(string_to_sign, self._trailer_signature.lower(), "trailer")

    def _check(self, string_to_sign: str, signature: str, what: str) -> str:
        expected = _hmac_hex(self._key, string_to_sign)
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
            raise SigV4Error(
                "SignatureDoesNotMatch",
                f"The {what} signature we calculated does not match the one you provided.",
            )
        return expected


def _malformed(message: str) -> SigV4Error:
    return SigV4Error("InvalidArgument", message, 400)
