"""``hone dashboard``: optuna-dashboard on hone's database (every hone study is an Optuna study)."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
READ_ONLY_REASON = "hone serves optuna-dashboard read-only (hone dashboard --allow-writes to change that)"


def read_only(app: WsgiApp) -> WsgiApp:
    """``app`` answering 403 to every request that would write (anything but GET and HEAD).

    optuna-dashboard has no read-only mode of its own (0.21): its trash icon deletes a
    study, its forms write notes, attributes and results behind hone's back."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET").upper() in ("GET", "HEAD"):
            return app(environ, start_response)
        body = json.dumps({"reason": READ_ONLY_REASON}).encode()
        start_response(
            "403 Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return guarded


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)


def dashboard(
    host: Annotated[
        str, typer.Option(help="Interface to listen on; the dashboard has no auth.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    data_dir: Annotated[
        Path | None, typer.Option(help="Use DIR/hone.db (unless HONE_DATABASE_URL is set).")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL; overrides HONE_DATABASE_URL.")
    ] = None,
    allow_writes: Annotated[
        bool, typer.Option(help="Let the dashboard write: delete studies, notes, tell trials.")
    ] = False,
) -> None:
    """Serve optuna-dashboard, read-only, on hone's database (it has no login: keep it on loopback).

    Writes (its trash icon, notes, forms) are refused unless --allow-writes; a study it
    deletes then takes hone's rows with it."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from optuna_dashboard import wsgi

    from hone.settings import settings_for
    from service.storage import create_optuna_storage

    storage = create_optuna_storage(settings_for(data_dir=data_dir, database_url=database_url).database_url)

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass  # the dashboard polls every few seconds; one line per poll drowns the log

    app: WsgiApp = wsgi(storage)
    if not allow_writes:
        app = read_only(app)
    server = make_server(host, port, app, server_class=Server, handler_class=QuietHandler)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    print(
        f"optuna-dashboard on http://{host}:{port}/ ({'read-write' if allow_writes else 'read-only'}, "
        f"database: {storage.engine.url!r})",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        storage.engine.dispose()
