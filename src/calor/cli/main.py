"""The ``calor`` command: ``serve``, ``admin`` (users and tokens), and the client commands
(``login``, ``info``, ``task``, ``pool``, ``job``, ``bucket``) that talk to a server."""

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from calor import access_log as calor_access_log
from calor.cli import account, billing, buckets, jobs, pools, tasks
from calor.cli.store_options import DEFAULT_DATA_DIR, DatabaseUrl, DataDir
from calor.domain.errors import CalorError
from calor.services.users import UserService
from calor.settings import Limits, Settings, accounting_from_env

app = typer.Typer(
    help="calor: a self-hosted compute platform speaking the Qarnot API", no_args_is_help=True
)
admin = typer.Typer(
    help="Administration: users, API tokens, budgets and usage", no_args_is_help=True
)
user_cmd = typer.Typer(help="Users", no_args_is_help=True)
token_cmd = typer.Typer(help="API tokens", no_args_is_help=True)
app.add_typer(admin, name="admin")
app.add_typer(tasks.app, name="task")
app.add_typer(pools.app, name="pool")
app.add_typer(jobs.app, name="job")
app.add_typer(buckets.app, name="bucket")
app.command("login")(account.login)
app.command("info")(account.info)
admin.add_typer(user_cmd, name="user")
admin.add_typer(token_cmd, name="token")
admin.add_typer(billing.budget_cmd, name="budget")
admin.command("usage")(billing.usage)

console = Console()
err = Console(stderr=True)


