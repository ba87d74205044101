"""``hone study …``: create, follow and manage studies through the API.

Every command talks to the API with :class:`hone.client.Client`. The API URL and token
come from ``--api`` / ``--token``, else ``HONE_API_URL`` / ``HONE_TOKEN`` (the environment,
``.env``, or the per-user file where ``hone up`` stores them: ``hone.settings.user_config_file``),
else the admin token in ``hone-data/admin-token`` — so on a laptop nothing needs to be
copied, from any directory. Failures print one red line: exit 1 when the API refuses or
cannot be reached, 2 when the input is wrong.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

from hone.client import ApiError, Client
from hone.settings import DEFAULT_DATA_DIR, get_settings
from protocol import DiagnosisOut, RoundOut, StudySummary, TrialCounts, TrialDetail

ADMIN_TOKEN_FILE = "admin-token"
STATES = ("running", "complete", "pruned", "failed", "interrupted", "cancelled")
# Interrupted trials run again (re-queued): only these count as done in the progress bar.
FINISHED_STATES = ("complete", "pruned", "failed", "cancelled")
DONE_STATUSES = ("completed", "stopped", "failed")

study_app = typer.Typer(help="Create, follow and manage studies.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api", envvar="HONE_API_URL", help="API URL [default: HONE_API_URL or http://127.0.0.1:8000]"
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="HONE_TOKEN",
        help="Bearer token [default: HONE_TOKEN, as `hone up` stores it]",
        show_default=False,
    ),
]
StudyId = Annotated[int, typer.Argument(help="The study's id (as shown by `hone study list`).")]


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def resolve_token(token: str | None, data_dir: Path = DEFAULT_DATA_DIR) -> str | None:
    """The flag or HONE_TOKEN (environment, .env, the per-user file), else hone-data/admin-token."""
    if token:
        return token
    try:
        settings_token = get_settings().token
    except ValueError as exc:
        fail(f"invalid settings: {exc}", 2)
    if settings_token is not None:
        return settings_token.get_secret_value()
    path = data_dir / ADMIN_TOKEN_FILE
    if path.is_file():
        return path.read_text().strip() or None
    return None


def resolve_api(api: str | None) -> str:
    return api or get_settings().api_url


@contextmanager
def client_for(api: str | None, token: str | None) -> Iterator[Client]:
    """A client, with every API error turned into one red line and an exit code."""
    client = Client(resolve_api(api), resolve_token(token))
    try:
        yield client
    except ApiError as exc:
        fail(str(exc), 2 if exc.status in (400, 422) else 1)
    finally:
        client.close()


def load_spec(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}", 2)
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", 2)
    if not isinstance(spec, dict):
        fail(f"{path} must hold a JSON object (a study spec)", 2)
    return spec


@study_app.command("create")
def create(
    file: Annotated[Path, typer.Argument(help="The study spec, e.g. examples/digits.json.")],
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Use this name instead of the spec's (names are unique)."),
    ] = None,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Create a study from a JSON spec and print its id."""
    spec = load_spec(file)
    if name:
        spec["name"] = name
    with client_for(api, token) as client:
        study = client.create_study(spec)
    study_id = study.id
    console.print(f"created study [bold]{study_id}[/bold] ({study.name})")
    console.print(f"follow it with:  [cyan]hone study watch {study_id}[/cyan]")


@study_app.command("list")
def list_(api: ApiOption = None, token: TokenOption = None) -> None:
    """List the studies: status, progress and best value."""
    with client_for(api, token) as client:
        studies = client.list_studies()
    if not studies:
        console.print("no studies yet — try [cyan]hone study create examples/digits.json[/cyan]")
        return
    table = Table("id", "name", "status", "round", "finished", "best", "direction")
    for study in studies:
        counts = study_counts(study)
        table.add_row(
            str(study.id),
            study.name,
            study.status,
            str(study.current_round or ""),
            f"{finished_count(counts)}/{study.budget or '?'}",
            format_value(best_value(study)),
            study.direction,
        )
    console.print(table)


@study_app.command("show")
def show(study_id: StudyId, api: ApiOption = None, token: TokenOption = None) -> None:
    """Show a study's summary: status, counts, best trial and current round."""
    with client_for(api, token) as client:
        study = client.get_study(study_id)
        rounds = client.rounds(study_id)
        best = client.trial(study_id, study.best.number) if study.best is not None else None
    console.print(render_summary(study, rounds, started=None))
    if study.failures:
        causes = Table("trials", "failed with", title="failures by cause")
        for group in study.failures:
            causes.add_row(str(group.count), escape(group.reason))
        console.print(causes)
    if best is not None:
        console.print(render_best(study, best))


