"""Secrets endpoints (contract §2.5), as ``qarnot.Secrets`` calls them.

A key is read from the path as the client sent it, before NormalizePath merged ``//``: a key
with an empty segment is refused rather than silently stored under another name. Values go in
``{"Value": ...}`` bodies and come out as ``{"value": ...}``; they are never logged.
"""

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from calor.api.deps import PlatformDep, UserDep, json_body, json_response
from calor.api.middleware import ORIGINAL_PATH
from calor.domain.errors import BadRequest

router = APIRouter()


class _AnyPath(Convertor[str]):
    """Like ``path``, newlines included: a key with a control character gets its 400 from
    the key check, not a 404 for want of a route."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("secret_path", _AnyPath())

_PATH = re.compile(r"^/*secrets-manager/+(data|search)(?:/(.*))?$", re.DOTALL)


def _subject(request: Request) -> str:
    """The key (or prefix) part of the path as sent, leading and trailing / excluded."""
    path = request.scope.get(ORIGINAL_PATH) or request.scope["path"]
    found = _PATH.match(path)
    return (found.group(2) or "") if found else ""


async def _value(request: Request) -> Any:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise BadRequest('the body must be {"Value": "<the secret as a string>"}')
    lowered = {str(k).lower(): v for k, v in body.items()}
    if "value" not in lowered:
        raise BadRequest('the body must be {"Value": "<the secret as a string>"}')
    return lowered["value"]


@router.get("/secrets-manager/data/{_key:secret_path}")
async def get_secret(_key: str, request: Request, p: PlatformDep, user: UserDep) -> Response:
    value = await run_in_threadpool(p.secrets.get, user.id, _subject(request))
    return json_response({"value": value})


@router.put("/secrets-manager/data/{_key:secret_path}")
async def create_secret(_key: str, request: Request, p: PlatformDep, user: UserDep) -> Response:
    value = await _value(request)
    key = await run_in_threadpool(p.secrets.create, user.id, _subject(request), value)
    return json_response({"key": key})


@router.patch("/secrets-manager/data/{_key:secret_path}")
async def update_secret(_key: str, request: Request, p: PlatformDep, user: UserDep) -> Response:
    value = await _value(request)
    await run_in_threadpool(p.secrets.update, user.id, _subject(request), value)
    return json_response({})


@router.delete("/secrets-manager/data/{_key:secret_path}")
async def delete_secret(_key: str, request: Request, p: PlatformDep, user: UserDep) -> Response:
    await run_in_threadpool(p.secrets.delete, user.id, _subject(request))
    return json_response({})


@router.api_route("/secrets-manager/data", methods=["GET", "PUT", "PATCH", "DELETE"])
async def no_key(user: UserDep) -> Response:
    raise BadRequest("the secret key is missing: /secrets-manager/data/<key>")


@router.get("/secrets-manager/search")
@router.get("/secrets-manager/search/{_prefix:secret_path}")
async def search_secrets(
    request: Request, p: PlatformDep, user: UserDep, _prefix: str = ""
) -> Response:
    keys = await run_in_threadpool(p.secrets.list, user.id, _subject(request))
    return json_response({"keys": keys})
