"""``calor task …``: create, list, info, wait, stdout/stderr, abort, delete, snapshot, clone."""

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from calor.cli.client import Api, CliError
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
    pairs,
    print_json,
    short_date,
    state,
    table,
)

app = typer.Typer(help="Tasks: submit, follow, list, stop", no_args_is_help=True)

FINAL = {"Success", "Failure", "Cancelled"}
# exit codes of `task wait` and `task create --wait`
EXIT_CODES = {"Success": 0, "Failure": 1, "Cancelled": 2}
TIMEOUT_EXIT = 3


def _date(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"{option} {value!r} is not a date such as 2026-11-29T08:00", 2) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def task_filter(
    tags: list[str],
    all_tags: bool,
    states: list[str],
    name: str | None,
    after: str | None,
    before: str | None,
) -> dict[str, Any] | None:
    """The filter tree of contract §11.1 for these options (None: no filter)."""
    leaves: list[dict[str, Any]] = []
    if tags and all_tags:
        leaves += [{"field": "Tags", "operator": "Equal", "value": t} for t in tags]
    elif tags:
        leaves.append({"field": "Tags", "operator": "In", "values": tags})
    if states:
        leaves.append({"field": "State", "operator": "In", "values": states})
    if name:
        escaped = "".join("\\" + c if c in r"\.^$*+?()[]{}|" else c for c in name)
        leaves.append({"field": "Name", "operator": "Like", "value": f"/^{escaped}/"})
    for value, op in ((after, "GreaterThanOrEqual"), (before, "LessThan")):
        if value:
            leaves.append({"field": "CreationDate", "operator": op, "value": value})
    if not leaves:
        return None
    return {"operator": "And", "filters": leaves}


def counts(task: dict[str, Any]) -> tuple[int, int, int, int]:
    """(total, done, running, failed) instances of a full task."""
    completed = task.get("completedInstances") or []
    total = task.get("instanceCount") or len(completed)
    done = sum(1 for i in completed if i.get("state") == "Success")
    failed = sum(1 for i in completed if i.get("state") in ("Failure", "Cancelled"))
    return int(total), done, int(task.get("runningInstanceCount") or 0), failed


def watch(client: Api, uuids: list[str], timeout: float | None, quiet: bool) -> dict[str, Any]:
    """Poll the tasks until they end (or the timeout): a live bar per task on a terminal.
    Returns the last state of each."""
    deadline = time.monotonic() + timeout if timeout else None
    last: dict[str, Any] = {}
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
        transient=False,
    )
    with progress:
        bars = {u: progress.add_task(u[:8], total=1, detail="") for u in uuids}
        while True:
            for uuid in uuids:
                if uuid in last and last[uuid]["state"] in FINAL:
                    continue
                task = client.json("GET", f"/tasks/{uuid}")
                last[uuid] = task
                total, done, running, failed = counts(task)
                progress.update(
                    bars[uuid],
                    description=f"{task['name'][:24]} ({uuid[:8]})",
                    total=max(total, 1),
                    completed=done + failed,
                    detail=f"{task['state']}: {done} done, {running} running, {failed} failed",
                )
            if all(t["state"] in FINAL for t in last.values()):
                return last
            if deadline is not None and time.monotonic() >= deadline:
                return last
            time.sleep(0.5)


def outcome(tasks: dict[str, Any], as_json: bool) -> None:
    """Exit 0 when all succeeded, 1 if one failed, 2 if one was cancelled, 3 on timeout."""
    if as_json:
        print_json([{"uuid": u, "state": t["state"]} for u, t in tasks.items()])
    else:
        for uuid, task in tasks.items():
            console.print(f"{uuid}  {state(task['state'])}  {task['name']}", highlight=False)
    states = {t["state"] for t in tasks.values()}
    if states - FINAL:
        err.print(f"timed out; still running: {', '.join(sorted(states - FINAL))}")
        raise typer.Exit(TIMEOUT_EXIT)
    raise typer.Exit(max(EXIT_CODES[s] for s in states))


