"""``hone db upgrade|downgrade|current``: create or migrate Optuna's schema and hone's."""

from __future__ import annotations

from pathlib import Path

import typer

db_app = typer.Typer(
    name="db", help="Create or migrate the database schema (Optuna's and hone's).", no_args_is_help=True
)

DataDir = typer.Option(None, "--data-dir", help="Use DIR/hone.db (unless HONE_DATABASE_URL is set).")
DatabaseUrl = typer.Option(None, "--database-url", help="SQLAlchemy URL; overrides HONE_DATABASE_URL.")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app)


def _url(data_dir: Path | None, database_url: str | None) -> str:
    from hone.settings import settings_for

    return settings_for(data_dir=data_dir, database_url=database_url).database_url


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _wait_for_database(url: str, seconds: float) -> None:
    """Connect until the database answers, for at most ``seconds``: a database that starts
    with its stack (compose) may accept connections a little after its healthcheck passes."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError
    from tenacity import (
        RetryCallState,
        RetryError,
        Retrying,
        retry_if_exception_type,
        stop_after_delay,
        wait_fixed,
    )

    def say(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        first_line = str(error).strip().splitlines()[0] if error else ""
        typer.echo(
            f"hone: waiting for the database at {_shown(url)} ({first_line}); "
            f"{max(seconds - (state.seconds_since_start or 0.0), 0):.0f} s left",
            err=True,
        )

    engine = create_engine(url)
    try:
        for attempt in Retrying(
            retry=retry_if_exception_type(OperationalError),
            stop=stop_after_delay(seconds),
            wait=wait_fixed(1.0),
            before_sleep=say,
        ):
            with attempt, engine.connect() as connection:
                connection.execute(text("SELECT 1"))
    except RetryError as error:
        last = error.last_attempt.exception()
        first_line = str(last).strip().splitlines()[0] if last else ""
        typer.echo(
            f"hone: the database at {_shown(url)} did not answer within {seconds:g} s: {first_line}", err=True
        )
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


@db_app.command()
def upgrade(
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
    wait: float = typer.Option(
        0.0,
        "--wait",
        min=0.0,
        help="Seconds to keep trying while the database does not accept connections yet (compose).",
    ),
) -> None:
    """Create or upgrade Optuna's tables and hone's to the latest revision (safe to repeat)."""
    from service import migrate

    url = _url(data_dir, database_url)
    if wait > 0:
        _wait_for_database(url, wait)
    migrate.upgrade(url)
    typer.echo(f"{_shown(url)}: schema current (hone revision {migrate.current_revision(url)})")


@db_app.command()
def downgrade(
    revision: str = typer.Argument(..., help='hone revision to go back to; "base" drops hone\'s tables'),
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Downgrade hone's tables (Optuna's are left as they are)."""
    from service import migrate

    url = _url(data_dir, database_url)
    migrate.downgrade(url, revision)
    typer.echo(f"{_shown(url)}: hone revision {migrate.current_revision(url) or 'none'}")


@db_app.command()
def current(data_dir: Path | None = DataDir, database_url: str | None = DatabaseUrl) -> None:
    """Print hone's revision and whether the schema is current (exit 1 if not)."""
    from service import migrate

    url = _url(data_dir, database_url)
    revision = migrate.current_revision(url)
    ok = migrate.is_current(url)
    typer.echo(
        f"{_shown(url)}: hone revision {revision or 'none'} (head {migrate.head_revision()}); "
        + ("current" if ok else "NOT current: run `hone db upgrade`")
    )
    if not ok:
        raise typer.Exit(1)
