"""Temporary: proves the browser fixture on a data: URL until the sign-in page lands."""

import pytest

pytestmark = pytest.mark.heavy


def test_the_fixture_drives_chromium(browser):
    browser.open(
        "data:text/html,<title>probe</title><form><input name=a><button>go</button></form>",
        shot="probe",
    )
    browser.fill({"a": "hello"})
    assert browser.driver.title == "probe"
    assert browser.driver.get_window_size() == {"width": 1280, "height": 900}
    browser.shot("filled")
    assert len(browser.shots) == 2 and all(p.stat().st_size > 1000 for p in browser.shots)
