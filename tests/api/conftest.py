"""Fixtures of the API tests on top of tests/conftest.py."""

from collections.abc import Iterator

import httpx
import pytest

from tests.api.helpers import abort_unfinished
from tests.conftest import Server


@pytest.fixture
def other(server: Server) -> Iterator[httpx.Client]:
    """A second user, to check that users never see each other's tasks."""
    with httpx.Client(
        base_url=server.url, headers={"Authorization": server.new_user()}, timeout=30
    ) as c:
        yield c


@pytest.fixture
def reaper(client: httpx.Client) -> Iterator[httpx.Client]:
    """The client, plus teardown that stops its unfinished tasks so cores are free again."""
    yield client
    abort_unfinished(client)