@app.command("create")
@handles_errors
def create(
    name: Annotated[str, typer.Argument(help="display name")],
    command: Annotated[
        str | None,
        typer.Option(
            "--command",
            "-c",
            help="DOCKER_CMD: the command's words, ${NAME} replaced; no shell is added "
            "(write sh -c '...' for pipes, ; or $VAR)",
        ),
    ] = None,
    profile: Annotated[str, typer.Option(help="profile")] = "docker-batch",
    image: Annotated[str | None, typer.Option(help="Docker image repo[:tag]")] = None,
    instances: Annotated[int | None, typer.Option("--instances", "-n")] = None,
    ranges: Annotated[str | None, typer.Option("--range", help="instance ids: 0-5,10")] = None,
    constant: Annotated[list[str], typer.Option("--constant", "-e", help="KEY=VALUE")] = [],  # noqa: B006
    tag: Annotated[list[str], typer.Option("--tag", "-t")] = [],  # noqa: B006
    resource: Annotated[list[str], typer.Option("--resource", "-r", help="input bucket")] = [],  # noqa: B006
    result: Annotated[str | None, typer.Option("--result", help="result bucket")] = None,
    pool: Annotated[str | None, typer.Option(help="run on this pool")] = None,
    job: Annotated[str | None, typer.Option(help="in this job")] = None,
    depends_on: Annotated[list[str], typer.Option("--depends-on", help="task uuid")] = [],  # noqa: B006
    retries: Annotated[int | None, typer.Option(help="retries per instance")] = None,
    shortname: Annotated[str | None, typer.Option()] = None,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="follow it to its end")] = False,
    timeout: Annotated[float | None, typer.Option(help="with --wait: seconds")] = None,
    url: Url = None,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Submit a task; prints its uuid (with --wait, follows it and exits as it ended)."""
    if instances is None and ranges is None:
        instances = 1
    body: dict[str, Any] = {
        "name": name,
        "profile": None if pool else profile,
        "constants": [
            *image_constants(image),
            *([{"key": "DOCKER_CMD", "value": command}] if command is not None else []),
            *pairs(constant, "--constant"),
        ],
        "tags": tag,
        "resourceBuckets": resource,
        "retrySettings": {"maxPerInstanceRetries": retries, "maxTotalRetries": None},
    }
    if ranges is not None:
        body["advancedRanges"] = ranges
    else:
        body["instanceCount"] = instances
    for key, value in (
        ("resultBucket", result),
        ("poolUuid", pool),
        ("jobUuid", job),
        ("shortname", shortname),
    ):
        if value is not None:
            body[key] = value
    if depends_on:
        body["dependencies"] = {"dependsOn": depends_on}
    with api(url, token) as client:
        uuid = client.json("POST", "/tasks", json=body)["uuid"]
        if not wait:
            if as_json:
                print_json({"uuid": uuid})
            else:
                print(uuid)
            return
        err.print(f"submitted {uuid}", highlight=False)
        outcome(watch(client, [uuid], timeout, as_json), as_json)


@app.command("list")
@handles_errors
def list_(
    tag: Annotated[list[str], typer.Option("--tag", "-t", help="any of these tags")] = [],  # noqa: B006
    all_tags: Annotated[bool, typer.Option("--all-tags", help="all the --tag, not any")] = False,
    state_: Annotated[list[str], typer.Option("--state", "-s", help="e.g. Success")] = [],  # noqa: B006
    name: Annotated[str | None, typer.Option(help="name prefix")] = None,
    created_after: Annotated[str | None, typer.Option(help="ISO date")] = None,
    created_before: Annotated[str | None, typer.Option(help="ISO date")] = None,
    page_size: Annotated[int, typer.Option(help="tasks per page")] = 50,
    all_pages: Annotated[bool, typer.Option("--all", help="every page, not the first")] = False,
    newest: Annotated[bool, typer.Option("--newest", help="newest first")] = False,
    url: Url = None,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """List tasks (one page, or --all), filtered by tags, state, name and dates."""
    flt = task_filter(
        tag,
        all_tags,
        state_,
        name,
        _date(created_after, "--created-after"),
        _date(created_before, "--created-before"),
    )
    found: list[dict[str, Any]] = []
    more = False
    with api(url, token) as client:
        page_token = None
        while True:
            body = {
                "maximumResults": page_size,
                "filter": flt,
                "token": page_token,
                "orderType": "Desc" if newest else "Asc",
            }
            page = client.json("POST", "/tasks/paginate", json=body)
            found += page["data"]
            page_token = page.get("nextToken")
            more = bool(page.get("isTruncated"))
            if not (all_pages and more):
                break
    if as_json:
        print_json(found)
        return
    t = table("uuid", "name", "state", "progress", "done", "running", "failed", "created", "tags")
    for task in found:
        total, done, running, failed = counts(task)
        t.add_row(
            task["uuid"][:8],
            task["name"],
            state(task["state"]),
            f"{task.get('progress', 0):.0f}%",
            f"{done}/{total}",
            str(running),
            str(failed),
            short_date(task.get("creationDate")),
            ",".join(task.get("tags") or []),
        )
    console.print(t)
    if more and not all_pages:
        err.print("more tasks: --all for every page, or narrow the filters")


@app.command("info")
@handles_errors
def info(uuid: str, url: Url = None, token: Token = None, as_json: Json = False) -> None:
    """A task's fields and instances."""
    with api(url, token) as client:
        task = client.json("GET", f"/tasks/{uuid}")
    if as_json:
        print_json(task)
        return
    fields = table("field", "value", title=f"task {task['uuid']}")
    total, done, running, failed = counts(task)
    for key, value in (
        ("name", task["name"]),
        ("shortname", task["shortname"]),
        ("state", state(task["state"])),
        ("profile", task.get("profile")),
        ("instances", f"{total}: {done} done, {running} running, {failed} failed"),
        ("progress", f"{task.get('progress', 0):.1f}%"),
        ("created", short_date(task.get("creationDate"))),
        ("ended", short_date(task.get("endDate"))),
        ("wall time", task.get("wallTime")),
        ("execution time", task.get("executionTime")),
        ("pool", task.get("poolUuid")),
        ("job", task.get("jobUuid")),
        ("tags", ", ".join(task.get("tags") or [])),
        ("resources", ", ".join(task.get("resourceBuckets") or [])),
        ("results", f"{task.get('resultBucket')} ({task.get('resultsCount', 0)} uploads)"),
        ("dependencies", (task.get("dependencies") or {}).get("state")),
    ):
        if value not in (None, "", "None (0 uploads)"):
            fields.add_row(key, str(value))
    console.print(fields)
    running_info = (task.get("status") or {}).get("runningInstancesInfo") or {}
    rows = table("instance", "state", "attempts", "cpu s", "memory MB", "exit / error")
    for inst in running_info.get("perRunningInstanceInfo") or []:
        rows.add_row(
            str(inst["instanceId"]),
            state(inst.get("phase")),
            str(inst.get("executionAttemptCount", 0)),
            f"{inst.get('executionTimeSec', 0):.1f}",
            str(inst.get("currentMemoryMB", 0)),
            "",
        )
    for inst in task.get("completedInstances") or []:
        error = inst.get("error") or {}
        rows.add_row(
            str(inst["instanceId"]),
            state(inst.get("state")),
            str(inst.get("executionAttemptCount", 0)),
            f"{inst.get('execTimeSec', 0):.1f}",
            str(inst.get("peakMemoryMB", 0)),
            error.get("message", ""),
        )
    if rows.row_count:
        console.print(rows)
    for error in task.get("errors") or []:
        err.print(f"[red]{error.get('message')}[/red]", highlight=False)


