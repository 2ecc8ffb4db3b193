"""Alembic environment for the example app.

The database URL comes from ``DATABASE_URL`` (see ``example_app.db.database_url``).

Every successful online ``alembic upgrade`` (and ``downgrade``) invocation appends one
row to ``migration_log``, even when there was nothing to apply, so shipit's end-to-end
tests can check that migrations ran exactly once, on the leader, per deploy.
``migration_log`` belongs to this environment, like ``alembic_version`` belongs to
alembic: no revision creates or drops it.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from pathlib import Path

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection

from example_app import db

config = context.config
# Callers that own logging (tests) set config.attributes["configure_logger"] = False.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

#: Alembic commands whose invocations are recorded in ``migration_log``.
LOGGED_COMMANDS = frozenset({"upgrade", "downgrade"})

migration_log = sa.Table(
    "migration_log",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ran_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("release", sa.String(255), nullable=False),
    sa.Column("release_dir", sa.Text, nullable=False),
    sa.Column("command", sa.String(32), nullable=False),
    sa.Column("from_revision", sa.String(255), nullable=False),
    sa.Column("to_revision", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
)


def _command_name() -> str:
    """Name of the alembic command running this env (``upgrade``, ``downgrade``, ``current``...).

    alembic's command functions pass their inner step function as ``fn``; its name is the
    command's (``display_version`` for ``current``, ``do_stamp`` for ``stamp``, ...).
    """
    fn = context.get_context().opts.get("fn")
    return getattr(fn, "__name__", "")


def _heads(connection: Connection) -> str:
    return ",".join(sorted(context.get_context().get_current_heads())) or "base"


def _record_run(connection: Connection, command: str, before: str) -> None:
    """Append this invocation to ``migration_log`` in its own committed transaction."""
    if connection.in_transaction():  # autobegun by alembic's version-table reads
        connection.commit()
    with connection.begin():
        migration_log.create(connection, checkfirst=True)
        connection.execute(
            migration_log.insert().values(
                ran_at=db.utcnow(),
                hostname=db.hostname(),
                release=db.release_id(),
                release_dir=str(Path(config.config_file_name or ".").resolve().parent),
                command=command,
                from_revision=before,
                to_revision=_heads(connection),
                pid=os.getpid(),
            )
        )


def run_migrations_offline() -> None:
    """``--sql`` mode: print the SQL instead of running it (nothing is logged)."""
    context.configure(url=db.database_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations against ``DATABASE_URL`` and log the invocation."""
    engine = db.make_engine(db.database_url(), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection)
            command = _command_name()
            before = _heads(connection)
            with context.begin_transaction():
                context.run_migrations()
            if command in LOGGED_COMMANDS:
                _record_run(connection, command, before)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
