"""/dashboard in a real browser: Debian's Chromium, headless, driven by selenium through
chromium-driver, against a gateway on 127.0.0.1 over a seeded routing log.

Skipped only when chromium or chromedriver is not installed (.ci/run installs both). Screenshots at
1280 and 390 px go to pytest's tmp_path, and also to $DASHBOARD_SCREENSHOT_DIR when it is set (that is how
docs/dashboard.png is made).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from r42 import store
from r42.catalog import load_catalog
from r42.store.stats import Reference, compute_stats
from r42.views_html import money
from tests.dashboard_seed import gateway, seed_log, seeded  # noqa: F401 - fixtures

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium and chromium-driver are not installed")
REFERENCE_MODEL = "openai/gpt-4o"
SCREENSHOTS_TO = os.environ.get("DASHBOARD_SCREENSHOT_DIR")  # read before the fixtures clean the environment
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="r42-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(autouse=True)
def fresh(isolated_env, monkeypatch, browser):
    monkeypatch.setenv("R42_LOG_RETENTION_DAYS", "0")
    monkeypatch.setenv("R42_STATS_REFERENCE_MODEL", REFERENCE_MODEL)
    browser.delete_all_cookies()


def wait(driver, condition, timeout: float = 20.0):
    """Until condition(driver) holds; an element the live refresh redrew meanwhile is looked up again."""
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: condition(d)
    )


def sign_in(driver, gateway, key: str, query: str = "") -> None:
    driver.get(gateway.url + "/dashboard" + query)
    field = driver.find_element(By.ID, "key")
    assert field.get_attribute("type") == "password" and driver.find_element(By.CSS_SELECTOR, "label[for=key]")
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "form[action='/dashboard/login'] button[type=submit]").click()
    wait(driver, lambda d: d.find_elements(By.ID, "overview"))
    if query:
        driver.get(gateway.url + "/dashboard" + query)


def card(driver, name: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, f'b[data-metric="{name}"]').text


def day_rows(now: float, user: str | None = None) -> list[dict]:
    """The rows the "last day" period shows: the last 24 hours counting the current one."""
    since = now // 3600 * 3600 + 3600 - 86_400
    return list(store.iter_routes(since=since, user=user))


def reference() -> Reference:
    model = load_catalog().find(REFERENCE_MODEL)
    return Reference(model.id, model.price_input, model.price_output, "chosen")


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    assert driver.save_screenshot(str(path))
    if SCREENSHOTS_TO:
        shutil.copy(path, Path(SCREENSHOTS_TO) / name)
    return path


def test_an_admin_signs_in_reads_every_panel_follows_a_failure_and_signs_out(browser, gateway, seeded, tmp_path):
    sign_in(browser, gateway, seeded.admin_key, "?period=24h&refresh=2")
    cookie = browser.get_cookie("r42_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expiry"] > time.time()
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly: no script can read it
    live = browser.find_element(By.ID, "live")
    live.click()  # hold the live refresh (every 2 s here) while reading the page
    assert not live.is_selected()
    # every panel is there and its figures are the store's (computed row by row here)
    for section in ("overview", "time", "splits", "complexity", "latency", "errors", "keys", "feedback"):
        panel = browser.find_element(By.ID, section)
        assert panel.find_element(By.TAG_NAME, "h2").text and len(panel.text) > 20, section
    expected = compute_stats(day_rows(time.time()), reference())
    totals = expected["totals"]
    assert card(browser, "Requests") == f"{totals['requests']:,}"
    assert card(browser, "Cost") == money(totals["cost_usd"])
    assert card(browser, "Saved by routing").startswith(money(totals["savings_usd"]))
    assert (
        card(browser, "Latency p50 / p95")
        == f"{totals['latency_ms']['p50']:,.0f} / {totals['latency_ms']['p95']:,.0f} ms"
    )
    splits = browser.find_element(By.ID, "splits").text
    for model, group in expected["by_model"].items():
        assert f"{model} {group['requests']:,}" in splits
    assert len(browser.find_elements(By.CSS_SELECTOR, "#time svg rect")) >= 24
    assert "carol" in browser.find_element(By.ID, "keys").text  # the admin sees every key
    # the attempt chain of one failed request
    details = browser.find_element(By.ID, f"fail-{seeded.alice_failed_id}")
    assert details.get_attribute("data-request-id") == seeded.alice_failed_request
    details.find_element(By.TAG_NAME, "summary").click()
    steps = [li.text for li in details.find_elements(By.CSS_SELECTOR, "li.attempt")]
    assert len(steps) == 3
    assert steps[0].startswith("openai/gpt-4o: http 503") and "fell back to anthropic/claude-sonnet-4" in steps[0]
    assert steps[1].startswith("anthropic/claude-sonnet-4: http 429") and "fell back to groq/llama-3.1-8b" in steps[1]
    assert steps[2].startswith("groq/llama-3.1-8b: timeout") and "no fallback left" in steps[2]
    # live refresh: a new request shows up without reloading the page
    marker = browser.execute_script("window.__same_page = 1; return window.__same_page")
    live.click()
    store.write_route(
        endpoint="ask", status="ok", model="openai/gpt-4o-mini", user="bob", latency_ms=5.0, retention_days=0
    )
    wait(browser, lambda d: card(d, "Requests") == f"{totals['requests'] + 1:,}")
    assert browser.execute_script("return window.__same_page") == marker
    assert "updated" in browser.find_element(By.ID, "live-status").text
    reopened = browser.find_element(By.ID, f"fail-{seeded.alice_failed_id}")  # the panel was redrawn
    assert reopened.get_attribute("open") is not None  # an open chain stays open across refreshes
    browser.find_element(By.ID, "live").click()  # hold it again
    # filter the error review by provider, then by kind
    Select(browser.find_element(By.ID, "f-provider")).select_by_value("anthropic")
    browser.find_element(By.CSS_SELECTOR, "#errors form button[type=submit]").click()
    wait(browser, lambda d: "provider=anthropic" in d.current_url)
    matched = browser.find_element(By.CSS_SELECTOR, "#errors [data-matched]")
    assert matched.get_attribute("data-matched") == "1" and browser.find_element(
        By.ID, f"fail-{seeded.alice_failed_id}"
    )
    Select(browser.find_element(By.ID, "f-provider")).select_by_value("")
    Select(browser.find_element(By.ID, "f-kind")).select_by_value("timeout")
    browser.find_element(By.CSS_SELECTOR, "#errors form button[type=submit]").click()
    wait(browser, lambda d: "kind=timeout" in d.current_url)
    timeouts = sum(
        any(a["status"] is None for a in r["attempts"]) for r in day_rows(time.time()) if r["status"] != "ok"
    )
    assert browser.find_element(By.CSS_SELECTOR, "#errors [data-matched]").get_attribute("data-matched") == str(
        timeouts
    )
    # weight, labels, and both widths
    size = browser.execute_script("return performance.getEntriesByType('navigation')[0].decodedBodySize")
    assert 0 < size <= 200_000
    for control in browser.find_elements(By.CSS_SELECTOR, "select, input:not([type=hidden])"):
        assert browser.find_elements(By.CSS_SELECTOR, f"label[for='{control.get_attribute('id')}']"), (
            control.get_attribute("id")
        )
    browser.set_window_size(1280, 900)
    browser.get(gateway.url + "/dashboard?period=24h")
    assert screenshot(browser, tmp_path, "dashboard-1280.png").stat().st_size > 10_000
    browser.set_window_size(390, 844)
    browser.refresh()
    assert screenshot(browser, tmp_path, "dashboard-390.png").stat().st_size > 5_000
    overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0  # wide tables scroll inside their panel, the page itself does not
    browser.set_window_size(1280, 900)
    # sign out: back to the form, and the old session is gone
    browser.find_element(By.CSS_SELECTOR, "form[action='/dashboard/logout'] button").click()
    wait(browser, lambda d: d.find_elements(By.ID, "key"))
    assert browser.get_cookie("r42_session") is None
    browser.get(gateway.url + "/dashboard")
    assert browser.find_elements(By.ID, "key")


def test_a_non_admin_sees_only_their_own_rows(browser, gateway, seeded, tmp_path):
    sign_in(browser, gateway, seeded.bob_key, "?period=30d")
    text = browser.find_element(By.TAG_NAME, "main").text
    source = browser.page_source
    assert "user bob" in browser.find_element(By.TAG_NAME, "header").text
    for other in ("alice", "carol", seeded.alice_failed_request):
        assert other not in source, other
    assert not browser.find_elements(By.ID, f"fail-{seeded.alice_failed_id}")
    bob_rows = [r for r in store.iter_routes(since=time.time() // 86_400 * 86_400 + 86_400 - 30 * 86_400, user="bob")]
    assert card(browser, "Requests") == f"{len(bob_rows):,}"
    assert "By user" not in text
    keys = browser.find_element(By.ID, "keys").text
    assert seeded.bob_key[:12] in keys and "of 100" in keys and "$5.0000" in keys
    screenshot(browser, tmp_path, "dashboard-bob-1280.png")
    # the JSON the live refresh reads is scoped the same way
    browser.get(gateway.url + "/dashboard/data?period=30d")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert '"user":"bob"' in body and "alice" not in body and "carol" not in body


def test_a_user_edits_and_saves_their_privacy_judge_template(browser, gateway, seeded, tmp_path):
    from r42.privacy_judge import DEFAULT_PROMPT
    from r42.store.prompts import template_for

    sign_in(browser, gateway, seeded.bob_key)
    browser.find_element(By.ID, "live").click()  # hold the live refresh while typing
    field = browser.find_element(By.ID, "privacy-template")
    label = browser.find_element(By.CSS_SELECTOR, "label[for='privacy-template']")
    assert "privacy-judge template" in label.text and field.get_attribute("value") == DEFAULT_PROMPT
    field.clear()
    field.send_keys("Bob's rules: money talk is private.\n{prompt}\nYES or NO?")
    browser.find_element(By.CSS_SELECTOR, "#privacy button[value=save]").click()
    wait(browser, lambda d: "privacy=saved" in d.current_url)
    assert "Saved" in browser.find_element(By.ID, "privacy-message").text
    saved = "Bob's rules: money talk is private.\n{prompt}\nYES or NO?"
    assert browser.find_element(By.ID, "privacy-template").get_attribute("value") == saved
    assert template_for("bob", None).template == saved and not template_for("alice", None).own
    screenshot(browser, tmp_path, "dashboard-privacy-1280.png")
    # a template without {prompt} is refused, and the text stays for fixing
    field = browser.find_element(By.ID, "privacy-template")
    field.clear()
    field.send_keys("forgot the placeholder")
    browser.find_element(By.CSS_SELECTOR, "#privacy button[value=save]").click()
    wait(browser, lambda d: "exactly once" in d.find_element(By.ID, "privacy-message").text)
    assert browser.find_element(By.ID, "privacy-template").get_attribute("value") == "forgot the placeholder"
    assert template_for("bob", None).template == saved
    browser.find_element(By.CSS_SELECTOR, "#privacy button[value=reset]").click()
    wait(browser, lambda d: "privacy=reset" in d.current_url)
    assert browser.find_element(By.ID, "privacy-template").get_attribute("value") == DEFAULT_PROMPT
    assert not template_for("bob", None).own
