from __future__ import annotations

from flowline.ttl_cache import TtlCache


def test_entries_expire_and_can_be_invalidated() -> None:
    now = [0.0]
    cache: TtlCache[str, int] = TtlCache(5, clock=lambda: now[0])
    cache.put("a", 1)
    assert cache.get("a") == 1
    now[0] = 4.9
    assert cache.get("a") == 1
    now[0] = 5.0
    assert cache.get("a") is None
    cache.put("b", 2)
    cache.invalidate("b")
    assert cache.get("b") is None


def test_zero_seconds_turns_caching_off_and_size_is_bounded() -> None:
    off: TtlCache[str, int] = TtlCache(0)
    off.put("a", 1)
    assert off.get("a") is None
    small: TtlCache[int, int] = TtlCache(60, max_entries=3)
    for i in range(10):
        small.put(i, i)
    assert small.get(9) == 9 and len(small._entries) <= 3
