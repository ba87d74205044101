"""``hone api``: the REST API (uvicorn), after checking it is safe to serve."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("api")(api)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Use DIR/hone.db (unless HONE_DATABASE_URL is set)."
    ),
    database_url: str | None = typer.Option(
        None, "--database-url", help="SQLAlchemy URL; overrides HONE_DATABASE_URL."
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        max=64,
        help="API processes sharing the port (PostgreSQL only; each runs its own reaper).",
    ),
) -> None:
    """Serve the REST API (OpenAPI at /docs). Refuses a stale schema, and refuses to listen
    beyond loopback unless some token exists (HONE_ADMIN_TOKEN or `hone token create`)."""
    import uvicorn

    from hone.settings import settings_for
    from service import migrate
    from service.app import create_app
    from service.auth import has_active_tokens
    from service.db import Database, is_sqlite

    settings = settings_for(data_dir=data_dir, database_url=database_url)
    url = settings.database_url
    if workers > 1 and is_sqlite(url):
        typer.echo(
            f"hone: --workers {workers} needs PostgreSQL: on SQLite the API is one process, the "
            "database's only writer. Use --workers 1, or set HONE_DATABASE_URL to a PostgreSQL URL.",
            err=True,
        )
        raise typer.Exit(2)
    if not migrate.is_current(url):
        typer.echo(
            "hone: the database schema is missing or out of date; run `hone db upgrade` first", err=True
        )
        raise typer.Exit(2)
    if not is_loopback(host) and settings.admin_token is None:
        db = Database(url)
        with db.reading() as session:
            has_tokens = has_active_tokens(session)
        db.dispose()
        if not has_tokens:
            typer.echo(
                f"hone: refusing to listen on {host} without tokens: anyone on the network could drive it. "
                "Set HONE_ADMIN_TOKEN or run `hone token create --role admin`, or listen on 127.0.0.1.",
                err=True,
            )
            raise typer.Exit(2)
    # The page's address, where a person reads the logs (compose's `docker compose logs api`
    # included): a wildcard host is reached as localhost on the machine itself.
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    typer.echo(f"hone: page http://{shown}:{port}/ (hone's own), REST at /api/v1, OpenAPI at /docs")
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
        return
    # uvicorn starts each process from an import string; they read their settings from the
    # environment, where the chosen database URL is put for them.
    os.environ["HONE_DATABASE_URL"] = url
    uvicorn.run(
        "service.app:create_app", factory=True, workers=workers, host=host, port=port, log_level="info"
    )