@study_app.command("diagnose")
def diagnose(
    study_id: StudyId,
    api: ApiOption = None,
    token: TokenOption = None,
    round: Annotated[int | None, typer.Option("--round", min=1, help="Only this round's trials.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")] = False,
) -> None:
    """The basic recipe: is the best model biased or overfitting, and what to search next."""
    with client_for(api, token) as client:
        found = client.diagnosis(study_id, round=round)
    if as_json:
        print(found.model_dump_json())
        return
    console.print(render_diagnosis(found))


def render_diagnosis(found: DiagnosisOut) -> Group:
    """The verdict, its numbers, the advice and the proposed box as a panel and tables."""
    where = f"round {found.round}" if found.round is not None else "the study"
    colour = {"fine": "green", "high_bias": "yellow", "high_variance": "yellow", "both": "red"}[found.verdict]
    target = "objective.target_error" if found.target_source != "default" else "default"
    lines = [
        f"[bold]{escape(found.verdict)}[/bold] · {where} · error = {escape(found.error)}",
        f"training error {found.training_error:.4g} ({escape(found.training_metric)})  "
        f"validation error {found.validation_error:.4g}  target {found.target_error:.4g} ({target})",
        f"avoidable bias {found.avoidable_bias:.4g}  variance {found.variance:.4g}  "
        f"thresholds {found.thresholds.bias:.4g} / {found.thresholds.variance:.4g} "
        f"({escape(found.thresholds.basis)})",
        escape(found.why),
        *(f"• {escape(line)}" for line in found.advice),
    ]
    parts: list[Any] = [Panel("\n".join(lines), title="hone diagnosis", border_style=colour)]
    trials = Table("trial", "round", "training error", "validation error", "bias", "variance", "verdict")
    for t in found.trials:
        trials.add_row(
            str(t.number),
            str(t.round),
            f"{t.training_error:.4g}",
            f"{t.validation_error:.4g}",
            f"{t.avoidable_bias:.4g}",
            f"{t.variance:.4g}",
            t.verdict,
        )
    parts.append(trials)
    if found.proposal is not None and found.proposal.moves:
        moves = Table("parameter", "move", "from", "to", "stopped", title="the recipe's next box")
        for move in found.proposal.moves:
            moves.add_row(
                move.param,
                move.direction,
                _range_text(move.before),
                _range_text(move.after),
                escape(move.stopped or ""),
            )
        parts.append(moves)
    if found.proposal is not None:
        parts += [Text(f"note: {note}") for note in found.proposal.notes]
        parts.append(
            Text(f'open it: POST /api/v1/studies/{found.study_id}/rounds with {{"box": "diagnosis"}}')
        )
    elif found.proposal_note:
        parts.append(Text(f"no box: {found.proposal_note}"))
    return Group(*parts)


def _range_text(entry: dict[str, Any]) -> str:
    if "choices" in entry:
        return ", ".join(format_value(c) for c in entry["choices"])
    return f"{format_value(entry['low'])} … {format_value(entry['high'])}"


@study_app.command("watch")
def watch(
    study_id: StudyId,
    api: ApiOption = None,
    token: TokenOption = None,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between refreshes.")] = 1.0,
) -> None:
    """Follow a study live until it completes (Ctrl-C leaves; the study keeps running)."""
    with client_for(api, token) as client:
        try:
            follow(client, study_id, interval=interval)
        except KeyboardInterrupt:
            console.print(f"left the view; the study goes on (hone study show {study_id})")


def follow(
    client: Client, study_id: int, *, interval: float, sleep: Callable[[float], None] = time.sleep
) -> None:
    started = time.monotonic()
    first = client.get_study(study_id)
    baseline = finished_count(study_counts(first))
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while True:
            study = client.get_study(study_id)
            rounds = client.rounds(study_id)
            live.update(render_summary(study, rounds, started=started, baseline=baseline))
            if study.status in DONE_STATUSES:
                break
            sleep(interval)
    if not console.is_terminal:
        console.line()
    best = best_value(study)
    console.print(f"study {study_id} {study.status}; best value {format_value(best)}")
    if study.failure:
        console.print(f"[red]failed:[/red] {escape(study.failure)}")


@study_app.command("pause")
def pause(study_id: StudyId, api: ApiOption = None, token: TokenOption = None) -> None:
    """Pause a study: no new trials start; running ones finish."""
    with client_for(api, token) as client:
        client.pause(study_id)
    console.print(f"study {study_id} paused (resume with: hone study resume {study_id})")


@study_app.command("resume")
def resume(study_id: StudyId, api: ApiOption = None, token: TokenOption = None) -> None:
    """Resume a paused study."""
    with client_for(api, token) as client:
        client.resume(study_id)
    console.print(f"study {study_id} resumed")


