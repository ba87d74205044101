"""hone's Alembic migrations on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from service import migrate
from service.migrate import include_object
from service.tables import Base


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_migrations_have_a_single_head() -> None:
    heads = ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_heads()
    assert heads == [migrate.head_revision()]


def test_upgrade_downgrade_and_upgrade_again(db_url: str) -> None:
    assert migrate.current_revision(db_url) is None
    migrate.upgrade(db_url)
    tables = _tables(db_url)
    assert {"hone_studies", "hone_rounds", "hone_trials", "hone_tokens", "hone_workers"} <= tables
    assert {"studies", "trials", "alembic_version", "hone_alembic_version"} <= tables
    assert migrate.is_current(db_url)

    migrate.downgrade(db_url, "base")
    left = _tables(db_url)
    assert not {t for t in left if t.startswith("hone_") and t != "hone_alembic_version"}
    assert "studies" in left  # Optuna's tables are Optuna's
    assert not migrate.is_current(db_url)

    migrate.upgrade(db_url)
    migrate.upgrade(db_url)  # repeating is harmless
    assert migrate.is_current(db_url)


def test_the_migrations_match_the_tables_exactly(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"include_object": include_object, "compare_type": True}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
