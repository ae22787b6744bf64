"""Fixtures of the SDK tests: connections of the official ``qarnot`` client to a real server."""

from collections.abc import Callable, Iterator

import pytest
from qarnot.connection import Connection

from tests.conftest import Server
from tests.sdk.helpers import stop_unfinished

Connect = Callable[..., Connection]


@pytest.fixture
def connect(server: Server) -> Iterator[Connect]:
    """``connect(token=None)``: an SDK connection for ``token`` (a new user by default).

    Teardown aborts the unfinished tasks of every connection made, so the next test gets the
    server's cores back, and closes the HTTP sessions."""
    made: list[Connection] = []

    def make(token: str | None = None) -> Connection:
        conn = Connection(client_token=token or server.new_user(), cluster_url=server.url)
        made.append(conn)
        return conn

    yield make
    for conn in made:
        try:
            stop_unfinished(conn)
        finally:
            conn._http.close()


@pytest.fixture
def conn(connect: Connect) -> Connection:
    return connect()
