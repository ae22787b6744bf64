"""Fixtures of the dashboard tests: a server, and Debian's chromium driven by playwright.

The browser is /usr/bin/chromium (`apt-get install chromium`), never one playwright downloads.
Without it the browser tests skip on a laptop and fail under CI=true. Screenshots go to
CALOR_TEST_ARTIFACTS (default tests/web/artifacts/).
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import IN_CI, Server, make_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(
    os.environ.get("CALOR_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts"
).resolve()
TIMEOUT_MS = 15_000


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}: .ci/run must install it")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # many cores: the tests' long tasks never wait for each other's
    srv = make_server(tmp_path_factory.mktemp("web"), "sqlite", CALOR_CORES="32").start()
    yield srv
    srv.stop()


@pytest.fixture
def user(web_server: Server) -> str:
    """A new user's token: each test sees only its own tasks."""
    return web_server.new_user()


@pytest.fixture
def api(web_server: Server, user: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=web_server.url, headers={"Authorization": user}, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        _missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[dev]')")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:120]


class Shots:
    """Numbered screenshots of one test, in the artifacts directory."""

    def __init__(self, page: Any, test: str) -> None:
        self.page, self.test, self.count = page, _slug(test), 0

    def __call__(self, name: str) -> Path:
        self.count += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.test}-{self.count:02d}-{_slug(name)}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page in a fresh context (empty sessionStorage), 1280 px wide; its last screenshot is
    taken whatever the outcome. Errors of the page's script fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.shots = Shots(pg, request.node.name)
    try:
        yield pg
        assert not errors, f"the page's script failed: {errors}"
    finally:
        try:
            pg.shots("end")
        finally:
            context.close()


def sign_in(page: Any, server: Server, token: str, route: str = "") -> None:
    from playwright.sync_api import expect

    page.goto(f"{server.url}/{route}")
    page.fill("#token", token)
    page.click("#login")
    expect(page.locator("#top")).to_be_visible()
