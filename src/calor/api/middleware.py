"""ASGI middleware: lenient paths (``//`` and trailing slashes) and a cap on body size."""

import re
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from calor.domain.errors import PayloadTooLarge

_SLASHES = re.compile(r"/{2,}")
ORIGINAL_PATH = "calor.original_path"  # the scope key of the path before NormalizePath


class NormalizePath:
    """The SDK concatenates base URL and path, so ``https://host//tasks`` is normal."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            clean = _SLASHES.sub("/", path)
            if len(clean) > 1 and clean.endswith("/"):
                clean = clean.rstrip("/") or "/"
            if clean != path:
                # routes whose path parameters must not be merged (secret keys: ``a//b`` is
                # refused, not read as ``a/b``) read the path as it came; changed in place, so
                # what the routes note in the scope is seen by the access log around this
                scope.update(path=clean, raw_path=clean.encode(), **{ORIGINAL_PATH: path})
        await self.app(scope, receive, send)


class BodyLimit:
    """Answers 413 with a JSON message before reading more than ``max_bytes`` of a body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Send) -> None:
        body = orjson.dumps(
            {"message": f"request body is larger than {self.max_bytes} bytes; send less"}
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(send)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(
                        f"request body is larger than {self.max_bytes} bytes; send less"
                    )
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)


class _TooLarge(PayloadTooLarge):  # a CalorError, so the app's handlers answer 413 too
    pass


def json_bytes(value: Any) -> bytes:
    return orjson.dumps(value)