def _fail(exc: CalorError) -> None:
    err.print(f"[red]error:[/red] {exc.message}")
    raise typer.Exit(code=1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="CALOR_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="CALOR_PORT")] = 8000,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database_url: DatabaseUrl = None,
    cores: Annotated[
        int | None, typer.Option(envvar="CALOR_CORES", help="cores the local executor may use")
    ] = None,
    sandbox: Annotated[
        str, typer.Option(envvar="CALOR_SANDBOX", help="auto | on | off (bubblewrap)")
    ] = "auto",
    drain_seconds: Annotated[float, typer.Option(envvar="CALOR_DRAIN_SECONDS")] = 5.0,
    keep_alive_seconds: Annotated[
        int,
        typer.Option(
            envvar="CALOR_KEEP_ALIVE_SECONDS",
            min=1,
            help="how long idle client connections are kept open (API and S3 gateway)",
        ),
    ] = 75,
    storage_port: Annotated[
        int | None,
        typer.Option(
            envvar="CALOR_STORAGE_PORT", help="port of the S3 gateway (default: --port + 1)"
        ),
    ] = None,
    access_log: Annotated[
        str,
        typer.Option(
            envvar="CALOR_ACCESS_LOG",
            help="one JSON line per API and S3 request: stderr, stdout, a file path, or off",
        ),
    ] = "stderr",
    storage_url: Annotated[
        str | None,
        typer.Option(
            envvar="CALOR_STORAGE_URL",
            help="the gateway's URL as clients reach it (default: the API's host, storage port)",
        ),
    ] = None,
    blob_store: Annotated[
        str,
        typer.Option(
            envvar="CALOR_BLOB_STORE",
            help="where object bytes live: fs (in the data dir) or s3://bucket/prefix",
        ),
    ] = "fs",
    runtime: Annotated[
        str,
        typer.Option(
            envvar="CALOR_RUNTIME",
            help="docker | host | auto (Docker when an engine answers at DOCKER_HOST or the "
            "default socket)",
        ),
    ] = "auto",
    docker_network: Annotated[
        str,
        typer.Option(
            envvar="CALOR_DOCKER_NETWORK",
            help="Docker network of profiles with network (docker-network); others get none",
        ),
    ] = "bridge",
    executor: Annotated[
        str,
        typer.Option(
            envvar="CALOR_EXECUTOR",
            help="local (this machine) | dask (a Dask cluster: pip install calor[dask])",
        ),
    ] = "local",
    dask_scheduler: Annotated[
        str | None,
        typer.Option(envvar="CALOR_DASK_SCHEDULER", help="e.g. tcp://scheduler:8786"),
    ] = None,
    executor_url: Annotated[
        str | None,
        typer.Option(
            envvar="CALOR_EXECUTOR_URL",
            help="this server's URL as Dask workers reach it (default: http://host:port)",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(envvar="CALOR_LOG_LEVEL")] = "warning",
) -> None:
    """Start the API server with the local executor."""
    from calor.wiring import build_server

    if sandbox not in ("auto", "on", "off"):
        raise typer.BadParameter("--sandbox must be auto, on or off")
    if runtime not in ("auto", "docker", "host"):
        raise typer.BadParameter("--runtime must be auto, docker or host")
    if executor not in ("local", "dask"):
        raise typer.BadParameter("--executor must be local or dask")
    if executor == "dask" and not dask_scheduler:
        raise typer.BadParameter("--executor dask needs --dask-scheduler tcp://host:port")
    try:
        limits = Limits.from_env(os.environ)
        accounting = accounting_from_env(os.environ)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    settings = Settings(
        data_dir=data_dir,
        host=host,
        port=port,
        database_url=database_url,
        cores=cores,
        sandbox=None if sandbox == "auto" else sandbox == "on",
        drain_seconds=drain_seconds,
        keep_alive_seconds=keep_alive_seconds,
        access_log=access_log,
        limits=limits,
        accounting=accounting,
        runtime=runtime,
        docker_network=docker_network,
        secret_key=os.environ.get("CALOR_SECRET_KEY"),
        storage_port=storage_port if storage_port is not None else port + 1,
        storage_url=storage_url,
        blob_store=blob_store,
        executor=executor,
        dask_scheduler=dask_scheduler,
        executor_url=executor_url,
    )
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    if access_log != "off":
        calor_access_log.configure(access_log)
    try:
        server = build_server(settings)
    except RuntimeError as exc:  # e.g. --runtime docker and no engine answers
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from None
    if server.platform.users.count() == 0:
        user, token = server.platform.users.create("admin@calor.local")
        console.print(f"created user [bold]{user.email}[/bold]; API token (shown once):")
        console.print(token, highlight=False, soft_wrap=True)
    console.print(server.where, highlight=False, soft_wrap=True)
    console.print(f"calor listening on http://{host}:{port}", highlight=False)
    console.print(f"S3 gateway on http://{host}:{settings.storage_port}", highlight=False)
    api = uvicorn.Config(
        server.app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        timeout_graceful_shutdown=int(drain_seconds) + 5,
        timeout_keep_alive=settings.keep_alive_seconds,
        access_log=False,  # calor's own (calor/access_log.py) says more, and as JSON
    )
    storage = uvicorn.Config(
        server.gateway,
        host=host,
        port=settings.storage_port or port + 1,
        log_level=log_level.lower(),
        lifespan="off",
        timeout_graceful_shutdown=int(drain_seconds) + 5,
        timeout_keep_alive=settings.keep_alive_seconds,
        access_log=False,
    )
    asyncio.run(_serve_both(api, storage))


class _SignalFreeServer(uvicorn.Server):
    """The gateway's server: the API's server owns the signals and stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve_both(api: uvicorn.Config, storage: uvicorn.Config) -> None:
    gateway = _SignalFreeServer(storage)
    gateway_task = asyncio.create_task(gateway.serve())
    try:
        await uvicorn.Server(api).serve()
    finally:
        gateway.should_exit = True
        await gateway_task


def _users(data_dir: Path, database_url: str | None) -> UserService:
    return billing.open_store(data_dir, database_url)[0]


@user_cmd.command("create")
def user_create(
    email: Annotated[str, typer.Option("--email", help="the user's e-mail (S3 access key)")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a user and print its API token (shown once)."""
    try:
        user, token = _users(data_dir, database_url).create(email)
    except CalorError as exc:
        _fail(exc)
        return
    err.print(f"created user {user.email}; API token (shown once):")
    print(token)


@user_cmd.command("list")
def user_list(data_dir: DataDir = DEFAULT_DATA_DIR, database_url: DatabaseUrl = None) -> None:
    """List users."""
    table = Table("id", "email", "created")
    for user in _users(data_dir, database_url).all():
        table.add_row(str(user.id), user.email, user.created_at.isoformat(timespec="seconds"))
    console.print(table)


@token_cmd.command("rotate")
def token_rotate(
    email: Annotated[str, typer.Option("--email")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database_url: DatabaseUrl = None,
) -> None:
    """Replace a user's API token; the old one stops working. Prints the new token once."""
    try:
        token = _users(data_dir, database_url).rotate(email)
    except CalorError as exc:
        _fail(exc)
        return
    err.print(f"new API token for {email} (shown once):")
    print(token)
