"""Secrets in containers: the granted ones as read-only files under /run/secrets
($CALOR_SECRETS_DIR), the others absent, for the image's user and for DOCKER_USER."""

from collections.abc import Iterator

import pytest
from qarnot.connection import Connection
from qarnot.secrets import Secrets, SecretsAccessRights

from tests.conftest import Server
from tests.docker.conftest import IMAGE
from tests.sdk.helpers import docker_task, stop_unfinished, wait_done

READ = (
    'sh -c \'echo "$CALOR_SECRETS_DIR"; cat "$CALOR_SECRETS_DIR/ctr/db/password"; echo; '
    'test -e "$CALOR_SECRETS_DIR/ctr/other" || echo other-absent; '
    '(echo x > "$CALOR_SECRETS_DIR/ctr/db/password") 2>/dev/null || echo read-only; '
    'ls "$TASK_PATH"; id -u\''
)


@pytest.fixture
def conn(server: Server) -> Iterator[Connection]:
    connection = Connection(client_token=server.new_user(), cluster_url=server.url)
    yield connection
    stop_unfinished(connection)
    connection._http.close()


@pytest.mark.parametrize("user", ["", "65534"])
def test_granted_secrets_are_read_only_files(conn: Connection, user: str) -> None:
    secrets = Secrets(conn)
    secrets.create_secret("ctr/db/password", "in-a-container")
    secrets.create_secret("ctr/other", "NOT-GRANTED")
    task = docker_task(conn, READ)
    task.constants["DOCKER_REPO"] = IMAGE
    if user:
        task.constants["DOCKER_USER"] = user
    task.secrets_access_rights = SecretsAccessRights().add_secret_by_key("ctr/db/password")
    task.submit()
    assert wait_done(task) == "Success", (task.errors, task.stderr())
    lines = [line.removeprefix("0> ") for line in task.stdout().splitlines()]
    assert lines[:4] == ["/run/secrets", "in-a-container", "other-absent", "read-only"]
    assert lines[-1] == (user or "0")
    assert "NOT-GRANTED" not in task.stdout()
    assert "secrets" not in lines[4:-1]  # nothing of them in TASK_PATH
