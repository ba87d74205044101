"""``hone token create|list|revoke``: bearer tokens, managed directly in the database.

These talk to the database, not the API, so the first admin token can be made before
any token exists (a management step, like ``hone db upgrade``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from service.db import Database

token_app = typer.Typer(
    name="token", help="Create, list and revoke API tokens (directly in the database).", no_args_is_help=True
)

DataDir = typer.Option(None, "--data-dir", help="Use DIR/hone.db (unless HONE_DATABASE_URL is set).")
DatabaseUrl = typer.Option(None, "--database-url", help="SQLAlchemy URL; overrides HONE_DATABASE_URL.")


def register(app: typer.Typer) -> None:
    app.add_typer(token_app)


def _database(data_dir: Path | None, database_url: str | None) -> Database:
    from hone.settings import settings_for
    from service import migrate
    from service.db import Database

    url = settings_for(data_dir=data_dir, database_url=database_url).database_url
    if migrate.current_revision(url) is None:
        typer.echo("hone's tables do not exist here yet; run `hone db upgrade` first", err=True)
        raise typer.Exit(2)
    return Database(url)


@token_app.command()
def create(
    role: str = typer.Option(..., "--role", help="read, worker or admin"),
    name: str = typer.Option("", "--name", help="What the token is for (shown in `hone token list`)."),
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    from service.auth import ROLES, create_token
    from service.tables import utcnow

    if role not in ROLES:
        raise typer.BadParameter(f"must be one of {', '.join(ROLES)}", param_hint="--role")
    db = _database(data_dir, database_url)
    with db.transaction() as session:
        row, secret = create_token(session, role=role, name=name or f"{role} token", now=utcnow())
        token_id = row.id
    db.dispose()
    typer.echo(f"token {token_id} ({role}) — shown once, store it now:", err=True)
    typer.echo(secret)


@token_app.command("list")
def list_(data_dir: Path | None = DataDir, database_url: str | None = DatabaseUrl) -> None:
    """List tokens (id, role, name, prefix, created, last used, revoked); never the secrets."""
    from service.auth import list_tokens

    db = _database(data_dir, database_url)
    with db.reading() as session:
        rows = list_tokens(session)
    db.dispose()
    typer.echo("id\trole\tname\tprefix\tcreated\tlast_used\trevoked")
    for row in rows:
        typer.echo(
            "\t".join(
                str(v or "-")
                for v in (
                    row.id,
                    row.role,
                    row.name,
                    row.prefix + "…",
                    row.created_at,
                    row.last_used_at,
                    row.revoked_at,
                )
            )
        )


@token_app.command()
def revoke(
    token_id: int = typer.Argument(..., help="The id from `hone token list`."),
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Revoke a token: requests with it get 401 from now on."""
    from service.auth import revoke_token
    from service.tables import utcnow

    db = _database(data_dir, database_url)
    with db.transaction() as session:
        revoked = revoke_token(session, token_id=token_id, now=utcnow())
    db.dispose()
    if not revoked:
        typer.echo(f"no active token with id {token_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"token {token_id} revoked")
