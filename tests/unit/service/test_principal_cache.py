"""The API process's cache of checked tokens: how long an entry lives, and its bound."""

from __future__ import annotations

import pytest

from service import auth
from service.auth import Principal, PrincipalCache

WORKER = Principal(role="worker", token_id=1, name="fleet")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_for_the_cache_time_and_not_a_moment_longer() -> None:
    clock = Clock()
    cache = PrincipalCache(2.0, clock=clock)
    cache.put("digest", WORKER)
    clock.now += 1.99
    assert cache.get("digest") == WORKER
    clock.now += 0.01
    assert cache.get("digest") is None
    assert cache.get("other") is None


def test_zero_seconds_caches_nothing() -> None:
    cache = PrincipalCache(0.0, clock=Clock())
    cache.put("digest", WORKER)
    assert cache.get("digest") is None


def test_many_distinct_tokens_never_grow_it_past_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "_CACHE_LIMIT", 3)
    cache = PrincipalCache(60.0, clock=Clock())
    for index in range(10):
        cache.put(f"digest-{index}", WORKER)
        assert len(cache._entries) <= 3
    assert cache.get("digest-9") == WORKER
