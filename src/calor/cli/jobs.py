"""``calor job …``: create, list, info, tasks, terminate, delete."""

from typing import Annotated, Any

import typer

from calor.cli.common import (
    Json,
    Token,
    Url,
    api,
    console,
    for_each,
    handles_errors,
    listing,
    print_json,
    short_date,
    state,
    table,
)

app = typer.Typer(help="Jobs: groups of tasks, ordered by dependencies", no_args_is_help=True)


@app.command("create")
@handles_errors
def create(
    name: str,
    dependencies: Annotated[
        bool, typer.Option("--dependencies", help="its tasks may depend on each other")
    ] = False,
    max_wall_time: Annotated[str | None, typer.Option(help="terminate after [d.]hh:mm:ss")] = None,
    pool: Annotated[str | None, typer.Option(help="its tasks run on this pool")] = None,
    tag: Annotated[list[str], typer.Option("--tag", "-t")] = [],  # noqa: B006
    shortname: Annotated[str | None, typer.Option()] = None,
    url: Url = None,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Create a job; prints its uuid."""
    body: dict[str, Any] = {
        "name": name,
        "useDependencies": dependencies,
        "maxWallTime": max_wall_time,
        "poolUuid": pool,
        "tags": tag,
        "shortname": shortname,
    }
    with api(url, token) as client:
        uuid = client.json("POST", "/jobs", json=body)["uuid"]
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
    """List jobs."""
    listing(
        url,
        token,
        "/jobs",
        tag,
        as_json,
        ("uuid", "name", "state", "dependencies", "pool", "created", "tags"),
        lambda job: (
            job["uuid"][:8],
            job["name"],
            state(job["state"]),
            "yes" if job.get("useDependencies") else "no",
            (job.get("poolUuid") or "-")[:8],
            short_date(job.get("creationDate")),
            ",".join(job.get("tags") or []),
        ),
    )


@app.command("info")
@handles_errors
def info(uuid: str, url: Url = None, token: Token = None, as_json: Json = False) -> None:
    """A job and its tasks."""
    with api(url, token) as client:
        job = client.json("GET", f"/jobs/{uuid}")
        tasks = client.json("GET", f"/jobs/{uuid}/tasks")
    if as_json:
        print_json({**job, "tasks": tasks})
        return
    console.print(
        f"job {job['uuid']} [bold]{job['name']}[/bold]: {state(job['state'])}, "
        f"{len(tasks)} task(s), created {short_date(job.get('creationDate'))}"
    )
    t = table("uuid", "name", "state", "waits for", "dependencies")
    for task in tasks:
        deps = task.get("dependencies") or {}
        waits = [
            *deps.get("dependsOn", []),
            *(d["taskUuid"] for d in deps.get("advancedDependsOn") or []),
        ]
        t.add_row(
            task["uuid"][:8],
            task["name"],
            state(task["state"]),
            ", ".join(w[:8] for w in waits) or "-",
            deps.get("state") or "-",
        )
    console.print(t)


@app.command("tasks")
@handles_errors
def tasks(uuid: str, url: Url = None, token: Token = None) -> None:
    """The job's task uuids, one per line (for scripts)."""
    with api(url, token) as client:
        for task in client.json("GET", f"/jobs/{uuid}/tasks"):
            print(task["uuid"])


@app.command("terminate")
@handles_errors
def terminate(uuids: list[str], url: Url = None, token: Token = None) -> None:
    """Cancel what is left of jobs; they complete once their tasks have ended."""
    for_each(url, token, uuids, "POST", lambda u: f"/jobs/{u}/terminate", "terminated")


@app.command("delete")
@handles_errors
def delete(
    uuids: list[str],
    force: Annotated[bool, typer.Option(help="abort their running tasks")] = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Delete jobs and their tasks (refused while tasks run, unless --force)."""
    path = lambda u: f"/jobs/{u}"  # noqa: E731
    for_each(url, token, uuids, "DELETE", path, "deleted", params={"force": str(force)})
