"""The console in a real headless Chromium (Debian's chromium and chromedriver, driven by Selenium):
sign in, filter the queue, open a violation, mark it a false positive, see the queue and the rule's
precision change. Leaves a screenshot of the queue in docs/console.png when LLM_AUDIT_SCREENSHOTS=1."""

import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
import uvicorn
from pymongo import MongoClient
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from console.app import create_app
from console.auth import add_user
from console.settings import ConsoleSettings
from flink_jobs.offline.report import CHROMIUM_FLAGS, chromium
from tests.support.console_data import violations

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a long enough password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(stack_settings):
    settings = ConsoleSettings(mongo_uri=stack_settings.mongo_uri, mongo_database=f"console_{uuid.uuid4().hex[:8]}")
    client = MongoClient(settings.mongo_uri.get_secret_value())
    db = client[settings.mongo_database]
    db[settings.violations_collection].insert_many(violations(600, seed=9))
    add_user(db, "rita", "reviewer", ["acme", "globex"], PASSWORD, "test")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, client), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://localhost:{port}", db
    server.should_exit = True
    thread.join(10)
    client.drop_database(settings.mongo_database)
    client.close()


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = chromium()
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def _wait(driver, condition) -> None:
    """Until the page that a click loads holds `condition` (the old page's elements go stale meanwhile)."""
    WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(
        condition, message=f"not on the page: {driver.current_url}")


def _precision(driver, rule: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, f'#rule-stats tr[data-rule="{rule}"] td.precision').text


def test_a_reviewer_signs_in_filters_and_marks_a_false_positive(served, browser):
    url, db = served
    browser.get(url + "/")
    assert "/login" in browser.current_url  # no session: the sign-in page
    browser.find_element(By.ID, "username").send_keys("rita")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "sign-in").click()
    _wait(browser, lambda d: "/login" not in d.current_url)
    assert "rita (reviewer; acme, globex)" in browser.find_element(By.TAG_NAME, "header").text

    Select(browser.find_element(By.ID, "filter-rule_id")).select_by_value("pii.email")
    Select(browser.find_element(By.ID, "filter-tenant")).select_by_value("globex")
    browser.find_element(By.ID, "apply").click()
    _wait(browser, lambda d: "rule_id=pii.email" in d.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "#queue a.open")
    assert rows and all(r.text == "pii.email" for r in rows)
    cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#queue td:nth-child(4)")]
    assert all(c.startswith("globex") for c in cells)
    if os.environ.get("LLM_AUDIT_SCREENSHOTS") == "1":
        browser.save_screenshot(str(ROOT / "docs" / "console.png"))

    rows[0].click()
    _wait(browser, lambda d: "/violations/" in d.current_url)
    assert browser.find_element(By.ID, "snippet").text and "must_not_match" in browser.find_element(By.ID, "fp-line").text
    browser.find_element(By.ID, "note").send_keys("a test address, not a person's")
    browser.find_element(By.ID, "verdict-false_positive").click()
    _wait(browser, lambda d: "false positive by rita" in d.find_element(By.ID, "review").text)

    browser.get(url + "/?rule_id=pii.email&tenant=globex&status=false_positive")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#queue a.open")) == 1
    assert _precision(browser, "pii.email") == "0.00"  # one verdict, a false positive
    assert db["audit_log"].count_documents({"who": "rita", "action": "review"}) == 1
