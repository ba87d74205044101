"""The README's picture of hone's page: a real ``hone api`` and worker on a SQLite file run
``tests.web.scenario.BOWL_STUDY`` (three rounds, coarse to fine) to the end, then Debian's
headless Chromium opens the study page with the admin token and saves the top of it.

Run: ``python -m benchmarks.web_screenshot`` (needs ``apt-get install chromium chromium-driver``);
writes ``docs/web/study.png``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from selenium.webdriver.common.by import By

from tests.integration.stack import ADMIN, stack
from tests.web.browser import chromium, open_page, wait_until
from tests.web.scenario import BOWL_STUDY

OUT = Path(__file__).resolve().parents[1] / "docs" / "web" / "study.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="hone-screenshot-") as tmp,
        stack(f"sqlite:///{tmp}/hone.db", Path(tmp)) as running,
    ):
        study = running.post("/studies", BOWL_STUDY)
        running.worker("worker")
        running.wait_status(study["id"], "completed", timeout=300)
        with chromium() as browser:
            browser.get(f"{running.api}/")
            browser.execute_script("sessionStorage.setItem('hone-token', arguments[0])", ADMIN)
            open_page(browser, f"{running.api}/#/studies/{study['id']}")
            wait_until(
                browser,
                lambda d: d.find_elements(By.CSS_SELECTOR, "#panel-importance table.bars"),
                what="importances",
            )
            # The top of the page: overview, rounds, the boxes and the best-so-far curve.
            bottom = browser.execute_script(
                "return document.getElementById('panel-best').getBoundingClientRect().bottom"
            )
            # The window's outer size includes what headless Chromium keeps for its frame.
            browser.set_window_size(1280, int(bottom) + 160)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
