"""Each test starts without cached labeler reliability (the cache outlives a test's rollback)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.services.agreement.reliability import CACHE


@pytest.fixture(autouse=True)
def no_cached_reliability() -> Iterator[None]:
    CACHE.clear()
    yield
    CACHE.clear()