@study_app.command("stop")
def stop(study_id: StudyId, api: ApiOption = None, token: TokenOption = None) -> None:
    """Stop a study for good: no new trials; its results stay."""
    with client_for(api, token) as client:
        client.stop(study_id)
    console.print(f"study {study_id} stopped")


@study_app.command("delete")
def delete(
    study_id: StudyId,
    api: ApiOption = None,
    token: TokenOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a study and all its trials."""
    if not yes and not typer.confirm(f"delete study {study_id} and all its trials?", default=False):
        fail("not deleted", 1)
    with client_for(api, token) as client:
        client.delete_study(study_id)
    console.print(f"study {study_id} deleted")


@study_app.command("export")
def export(
    study_id: StudyId,
    format: Annotated[str, typer.Option("--format", "-f", help="csv or json")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Export a study's trials as CSV or JSON."""
    if format not in ("csv", "json"):
        fail(f"--format must be csv or json, not {format!r}", 2)
    with client_for(api, token) as client:
        if output is None:
            client.export_to(study_id, sys.stdout.buffer, format=format)  # type: ignore[arg-type]
            sys.stdout.buffer.flush()
            return
        try:
            with output.open("wb") as out:
                written = client.export_to(study_id, out, format=format)  # type: ignore[arg-type]
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}", 2)
    err_console.print(f"wrote {written} bytes to {output}")


# -- the summary view ------------------------------------------------------------------


def study_counts(study: StudySummary) -> dict[str, int]:
    counts: TrialCounts = study.counts
    return {state: getattr(counts, state) for state in STATES}


def finished_count(counts: dict[str, int]) -> int:
    return sum(counts[state] for state in FINISHED_STATES)


def best_value(study: StudySummary) -> float | None:
    return study.best.value if study.best is not None else None


def format_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_box(box: dict[str, Any]) -> Table:
    table = Table("parameter", "range", box=None, pad_edge=False)
    for name, bounds in box.items():
        if isinstance(bounds, dict) and "choices" in bounds:
            text = ", ".join(format_value(choice) for choice in bounds["choices"])
        elif isinstance(bounds, dict):
            text = f"{format_value(bounds.get('low'))} … {format_value(bounds.get('high'))}"
        else:
            text = format_value(bounds)
        table.add_row(name, text)
    return table


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def render_best(study: StudySummary, best: TrialDetail) -> Group:
    """The best trial: its parameters, then the metrics its result reported."""
    heading = Text(f"best trial #{best.number}: {study.metric} {format_value(best.value)}", style="bold")
    params = Table("parameter", "value")
    for name, value in best.params.items():
        params.add_row(name, format_value(value))
    if not best.metrics:
        return Group(heading, params)
    metrics = Table("metric", "value")
    for name, value in best.metrics.items():
        metrics.add_row(name, format_value(value))
    return Group(heading, params, metrics)


def render_summary(
    study: StudySummary,
    rounds: list[RoundOut],
    *,
    started: float | None,
    baseline: int = 0,
) -> Panel:
    """The live view: counts per state, best so far, current round and its box, progress, ETA."""
    counts = study_counts(study)
    finished = finished_count(counts)
    budget = study.budget
    current = next((r for r in rounds if r.number == study.current_round), rounds[-1] if rounds else None)

    header = Table.grid(padding=(0, 2))
    header.add_row(
        f"[bold]{study.name}[/bold] (#{study.id})",
        f"status [bold]{study.status}[/bold]",
        f"{study.direction} {study.metric}",
    )
    states = Table.grid(padding=(0, 2))
    states.add_row(
        *(f"{state} [bold]{counts[state]}[/bold]" for state in STATES),
        f"best so far [bold green]{format_value(best_value(study))}[/bold green]",
    )
    parts: list[Any] = [header, states]
    if study.failure:
        parts.append(f"[bold red]failed:[/bold red] {escape(study.failure)}")

    if current is not None:
        parts.append(
            f"round [bold]{current.number}[/bold] of {study.rounds} "
            f"({current.budget} configurations, {current.status})"
        )
        if current.box:
            parts.append(format_box(current.box))

    progress = Progress(
        TextColumn("trials"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[eta]}"),
    )
    eta = ""
    if started is not None and budget:
        elapsed = time.monotonic() - started
        done_here = finished - baseline
        if done_here > 0 and finished < budget:
            eta = f"about {format_duration(elapsed / done_here * (budget - finished))} left"
    progress.add_task("trials", total=budget or None, completed=finished, eta=eta)
    parts.append(progress)
    return Panel(Group(*parts), title="hone study", expand=False)
