"""S3's additional checksums (x-amz-checksum-*): a client sends one in a header, or in an
aws-chunked trailer, and S3 refuses a body that does not match it. Computed as the body streams
through the gateway, checked before the object is committed.
"""

import base64
import hashlib
import zlib
from collections.abc import Callable, Mapping
from typing import Protocol

from calor.domain.errors import BadRequest


class _Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes, /) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


# crc32c and crc64nvme need native code (awscrt) to be computed at speed; bodies that carry them
# are accepted on their SigV4 signature alone
ALGORITHMS: dict[str, Callable[[], _Hash]] = {
    "crc32": _Crc32,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
}

PREFIX = "x-amz-checksum-"


class ChecksumMismatch(BadRequest):
    s3_code = "BadDigest"


class BodyChecksum:
    """The checksum a request declares for its body, if any calor can compute."""

    def __init__(self, name: str, expected: str | None) -> None:
        self.name = name  # e.g. "crc32"
        self.expected = expected  # None: it comes in the trailer
        self._hash = ALGORITHMS[name]()

    @classmethod
    def of(cls, headers: Mapping[str, str]) -> "BodyChecksum | None":
        for key, value in headers.items():
            key = key.lower()
            if key.startswith(PREFIX) and key[len(PREFIX) :] in ALGORITHMS:
                return cls(key[len(PREFIX) :], value.strip())
        for trailer in headers.get("x-amz-trailer", "").split(","):
            trailer = trailer.strip().lower()
            if trailer.startswith(PREFIX) and trailer[len(PREFIX) :] in ALGORITHMS:
                return cls(trailer[len(PREFIX) :], None)
        return None

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def verify(self, trailers: Mapping[str, str]) -> None:
        expected = self.expected
        if expected is None:
            expected = trailers.get(PREFIX + self.name)
            if expected is None:
                raise BadRequest(f"the declared trailer {PREFIX}{self.name} is missing")
        got = base64.b64encode(self._hash.digest()).decode()
        if got != expected:
            raise ChecksumMismatch(
                f"the {self.name.upper()} you specified did not match the calculated checksum"
            )
