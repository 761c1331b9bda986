"""Fixtures shared by the unit tests."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from sandbox_kernel.relay import budget


class Clock:
    """time.monotonic for the output budget only: it moves when the test says so."""

    def __init__(self) -> None:
        # Well ahead of the real clock: a RateLimit stamps its creation with the real
        # time.monotonic (bound as its default_factory), so its first take() sees a long
        # pause and starts from a full bucket, as it would at once in production.
        self.now = time.monotonic() + 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The budget's clock stands still unless the test moves it: rates are exact."""
    fake = Clock()
    monkeypatch.setattr(budget, "time", SimpleNamespace(monotonic=fake))
    return fake
