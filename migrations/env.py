"""Alembic environment for hone's own tables (prefix ``hone_``).

The URL comes from the caller (``service.migrate`` puts it in the config's attributes) or
from hone's settings, never from an ini file. Optuna's tables share the database and
have their own migrations, so everything that is not ``hone_*`` is left alone, and hone
records its revision in ``hone_alembic_version`` beside Optuna's ``alembic_version``.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from service.db import SQLITE_BUSY_TIMEOUT_S, is_sqlite
from service.migrate import VERSION_TABLE, include_object, render_item
from service.tables import Base

config = context.config


def _url() -> str:
    url = config.attributes.get("url")
    if url:
        return str(url)
    from hone.settings import get_settings

    return get_settings().database_url


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
        include_object=include_object,
        render_item=render_item,
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _url()
    # No foreign-key pragma here: batch migrations on SQLite recreate tables, and with
    # foreign keys on, dropping the old table would cascade-delete its children.
    connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_S} if is_sqlite(url) else {}
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            _configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
