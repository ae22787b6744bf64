"""Users and their API tokens (stored as SHA-256 hashes, never in clear)."""

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from calor.domain.errors import Conflict, NotFound
from calor.domain.users import User
from calor.store.engine import Database
from calor.store.tables import users


class UserStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, email: str, token_hash: str, nonce: str, now: datetime) -> User:
        try:
            with self.db.write() as conn:
                user_id = conn.execute(
                    insert(users)
                    .values(email=email, token_hash=token_hash, token_nonce=nonce, created_at=now)
                    .returning(users.c.id)
                ).scalar_one()
        except IntegrityError:
            raise Conflict(f"a user with e-mail {email!r} already exists") from None
        return User(id=user_id, email=email, created_at=now)

    def by_token_hash(self, token_hash: str) -> User | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(users.c.id, users.c.email, users.c.created_at).where(
                    users.c.token_hash == token_hash
                )
            ).first()
        return User(id=row.id, email=row.email, created_at=row.created_at) if row else None

    def all(self) -> list[User]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(users.c.id, users.c.email, users.c.created_at).order_by(users.c.id)
            ).all()
        return [User(id=r.id, email=r.email, created_at=r.created_at) for r in rows]

    def count(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(users)).scalar_one())

    def by_email(self, email: str) -> tuple[User, str | None] | None:
        return self._with_nonce(users.c.email == email)

    def by_id(self, user_id: int) -> tuple[User, str | None] | None:
        return self._with_nonce(users.c.id == user_id)

    def _with_nonce(self, where: Any) -> tuple[User, str | None] | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(users.c.id, users.c.email, users.c.created_at, users.c.token_nonce).where(
                    where
                )
            ).first()
        if row is None:
            return None
        return User(id=row.id, email=row.email, created_at=row.created_at), row.token_nonce

    def set_token(self, email: str, token_hash: str, nonce: str) -> None:
        with self.db.write() as conn:
            result = conn.execute(
                update(users)
                .where(users.c.email == email)
                .values(token_hash=token_hash, token_nonce=nonce)
            )
            if result.rowcount == 0:
                raise NotFound(f"no user has the e-mail {email!r}")
