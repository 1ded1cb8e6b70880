"""The browser tier: Debian's headless Chromium driven by Selenium through chromedriver.

``browser`` (a fixture) starts one Chromium per test, with a fresh profile (no cookie or
session carries from one test to the next), and gives a :class:`Browser`: the WebDriver, a
few waits that poll the DOM (Selenium's explicit waits: readiness by what the page shows,
never a sleep) and :meth:`Browser.shot`, which saves a screenshot of each step of a flow.

Screenshots go to ``artifacts/browser/<test name>/<NN>-<step>.png`` under the repository
(``STALWART_ARTIFACTS`` moves ``artifacts/``); the folder of a test is emptied when it starts,
so what is there belongs to its last run. A test that fails gets one more shot, ``NN-failed``,
with the page's HTML and the browser's console log beside it. The end of the pytest run prints
the folders written (docs/development.md, "The browser tier").

Chromium and chromedriver missing (or Selenium, in a venv made before the test extra had it):
the test is skipped locally and fails under ``CI=true``, as the other interop tiers do
(.ci/run installs ``chromium`` and ``chromium-driver``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

ROOT = Path(__file__).resolve().parents[2]
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1280, 900)  # fixed, so two runs' screenshots compare
PAGE_LOAD_TIMEOUT = 30.0  # seconds; a page of ours answers in milliseconds, CI is loaded
SCRIPT_TIMEOUT = 10.0
WAIT = 15.0  # the explicit waits for what a page shows


def artifacts_root() -> Path:
    """Where the browser tier writes: ``$STALWART_ARTIFACTS/browser`` or, by default,
    ``artifacts/browser`` in the repository (gitignored), where a developer looks after a
    failed CI run, which runs in a clone of the repository."""
    base = os.environ.get("STALWART_ARTIFACTS")
    return (Path(base) if base else ROOT / "artifacts") / "browser"


# The folders written in this run, printed by pytest_terminal_summary (tests/browser/conftest.py).
WRITTEN: list[Path] = []


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _chromium() -> str:
    """Debian's browser: ``chromium`` (a launcher script in /usr/bin, which chromedriver runs
    like the binary itself)."""
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    _unavailable("chromium is not installed (.ci/run installs it with apt-get)")
    raise AssertionError("unreachable")


def _chromedriver() -> str:
    """Debian's chromedriver, always given by path: Selenium would otherwise run Selenium
    Manager, which downloads a driver (no network here, nor in CI)."""
    path = CHROMEDRIVER if os.access(CHROMEDRIVER, os.X_OK) else shutil.which("chromedriver")
    if path is None:
        _unavailable("chromedriver is not installed (.ci/run installs chromium-driver)")
    assert path is not None
    return path


def start_chromium(arguments: tuple[str, ...] = ()) -> WebDriver:
    """A headless Chromium under chromedriver, with a fixed window and timeouts, and the
    test's own ``arguments`` (``browser_arguments``)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (the test extra has it: make .venv/.installed)")
        raise
    options = webdriver.ChromeOptions()
    options.binary_location = _chromium()
    for argument in (
        "--headless=new",
        "--no-sandbox",  # as root (CI runs as root), Chromium refuses to start sandboxed
        "--disable-dev-shm-usage",  # /dev/shm is small in containers; use /tmp
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",  # nothing but the server under test
        "--disable-component-update",
        "--disable-sync",
        "--lang=en-US",
        *arguments,
    ):
        options.add_argument(argument)
    # The console (CSP violations, script errors) is read back at the end of each test.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=_chromedriver())
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
    driver.set_script_timeout(SCRIPT_TIMEOUT)
    driver.set_window_size(*WINDOW)
    return driver


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80] or "step"


