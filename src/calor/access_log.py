"""The access log of the API and the S3 gateway: one JSON object per request, on its own line,
for the log tools operators already run (jq, Loki, Elasticsearch, CloudWatch...).

Each line has the time, the service, the method, the route as declared (``/tasks/{uuid}``,
never the path a client sent: no object key, bucket or query string, so no presigned URL's
signature), the status, the duration, the user's id once authenticated, the client address
and the request id, which the answer carries too (``X-Request-Id``, or ``x-amz-request-id``
on the gateway). Headers are never logged: no token, credential or signature reaches it.
"""

import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import IO

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# scope keys: the request's id, set here; the user's id, set by whoever authenticates it
REQUEST_ID = "calor.request_id"
USER_ID = "calor.user_id"
# the route as the service declares it (set by the S3 gateway; the API's comes from routing)
ROUTE = "calor.route"

# an id a client (or a proxy in front) sends is kept when it is plain and short
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

log = logging.getLogger("calor.access")


def request_id(scope: Scope) -> str:
    """The request's id: the one the client sent (X-Request-Id), if plain, else a new one."""
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            sent = bytes(value).decode("latin-1")
            if _CLIENT_ID.fullmatch(sent):
                return sent
    return uuid.uuid4().hex


class AccessLog:
    """Wraps an ASGI app; logs each HTTP request when its answer has been sent."""

    def __init__(self, app: ASGIApp, service: str, header: str = "x-request-id") -> None:
        self.app = app
        self.service = service
        self.header = header.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[REQUEST_ID] = rid = request_id(scope)
        status = 500  # what the client sees when the app fails before it answers
        sent = 0
        t0 = time.perf_counter()

        async def logged_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k != self.header]
                message = {**message, "headers": [*headers, (self.header, rid.encode())]}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, logged_send)
        finally:
            log.info(
                orjson.dumps(
                    {
                        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                        "service": self.service,
                        "method": scope.get("method"),
                        "route": _route(scope),
                        "status": status,
                        "durationMs": round((time.perf_counter() - t0) * 1000, 2),
                        "bytesSent": sent,
                        "userId": scope.get(USER_ID),
                        "client": (scope.get("client") or [None])[0],
                        "requestId": rid,
                    }
                ).decode()
            )


def _route(scope: Scope) -> str:
    """The matched route's template; what matched none is logged as such, not as its path
    (a path can be anything a client typed, a credential pasted by mistake included)."""
    declared = scope.get(ROUTE)
    if isinstance(declared, str):
        return declared
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "(no route)"


def configure(destination: str) -> None:
    """``destination``: "stderr", "stdout" or a file path (appended to). The lines go there
    alone, whatever the server's log level and format."""
    stream: IO[str]
    if destination == "stderr":
        stream = sys.stderr
    elif destination == "stdout":
        stream = sys.stdout
    else:
        stream = open(destination, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - the log's for the server's life
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
