"""Users and tokens: creation, lookup by token, rotation."""

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from calor.domain.errors import BadRequest, Unauthorized
from calor.domain.users import User
from calor.store.users import UserStore


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class UserService:
    def __init__(self, store: UserStore, clock: Callable[[], datetime] = _now) -> None:
        self.store = store
        self.clock = clock

    def create(self, email: str) -> tuple[User, str]:
        email = email.strip()
        if "@" not in email or len(email) > 320 or any(c.isspace() for c in email):
            raise BadRequest(f"{email!r} is not an e-mail address")
        token = new_token()
        return self.store.create(email, hash_token(token), self.clock()), token

    def rotate(self, email: str) -> str:
        token = new_token()
        self.store.set_token_hash(email, hash_token(token))
        return token

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