@app.command("wait")
@handles_errors
def wait(
    uuids: Annotated[list[str], typer.Argument(help="one or more tasks")],
    timeout: Annotated[float | None, typer.Option(help="seconds")] = None,
    url: Url = None,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Follow tasks to their end with a progress bar each; the exit code says how they
    ended: 0 all succeeded, 1 one failed, 2 one was cancelled, 3 the timeout came first."""
    with api(url, token) as client:
        outcome(watch(client, uuids, timeout, as_json), as_json)


def _output(
    stream: str,
    uuid: str,
    fresh: bool,
    instance: int | None,
    follow: bool,
    url: str | None,
    token: str | None,
    kind: str = "tasks",
) -> None:
    path = f"/{kind}/{uuid}/{stream}" + (f"/{instance}" if instance is not None else "")
    with api(url, token) as client:
        if not follow:
            print(client.text("POST" if fresh else "GET", path), end="")
            return
        # everything so far, then what is new until the task has ended
        print(client.text("GET", path), end="", flush=True)
        client.text("POST", path)  # move the fresh cursor past what was printed
        while True:
            ended = client.json("GET", f"/{kind}/{uuid}")["state"] in FINAL | {"Closed"}
            print(client.text("POST", path), end="", flush=True)
            if ended:
                return
            time.sleep(0.5)


Fresh = Annotated[bool, typer.Option("--fresh", help="only what is new since the last --fresh")]
Instance = Annotated[int | None, typer.Option("--instance", "-i", help="one instance")]
Follow = Annotated[bool, typer.Option("--follow", "-f", help="keep printing until it ends")]


def add_output_commands(target: typer.Typer, kind: str, what: str) -> None:
    """``stdout`` and ``stderr`` of a task or a pool (``kind``: tasks | pools)."""
    for stream, help_text in (
        ("stdout", f"{what}'s standard output (lines prefixed with their instance, unless -i)."),
        ("stderr", f"{what}'s standard error."),
    ):

        def make(stream: str, help_text: str) -> None:
            @target.command(stream, help=help_text)
            @handles_errors
            def show(
                uuid: str,
                fresh: Fresh = False,
                instance: Instance = None,
                follow: Follow = False,
                url: Url = None,
                token: Token = None,
            ) -> None:
                _output(stream, uuid, fresh, instance, follow, url, token, kind=kind)

        make(stream, help_text)


add_output_commands(app, "tasks", "A task")


@app.command("abort")
@handles_errors
def abort(uuids: list[str], url: Url = None, token: Token = None) -> None:
    """Abort tasks (their running instances are stopped)."""
    for_each(url, token, uuids, "POST", lambda u: f"/tasks/{u}/abort", "aborted")


@app.command("delete")
@handles_errors
def delete(uuids: list[str], url: Url = None, token: Token = None) -> None:
    """Delete tasks (aborting them first if they run)."""
    for_each(url, token, uuids, "DELETE", lambda u: f"/tasks/{u}", "deleted")


@app.command("snapshot")
@handles_errors
def snapshot(
    uuid: str,
    periodic: Annotated[int | None, typer.Option(help="every N seconds (0: stop)")] = None,
    whitelist: Annotated[str | None, typer.Option(help="regex of files to keep")] = None,
    blacklist: Annotated[str | None, typer.Option(help="regex of files to skip")] = None,
    bucket: Annotated[str | None, typer.Option(help="bucket (default: the result bucket)")] = None,
    prefix: Annotated[str | None, typer.Option(help="key prefix in the bucket")] = None,
    url: Url = None,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Upload a running task's working directory now (or every --periodic seconds)."""
    body = {
        "whitelist": whitelist,
        "blacklist": blacklist,
        "bucket": bucket,
        "bucketPrefix": prefix,
    }
    with api(url, token) as client:
        if periodic is not None:
            client.request(
                "POST", f"/tasks/{uuid}/snapshot/periodic", json={**body, "interval": periodic}
            )
            answer: dict[str, Any] = {"uuid": uuid, "interval": periodic}
        else:
            answer = client.json("POST", f"/tasks/{uuid}/snapshot", json=body)
    if as_json:
        print_json(answer)
    elif periodic is not None:
        err.print(f"snapshots of {uuid} every {periodic} s" if periodic else "snapshots stopped")
    else:
        print(answer["id"])


@app.command("clone")
@handles_errors
def clone(
    uuid: str,
    name: Annotated[str | None, typer.Option(help="a new name")] = None,
    what: Annotated[
        str, typer.Option("--instances", help="all | failed | cancelled | both (retry/resume)")
    ] = "all",
    url: Url = None,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """A new task from this one (all instances, or only the failed / cancelled ones)."""
    actions = {"all": "clone", "failed": "retry", "cancelled": "resume", "both": "recover"}
    if what not in actions:
        raise CliError(f"--instances must be one of {', '.join(actions)}", 2)
    with api(url, token) as client:
        answer = client.json(
            "POST", f"/tasks/{uuid}/{actions[what]}", json={"name": name} if name else None
        )
    if as_json:
        print_json(answer)
    else:
        print(answer["uuid"])
