"""hone's page in a real headless Chromium, over a real `hone api` and worker: the token
prompt, the studies list, a finished 3-round study's boxes on each parameter's own scale,
the fleet, and steering with live updates. Each page's screenshot lands in test-artifacts/.

The tests share one stack and one browser and run in file order (the last one opens a
fourth round).
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration.processes import run_hone
from tests.integration.stack import ADMIN, Stack
from tests.web.browser import open_page, screenshot, wait_until
from tests.web.scenario import BOWL_STUDY

# One xdist worker runs the whole module: one stack, one browser, tests in file order.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("web")]
Finished = tuple[Stack, dict[str, Any]]


def _with_token(browser: WebDriver, stack: Stack, token: str | None) -> None:
    browser.get(f"{stack.api}/")
    if token is None:
        browser.execute_script("sessionStorage.clear()")
    else:
        browser.execute_script("sessionStorage.setItem('hone-token', arguments[0])", token)


def _attrs(element: Any, *names: str) -> list[float]:
    return [float(element.get_attribute(name)) for name in names]


def test_a_page_without_a_token_asks_for_one_and_shows_no_data(
    browser: WebDriver, finished: Finished
) -> None:
    stack, summary = finished
    _with_token(browser, stack, None)
    browser.get(f"{stack.api}/#/studies/{summary['id']}")
    prompt = wait_until(
        browser,
        lambda d: (
            d.find_element(By.ID, "token-prompt").is_displayed() and d.find_element(By.ID, "token-prompt")
        ),
        what="the token prompt",
    )
    assert "token" in prompt.text.lower()
    assert browser.find_element(By.ID, "view").text == ""
    assert summary["name"] not in browser.page_source
    asked = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert not [url for url in asked if "/api/v1/" in url], f"the page asked the API without a token: {asked}"
    # The API itself refuses the page's data without a token, whatever the page does.
    assert httpx.get(f"{stack.api}/api/v1/studies").status_code == 401

    browser.find_element(By.ID, "token-input").send_keys("hone_not-a-real-token-at-all-0000000000000")
    browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
    error = wait_until(browser, lambda d: d.find_element(By.ID, "token-error").text, what="the refusal")
    assert "refused" in error
    screenshot(browser, "token-prompt")


def test_the_studies_list_shows_status_progress_per_round_and_best(
    browser: WebDriver, finished: Finished
) -> None:
    stack, summary = finished
    _with_token(browser, stack, None)
    browser.get(f"{stack.api}/")
    browser.find_element(By.ID, "token-input").send_keys(ADMIN)
    browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
    wait_until(
        browser,
        lambda d: d.execute_script("return document.getElementById('view').dataset.ready") == "true",
        what="the studies list",
    )
    assert browser.execute_script("return sessionStorage.getItem('hone-token')") == ADMIN
    row = browser.find_element(By.CSS_SELECTOR, f"#studies tr[data-study='{summary['id']}']")
    assert summary["name"] in row.text and "completed" in row.text
    assert f"{summary['budget']} / {summary['budget']}" in row.text
    assert [bar.text for bar in row.find_elements(By.CSS_SELECTOR, ".round-progress .progress")] == [
        "r1 30/30",
        "r2 20/20",
        "r3 15/15",
    ]
    best = float(row.find_elements(By.TAG_NAME, "td")[5].text)
    assert math.isclose(best, summary["best"]["value"], rel_tol=1e-3)
    assert "/dashboard/studies/" in row.find_element(By.LINK_TEXT, "optuna-dashboard").get_attribute("href")
    screenshot(browser, "studies")


def _boxes(browser: WebDriver, name: str) -> list[Any]:
    plot = browser.find_element(By.CSS_SELECTOR, f"svg.param-plot[data-param='{name}']")
    return sorted(
        plot.find_elements(By.CSS_SELECTOR, "rect.round-box"),
        key=lambda r: int(r.get_attribute("data-round")),
    )


def _ticks(browser: WebDriver, name: str) -> list[tuple[float, float]]:
    plot = browser.find_element(By.CSS_SELECTOR, f"svg.param-plot[data-param='{name}']")
    return [
        tuple(_attrs(t, "data-value", "data-x")) for t in plot.find_elements(By.CSS_SELECTOR, ".axis .tick")
    ]  # type: ignore[misc]


def _evenly_spaced_in(ticks: list[tuple[float, float]], transform: Any) -> bool:
    """Tick pixels are an affine function of ``transform(value)``."""
    (v0, x0), (v1, x1) = ticks[0], ticks[-1]
    per_unit = (x1 - x0) / (transform(v1) - transform(v0))
    return all(abs(x0 + (transform(v) - transform(v0)) * per_unit - x) < 0.5 for v, x in ticks)


def test_the_study_page_draws_three_nested_boxes_per_numeric_parameter_on_its_scale(
    browser: WebDriver, finished: Finished
) -> None:
    stack, summary = finished
    _with_token(browser, stack, ADMIN)
    open_page(browser, f"{stack.api}/#/studies/{summary['id']}")
    rounds = stack.get(f"/studies/{summary['id']}/rounds")
    assert [r["number"] for r in rounds] == [1, 2, 3]

    for name in ("lr", "momentum", "width"):
        boxes = _boxes(browser, name)
        assert len(boxes) == 3, name
        for box, round_ in zip(boxes, rounds, strict=True):
            assert _attrs(box, "data-low", "data-high") == [
                round_["box"][name]["low"],
                round_["box"][name]["high"],
            ]
        for outer, inner in zip(boxes, boxes[1:], strict=False):
            (olo, ohi), (ilo, ihi) = (
                _attrs(outer, "data-low", "data-high"),
                _attrs(inner, "data-low", "data-high"),
            )
            assert olo <= ilo and ihi <= ohi and (olo, ohi) != (ilo, ihi), (
                f"{name}: a box outside the previous"
            )
            (ox, ow), (ix, iw) = _attrs(outer, "x", "width"), _attrs(inner, "x", "width")
            assert ox <= ix + 0.01 and ix + iw <= ox + ow + 0.01 and iw < ow, f"{name}: pixels not nested"

    assert (
        browser.find_element(By.CSS_SELECTOR, "svg.param-plot[data-param='lr']").get_attribute("data-scale")
        == "log"
    )
    lr_ticks = _ticks(browser, "lr")
    assert len(lr_ticks) >= 4
    assert _evenly_spaced_in(lr_ticks, math.log10), f"lr's ticks are not on a log axis: {lr_ticks}"
    assert not _evenly_spaced_in(lr_ticks, lambda v: v)
    # A box's pixels sit where the same log axis puts its ends.
    (v0, x0), (v1, x1) = lr_ticks[0], lr_ticks[-1]
    per_decade = (x1 - x0) / (math.log10(v1) - math.log10(v0))
    last = _boxes(browser, "lr")[-1]
    low, x = _attrs(last, "data-low", "x")
    assert abs(x0 + (math.log10(low) - math.log10(v0)) * per_decade - x) < 0.5

    assert _evenly_spaced_in(_ticks(browser, "momentum"), lambda b: -math.log10(1 - b)), (
        "momentum: not 1 − β on log"
    )
    assert {0.9, 0.99, 0.999} <= {v for v, _ in _ticks(browser, "momentum")}

    # Read in one script: the page stays the same node by node only while nothing redraws.
    rounds_of_points = browser.execute_script(
        "return [...document.querySelectorAll(\"svg.param-plot[data-param='lr'] circle.trial-point\")]"
        ".map((p) => p.dataset.round)"
    )
    assert len(rounds_of_points) == summary["counts"]["complete"] == 65
    assert set(rounds_of_points) == {"1", "2", "3"}
    incumbent = browser.find_element(By.CSS_SELECTOR, "svg.param-plot[data-param='lr'] circle.incumbent")
    assert int(incumbent.get_attribute("data-number")) == summary["best"]["number"]
    assert browser.find_elements(By.CSS_SELECTOR, "svg.best-plot circle.best-step")
    ticks = browser.execute_script(
        "return [...document.querySelectorAll('svg.best-plot text.time-tick')].map((t) => t.textContent)"
    )
    assert len(ticks) == 3 and len(set(ticks)) == 3, f"time ticks repeat: {ticks}"
    # The unit follows the span, with a decimal where whole units would repeat a label.
    labels = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "import('/web/plots.js').then((m) => done(arguments[0].map(([t, span]) => m.elapsedLabel(t, span))));",
        [
            [0, 1300],
            [650, 1300],
            [1300, 1300],
            [30e3, 60e3],
            [90e3, 300e3],
            [3 * 3600e3, 6 * 3600e3],
            [3 * 86400e3, 7 * 86400e3],
        ],
    )
    assert labels == ["0.0 s", "0.7 s", "1.3 s", "30 s", "1.5 min", "3.0 h", "3.0 d"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#trials tbody tr")) == 50
    assert '"entrypoint": "tests.web.objectives:bowl"' in browser.find_element(By.ID, "spec").text
    wait_until(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#panel-importance table.bars"),
        what="importances",
    )
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(f"{stack.api}/") for url in loaded), (
        f"loaded from elsewhere: {loaded}"
    )
    screenshot(browser, "study")


def test_the_study_page_shows_the_api_s_diagnosis_with_its_advice(
    browser: WebDriver, finished: Finished
) -> None:
    stack, summary = finished
    _with_token(browser, stack, ADMIN)
    open_page(browser, f"{stack.api}/#/studies/{summary['id']}")
    found = stack.get(f"/studies/{summary['id']}/diagnosis")
    assert found["verdict"] == "high_variance"  # bowl's train_loss is half its value
    panel = browser.find_element(By.ID, "panel-diagnosis")
    assert panel.find_elements(By.ID, "diagnosis-verdict"), panel.text
    verdict = browser.find_element(By.ID, "diagnosis-verdict")
    assert verdict.get_attribute("data-verdict") == "high_variance" and verdict.text == "high variance"
    advice = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#diagnosis-advice li")]
    assert advice == found["advice"]
    figures = browser.find_element(By.ID, "diagnosis-figures").text
    assert "variance (validation − training)" in figures and "training error" in figures
    # A python objective gets advice, not the recipe's box: nothing to open from here.
    assert found["proposal"] is None and not browser.find_elements(By.ID, "diagnosis-moves")
    browser.execute_script("arguments[0].scrollIntoView()", panel)
    screenshot(browser, "study-diagnosis")


def test_the_fleet_page_lists_the_running_worker(browser: WebDriver, finished: Finished) -> None:
    stack, _ = finished
    _with_token(browser, stack, ADMIN)
    open_page(browser, f"{stack.api}/#/fleet")
    (worker,) = [w for w in stack.get("/workers") if w["alive"]]
    row = browser.find_element(By.CSS_SELECTOR, f"#workers tr[data-worker='{worker['id']}']")
    assert "alive" in row.text and "cpu" in row.text and worker["host"] in row.text
    assert row.find_elements(By.TAG_NAME, "td")[-1].text == "65"
    screenshot(browser, "fleet")


def test_a_read_token_shows_the_study_but_cannot_steer_it(browser: WebDriver, finished: Finished) -> None:
    stack, summary = finished
    created = run_hone("token", "create", "--role", "read", env=stack.env)
    assert created.returncode == 0, created.stderr
    _with_token(browser, stack, created.stdout.strip())
    open_page(browser, f"{stack.api}/#/studies/{summary['id']}")
    assert len(_boxes(browser, "lr")) == 3
    browser.find_element(By.CSS_SELECTOR, "button[data-action='stop']").click()
    message = wait_until(browser, lambda d: d.find_element(By.ID, "steer-message").text, what="the refusal")
    assert message == "steering needs an admin token"
    assert stack.get(f"/studies/{summary['id']}")["status"] == "completed"


def test_an_admin_previews_the_next_round_s_box_inside_the_current_one(
    browser: WebDriver, finished: Finished
) -> None:
    stack, _ = finished
    # A second study, paused early in its second round (the module's worker runs it).
    spec = {**BOWL_STUDY, "name": "preview", "rounds": [{"trials": 12}, {"trials": 200}]}
    study = stack.post("/studies", spec)
    path = f"/studies/{study['id']}"
    wait_until(
        browser,
        lambda _: stack.get(f"{path}/rounds")[-1]["number"] == 2,
        timeout=60,
        what="round 2 of the second study",
    )
    stack.post(f"{path}/pause")
    wait_until(
        browser, lambda _: stack.get(path)["counts"]["running"] == 0, timeout=30, what="no running trial"
    )
    expected = stack.get(f"{path}/rounds/next")
    current = stack.get(f"{path}/rounds")[-1]["box"]["lr"]

    _with_token(browser, stack, ADMIN)
    open_page(browser, f"{stack.api}/#{path}")
    browser.find_element(By.CSS_SELECTOR, "button[data-action='preview']").click()
    preview = wait_until(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, "svg.param-plot[data-param='lr'] rect.preview-box"),
        what="the preview box",
    )
    assert int(preview.get_attribute("data-round")) == expected["number"] == 3
    low, high = _attrs(preview, "data-low", "data-high")
    assert [low, high] == [expected["box"]["lr"]["low"], expected["box"]["lr"]["high"]]
    assert (
        current["low"] <= low and high <= current["high"] and (low, high) != (current["low"], current["high"])
    )
    (box,) = [b for b in _boxes(browser, "lr") if b.get_attribute("data-round") == "2"]
    (bx, bw), (px, pw) = _attrs(box, "x", "width"), _attrs(preview, "x", "width")
    assert bx <= px + 0.01 and px + pw <= bx + bw + 0.01 and pw < bw, (
        "the preview's pixels are not inside round 2's"
    )
    assert f"Next round {expected['number']} would sample in" in browser.find_element(By.ID, "preview").text
    screenshot(browser, "preview")
    stack.post(f"{path}/stop")  # the last test's worker serves the first study alone


def test_an_admin_opens_a_fourth_round_and_the_page_follows_it_live(
    browser: WebDriver, finished: Finished
) -> None:
    stack, summary = finished
    _with_token(browser, stack, ADMIN)
    open_page(browser, f"{stack.api}/#/studies/{summary['id']}")
    browser.execute_script("window.notReloaded = true")
    trials = browser.find_element(By.ID, "open-trials")
    trials.clear()
    trials.send_keys("3")
    browser.find_element(By.CSS_SELECTOR, "button[data-action='open']").click()
    wait_until(browser, lambda d: len(_boxes(d, "lr")) == 4, what="round 4's box")
    # The worker runs round 4; its trials reach the page through the events stream.
    wait_until(
        browser,
        lambda d: (
            len(
                d.find_elements(
                    By.CSS_SELECTOR, "svg.param-plot[data-param='lr'] circle.trial-point[data-round='4']"
                )
            )
            == 3
        ),
        timeout=40,
        what="round 4's trials drawn live",
    )
    assert browser.execute_script("return window.notReloaded") is True
    assert stack.get(f"/studies/{summary['id']}/rounds")[-1]["counts"]["complete"] == 3
