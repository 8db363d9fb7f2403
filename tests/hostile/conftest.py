"""The live server of tests/browser, for the hostile-input tests that drive Chromium (the
`browser` itself is tests/conftest.py's, one per test process)."""

from tests.browser.conftest import live_server

__all__ = ["live_server"]
