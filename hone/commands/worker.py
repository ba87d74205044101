"""``hone worker``: lease trials from the API and run them, one process per device slot."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def worker(
    api: str = typer.Option(
        "http://127.0.0.1:8000", "--api", envvar="HONE_API_URL", help="Base URL of the API."
    ),
    token: str | None = typer.Option(
        None, "--token", envvar="HONE_TOKEN", help="Bearer token with the worker role.", show_default=False
    ),
    devices: str = typer.Option("auto", "--devices", help="auto, cpu, or a list such as cuda:0,cuda:1."),
    trials_per_device: int = typer.Option(
        1, "--trials-per-device", min=1, help="Trials run side by side per device."
    ),
    studies: str | None = typer.Option(
        None, "--studies", help="Only lease from these study ids (comma-separated)."
    ),
    json_logs: bool = typer.Option(
        False, "--json-logs", envvar="HONE_LOG_JSON", help="One JSON object per log line."
    ),
    max_trials: int | None = typer.Option(
        None, "--max-trials", min=1, help="Each slot leaves after this many trials."
    ),
    exit_when_idle: float | None = typer.Option(
        None, "--exit-when-idle", min=0, help="Each slot leaves after this many seconds without work."
    ),
    stop_timeout: float = typer.Option(
        20.0,
        "--stop-timeout",
        min=0,
        help="Seconds a running trial gets to stop after SIGTERM before it is given back.",
    ),
    auth_retry: float = typer.Option(
        30.0,
        "--auth-retry",
        min=0.1,
        help="Seconds between tries while the API refuses the token (401/403): the worker waits "
        "for the operator to fix it instead of exiting.",
    ),
    report_overhead: float = typer.Option(
        0.1,
        "--report-overhead",
        envvar="HONE_REPORT_OVERHEAD",
        min=0.0,
        max=1.0,
        help="Share of a slot's time step reports may cost: steps that come faster are sent "
        "together (0: send every step at once).",
    ),
) -> None:
    """Pull trials from the API and run them until stopped (SIGTERM/Ctrl-C: give trials back, exit 0)."""
    from worker.logs import configure
    from worker.supervisor import DeviceSpecError, Supervisor, SupervisorOptions, discover_devices

    log = configure(json_logs=json_logs)
    if not token:
        # Compose passes an empty HONE_WORKER_TOKEN through; the worker then waits like one
        # whose token the API refuses, saying so, instead of exiting into a restart loop.
        log.error("no token: set HONE_TOKEN (in compose: HONE_WORKER_TOKEN in .env) to a worker-role token")
    try:
        found = discover_devices(devices)
        study_ids = [int(part) for part in studies.split(",") if part.strip()] if studies else None
    except (DeviceSpecError, ValueError) as error:
        raise typer.BadParameter(str(error)) from error
    options = SupervisorOptions(
        api_url=api,
        token=token or "",
        devices=found,
        trials_per_device=trials_per_device,
        studies=study_ids,
        json_logs=json_logs,
        max_trials=max_trials,
        exit_when_idle=exit_when_idle,
        stop_timeout=stop_timeout,
        auth_retry=auth_retry,
        report_overhead=report_overhead,
    )
    raise typer.Exit(Supervisor(options).run())
