"""Django's Redis cache, with one client object per connection pool.

``django.core.cache.backends.redis.RedisCacheClient.get_client`` builds a new ``redis.Redis``
for every cache call (the pool is shared, the client is not). Building one sets up its
response callbacks, a few hundred dictionary writes: on a worker that reads and writes the
cache a few times per step it was about 3 % of the CPU a ticket costs. A ``redis.Redis`` is
safe to share between threads (each command takes a connection from the pool), and its pool
reconnects after a fork, so one client per pool serves the process.
"""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class ReusingRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    """``CACHES[…]["BACKEND"] = "agentops.cache.RedisCache"``."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient
