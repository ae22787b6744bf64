"""``calor login`` and ``calor info``."""

from typing import Annotated

import typer

from calor.cli.client import Api, Target, resolve, save
from calor.cli.common import Json, Token, Url, api, console, err, handles_errors, print_json, table


@handles_errors
def login(
    url: Annotated[str, typer.Option("--url", help="the calor server")],
    token: Annotated[str, typer.Option("--token", help="your API token")],
) -> None:
    """Check a server and token, and remember them for the next commands."""
    target = resolve(url, token)
    client = Api(Target(target.url, token))
    try:
        email = client.json("GET", "/info")["email"]
    finally:
        client.close()
    path = save(Target(target.url, token))
    err.print(f"logged in to {target.url} as {email}; saved in {path}", highlight=False)


@handles_errors
def info(url: Url = None, token: Token = None, as_json: Json = False) -> None:
    """Your account: counts and limits."""
    with api(url, token) as client:
        data = client.json("GET", "/info")
    if as_json:
        print_json(data)
        return
    t = table("", "used", "limit", title=data.get("email"))
    for label, used, limit in (
        ("tasks", "taskCount", "maxTask"),
        ("running tasks", "runningTaskCount", "maxRunningTask"),
        ("running instances", "runningInstanceCount", None),
        ("running cores", "runningCoreCount", "maxFlexCores"),
        ("pools", "poolCount", "maxPool"),
        ("buckets", "bucketCount", "maxBucket"),
        ("bucket bytes", "usedQuotaBytesBucket", "quotaBytesBucket"),
    ):
        t.add_row(label, str(data.get(used, 0)), str(data.get(limit, "")) if limit else "")
    console.print(t)
