"""``qarnot.Secrets`` against a real server: the round trip, the SDK's own exceptions, listing
(flat and recursive), isolation between users, and secrets read inside a running task."""

import pytest
from qarnot.connection import Connection
from qarnot.exceptions import SecretConflictException, SecretNotFoundException
from qarnot.secrets import Secrets, SecretsAccessRights

from tests.sdk.conftest import Connect
from tests.sdk.helpers import docker_task, wait_done


def test_round_trip_and_exceptions(conn: Connection) -> None:
    secrets = Secrets(conn)
    assert secrets.create_secret("/app/db/password/", "hunter2") == "app/db/password"
    assert secrets.get_secret("app/db/password") == "hunter2"
    with pytest.raises(SecretConflictException):
        secrets.create_secret("app/db/password", "again")
    secrets.update_secret("app/db/password", "s3cr3t")
    assert secrets.get_secret("/app/db/password") == "s3cr3t"
    secrets.create_secret("app/db/user", "admin")
    secrets.create_secret("app/api/token", "t0k")
    secrets.create_secret("app/name", "calor")
    secrets.create_secret("other", "x")

    assert sorted(secrets.list_secrets("")) == ["app/", "other"]
    assert sorted(secrets.list_secrets("app")) == ["app/api/", "app/db/", "app/name"]
    assert sorted(secrets.list_secrets("app/db")) == ["app/db/password", "app/db/user"]
    assert sorted(secrets.list_secrets("app", recursive=True)) == [
        "app/api/token",
        "app/db/password",
        "app/db/user",
        "app/name",
    ]
    assert sorted(secrets.list_secrets("", recursive=True)) == [
        "app/api/token",
        "app/db/password",
        "app/db/user",
        "app/name",
        "other",
    ]
    assert secrets.list_secrets("nothing") == []

    secrets.delete_secret("app/db/user")
    with pytest.raises(SecretNotFoundException):
        secrets.get_secret("app/db/user")
    with pytest.raises(SecretNotFoundException):
        secrets.update_secret("app/db/user", "x")
    with pytest.raises(SecretNotFoundException):
        secrets.delete_secret("app/db/user")
    assert secrets.list_secrets("app/db") == ["app/db/password"]


def test_users_are_isolated(connect: Connect) -> None:
    alice, bob = Secrets(connect()), Secrets(connect())
    alice.create_secret("shared/name", "alice's")
    with pytest.raises(SecretNotFoundException):
        bob.get_secret("shared/name")
    with pytest.raises(SecretNotFoundException):
        bob.update_secret("shared/name", "bob was here")
    with pytest.raises(SecretNotFoundException):
        bob.delete_secret("shared/name")
    assert bob.list_secrets("", recursive=True) == []
    assert bob.list_secrets("shared") == []
    bob.create_secret("shared/name", "bob's")
    assert alice.get_secret("shared/name") == "alice's"
    assert bob.get_secret("shared/name") == "bob's"


def test_a_task_reads_its_granted_secrets_only(conn: Connection) -> None:
    secrets = Secrets(conn)
    secrets.create_secret("svc/db/password", "granted-by-key")
    secrets.create_secret("svc/api/token", "granted-by-prefix")
    secrets.create_secret("svc/other", "NOT-GRANTED")
    task = docker_task(
        conn,
        'sh -c \'d="$CALOR_SECRETS_DIR"; cat "$d/svc/db/password"; echo; '
        'cat "$d/svc/api/token"; echo; test ! -e "$d/svc/other" && echo other-absent; '
        'case "$d" in "$TASK_PATH"*) echo inside-task-path;; esac\'',
    )
    task.secrets_access_rights = (
        SecretsAccessRights().add_secret_by_key("svc/db/password").add_secret_by_prefix("svc/api/")
    )
    task.submit()
    assert wait_done(task) == "Success", task.stderr()
    out = task.stdout()
    assert "granted-by-key" in out
    assert "granted-by-prefix" in out
    assert "other-absent" in out
    assert "NOT-GRANTED" not in out
    assert "inside-task-path" not in out
    # the grant is echoed, the values never are
    task.update(True)
    assert [r._key for r in task.secrets_access_rights._by_secret] == ["svc/db/password"]
    raw = conn._get(f"/tasks/{task.uuid}").text
    assert "granted-by" not in raw


def test_a_grant_of_someone_elses_secret_is_refused(connect: Connect) -> None:
    alice, bob = connect(), connect()
    Secrets(alice).create_secret("mine", "alice's")
    task = docker_task(bob, "true")
    task.secrets_access_rights = SecretsAccessRights().add_secret_by_key("mine")
    with pytest.raises(Exception, match="mine"):
        task.submit()
    assert bob.tasks() == []
