"""The operator's billing commands: ``calor admin budget`` and ``calor admin usage``. They open
the store themselves, like ``calor admin user``; carbon is computed with the CALOR_* rates of
the environment they run in (the same as the server's, settings.py)."""

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from calor.cli.common import console, err, print_json, table
from calor.cli.store_options import DEFAULT_DATA_DIR, DatabaseUrl, DataDir
from calor.domain.accounting import JOULES_PER_WH, Accounting, carbon_grams, energy_method
from calor.domain.errors import CalorError
from calor.services.accounting import AccountingService
from calor.services.users import UserService
from calor.settings import Settings, accounting_from_env

budget_cmd = typer.Typer(help="Users' credit budgets", no_args_is_help=True)

Email = Annotated[str, typer.Option("--user", help="the user's e-mail")]


def open_store(data_dir: Path, database_url: str | None) -> tuple[UserService, AccountingService]:
    """The services of the admin commands, on the store they name."""
    from calor.wiring import accounting_service, open_database, user_service

    try:
        rates = accounting_from_env(os.environ)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_key=os.environ.get("CALOR_SECRET_KEY"),
        accounting=rates,
    )
    db = open_database(settings)
    return user_service(db, settings), accounting_service(db, settings)


def _fail(exc: CalorError) -> None:
    err.print(f"[red]error:[/red] {exc.message}", highlight=False)
    raise typer.Exit(code=1)


def _set_budget(
    data_dir: Path, database_url: str | None, email: str, credits: float | None
) -> None:
    users, accounts = open_store(data_dir, database_url)
    try:
        accounts.set_budget(users.find(email).id, credits)
    except CalorError as exc:
        _fail(exc)


@budget_cmd.command("set")
def budget_set(
    user: Email,
    credits: Annotated[float, typer.Option("--credits", help="the budget, in credits")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database_url: DatabaseUrl = None,
) -> None:
    """Give a user a credit budget: once they have consumed it, their new tasks and pools are
    refused (HTTP 402, the SDK's NotEnoughCreditsException)."""
    _set_budget(data_dir, database_url, user, credits)
    err.print(f"budget of {user}: {credits:g} credits")


@budget_cmd.command("clear")
def budget_clear(
    user: Email, data_dir: DataDir = DEFAULT_DATA_DIR, database_url: DatabaseUrl = None
) -> None:
    """Remove a user's budget: they may spend without a cap again."""
    _set_budget(data_dir, database_url, user, None)
    err.print(f"{user} has no budget now")


@budget_cmd.command("show")
def budget_show(
    user: Email, data_dir: DataDir = DEFAULT_DATA_DIR, database_url: DatabaseUrl = None
) -> None:
    """A user's budget and what they consumed of it."""
    users, accounts = open_store(data_dir, database_url)
    try:
        user_id = users.find(user).id
    except CalorError as exc:
        _fail(exc)
        return
    budget = accounts.budget(user_id)
    consumed = accounts.account(user_id).credits
    if budget is None:
        console.print(f"{user}: no budget; {consumed:.6f} credits consumed", highlight=False)
    else:
        console.print(
            f"{user}: {budget.consumed:.6f} of {budget.credits:g} credits consumed",
            highlight=False,
        )


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"--since {text!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], UTC)"
        ) from None
    return when if when.tzinfo is None else when.astimezone(UTC).replace(tzinfo=None)


def _figures(t: Any, rates: Accounting) -> dict[str, Any]:
    return {
        "attempts": t.attempts,
        "core_seconds": t.core_seconds,
        "cpu_time_sec": t.cpu_time_sec,
        "wall_time_sec": t.wall_time_sec,
        "peak_memory_mb": t.peak_memory_mb,
        "energy_wh": t.energy_j / JOULES_PER_WH,
        "energy_method": energy_method(t.energy_j, t.measured_energy_j),
        "carbon_gco2e": carbon_grams(t.energy_j, rates.pue, rates.grams_co2e_per_kwh),
        "credits": t.credits,
    }


def _sum(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("attempts", "core_seconds", "cpu_time_sec", "wall_time_sec", "credits"):
        out[key] = sum(i[key] for i in items)
    out["peak_memory_mb"] = max((i["peak_memory_mb"] for i in items), default=0)
    out["energy_wh"] = sum(i["energy_wh"] for i in items)
    out["carbon_gco2e"] = sum(i["carbon_gco2e"] for i in items)
    methods = {i["energy_method"] for i in items}
    out["energy_method"] = methods.pop() if len(methods) == 1 else "mixed"
    return out


def usage(
    since: Annotated[
        str | None, typer.Option("--since", help="attempts ended from then on (UTC date)")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="one user's e-mail")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database_url: DatabaseUrl = None,
) -> None:
    """The billing report: per user and per task (or pool), what their instance attempts
    consumed: core-seconds, CPU and wall time, peak memory, energy, carbon and credits.
    Deleted tasks are in it: billing outlives them."""
    start = _since(since)
    users, accounts = open_store(data_dir, database_url)
    user_id = None
    if user is not None:
        try:
            user_id = users.find(user).id
        except CalorError as exc:
            _fail(exc)
    rates = accounts.rates
    by_user: dict[int, dict[str, Any]] = {}
    for line in accounts.report(start, user_id):
        entry = by_user.setdefault(line.user_id, {"email": line.email, "tasks": []})
        entry["tasks"].append(
            {
                "task_uuid": line.task_uuid,
                "pool_uuid": line.pool_uuid,
                "name": line.name,
                **_figures(line.totals, rates),
            }
        )
    report = {
        "since": start.isoformat() if start else None,
        "price_per_core_hour": rates.price_per_core_hour,
        "grams_co2e_per_kwh": rates.grams_co2e_per_kwh,
        "pue": rates.pue,
        "users": [{**entry, **_sum(entry["tasks"])} for entry in by_user.values()],
    }
    if as_json:
        print_json(report)
        return
    _print(report)


def _print(report: dict[str, Any]) -> None:
    t = table(
        "user",
        "task / pool",
        "core-s",
        "CPU s",
        "wall s",
        "peak MB",
        "energy Wh",
        "gCO2e",
        "credits",
    )

    def row(who: str, what: str, f: dict[str, Any], style: str | None = None) -> None:
        t.add_row(
            who,
            what,
            f"{f['core_seconds']:.1f}",
            f"{f['cpu_time_sec']:.1f}",
            f"{f['wall_time_sec']:.1f}",
            str(f["peak_memory_mb"]),
            f"{f['energy_wh']:.4f} ({f['energy_method']})",
            f"{f['carbon_gco2e']:.4f}",
            f"{f['credits']:.6f}",
            style=style,
        )

    for entry in report["users"]:
        for task in entry["tasks"]:
            what = task["task_uuid"] or f"pool {task['pool_uuid']} (slots)"
            row(entry["email"], f"{task['name']}\n{what}", task)
        row(entry["email"], "total", entry, style="bold")
    console.print(t)
    since = report["since"] or "the start"
    console.print(
        f"since {since}; price {report['price_per_core_hour']:g} credits per core-hour",
        highlight=False,
    )
