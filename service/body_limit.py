"""Request bodies over :data:`MAX_BODY_BYTES` are refused with 413 and hone's JSON error
(``{"detail": …}``, as every other error), documented on every route that takes a body.

FastAPI's own limit (``max_body_size``) answers ``text/plain`` "Content Too Large" from
outside the app's exception handlers, which a client parsing hone's errors cannot read and
the OpenAPI schema does not mention.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Far above any real spec or result; a bigger body is refused before it is parsed.
MAX_BODY_BYTES = 4 * 1024 * 1024
TOO_LARGE = f"the request body is over the limit of {MAX_BODY_BYTES // (1024 * 1024)} MiB"


class BodyLimit:
    """Refuses a body over ``limit`` bytes: at once when its Content-Length says so, else
    (a chunked body) as soon as the bytes read pass it, through the app's handler of
    ``HTTPException`` (JSON)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.limit:
            await JSONResponse({"detail": TOO_LARGE}, status_code=413)(scope, receive, send)
            return
        read = 0

        async def limited() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.limit:
                    raise HTTPException(413, TOO_LARGE)
            return message

        await self.app(scope, limited, send)


def document_body_limit(app: FastAPI) -> None:
    """Every operation that takes a body lists 413 in the app's OpenAPI schema."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for operations in schema["paths"].values():
                for operation in operations.values():
                    if isinstance(operation, dict) and "requestBody" in operation:
                        operation["responses"].setdefault(
                            "413",
                            {
                                "description": TOO_LARGE.capitalize(),
                                "content": {
                                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}
                                },
                            },
                        )
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]
