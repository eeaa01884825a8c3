"""Alembic environment: always run on a connection handed in by `migrations_api`."""

from __future__ import annotations

from alembic import context

from signoria.orchestrator.storage.schema import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
