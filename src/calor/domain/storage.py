"""Object storage rules: what a bucket name and an object key may be, the errors of the S3
gateway (each with its S3 code), and the ETag of a multipart object."""

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from calor.domain.errors import BadRequest, CalorError, Conflict, Forbidden, NotFound


class NoSuchBucket(NotFound):
    s3_code = "NoSuchBucket"


class NoSuchKey(NotFound):
    s3_code = "NoSuchKey"


class NoSuchUpload(NotFound):
    s3_code = "NoSuchUpload"


class BucketNotEmpty(Conflict):
    s3_code = "BucketNotEmpty"


class InvalidBucketName(BadRequest):
    s3_code = "InvalidBucketName"


class InvalidKey(BadRequest):
    s3_code = "InvalidArgument"


class KeyTooLong(BadRequest):
    s3_code = "KeyTooLongError"


class InvalidPart(BadRequest):
    s3_code = "InvalidPart"


class InvalidPartOrder(BadRequest):
    s3_code = "InvalidPartOrder"


class EntityTooSmall(BadRequest):
    s3_code = "EntityTooSmall"


class InvalidRange(CalorError):
    s3_code = "InvalidRange"


class QuotaExceeded(Forbidden):
    s3_code = "QuotaExceeded"


MAX_KEY_BYTES = 1024
MIN_PART_BYTES = 5 * 1024 * 1024  # every part of a multipart upload but the last (as S3)
MAX_PARTS = 10_000

# S3's rules, with upper case and underscores allowed as older S3 regions and Ceph allow them
# (users of the hosted service have such names)
_BUCKET = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,61}[a-zA-Z0-9]$")
_IP = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def check_bucket_name(name: str) -> str:
    if not _BUCKET.match(name) or ".." in name or _IP.match(name):
        raise InvalidBucketName(
            f"bucket name {name!r} is invalid: 3 to 63 letters, digits, '.', '-' or '_', "
            "starting and ending with a letter or digit"
        )
    return name


def check_key(key: str) -> str:
    """Any UTF-8 key S3 accepts, except what could escape a directory when the object is
    copied into an instance's working directory (``..`` segments, NUL)."""
    if not key:
        raise InvalidKey("the object key is empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise KeyTooLong(f"the object key is longer than {MAX_KEY_BYTES} bytes")
    if "\x00" in key:
        raise InvalidKey("the object key contains a NUL character")
    if ".." in key.replace("\\", "/").split("/"):
        raise InvalidKey(f"the object key {key!r} has a '..' segment")
    return key


def multipart_etag(part_md5s: list[str]) -> str:
    """S3's ETag of a multipart object: md5 of the parts' binary md5s, dash, part count."""
    joined = b"".join(bytes.fromhex(m) for m in part_md5s)
    return f"{hashlib.md5(joined).hexdigest()}-{len(part_md5s)}"


@dataclass(frozen=True)
class Bucket:
    id: int
    name: str
    created_at: datetime
    object_count: int
    bytes_used: int


@dataclass(frozen=True)
class StoredObject:
    key: str
    blob_id: str
    size: int
    etag: str  # without quotes
    content_type: str
    last_modified: datetime
    user_metadata: dict[str, str]


@dataclass(frozen=True)
class Listing:
    objects: list[StoredObject]
    common_prefixes: list[str]
    truncated: bool
    # the last key or prefix returned: the next page's marker / continuation point
    next_marker: str | None


@dataclass(frozen=True)
class Part:
    number: int
    blob_id: str
    size: int
    etag: str
    last_modified: datetime


@dataclass(frozen=True)
class Upload:
    id: str
    bucket_id: int
    key: str
    content_type: str
    user_metadata: dict[str, str]
    created_at: datetime


@dataclass(frozen=True)
class StorageUsage:
    bucket_count: int
    bytes_used: int
