"""The one table from errors to HTTP status codes; every error body is ``{"message": ...}``."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from calor.domain import errors

log = logging.getLogger("calor.api")

STATUS: dict[type[errors.CalorError], int] = {
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.PaymentRequired: 402,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.Unavailable: 503,
}


def status_of(exc: errors.CalorError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def message_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.CalorError)
    async def _calor(_: Request, exc: errors.CalorError) -> JSONResponse:
        return message_response(status_of(exc), exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
        return message_response(400, "; ".join(parts) or "invalid request")

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404:
            message = "no such endpoint"
        elif exc.status_code == 405:
            message = "method not allowed on this endpoint"
        return message_response(exc.status_code, message)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return message_response(500, "internal error; the server log has the details")
