"""Alembic environment: run against the connection calor hands in (see Database.migrate)."""

from alembic import context

from calor.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("calor migrations run through calor.store.engine.Database.migrate")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
