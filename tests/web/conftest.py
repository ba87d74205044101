"""One real `hone api` on a SQLite file, a real worker that ran a 3-round study to the end
and keeps asking for work, and one headless Chromium, shared by the module's tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration.stack import Stack, stack
from tests.web.browser import chromium, need_chromium
from tests.web.scenario import BOWL_STUDY


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, Any]]]:
    """The stack and the study's summary once it completed; its worker still runs."""
    need_chromium()
    tmp = tmp_path_factory.mktemp("web")
    with stack(f"sqlite:///{tmp / 'hone.db'}", tmp, heartbeat_interval="1") as running:
        study = running.post("/studies", BOWL_STUDY)
        running.worker("worker")
        summary = running.wait_status(study["id"], "completed", timeout=120)
        yield running, summary


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    need_chromium()
    with chromium() as driver:
        yield driver
