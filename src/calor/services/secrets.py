"""Secrets use cases (contract §2.5): create, read, update, delete, list a folder; the check of
a task's or pool's ``secretsAccessRights`` at submit; the values an instance attempt is granted.

Values are sealed before they reach the store and never logged; only the attempt's owner's
secrets that its documents grant ever leave this service.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from calor.domain.errors import BadRequest, NotFound, PayloadTooLarge
from calor.domain.secrets import (
    SecretsGrant,
    check_folder,
    check_key,
    grant_of,
    parse_grant,
)
from calor.services.sealing import SecretBox
from calor.services.tasks import utcnow
from calor.settings import Limits
from calor.store.secrets import SecretStore


class SecretNotFound(NotFound):
    pass


class SecretService:
    def __init__(
        self,
        store: SecretStore,
        box: SecretBox,
        limits: Limits,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.box = box
        self.limits = limits
        self.clock = clock

    def _value(self, value: Any) -> str:
        if not isinstance(value, str):
            raise BadRequest('the body must be {"Value": "<the secret as a string>"}')
        size = len(value.encode())
        if size > self.limits.max_secret_bytes:
            raise PayloadTooLarge(
                f"the secret is {size} bytes; at most {self.limits.max_secret_bytes} are kept"
            )
        return value

    def create(self, user_id: int, raw_key: str, value: Any) -> str:
        key = check_key(raw_key)
        sealed = self.box.seal(user_id, key, self._value(value))
        self.store.create(user_id, key, sealed, self.clock(), self.limits.max_secrets_per_user)
        return key

    def get(self, user_id: int, raw_key: str) -> str:
        key = check_key(raw_key)
        sealed = self.store.get(user_id, key)
        if sealed is None:
            raise SecretNotFound(f"no secret with key {key!r}")
        return self.box.open(user_id, key, sealed)

    def update(self, user_id: int, raw_key: str, value: Any) -> None:
        key = check_key(raw_key)
        sealed = self.box.seal(user_id, key, self._value(value))
        if not self.store.update(user_id, key, sealed, self.clock()):
            raise SecretNotFound(f"no secret with key {key!r}")

    def delete(self, user_id: int, raw_key: str) -> None:
        key = check_key(raw_key)
        if not self.store.delete(user_id, key):
            raise SecretNotFound(f"no secret with key {key!r}")

    def list(self, user_id: int, raw_folder: str) -> list[str]:
        return self.store.children(user_id, check_folder(raw_folder))

    # -- grants ------------------------------------------------------------------------------

    def check_grant(self, user_id: int, raw: Any, already: Any = None) -> None:
        """Every secret a grant names exactly must be one of the user's (prefixes may match
        nothing yet). ``already``: a grant accepted before (an update re-sends it whole), whose
        keys are not looked up again: a secret deleted since is simply not delivered."""
        grant = parse_grant(raw)
        known = set(parse_grant(already).keys) if already else set()
        missing = self.store.missing(user_id, [k for k in grant.keys if k not in known])
        if missing:
            shown = ", ".join(repr(k) for k in missing[:5])
            raise SecretNotFound(
                f"secretsAccessRights.bySecret names secrets you do not have: {shown}; create "
                "them first (PUT /secrets-manager/data/<key>)"
            )

    def resolve(self, user_id: int, grant: SecretsGrant) -> dict[str, str]:
        return {
            key: self.box.open(user_id, key, sealed)
            for key, sealed in self.store.granted(user_id, grant)
        }

    def for_attempt(self, row_id: int) -> dict[str, str]:
        """The secrets an active instance attempt is granted, read now (a secret updated
        between two attempts is seen by the second); NotFound when it is not active."""
        found = self.store.attempt_grant(row_id)
        if found is None:
            raise NotFound(f"instance attempt {row_id} is not running")
        user_id, documents = found
        return self.resolve(user_id, grant_of(documents))
