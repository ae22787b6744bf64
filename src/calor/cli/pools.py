"""``calor pool …``: create, list, info, close, delete, stdout/stderr."""

from typing import Annotated, Any

import typer

from calor.cli.common import (
    Json,
    Token,
    Url,
    api,
    console,
    err,
    for_each,
    handles_errors,
    image_constants,
    listing,
    pairs,
    print_json,
    short_date,
    state,
    table,
)
from calor.cli.tasks import add_output_commands

app = typer.Typer(help="Pools: slots kept warm for many short tasks", no_args_is_help=True)


@app.command("create")
@handles_errors
def create(
    name: str,
    slots: Annotated[int, typer.Option("--slots", "-n", help="instanceCount")] = 1,
    profile: Annotated[str, typer.Option()] = "docker-batch",
    image: Annotated[str | None, typer.Option(help="Docker image repo[:tag]")] = None,
    prepare: Annotated[str | None, typer.Option("--prepare", help="preparation command")] = None,
    constant: Annotated[list[str], typer.Option("--constant", "-e", help="KEY=VALUE")] = [],  # noqa: B006
    tag: Annotated[list[str], typer.Option("--tag", "-t")] = [],  # noqa: B006
    resource: Annotated[list[str], typer.Option("--resource", "-r", help="input bucket")] = [],  # noqa: B006
    elastic: Annotated[str | None, typer.Option(help="MIN:MAX slots, resized to the queue")] = None,
    min_idle: Annotated[int, typer.Option(help="elastic: idle slots kept ready")] = 0,
    idle_seconds: Annotated[int, typer.Option(help="elastic: idle time before release")] = 0,
    resize_period: Annotated[int, typer.Option(help="elastic: seconds between resizes")] = 10,
    url: Url = None,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Open a pool; prints its uuid."""
    body: dict[str, Any] = {
        "name": name,
        "profile": profile,
        "instanceCount": slots,
        "constants": [*image_constants(image), *pairs(constant, "--constant")],
        "tags": tag,
        "resourceBuckets": resource,
        "preparationTask": {"commandLine": prepare} if prepare else None,
    }
    if elastic:
        low, _, high = elastic.partition(":")
        if not (low.isdigit() and high.isdigit()):
            raise typer.BadParameter("--elastic must look like MIN:MAX, e.g. 0:8")
        body["elasticProperty"] = {
            "isElastic": True,
            "minTotalSlots": int(low),
            "maxTotalSlots": int(high),
            "minIdleSlots": min_idle,
            "minIdleTimeSeconds": idle_seconds,
            "resizePeriod": resize_period,
            "rampResizeFactor": 1,
        }
    with api(url, token) as client:
        uuid = client.json("POST", "/pools", json=body)["uuid"]
    if as_json:
        print_json({"uuid": uuid})
    else:
        print(uuid)


@app.command("list")
@handles_errors
def list_(
    tag: Annotated[list[str], typer.Option("--tag", "-t", help="any of these tags")] = [],  # noqa: B006
    url: Url = None,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """List pools."""
    listing(
        url,
        token,
        "/pools",
        tag,
        as_json,
        ("uuid", "name", "state", "slots", "busy", "queued/running", "created", "tags"),
        lambda pool: (
            pool["uuid"][:8],
            pool["name"],
            state(pool["state"]),
            str(pool.get("totalSlotCapacity", 0)),
            f"{pool.get('poolUsage', 0) * 100:.0f}%",
            str(pool.get("queuedOrRunningTaskInstancesCount", 0)),
            short_date(pool.get("creationDate")),
            ",".join(pool.get("tags") or []),
        ),
    )


@app.command("info")
@handles_errors
def info(uuid: str, url: Url = None, token: Token = None, as_json: Json = False) -> None:
    """A pool's fields."""
    with api(url, token) as client:
        pool = client.json("GET", f"/pools/{uuid}")
    if as_json:
        print_json(pool)
        return
    t = table("field", "value", title=f"pool {pool['uuid']}")
    elastic = pool.get("elasticProperty") or {}
    for key, value in (
        ("name", pool["name"]),
        ("state", state(pool["state"])),
        ("profile", pool.get("profile")),
        ("slots", pool.get("totalSlotCapacity")),
        ("busy", f"{pool.get('poolUsage', 0) * 100:.0f}%"),
        ("task instances queued or running", pool.get("queuedOrRunningTaskInstancesCount")),
        (
            "elastic",
            f"{elastic.get('minTotalSlots')}..{elastic.get('maxTotalSlots')} slots"
            if elastic.get("isElastic")
            else "no",
        ),
        ("preparation", (pool.get("preparationTask") or {}).get("commandLine")),
        ("created", short_date(pool.get("creationDate"))),
        ("tags", ", ".join(pool.get("tags") or [])),
    ):
        if value not in (None, ""):
            t.add_row(key, str(value))
    console.print(t)
    for error in pool.get("errors") or []:
        err.print(f"[red]{error.get('message')}[/red]", highlight=False)


@app.command("close")
@handles_errors
def close(uuids: list[str], url: Url = None, token: Token = None) -> None:
    """Close pools: their slots go, their tasks are cancelled."""
    for_each(url, token, uuids, "POST", lambda u: f"/pools/{u}/close", "closed")


@app.command("delete")
@handles_errors
def delete(uuids: list[str], url: Url = None, token: Token = None) -> None:
    """Close and forget pools."""
    for_each(url, token, uuids, "DELETE", lambda u: f"/pools/{u}", "deleted")


# what the pool's slots printed: their preparation
add_output_commands(app, "pools", "A pool")
