"""``hone dashboard``: optuna-dashboard on hone's database (every hone study is an Optuna study)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer


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
) -> None:
    """Serve optuna-dashboard on hone's database (it has no login: keep it on loopback)."""
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

    server = make_server(host, port, wsgi(storage), server_class=Server, handler_class=QuietHandler)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    print(
        f"optuna-dashboard on http://{host}:{port}/ (database: {storage.engine.url!r})",
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
