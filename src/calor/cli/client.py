"""The CLI's side of the wire: where the server is, the token, and requests whose failures
become one clear message (the server's own, when it gives one)."""

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"


class CliError(Exception):
    """What to tell the user, and the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """``$CALOR_CONFIG``, else ``$XDG_CONFIG_HOME/calor/config.json`` (``~/.config``)."""
    if environ.get("CALOR_CONFIG"):
        return Path(environ["CALOR_CONFIG"])
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "calor" / "config.json"


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None


def resolve(url: str | None, token: str | None, environ: Mapping[str, str] = os.environ) -> Target:
    """Flags, then CALOR_URL / CALOR_TOKEN, then the SDK's QARNOT_CLUSTER_URL /
    QARNOT_CLIENT_TOKEN, then the file ``calor login`` wrote."""
    saved: dict[str, Any] = {}
    path = config_path(environ)
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read the config file {path}: {exc}") from None
    url = (
        url
        or environ.get("CALOR_URL")
        or environ.get("QARNOT_CLUSTER_URL")
        or saved.get("url")
        or DEFAULT_URL
    )
    token = (
        token
        or environ.get("CALOR_TOKEN")
        or environ.get("QARNOT_CLIENT_TOKEN")
        or saved.get("token")
    )
    return Target(str(url).rstrip("/"), str(token) if token else None)


def save(target: Target, environ: Mapping[str, str] = os.environ) -> Path:
    """Write the config file, readable by its owner only (it holds a token)."""
    path = config_path(environ)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": target.url, "token": target.token}, f)
    os.chmod(path, 0o600)
    return path


class Api:
    """An authenticated client of one calor server."""

    def __init__(self, target: Target, timeout: float = 30.0) -> None:
        if not target.token:
            raise CliError(
                "no API token: pass --token, set CALOR_TOKEN (or QARNOT_CLIENT_TOKEN), "
                "or run `calor login --url URL --token TOKEN`"
            )
        self.target = target
        self.http = httpx.Client(
            base_url=target.url, headers={"Authorization": target.token}, timeout=timeout
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CliError(f"cannot reach the calor server at {self.target.url}: {exc}") from None
        if response.status_code >= 400:
            raise CliError(_message(response))
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CliError(
                f"the server at {self.target.url} answered {path} with something that is not "
                "JSON; is it a calor server?"
            ) from None

    def text(self, method: str, path: str) -> str:
        return self.request(method, path).text

    def close(self) -> None:
        self.http.close()


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        message = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        message = None
    message = message or response.text.strip() or response.reason_phrase
    if response.status_code == 401:
        return f"the server refused the token (401): {message}"
    return f"{message} ({response.status_code})"
