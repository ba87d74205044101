"""The ``hone`` command. Each group of subcommands lives in its own module under
``hone/commands``; heavy imports (torch, optuna, the service) happen inside the commands
so that ``hone --help`` stays instant."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from hone.commands import register

app = typer.Typer(
    name="hone",
    help="Hyperparameter search as a service: random search narrowed coarse-to-fine, run by pulling workers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Click's plain help: it wraps to the terminal and never cuts an option's name, where
    # rich's option table cut long ones at 80 columns.
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"hone {version('hone')}")
        except PackageNotFoundError:  # run from a tree that was never installed
            typer.echo("hone (not installed)")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print hone's version and exit."
        ),
    ] = False,
) -> None:
    pass


register(app)


def main() -> None:
    app()
