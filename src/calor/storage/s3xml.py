"""The S3 wire format: XML documents of the gateway's answers, and the few it reads."""

import base64
import binascii
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import quote
from xml.etree import ElementTree

from calor.domain.storage import Bucket, Listing, Part, StoredObject, Upload

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


class MalformedXML(ValueError):
    pass


def _esc(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _el(name: str, value: object) -> str:
    return f"<{name}>{_esc(str(value))}</{name}>"


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def http_date(dt: datetime) -> str:
    return format_datetime(dt.replace(tzinfo=UTC), usegmt=True)


def quoted_etag(etag: str) -> str:
    return f'"{etag}"'


def document(root: str, body: str) -> bytes:
    return f'{HEAD}<{root} xmlns="{NS}">{body}</{root}>'.encode()


def error(code: str, message: str, resource: str, request_id: str) -> bytes:
    return (
        f"{HEAD}<Error>{_el('Code', code)}{_el('Message', message)}"
        f"{_el('Resource', resource)}{_el('RequestId', request_id)}</Error>"
    ).encode()


def _owner(email: str) -> str:
    return f"<Owner>{_el('ID', email)}{_el('DisplayName', email)}</Owner>"


def list_buckets(items: Iterable[Bucket], email: str) -> bytes:
    entries = "".join(
        f"<Bucket>{_el('Name', b.name)}{_el('CreationDate', iso(b.created_at))}</Bucket>"
        for b in items
    )
    return document("ListAllMyBucketsResult", f"{_owner(email)}<Buckets>{entries}</Buckets>")


def _enc(text: str, url: bool) -> str:
    return quote(text, safe="/") if url else text


def _contents(obj: StoredObject, url: bool, email: str | None) -> str:
    owner = _owner(email) if email else ""
    return (
        f"<Contents>{_el('Key', _enc(obj.key, url))}{_el('LastModified', iso(obj.last_modified))}"
        f"{_el('ETag', quoted_etag(obj.etag))}{_el('Size', obj.size)}"
        f"{_el('StorageClass', 'STANDARD')}{owner}</Contents>"
    )


def _prefixes(listing: Listing, url: bool) -> str:
    return "".join(
        f"<CommonPrefixes>{_el('Prefix', _enc(p, url))}</CommonPrefixes>"
        for p in listing.common_prefixes
    )


def list_objects_v1(
    bucket: str,
    listing: Listing,
    prefix: str,
    delimiter: str,
    marker: str,
    max_keys: int,
    url: bool,
    email: str,
) -> bytes:
    body = (
        _el("Name", bucket)
        + _el("Prefix", _enc(prefix, url))
        + _el("Marker", _enc(marker, url))
        + _el("MaxKeys", max_keys)
        + (_el("Delimiter", _enc(delimiter, url)) if delimiter else "")
        + _el("IsTruncated", str(listing.truncated).lower())
        + (
            _el("NextMarker", _enc(listing.next_marker, url))
            if listing.truncated and listing.next_marker is not None
            else ""
        )
        + (_el("EncodingType", "url") if url else "")
        + "".join(_contents(o, url, email) for o in listing.objects)
        + _prefixes(listing, url)
    )
    return document("ListBucketResult", body)


def list_objects_v2(
    bucket: str,
    listing: Listing,
    prefix: str,
    delimiter: str,
    start_after: str,
    token: str,
    max_keys: int,
    url: bool,
    owner: str | None,
) -> bytes:
    next_token = (
        encode_token(listing.next_marker)
        if listing.truncated and listing.next_marker is not None
        else None
    )
    body = (
        _el("Name", bucket)
        + _el("Prefix", _enc(prefix, url))
        + _el("MaxKeys", max_keys)
        + _el("KeyCount", len(listing.objects) + len(listing.common_prefixes))
        + (_el("Delimiter", _enc(delimiter, url)) if delimiter else "")
        + _el("IsTruncated", str(listing.truncated).lower())
        + (_el("ContinuationToken", token) if token else "")
        + (_el("NextContinuationToken", next_token) if next_token else "")
        + (_el("StartAfter", _enc(start_after, url)) if start_after else "")
        + (_el("EncodingType", "url") if url else "")
        + "".join(_contents(o, url, owner) for o in listing.objects)
        + _prefixes(listing, url)
    )
    return document("ListBucketResult", body)


def list_versions(
    bucket: str,
    listing: Listing,
    prefix: str,
    delimiter: str,
    key_marker: str,
    max_keys: int,
    url: bool,
    email: str,
) -> bytes:
    """Versioning is never enabled: every object is its only ("null") version."""
    versions = "".join(
        f"<Version>{_el('Key', _enc(o.key, url))}{_el('VersionId', 'null')}"
        f"{_el('IsLatest', 'true')}{_el('LastModified', iso(o.last_modified))}"
        f"{_el('ETag', quoted_etag(o.etag))}{_el('Size', o.size)}"
        f"{_el('StorageClass', 'STANDARD')}{_owner(email)}</Version>"
        for o in listing.objects
    )
    nxt = ""
    if listing.truncated and listing.next_marker is not None:
        nxt = _el("NextKeyMarker", _enc(listing.next_marker, url)) + _el(
            "NextVersionIdMarker", "null"
        )
    body = (
        _el("Name", bucket)
        + _el("Prefix", _enc(prefix, url))
        + _el("KeyMarker", _enc(key_marker, url))
        + _el("VersionIdMarker", "")
        + _el("MaxKeys", max_keys)
        + (_el("Delimiter", _enc(delimiter, url)) if delimiter else "")
        + _el("IsTruncated", str(listing.truncated).lower())
        + nxt
        + (_el("EncodingType", "url") if url else "")
        + versions
        + _prefixes(listing, url)
    )
    return document("ListVersionsResult", body)


def versioning() -> bytes:
    return document("VersioningConfiguration", "")


def location() -> bytes:
    return document("LocationConstraint", "")


def copy_result(obj: StoredObject, root: str = "CopyObjectResult") -> bytes:
    return document(
        root, _el("LastModified", iso(obj.last_modified)) + _el("ETag", quoted_etag(obj.etag))
    )


def initiate(bucket: str, key: str, upload_id: str) -> bytes:
    return document(
        "InitiateMultipartUploadResult",
        _el("Bucket", bucket) + _el("Key", key) + _el("UploadId", upload_id),
    )


def complete(location_url: str, bucket: str, key: str, obj: StoredObject) -> bytes:
    return document(
        "CompleteMultipartUploadResult",
        _el("Location", location_url)
        + _el("Bucket", bucket)
        + _el("Key", key)
        + _el("ETag", quoted_etag(obj.etag)),
    )


def list_parts(
    bucket: str, key: str, upload_id: str, parts: list[Part], marker: int, max_parts: int
) -> bytes:
    shown = [p for p in parts if p.number > marker][:max_parts]
    truncated = len([p for p in parts if p.number > marker]) > max_parts
    body = (
        _el("Bucket", bucket)
        + _el("Key", key)
        + _el("UploadId", upload_id)
        + _el("PartNumberMarker", marker)
        + (_el("NextPartNumberMarker", shown[-1].number) if shown else "")
        + _el("MaxParts", max_parts)
        + _el("IsTruncated", str(truncated).lower())
        + _el("StorageClass", "STANDARD")
        + "".join(
            f"<Part>{_el('PartNumber', p.number)}{_el('LastModified', iso(p.last_modified))}"
            f"{_el('ETag', quoted_etag(p.etag))}{_el('Size', p.size)}</Part>"
            for p in shown
        )
    )
    return document("ListPartsResult", body)


def list_uploads(bucket: str, prefix: str, items: list[Upload]) -> bytes:
    body = (
        _el("Bucket", bucket)
        + _el("KeyMarker", "")
        + _el("UploadIdMarker", "")
        + _el("Prefix", prefix)
        + _el("MaxUploads", 1000)
        + _el("IsTruncated", "false")
        + "".join(
            f"<Upload>{_el('Key', u.key)}{_el('UploadId', u.id)}"
            f"{_el('Initiated', iso(u.created_at))}{_el('StorageClass', 'STANDARD')}</Upload>"
            for u in items
        )
    )
    return document("ListMultipartUploadsResult", body)


def delete_result(deleted: list[str], errors: list[tuple[str, str, str]], quiet: bool) -> bytes:
    body = "" if quiet else "".join(f"<Deleted>{_el('Key', k)}</Deleted>" for k in deleted)
    body += "".join(
        f"<Error>{_el('Key', k)}{_el('Code', c)}{_el('Message', m)}</Error>" for k, c, m in errors
    )
    return document("DeleteResult", body)


# -- reading ---------------------------------------------------------------------------


def _parse(data: bytes) -> ElementTree.Element:
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise MalformedXML("document type declarations are not accepted")
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise MalformedXML(str(exc)) from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(el: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [c for c in el if _local(c.tag) == name]


def _text(el: ElementTree.Element, name: str) -> str | None:
    found = _children(el, name)
    return (found[0].text or "") if found else None


def parse_delete(data: bytes) -> tuple[list[str], bool]:
    """DeleteObjects: the keys, and whether the answer should be quiet."""
    root = _parse(data)
    keys = []
    for obj in _children(root, "Object"):
        key = _text(obj, "Key")
        if key is None:
            raise MalformedXML("an Object without a Key")
        keys.append(key)
    quiet = (_text(root, "Quiet") or "").strip().lower() == "true"
    return keys, quiet


def parse_complete(data: bytes) -> list[tuple[int, str]]:
    """CompleteMultipartUpload: (PartNumber, ETag) in the order given."""
    root = _parse(data)
    parts = []
    for part in _children(root, "Part"):
        number, etag = _text(part, "PartNumber"), _text(part, "ETag")
        if number is None or etag is None:
            raise MalformedXML("a Part needs a PartNumber and an ETag")
        try:
            parts.append((int(number), etag))
        except ValueError:
            raise MalformedXML(f"PartNumber {number!r} is not a number") from None
    return parts


def md5_header_hex(value: str | None) -> str | None:
    """Content-MD5 (base64 of the digest) as hex; a malformed one is an error."""
    if value is None:
        return None
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedXML("Content-MD5 is not base64") from None
    if len(digest) != 16:
        raise MalformedXML("Content-MD5 is not an MD5 digest")
    return digest.hex()


def encode_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise MalformedXML("the continuation token is not valid") from None
