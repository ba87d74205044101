"""Engines, sessions and the one transaction context manager.

hone's tables and Optuna's live in the same database. SQLite gets WAL (readers such as
optuna-dashboard never block the API), a busy timeout, and ``BEGIN IMMEDIATE`` so a
transaction that will write takes the write lock up front instead of failing half-way
with "database is locked".
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.combining import Batches, Combiner

SQLITE_BUSY_TIMEOUT_S = 30
APPLICATION_NAME = "hone pid "


POOL_SIZE = 20
POOL_OVERFLOW = 10  # the reaper and the events stream's threads, beyond the request threads


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_dir(url: str) -> None:
    database = make_url(url).database
    if is_sqlite(url) and database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def create_db_engine(url: str, *, for_writes: bool = True, **kwargs: Any) -> Engine:
    """An engine configured for hone's access pattern on SQLite or PostgreSQL.

    On SQLite, ``for_writes=False`` gives an engine whose transactions begin deferred,
    so read-only requests do not queue behind the write lock.
    """
    ensure_sqlite_dir(url)
    if not is_sqlite(url):
        # Named by process, so pg_stat_activity and pg_locks tell which API process of
        # several holds a connection or a study's lock.
        connect_args = {"application_name": f"{APPLICATION_NAME}{os.getpid()}"}
        # As many kept connections as the API's request threads (service.app's lifespan caps
        # them at POOL_SIZE): a smaller pool would open and close an overflow connection per
        # request, and a new PostgreSQL backend costs more than a heartbeat.
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=POOL_SIZE,
            max_overflow=POOL_OVERFLOW,
            connect_args=connect_args,
            **kwargs,
        )

    engine = create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}, **kwargs
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when a transaction begins (see "begin").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if for_writes else "BEGIN")

    return engine


class Database:
    """The engine and session factory of one process, plus its process lock.

    ``process_lock`` serialises what changes a grant's view of a study (grants, results,
    the reaper, rounds, enqueues, deletions) on SQLite, where the API is one process and
    the only writer; Optuna's ask writes on its own connection outside the grant's
    transaction, so the lock, not the database, keeps the grant's choice valid. On
    PostgreSQL it is a no-op: each transaction takes its study's advisory lock
    (:mod:`service.study_locks`), which holds across API processes.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        read_engine = create_db_engine(url, for_writes=False) if self.is_sqlite else self.engine
        self.read_sessions = sessionmaker(read_engine, expire_on_commit=False)
        self.process_lock: AbstractContextManager[object] = (
            threading.RLock() if self.is_sqlite else nullcontext()
        )
        # This process's waiting grants, served together (service.grants, service.combining).
        self.grant_queue: Combiner[Any, Any] = Combiner()
        # This process's heartbeats, written in batches (service.leases.heartbeats).
        self.heartbeat_queue: Batches[Any, Any] = Batches()

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on any exception."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only unit of work (rolled back at the end; never takes the write lock)."""
        with self.read_sessions() as session:
            yield session  # closing the session rolls the read transaction back

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_sessions.kw["bind"].dispose()
