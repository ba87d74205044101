from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from tests.api.conftest import Api, make_api, sqlite_template  # noqa: F401 - fixtures


def test_tokens_never_appear_in_logs(
    sqlite_url: str,
    make_api: Callable[..., Api],  # noqa: F811 - the fixture imported above
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    api = make_api(sqlite_url)
    api.create_study()
    api.get("/studies/1", role="read")
    api.post("/studies/1/pause", role="read")  # 403
    api.client.get("/api/v1/studies", headers={"Authorization": "Bearer hone_" + "z" * 43})  # 401
    logged = caplog.text + "".join(str(record.args) for record in caplog.records)
    for secret in [*api.tokens.values(), "hone_" + "z" * 43]:
        assert secret not in logged
