"""The options of the commands that open the store themselves (serve, admin)."""

from pathlib import Path
from typing import Annotated

import typer

DataDir = Annotated[
    Path, typer.Option("--data-dir", envvar="CALOR_DATA_DIR", help="where calor keeps its data")
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="CALOR_DATABASE_URL",
        help="SQLAlchemy URL; default: SQLite in the data dir "
        "(PostgreSQL: postgresql+psycopg://user@host/db)",
    ),
]
DEFAULT_DATA_DIR = Path("./calor-data")
