"""Secrets on Dask workers: an instance reads the secrets it is granted, which its worker asked
of the server at the attempt's start (POST /executor/secrets); the channel answers only the
executor token, and only for an attempt the cluster runs."""

from collections.abc import Iterator

import httpx
import pytest
from qarnot.connection import Connection
from qarnot.secrets import Secrets, SecretsAccessRights

from tests.api.helpers import assert_error
from tests.conftest import Server
from tests.sdk.helpers import docker_task, wait_done


@pytest.fixture
def conn(server: Server) -> Iterator[Connection]:
    connection = Connection(client_token=server.new_user(), cluster_url=server.url)
    yield connection
    connection._http.close()


def _executor_token(server: Server) -> str:
    from calor.settings import Settings
    from calor.wiring import open_database, user_service

    settings = Settings(data_dir=server.data_dir, database_url=server.database_url)
    db = open_database(settings)
    try:
        return user_service(db, settings).executor_token()
    finally:
        db.dispose()


def test_a_task_on_dask_reads_its_granted_secrets_only(conn: Connection) -> None:
    secrets = Secrets(conn)
    secrets.create_secret("dask/granted", "from-the-server")
    secrets.create_secret("dask/other", "NOT-GRANTED")
    task = docker_task(
        conn,
        'sh -c \'cat "$CALOR_SECRETS_DIR/dask/granted"; echo; '
        'test -e "$CALOR_SECRETS_DIR/dask/other" || echo other-absent\'',
        2,
    )
    task.secrets_access_rights = SecretsAccessRights().add_secret_by_prefix("dask/g")
    task.submit()
    assert wait_done(task, timeout=60) == "Success", (task.errors, task.stderr())
    out = task.stdout()
    for i in range(2):
        assert f"{i}> from-the-server" in out and f"{i}> other-absent" in out
    assert "NOT-GRANTED" not in out


def test_the_secrets_channel_needs_the_token_and_a_running_attempt(server: Server) -> None:
    url = f"{server.url}/executor/secrets"
    body = {"row": 1, "key": "calor-made-up-1-1-0"}
    assert_error(httpx.post(url, json=body), 401, "executor token")
    assert_error(httpx.post(url, json=body, headers={"Authorization": "Executor nope"}), 401)
    good = {"Authorization": f"Executor {_executor_token(server)}"}
    assert_error(httpx.post(url, json=body, headers=good), 404, "not running")
    assert_error(httpx.post(url, json={"row": "1"}, headers=good), 400, "row")
    # a user's API token is not the executor's
    user = {"Authorization": f"Executor {server.new_user()}"}
    assert_error(httpx.post(url, json=body, headers=user), 401)
