"""Debian's headless Chromium, driven by selenium through Debian's chromedriver.

The flags keep Chromium from calling home (updates, sync, QUIC probes): this machine has
no network but the loopback, and those attempts would only slow each page down.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration.processes import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Screenshots of each page, kept after the run (gitignored).
ARTIFACTS = REPO / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
]


def need_chromium() -> None:
    """Skip where Chromium is not installed, except in CI (`make test` installs it)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        message = f"{' and '.join(missing)} missing: apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def chromium() -> Iterator[WebDriver]:
    """A fresh headless Chromium with its own profile, quit at the end."""
    profile = tempfile.mkdtemp(prefix="hone-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_until(
    driver: WebDriver, condition: Callable[[WebDriver], Any], *, timeout: float = 20, what: str
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition(driver)
        except (StaleElementReferenceException, NoSuchElementException):
            value = None  # a live redraw replaced what the condition was reading: look again
        if value:
            return value
        time.sleep(0.1)
    errors = driver.execute_script("return document.getElementById('view')?.innerText || ''")
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; the page says: {errors[:500]}")


def open_page(driver: WebDriver, url: str) -> None:
    """Load ``url`` afresh and wait until the page says its view is drawn."""
    # From a page of the same document, a URL differing only after '#' would not reload it
    # and the previous view would still say it is drawn; sessionStorage survives this.
    driver.get("about:blank")
    driver.get(url)
    wait_until(
        driver,
        lambda d: d.execute_script("return document.getElementById('view').dataset.ready") == "true",
        what=f"{url} to be drawn",
    )


def screenshot(driver: WebDriver, name: str, *, full_page: bool = True) -> Path:
    """Save the page as ``test-artifacts/<name>.png`` (the whole page, not only the window)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if full_page:
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        driver.set_window_size(1280, max(900, min(height + 40, 8000)))
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 900)
    return path
