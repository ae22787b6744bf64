"""Secrets (contract §2.5): what a key may be, and which secrets an access grant names.

A key is a path of segments (``app/db/password``). Instances read each granted secret as a file
whose path under the secrets directory is its key, so a key must be a safe relative path: no
empty, ``.`` or ``..`` segment, no control character, segments of at most 255 bytes. Leading and
trailing ``/`` are stripped, as the SDK strips them before it sends a key.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from calor.domain.errors import BadRequest

MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 255  # a file name on Linux
MAX_GRANTS = 1000  # entries of bySecret plus byPrefix


def _bad_char(text: str) -> str | None:
    for c in text:
        if ord(c) < 0x20 or ord(c) == 0x7F:
            return repr(c)
    return None


def check_key(raw: str, what: str = "secret key") -> str:
    """The key as stored (leading and trailing ``/`` stripped), or a 400 saying what to fix."""
    key = raw.strip("/")
    if not key:
        raise BadRequest(f"the {what} is empty; name it like app/db/password")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise BadRequest(f"the {what} is longer than {MAX_KEY_BYTES} bytes")
    bad = _bad_char(key)
    if bad:
        raise BadRequest(f"the {what} {raw!r} contains the control character {bad}")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            shown = "an empty segment (//)" if not segment else f"a {segment!r} segment"
            raise BadRequest(f"the {what} {raw!r} has {shown}; use plain names between the /")
        if len(segment.encode()) > MAX_SEGMENT_BYTES:
            raise BadRequest(f"each part of the {what} between / is at most 255 bytes")
    return key


def check_folder(raw: str) -> str:
    """A listing's prefix (a folder, "" for the top): the same rules as a key, empty allowed."""
    return "" if not raw.strip("/") else check_key(raw, "secrets prefix")


def check_prefix(raw: str) -> str:
    """A byPrefix grant: a plain string prefix of keys (``app/`` grants ``app/x`` but not
    ``apple``; "" grants every secret). A leading ``/`` is dropped, as keys have none; a prefix
    no key can start with (an empty segment, a control character) is refused."""
    prefix = raw.lstrip("/")
    if len(prefix.encode()) > MAX_KEY_BYTES:
        raise BadRequest(f"the secrets prefix is longer than {MAX_KEY_BYTES} bytes")
    bad = _bad_char(prefix)
    if bad:
        raise BadRequest(f"the secrets prefix {raw!r} contains the control character {bad}")
    if "//" in prefix:
        raise BadRequest(f"the secrets prefix {raw!r} has an empty segment (//): no key has one")
    return prefix


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix`` (None: no
    bound). Code point order is the byte order of UTF-8, which is how keys are compared."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:  # surrogates have no UTF-8 form
                nxt = 0xE000
            return "".join(chars) + chr(nxt)
    return None


@dataclass(frozen=True)
class SecretsGrant:
    """``secretsAccessRights``: secrets named exactly, and key prefixes."""

    keys: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.keys or self.prefixes)

    def covers(self, key: str) -> bool:
        return key in self.keys or any(key.startswith(p) for p in self.prefixes)

    def union(self, other: "SecretsGrant") -> "SecretsGrant":
        return SecretsGrant(
            tuple(dict.fromkeys((*self.keys, *other.keys))),
            tuple(dict.fromkeys((*self.prefixes, *other.prefixes))),
        )

    def to_wire(self) -> dict[str, list[dict[str, str]]]:
        return {
            "bySecret": [{"key": k} for k in self.keys],
            "byPrefix": [{"prefix": p} for p in self.prefixes],
        }


def _entries(raw: dict[str, Any], name: str, field: str) -> Iterator[str]:
    items = raw.get(name.lower())
    if items is None:
        return
    if not isinstance(items, list):
        raise BadRequest(f"secretsAccessRights.{name} must be an array")
    for i, item in enumerate(items):
        value = (
            {str(k).lower(): v for k, v in item.items()}.get(field)
            if isinstance(item, dict)
            else None
        )
        if not isinstance(value, str):
            raise BadRequest(
                f'secretsAccessRights.{name}[{i}] must be an object such as {{"{field}": "..."}}'
            )
        yield value


def parse_grant(raw: Any) -> SecretsGrant:
    """A submitted ``secretsAccessRights`` (keys matched case-insensitively, null = none)."""
    if raw is None:
        return SecretsGrant()
    if not isinstance(raw, dict):
        raise BadRequest('secretsAccessRights must be an object: {"bySecret": [...], ...}')
    lowered = {str(k).lower(): v for k, v in raw.items()}
    keys = [
        check_key(k, "secret key in secretsAccessRights.bySecret")
        for k in _entries(lowered, "bySecret", "key")
    ]
    prefixes = [check_prefix(p) for p in _entries(lowered, "byPrefix", "prefix")]
    if len(keys) + len(prefixes) > MAX_GRANTS:
        raise BadRequest(f"secretsAccessRights may name at most {MAX_GRANTS} secrets and prefixes")
    return SecretsGrant(tuple(dict.fromkeys(keys)), tuple(dict.fromkeys(prefixes)))


def grant_of(documents: Iterable[dict[str, Any] | None]) -> SecretsGrant:
    """What the stored documents of a task (and of its pool) grant together; documents were
    validated at submit, so nothing here is refused."""
    grant = SecretsGrant()
    for document in documents:
        if document:
            try:
                grant = grant.union(parse_grant(document.get("secretsAccessRights")))
            except BadRequest:
                continue  # stored before grants were checked: it grants nothing
    return grant


# Constants named QARNOT_SECRET__<NAME> are write-only, as on the hosted service: instances get
# their value, task and pool JSON show MASK instead.
SECRET_CONSTANT_PREFIX = "QARNOT_SECRET__"
MASK = "[SECRET]"


def is_secret_constant(name: str) -> bool:
    return name.upper().startswith(SECRET_CONSTANT_PREFIX)


def mask_constants(constants: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [
        {**c, "value": MASK} if is_secret_constant(str(c.get("key", ""))) else c
        for c in constants or []
    ]


def keep_masked(
    new: list[dict[str, Any]], old: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """An update re-sends what it read, MASK included: such a constant keeps its stored value."""
    stored = {str(c.get("key")): c.get("value") for c in old or []}
    return [
        {**c, "value": stored[str(c["key"])]}
        if c.get("value") == MASK and is_secret_constant(str(c["key"])) and str(c["key"]) in stored
        else c
        for c in new
    ]
