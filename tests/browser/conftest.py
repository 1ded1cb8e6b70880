"""The browser tier: headless Chromium through the web pages (tests/support/browser.py).

Every module here says ``pytestmark = pytest.mark.heavy`` (a Chromium per test: ~1 s of CPU
to start, more on a loaded machine): it runs with CI=true (.ci/run) or STALWART_HEAVY=1."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.support.browser import (
    browser,
    browser_arguments,
    record_call_report,
    shot,
    summary_lines,
)

__all__ = ["browser", "browser_arguments", "shot"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    record_call_report(item, report)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in summary_lines():
        terminalreporter.write_line(line)
