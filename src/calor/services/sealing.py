"""Secret values at rest: AES-256-GCM (the ``cryptography`` package) under a key derived by HKDF
from the server key. The owner's id and the secret's key are bound as associated data, so a
sealed value copied onto another row (another user, another key) does not open.

A sealed value is ``version (1 byte) | nonce (12 bytes) | ciphertext and tag``.
"""

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from calor.domain.errors import Unavailable

VERSION = b"\x01"
NONCE_BYTES = 12
INFO = b"calor secrets at rest v1"


class SealError(Unavailable):
    """A stored value does not open: the server key changed, or the row was tampered with."""


class SecretBox:
    def __init__(self, server_key: bytes) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(
            server_key
        )
        self._aead = AESGCM(derived)

    @staticmethod
    def _bound(user_id: int, key: str) -> bytes:
        return b"%d\0" % user_id + key.encode()

    def seal(self, user_id: int, key: str, value: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)  # random 96-bit nonces: safe far beyond 2^32 seals
        sealed = self._aead.encrypt(nonce, value.encode(), self._bound(user_id, key))
        return VERSION + nonce + sealed

    def open(self, user_id: int, key: str, blob: bytes) -> str:
        if blob[:1] != VERSION:
            raise SealError(f"the secret {key!r} is stored in a form this server does not read")
        nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, sealed, self._bound(user_id, key)).decode()
        except InvalidTag:
            raise SealError(
                f"the secret {key!r} cannot be decrypted: the server key (CALOR_SECRET_KEY or "
                "<data dir>/secret.key) is not the one it was stored with"
            ) from None
