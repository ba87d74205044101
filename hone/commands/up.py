"""``hone up``: the whole local stack — API, workers and optuna-dashboard — on SQLite."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from hone.settings import DEFAULT_DATA_DIR, store_user_config

console = Console(highlight=False, soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    app.command("up")(up)


def up(
    workers: Annotated[int, typer.Option("--workers", "-w", min=0, help="Worker processes to start.")] = 2,
    port: Annotated[int, typer.Option(help="The API's port.")] = 8000,
    dashboard_port: Annotated[int, typer.Option(help="optuna-dashboard's port.")] = 8080,
    data_dir: Annotated[
        Path, typer.Option(help="Holds the SQLite database, the admin token and the logs.")
    ] = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option(help="Interface the API and the dashboard listen on.")] = "127.0.0.1",
) -> None:
    """Start the API, WORKERS workers and optuna-dashboard on a SQLite file in DATA_DIR.

    Prints the URLs and an admin token. Ctrl-C stops everything, workers first, so no trial is left running.
    """
    from hone.stack import Stack, StackError

    stack = Stack(
        data_dir=data_dir,
        host=host,
        port=port,
        dashboard_port=dashboard_port,
        workers=workers,
        say=console.print,
    )
    stack.install_signal_handlers()
    try:
        console.print(f"hone: preparing {data_dir}/ (schema upgrade, admin token)…")
        created = stack.prepare()
        console.print(
            f"hone: starting the API, {workers} worker(s) and the dashboard (logs in {stack.log_dir}/)…"
        )
        stack.start()
    except StackError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", markup=True)
        stack.shutdown(worker_timeout=10, server_timeout=5)
        raise typer.Exit(1) from None

    if stack.stopping:  # Ctrl-C while starting
        stack.shutdown()
        console.print("hone: stopped")
        raise typer.Exit(0)

    token_file = data_dir / "admin-token"
    stored = store_user_config({"HONE_API_URL": stack.api_url, "HONE_TOKEN": stack.token})
    console.print()
    console.print(
        f"[bold green]hone is up[/bold green]   API {stack.api_url}  (docs: {stack.api_url}/docs)",
        markup=True,
    )
    console.print(
        f"            page {stack.api_url}/  (hone's own: rounds, fleet, steering; give it the token)"
    )
    console.print(f"            dashboard {stack.dashboard_url} (read-only)")
    console.print(f"admin token ({'new, ' if created else ''}kept in {token_file}): {stack.token}")
    console.print(f"the CLI finds this API and token from any directory: stored in {stored}")
    console.print("try the example (in another terminal):")
    venv_bin = Path(sys.executable).parent
    if sys.prefix != sys.base_prefix and str(venv_bin) not in os.environ.get("PATH", "").split(os.pathsep):
        console.print(f"  . {os.path.relpath(venv_bin)}/activate")
    console.print("  hone study create examples/digits.json")
    console.print("  hone study watch <id>")
    console.print("Ctrl-C stops everything.")

    code = stack.supervise()
    stack.shutdown()
    console.print("hone: stopped")
    raise typer.Exit(code)
