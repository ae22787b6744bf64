"""Serves the dashboard: ``/`` is its page, ``/ui/…`` its script and style sheet.

The files are static (no build step, nothing fetched from elsewhere); the page calls the REST
API with the token the user typed, kept in the tab's sessionStorage. No route of the API is
shadowed: ``/`` had none, and ``/ui`` is no API path.
"""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"
PREFIX = "/ui"

# the page runs only its own files and talks only to its own origin
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class _Assets(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def mount_dashboard(app: FastAPI) -> None:
    index = STATIC / "index.html"

    @app.get("/", include_in_schema=False)
    async def dashboard() -> Response:
        return FileResponse(index, media_type="text/html; charset=utf-8", headers=HEADERS)

    app.mount(PREFIX, _Assets(directory=STATIC), name="dashboard-assets")
