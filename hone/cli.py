"""The ``hone`` command. Each group of subcommands lives in its own module under
``hone/commands``; heavy imports (torch, optuna, the service) happen inside the commands
so that ``hone --help`` stays instant."""

from __future__ import annotations

import typer

from hone.commands import register

app = typer.Typer(
    name="hone",
    help="Hyperparameter search as a service: random search narrowed coarse-to-fine, run by pulling workers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
register(app)


def main() -> None:
    app()
