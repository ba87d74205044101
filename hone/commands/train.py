"""``hone train``: one run of the built-in trainer, from a JSON config and/or flags.

Every knob of ``trainer.config.TrainConfig`` is a flag, made from the model's fields so
that a new knob gets its flag without touching this file. ``--config run.json`` loads a
JSON object of knobs; flags given on the command line override it. Progress is printed a
line per epoch; ``--json`` prints only the result as one JSON object.

Exit codes: 0 when the run completed or was stopped, 1 when it diverged, 2 when the
config or the data is wrong (one red line naming the problem, no traceback).
"""

from __future__ import annotations

import inspect
import json
import time
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from rich.console import Console

from trainer.config import TrainConfig

if TYPE_CHECKING:
    from trainer.run import TrainResult

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

_HELP = "Train the built-in MLP once and print its per-epoch progress and test metrics."


def register(app: typer.Typer) -> None:
    app.command("train", help=_HELP, no_args_is_help=False)(_command())


def fail(message: str, code: int = 2) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    raise typer.Exit(code)


def _command() -> Any:
    """The ``train`` callback with one option per knob in its signature."""

    def train_command(**options: Any) -> None:
        config_path: Path | None = options.pop("config_path")
        as_json: bool = options.pop("as_json")
        values = _load_config_file(config_path) if config_path is not None else {}
        for name, raw in options.items():
            if raw is not None:
                values[name] = _parse_list_knob(name, raw)
        config = build_config(values)
        run(config, as_json=as_json)

    parameters = [
        inspect.Parameter(
            "config_path",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Path | None,
            default=typer.Option(
                None,
                "--config",
                help="JSON file of knobs; flags override it.",
                exists=True,
                dir_okay=False,
            ),
        ),
        inspect.Parameter(
            "as_json",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=bool,
            default=typer.Option(False, "--json", help="Print only the result, as one JSON object."),
        ),
    ]
    parameters += [_knob_parameter(name, field) for name, field in TrainConfig.model_fields.items()]
    train_command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    train_command.__annotations__ = {p.name: p.annotation for p in parameters}
    return train_command


def _knob_parameter(name: str, field: FieldInfo) -> inspect.Parameter:
    flag = "--" + name.replace("_", "-")
    default = field.get_default(call_default_factory=True)
    shown = ",".join(map(str, default)) if isinstance(default, list) else default
    help_text = f"{field.description or name.replace('_', ' ')} [default: {shown}]"
    annotation: Any
    kind: Any = field.annotation
    if typing.get_origin(kind) is typing.Literal or kind is int or kind is float:
        annotation = kind | None
    elif kind is bool:
        annotation, flag = bool | None, f"{flag}/--no-{flag[2:]}"
    else:  # str, str | None, and the "one value or a comma-separated list" knobs
        annotation = str | None
        if _is_list_knob(kind):
            help_text += " (comma-separated for one per layer)"
    option = typer.Option(None, flag, help=help_text, show_default=False)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=option)


def _is_list_knob(kind: Any) -> bool:
    return isinstance(kind, types.UnionType) and any(
        typing.get_origin(arg) is list for arg in typing.get_args(kind)
    )


def _parse_list_knob(name: str, raw: Any) -> Any:
    if not (isinstance(raw, str) and _is_list_knob(TrainConfig.model_fields[name].annotation)):
        return raw
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if len(parts) == 1:
        return parts[0]
    return parts


def _load_config_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}")
    except json.JSONDecodeError as exc:
        fail(f"{path} is not valid JSON: {exc}")
    if not isinstance(data, dict):
        fail(f"{path} must hold a JSON object of knobs, not {type(data).__name__}")
    return data


def build_config(values: dict[str, Any]) -> TrainConfig:
    """A validated config, or exit 2 with a message naming each bad field."""
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "config"
            got = f" (got {error['input']!r})" if error["type"] != "missing" and error["loc"] else ""
            message = error["msg"].removeprefix("Value error, ")  # pydantic's prefix, not the user's words
            problems.append(f"{field}: {message}{got}")
        fail("invalid config: " + "; ".join(problems))


def run(config: TrainConfig, *, as_json: bool) -> None:
    from trainer.errors import TrainerError
    from trainer.run import train

    if not as_json:
        console.print(_describe(config), soft_wrap=True)
    started = time.perf_counter()
    try:
        result = train(config, None if as_json else _print_epoch(config.max_epochs))
    except TrainerError as exc:
        fail(str(exc))
    if as_json:
        # print(), not rich: the object must reach stdout as is, whatever the terminal width.
        print(json.dumps(result.to_json()))
    else:
        console.print(_summary(result, time.perf_counter() - started), soft_wrap=True)
    if result.status == "diverged":
        raise typer.Exit(1)


def _describe(config: TrainConfig) -> str:
    widths = config.layer_widths()
    shape = f"{len(widths)}×{widths[0]}" if len(set(widths)) == 1 else "-".join(map(str, widths))
    return (
        f"[bold]hone train[/bold] {config.dataset}: {shape} {config.activation}, "
        f"{config.optimizer} lr {config.lr:g}, batch {config.batch_size}, "
        f"{config.max_epochs} epochs on {config.device}"
    )


def _print_epoch(max_epochs: int) -> Any:
    digits = len(str(max_epochs))

    def report(epoch: int, metrics: dict[str, float]) -> bool:
        name, form = ("accuracy", ".4f") if "val_accuracy" in metrics else ("rmse", ".4g")
        console.print(
            f"epoch {epoch:>{digits}}/{max_epochs}  lr {metrics['lr']:.3g}  "
            f"train_loss {metrics['train_loss']:.4f}  train_{name} {metrics[f'train_{name}']:{form}}  "
            f"val_loss {metrics['val_loss']:.4f}  val_{name} {metrics[f'val_{name}']:{form}}  "
            f"{metrics['seconds']:.2f}s",
            soft_wrap=True,
        )
        return False

    return report


def _summary(result: TrainResult, seconds: float) -> str:
    colour = {"completed": "green", "stopped": "yellow", "diverged": "red"}[result.status]
    parts = [f"[{colour}]{result.status}[/{colour}]"]
    if result.status == "diverged":
        parts.append("a loss became NaN or infinite; try a smaller --lr")
    if result.stopped_early:
        parts.append(f"stopped early after epoch {len(result.epochs)}")
    if result.best_epoch is not None:
        parts.append(f"best epoch {result.best_epoch}")
    parts += [f"{name} {value:.4f}" for name, value in result.test.items()]
    if result.train_rows_scored < result.train_rows:
        parts.append(
            f"train_* on a fixed sample of {result.train_rows_scored} of {result.train_rows} training rows"
        )
    else:
        parts.append(f"train_* on all {result.train_rows} training rows")
    parts.append(f"{seconds:.1f}s")
    return " · ".join(parts)
