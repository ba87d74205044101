"""Subcommands of ``hone``, one module per group."""

from __future__ import annotations

import importlib

import typer

# Each module exposes ``register(app)``. Listed here so the order of --help is stable.
_MODULES: tuple[str, ...] = (
    "up",
    "dashboard",
    "study",
    "worker",
    "train",
    "api",
    "db",
    "token",
)


def register(app: typer.Typer) -> None:
    for name in _MODULES:
        importlib.import_module(f"hone.commands.{name}").register(app)