@dataclass
class Browser:
    """One Chromium for one test, with its screenshot folder."""

    driver: WebDriver
    directory: Path
    base_url: str = ""
    shots: list[Path] = field(default_factory=list)
    console: list[dict[str, Any]] = field(default_factory=list)

    # -- screenshots ------------------------------------------------------------------------

    def shot(self, name: str) -> Path:
        """Save what the browser shows now as ``<NN>-<name>.png`` (NN counts the test's
        shots, so the folder lists the steps in order); its path is returned."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{len(self.shots) + 1:02d}-{_slug(name)}.png"
        self.driver.save_screenshot(str(path))
        self.shots.append(path)
        return path

    def save_page(self, name: str) -> Path:
        """The current page's HTML (as the DOM is now) beside the shots."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{len(self.shots):02d}-{_slug(name)}.html"
        path.write_text(self.driver.page_source)
        return path

    # -- navigation and waits ---------------------------------------------------------------

    def url(self, path: str) -> str:
        return path if "://" in path or path.startswith("data:") else self.base_url + path

    def open(self, path: str, shot: str | None = None) -> None:
        """Load a page (``driver.get`` returns at its load event) and optionally shoot it."""
        self.driver.get(self.url(path))
        if shot:
            self.shot(shot)

    def wait(self, condition: Callable[[WebDriver], Any], message: str = "") -> Any:
        """Poll ``condition`` (Selenium's WebDriverWait) until it is truthy; its value."""
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, WAIT).until(condition, message)

    def find(self, css: str) -> WebElement:
        """The first element matching ``css``, waiting for it to be in the page."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        return self.wait(ec.presence_of_element_located((By.CSS_SELECTOR, css)), css)

    def find_all(self, css: str) -> list[WebElement]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self) -> str:
        """The visible text of the page."""
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    def wait_text(self, fragment: str) -> str:
        """Wait until the page's visible text contains ``fragment``; the text."""
        self.wait(lambda _driver: fragment in self.text(), f"text {fragment!r}")
        return self.text()

    def path(self) -> str:
        """The path (and query) of the current URL, without the origin."""
        url = self.driver.current_url
        return url[len(self.base_url) :] if url.startswith(self.base_url) else url

    def wait_path(self, predicate: Callable[[str], bool] | str) -> str:
        """Wait until the current path is ``predicate`` (a string: starts with it)."""
        test = predicate if callable(predicate) else lambda p: p.startswith(predicate)
        self.wait(lambda _driver: test(self.path()), f"path {predicate!r}")
        return self.path()

    def fill(self, fields: dict[str, str], form: str = "main form") -> WebElement:
        """Type into the named inputs of a form (cleared first); the form. ``form`` is a CSS
        selector: by default the first form of the page's <main> (the header has the
        sign-out form)."""
        from selenium.webdriver.common.by import By

        element = self.find(form)
        for name, value in fields.items():
            box = element.find_element(By.NAME, name)
            box.clear()
            box.send_keys(value)
        return element

    def submit(
        self, fields: dict[str, str], form: str = "main form", shot: str | None = None
    ) -> None:
        """Fill a form, optionally shoot it filled in, and click its submit button (waiting
        for the next page)."""
        self.fill(fields, form)
        if shot:
            self.shot(shot)
        self.click(f"{form} button[type=submit], {form} input[type=submit]")

    def click(self, css: str) -> None:
        """Click what ``css`` finds (a submit button, a link) and wait for the next page to
        have loaded. The sign: a mark set on the old page's ``window`` is gone (a new
        document has a new window object) and the new one is complete. Waiting for the old
        <html> to go stale instead failed 1 run in 3 here: chromedriver answered "Node with
        given id does not belong to the document" while the page was being replaced."""
        from selenium.common.exceptions import WebDriverException

        self.driver.execute_script("window.__stalwartOldPage = true")
        self.find(css).click()

        def replaced(driver: WebDriver) -> bool:
            try:
                return bool(
                    driver.execute_script(
                        "return window.__stalwartOldPage === undefined"
                        " && document.readyState === 'complete'"
                    )
                )
            except WebDriverException:  # asked mid-navigation: ask again
                return False

        self.wait(replaced, f"the page after clicking {css}")

    # -- the console ------------------------------------------------------------------------

    def read_console(self) -> list[dict[str, Any]]:
        """The console entries since the last read (chromedriver hands each out once)."""
        entries = self.driver.get_log("browser")
        self.console.extend(entries)
        return entries

    def console_errors(self) -> list[str]:
        """The SEVERE console messages so far that are not about an answer's status: script
        errors and every Content-Security-Policy violation (source "security"). A page
        answered 403 or 404 on purpose (a wrong password, the favicon nobody serves) is a
        "network" entry, left out; it stays in console.json."""
        self.read_console()
        return [
            entry["message"]
            for entry in self.console
            if entry.get("level") == "SEVERE" and entry.get("source") != "network"
        ]


def _outcome_failed(request: pytest.FixtureRequest) -> bool:
    report = getattr(request.node, "browser_call_report", None)
    return report is not None and report.failed


def trust_certificate(cert_pem: bytes) -> str:
    """The Chromium argument that trusts this one certificate (by its public key's SHA-256,
    ``--ignore-certificate-errors-spki-list``), for pages over HTTPS with the test CA's
    certificate: no CA is installed, and no other certificate error is let through."""
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(cert_pem).public_key()
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return (
        "--ignore-certificate-errors-spki-list="
        + base64.b64encode(hashlib.sha256(spki).digest()).decode()
    )


@pytest.fixture
def browser_arguments() -> tuple[str, ...]:
    """More Chromium arguments for the ``browser`` of a test; a module overrides this."""
    return ()


@pytest.fixture
def browser(
    request: pytest.FixtureRequest, browser_arguments: tuple[str, ...]
) -> Iterator[Browser]:
    """A headless Chromium for this test (see the module's docstring)."""
    directory = artifacts_root() / _slug(request.node.nodeid.rpartition("::")[2])
    shutil.rmtree(directory, ignore_errors=True)
    driver = start_chromium(browser_arguments)
    session = Browser(driver, directory)
    try:
        yield session
    finally:
        try:
            if _outcome_failed(request):
                session.shot("failed")
                session.save_page("failed")
            session.read_console()
            if session.console:
                directory.mkdir(parents=True, exist_ok=True)
                (directory / "console.json").write_text(json.dumps(session.console, indent=1))
        finally:
            driver.quit()
            if directory.exists():
                WRITTEN.append(directory)


@pytest.fixture
def shot(browser: Browser) -> Callable[[str], Path]:
    """``shot("signed-in")``: the browser's screenshot of this step (Browser.shot)."""
    return browser.shot


def record_call_report(item: pytest.Item, report: pytest.TestReport) -> None:
    """Keep the call phase's report on the item, so the fixture's teardown knows whether
    the test failed (called from the tier's pytest_runtest_makereport hook)."""
    if report.when == "call":
        item.browser_call_report = report  # type: ignore[attr-defined]


def summary_lines() -> list[str]:
    """The folders of screenshots this run wrote, for the end of pytest's report."""
    if not WRITTEN:
        return []
    lines = [f"browser screenshots ({len(WRITTEN)} test(s)):"]
    lines += [f"  {path}" for path in sorted(set(WRITTEN))]
    return lines
