"""A package index for image builds without download.pytorch.org: ``/simple/torch/`` lists the
torch wheels of a local folder (the CPU wheel at /opt/wheels on the test machines), every
other project is redirected to PyPI's simple index (torch's own dependencies).

    python tests/compose/torch_index.py --port 8765 --wheels /opt/wheels

The Dockerfile's ``TORCH_INDEX`` build argument then points at ``http://127.0.0.1:8765/simple``
(pip trusts plain HTTP on loopback; the build runs with the host's network).
"""

from __future__ import annotations

import argparse
import html
import shutil
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote

PYPI_SIMPLE = "https://pypi.org/simple/"


class IndexHandler(BaseHTTPRequestHandler):
    def __init__(self, *args: object, wheels: Path, **kwargs: object) -> None:
        self.wheels = wheels
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def do_GET(self) -> None:
        path = unquote(self.path.split("?", 1)[0])
        if path.rstrip("/") == "/simple/torch":
            links = "".join(
                f'<a href="/wheels/{quote(wheel.name)}">{html.escape(wheel.name)}</a>\n'
                for wheel in sorted(self.wheels.glob("torch-*.whl"))
            )
            self._send(200, f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode(), "text/html")
        elif path.startswith("/simple/"):
            self.send_response(302)
            self.send_header("Location", PYPI_SIMPLE + path.removeprefix("/simple/"))
            self.end_headers()
        elif path.startswith("/wheels/") and "/" not in (name := path.removeprefix("/wheels/")):
            wheel = self.wheels / name
            if not wheel.is_file():
                self._send(404, b"not found\n", "text/plain")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(wheel.stat().st_size))
            self.end_headers()
            with wheel.open("rb") as source:
                shutil.copyfileobj(source, self.wfile)
        else:
            self._send(404, b"not found\n", "text/plain")

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request would bury the test's own output

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--wheels", type=Path, default=Path("/opt/wheels"))
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), partial(IndexHandler, wheels=args.wheels))
    server.serve_forever()


if __name__ == "__main__":
    main()
