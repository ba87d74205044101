"""Create and upgrade the database schema: Optuna's tables and hone's (``hone db upgrade``).

Migrations run once, as a step before the service starts, so that many API processes
never race to create tables. ``is_current`` lets the service refuse to start on a stale
schema and ``/readyz`` report it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

import migrations
from service.db import ensure_sqlite_dir, is_sqlite
from service.storage import create_optuna_storage
from service.tables import UTCDateTime

VERSION_TABLE = "hone_alembic_version"
_OPTUNA_TABLES = ("version_info", "alembic_version", "studies", "trials")


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Autogenerate sees hone's tables only; Optuna's belong to Optuna's migrations."""
    if type_ == "table":
        return bool(name and name.startswith("hone_") and name != VERSION_TABLE)
    table = getattr(obj, "table", None)
    if table is not None:
        return bool(table.name.startswith("hone_"))
    return True


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Migrations are history: they must not import today's Python types from service.tables.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def alembic_config(url: str) -> Config:
    """An Alembic config for hone's migrations, pointed at ``url`` (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(Path(next(iter(migrations.__path__)))))
    config.attributes["url"] = url
    return config


@lru_cache(maxsize=1)
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise RuntimeError("hone's migrations have no head revision")
    return head


def _sqlite_file_missing(url: str) -> bool:
    database = make_url(url).database
    return is_sqlite(url) and bool(database) and database != ":memory:" and not Path(str(database)).exists()


def revision_on(connection: Connection) -> str | None:
    """hone's schema revision, read over an open connection."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def current_revision(url: str) -> str | None:
    """hone's schema revision in the database at ``url`` (None before the first upgrade)."""
    if _sqlite_file_missing(url):
        return None
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return revision_on(connection)
    finally:
        engine.dispose()


def _optuna_is_current(url: str) -> bool:
    if _sqlite_file_missing(url):
        return False
    engine = create_engine(url, poolclass=NullPool)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    if not set(_OPTUNA_TABLES) <= tables:
        return False
    storage = create_optuna_storage(url)
    try:
        return storage.get_current_version() == storage.get_head_version()
    finally:
        storage.engine.dispose()


def is_current(url: str) -> bool:
    """Whether both Optuna's and hone's schemas are at their heads."""
    return current_revision(url) == head_revision() and _optuna_is_current(url)


def upgrade(url: str, revision: str = "head") -> None:
    """Create or upgrade Optuna's schema, then hone's, in the database at ``url``."""
    ensure_sqlite_dir(url)
    storage = create_optuna_storage(url, create_tables=True)
    try:
        if storage.get_current_version() != storage.get_head_version():
            storage.upgrade()
    finally:
        storage.engine.dispose()
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Downgrade hone's tables to ``revision`` ("base" drops them); Optuna's are left alone."""
    command.downgrade(alembic_config(url), revision)
