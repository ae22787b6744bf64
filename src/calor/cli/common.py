"""What every client command shares: --url, --token, --json, error handling, output."""

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from calor.cli.client import Api, CliError, resolve

# rich follows NO_COLOR and plain output when stdout is no terminal
console = Console()
err = Console(stderr=True)

Url = Annotated[
    str | None,
    typer.Option("--url", help="the calor server (default: CALOR_URL, config, localhost:8000)"),
]
Token = Annotated[
    str | None,
    typer.Option("--token", help="API token (default: CALOR_TOKEN or the config file)"),
]
Json = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]

F = TypeVar("F", bound=Callable[..., Any])


def handles_errors(fn: F) -> F:
    """A CliError prints its message on stderr and exits with its code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CliError as exc:
            err.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=exc.code) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def api(url: str | None, token: str | None) -> Iterator[Api]:
    client = Api(resolve(url, token))
    try:
        yield client
    finally:
        client.close()


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


def table(*columns: str, title: str | None = None) -> Table:
    """A table that fits the terminal: long cells wrap, the widest columns shrink first."""
    t = Table(*columns, title=title, expand=False, show_lines=False, pad_edge=False)
    for column in t.columns:
        column.overflow = "fold"
    return t


STATE_STYLES = {
    "Success": "green",
    "Completed": "green",
    "Failure": "red",
    "Cancelled": "yellow",
    "Closed": "yellow",
    "FullyExecuting": "cyan",
    "PartiallyExecuting": "cyan",
    "Active": "cyan",
}


def state(value: str | None) -> str:
    text = value or "-"
    style = STATE_STYLES.get(text)
    return f"[{style}]{text}[/{style}]" if style else text


def short_date(value: str | None) -> str:
    """``2026-11-29T08:00:01.123456Z`` → ``2026-11-29 08:00:01``; the not-ended date → ``-``."""
    if not value or value.startswith("0001-"):
        return "-"
    return value.replace("T", " ")[:19]


def pairs(values: list[str], what: str) -> list[dict[str, str]]:
    """``KEY=VALUE`` options as Qarnot's ``[{"key", "value"}]``."""
    out = []
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"{what} {item!r} must look like KEY=VALUE", code=2)
        out.append({"key": key, "value": value})
    return out


def image_constants(image: str | None) -> list[dict[str, str]]:
    """``--image repo[:tag]`` as the docker-batch profile's DOCKER_REPO / DOCKER_TAG."""
    if not image:
        return []
    repo, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:  # no tag: the colon was a registry's port
        repo, tag = image, "latest"
    return [{"key": "DOCKER_REPO", "value": repo}, {"key": "DOCKER_TAG", "value": tag}]


def for_each(
    url: str | None,
    token: str | None,
    keys: list[str],
    method: str,
    path: Callable[[str], str],
    done: str,
    **kwargs: Any,
) -> None:
    """One request per object, saying on stderr what was done to each."""
    with api(url, token) as client:
        for key in keys:
            client.request(method, path(key), **kwargs)
            err.print(f"{done} {key}", highlight=False)


def listing(
    url: str | None,
    token: str | None,
    path: str,
    tags: list[str],
    as_json: bool,
    columns: tuple[str, ...],
    row: Callable[[dict[str, Any]], tuple[str, ...]],
) -> None:
    """``GET path?tag=…`` as JSON, or as a table of ``row(item)``."""
    with api(url, token) as client:
        items = client.json("GET", path, params=[("tag", t) for t in tags])
    if as_json:
        print_json(items)
        return
    t = table(*columns)
    for item in items:
        t.add_row(*row(item))
    console.print(t)
