"""hone's own page: ``/`` serves ``service/web/index.html`` and ``/web`` its scripts and
styles, all from the installed package (no CDN: GPU clusters are often air-gapped).

The page and its files hold no data and answer without a token; everything the page
shows it reads from the public REST API with the token the user gives it.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/web"
WEB_DIR = files("service") / "web"


def serve_web_page(app: FastAPI) -> None:
    """Mount the page's files at ``/web`` and the page itself at ``/``."""
    app.mount(ASSETS, StaticFiles(directory=str(WEB_DIR)), name="web")

    @app.get("/", include_in_schema=False)
    async def web_page() -> FileResponse:
        # no-cache: a browser revalidates, so an upgraded hone serves its new page at once.
        return FileResponse(str(WEB_DIR / "index.html"), headers={"Cache-Control": "no-cache"})
