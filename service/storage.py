"""The Optuna storage that hone's service talks to, on the same database as hone's tables.

Optuna builds its own engine from the URL, so the SQLite settings that ``service.db``
applies to hone's engine (WAL, busy timeout, ``BEGIN IMMEDIATE``) are attached to
Optuna's engine here as well: an Optuna write must queue for the lock rather than fail
with "database is locked" when it upgrades a read transaction.
"""

from __future__ import annotations

from typing import Any

import optuna
from sqlalchemy import event

from service.db import SQLITE_BUSY_TIMEOUT_S, ensure_sqlite_dir, is_sqlite


def _engine_kwargs(url: str) -> dict[str, Any]:
    if is_sqlite(url):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}}
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10}


def _configure_sqlite(engine: Any) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_optuna_storage(url: str, *, create_tables: bool = False) -> optuna.storages.RDBStorage:
    """Optuna's ``RDBStorage`` for ``url``.

    Args:
        url: The SQLAlchemy URL shared with hone's tables.
        create_tables: Create Optuna's tables if missing. Off in the service: the schema is
            created once by ``hone db upgrade`` (``service.migrate.upgrade``), never by many
            processes racing at start-up.
    """
    ensure_sqlite_dir(url)
    storage = optuna.storages.RDBStorage(
        url,
        engine_kwargs=_engine_kwargs(url),
        skip_compatibility_check=not create_tables,
        skip_table_creation=not create_tables,
    )
    if is_sqlite(url):
        # The constructor already connected; drop those connections so that every
        # connection from here on carries the listeners.
        storage.engine.dispose()
        _configure_sqlite(storage.engine)
    return storage
