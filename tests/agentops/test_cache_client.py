"""agentops.cache: Django's Redis cache with one client object per pool, not one per call."""

from __future__ import annotations

from django.core.cache import cache


def test_the_cache_reuses_its_client_and_still_reads_and_writes():
    keys = ["agentops-test-cache-client", "agentops-test-cache-counter"]
    cache.delete_many(keys)
    cache.set(keys[0], {"n": 1}, 30)
    assert cache.get(keys[0]) == {"n": 1}
    assert cache.add(keys[1], 1, 30) and cache.incr(keys[1]) == 2
    client = cache._cache.get_client(write=True)
    assert cache._cache.get_client(write=True) is client
    cache.delete_many(keys)
    assert cache.get_many(keys) == {}
