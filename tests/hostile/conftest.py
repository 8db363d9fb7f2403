"""The live server of tests/browser, for the hostile-input tests that drive Chromium.

Only the function-scoped server is shared: a second copy of the session-scoped `browser`
fixture would start a second Playwright in the same thread, which Playwright refuses, so
test_inert_everywhere.py runs its own Playwright in a thread of its own."""

from tests.browser.conftest import live_server

__all__ = ["live_server"]
