"""Storage secrets are derived from the server key and cached briefly; a rotation on this
server takes effect at once."""

from pathlib import Path

from calor.settings import Settings
from calor.wiring import open_database, user_service


def test_rotation_replaces_the_cached_storage_secret(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key="test-key")
    db = open_database(settings)
    try:
        users = user_service(db, settings)
        user, token = users.create("s@test.local")
        found = users.storage_secret("s@test.local")
        assert found is not None and found[1] == token
        assert users.storage_credentials(user.id) == ("s@test.local", token)
        assert users.storage_secret("nobody@test.local") is None

        new = users.rotate("s@test.local")
        assert new != token
        found = users.storage_secret("s@test.local")
        assert found is not None and found[1] == new
        assert users.storage_credentials(user.id) == ("s@test.local", new)
        # derived, not stored: another service on the same key computes the same secret
        again = user_service(db, settings).storage_secret("s@test.local")
        assert again is not None and again[1] == new
    finally:
        db.dispose()
