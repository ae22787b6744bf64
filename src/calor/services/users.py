"""Users and tokens: creation, lookup by token, rotation.

A token is derived from the server's secret key and a per-user random nonce: the store keeps the
nonce and the token's hash, never the token, yet the S3 gateway can recompute a user's token,
which SigV4 needs as the signing secret (the SDK signs with the API token, contract §9.1).
"""

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

from calor.domain.errors import BadRequest, NotFound, Unauthorized
from calor.domain.users import User
from calor.store.users import UserStore

SECRET_TTL = 5.0  # seconds a storage secret is reused without asking the store
MAX_RECENT = 10_000


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def derive_token(server_key: bytes, nonce: str) -> str:
    digest = hmac.new(server_key, b"calor-api-token\0" + nonce.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


K = TypeVar("K")
V = TypeVar("V")


class _Recent(Generic[K, V]):
    """Answers kept for ``ttl`` seconds (at most MAX_RECENT of them)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: dict[K, tuple[float, V]] = {}

    def get(self, key: K, compute: Callable[[K], V]) -> V:
        now = time.monotonic()
        found = self._items.get(key)
        if found is not None and found[0] > now:
            return found[1]
        value = compute(key)
        if len(self._items) >= MAX_RECENT:
            self._items.clear()
        self._items[key] = (now + self.ttl, value)
        return value

    def forget(self, key: K) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()


class UserService:
    def __init__(
        self, store: UserStore, server_key: bytes, clock: Callable[[], datetime] = _now
    ) -> None:
        self.store = store
        self.server_key = server_key
        self.clock = clock
        # every S3 request looks its signer up, every remote attempt its owner's credentials;
        # a rotated token stops working within SECRET_TTL on the other servers of the store
        self._by_email: _Recent[str, tuple[User, str] | None] = _Recent(SECRET_TTL)
        self._by_id: _Recent[int, tuple[str, str] | None] = _Recent(SECRET_TTL)

    def _new_token(self) -> tuple[str, str]:
        nonce = secrets.token_hex(16)
        return nonce, derive_token(self.server_key, nonce)

    def create(self, email: str) -> tuple[User, str]:
        email = email.strip()
        if "@" not in email or len(email) > 320 or any(c.isspace() for c in email):
            raise BadRequest(f"{email!r} is not an e-mail address")
        nonce, token = self._new_token()
        return self.store.create(email, hash_token(token), nonce, self.clock()), token

    def find(self, email: str) -> User:
        found = self.store.by_email(email.strip())
        if found is None:
            raise NotFound(f"no user with e-mail {email!r}")
        return found[0]

    def rotate(self, email: str) -> str:
        nonce, token = self._new_token()
        self.store.set_token(email, hash_token(token), nonce)
        self._by_email.forget(email)
        self._by_id.clear()  # rotations are rare: no need to find the user's id
        return token

    def storage_secret(self, email: str) -> tuple[User, str] | None:
        """The user whose e-mail is this S3 access key, and their token (the SigV4 secret)."""
        return self._by_email.get(email, self._storage_secret)

    def _storage_secret(self, email: str) -> tuple[User, str] | None:
        found = self.store.by_email(email)
        if found is None:
            return None
        user, nonce = found
        if nonce is None:
            return None  # a token made before tokens were derived: rotate it to use storage
        return user, derive_token(self.server_key, nonce)

    def storage_credentials(self, user_id: int) -> tuple[str, str] | None:
        """The S3 access key and secret of a user (for instances that reach the gateway from
        another machine), or None when their token predates derived tokens."""
        return self._by_id.get(user_id, self._storage_credentials)

    def _storage_credentials(self, user_id: int) -> tuple[str, str] | None:
        found = self.store.by_id(user_id)
        if found is None or found[1] is None:
            return None
        return found[0].email, derive_token(self.server_key, found[1])

    def executor_token(self) -> str:
        """What remote workers present on /executor/events (derived: every server of a
        store, and every worker given it, agree without another secret to distribute)."""
        return derive_token(self.server_key, "executor")

    def authenticate(self, header: str | None) -> User:
        """``Authorization: <token>`` as the SDK sends it; ``Bearer <token>`` accepted too."""
        if not header or not header.strip():
            raise Unauthorized("missing Authorization header: send your API token")
        token = header.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        user = self.store.by_token_hash(hash_token(token))
        if user is None:
            raise Unauthorized("unknown API token")
        return user

    def all(self) -> list[User]:
        return self.store.all()

    def count(self) -> int:
        return self.store.count()
