"""Customer state cached by key in a worker, bounded, and dropped on every replica when it changes.

A worker holds the model and the catalog; customer state (consent, diet, published history and
lifecycle profile, events since) lives in the event store and is read by key. This LRU keeps the
states of the customers seen last, so a repeat request costs no query; its size, not the number of
customers, bounds the memory it takes.

Every write of customer state (feedback, consent, erasure, a publish) drops the keys here and
announces them on a bus; every subscribed replica drops them too:
- no URL: in-process only (one worker; a SQLite store adds its own cross-process signal, events.py);
- `redis://host:port/db` (RECSYS_CACHE_BUS_URL): Redis pub/sub on one channel (RECSYS_CACHE_CHANNEL).
A state read from the store is cached only when no invalidation arrived while it was read (a
generation counter), so a write landing mid-read never leaves a stale entry behind. While the Redis
subscriber is not connected it could miss messages, so the cache is emptied and bypassed (reads go
to the store) until it is subscribed again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

logger = logging.getLogger("serving")
V = TypeVar("V")

#: a message that drops every key (a whole data set was published)
ALL = "*"
DEFAULT_CHANNEL = "recsys:customer-state"

#: called with the dropped ids, or None for "everything"
Listener = Callable[[list[str] | None], None]


class StateCache(Generic[V]):
    """Thread-safe LRU of per-customer values with a generation counter bumped by every drop."""

    def __init__(self, max_size: int):
        if max_size < 1:
            raise ValueError(f"cache size must be >= 1, got {max_size}")
        self.max_size = max_size
        self._data: OrderedDict[str, V] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0

    def __len__(self) -> int:
        return len(self._data)

    def generation(self) -> int:
        """Read BEFORE reading the store; pass to `put`."""
        return self._generation

    def get_many(self, ids: Iterable[str]) -> dict[str, V]:
        out: dict[str, V] = {}
        with self._lock:
            for i in ids:
                value = self._data.get(i)
                if value is not None:
                    self._data.move_to_end(i)
                    out[i] = value
        return out

    def put(self, values: dict[str, V], generation: int) -> None:
        """Cache values read from the store, unless something was dropped since `generation`."""
        with self._lock:
            if generation != self._generation:
                return
            for i, value in values.items():
                self._data[i] = value
                self._data.move_to_end(i)
            while len(self._data) > self.max_size:
                self._data.popitem(last=False)

    def drop(self, ids: Iterable[str] | None) -> None:
        """Drop these keys (None: all of them)."""
        with self._lock:
            self._generation += 1
            if ids is None:
                self._data.clear()
            else:
                for i in ids:
                    self._data.pop(i, None)


class LocalBus:
    """No bus: invalidations reach this process only (the writer drops its own keys)."""

    live = True

    def start(self, listener: Listener) -> None:
        pass

    def publish(self, ids: list[str] | None) -> None:
        pass

    def close(self) -> None:
        pass


class RedisBus:
    """Redis pub/sub: `publish` announces keys; a daemon thread hands every replica's keys to the
    listener, and None (drop everything) whenever it (re)subscribes, since messages may have been
    missed while it was away. `live` is False while it is not subscribed."""

    def __init__(self, url: str, channel: str = DEFAULT_CHANNEL, timeout: float = 1.0):
        import redis

        self.url = url
        self.channel = channel
        self._redis = redis
        self._client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscribed = threading.Event()

    @property
    def live(self) -> bool:
        return self._subscribed.is_set()

    def start(self, listener: Listener) -> None:
        self._thread = threading.Thread(
            target=self._listen, args=(listener,), name="recsys-cache-bus", daemon=True
        )
        self._thread.start()
        self._subscribed.wait(2.0)  # usually subscribed before the first request; never fatal

    def _listen(self, listener: Listener) -> None:
        while not self._stop.is_set():
            pubsub = None
            try:
                client = self._redis.Redis.from_url(
                    self.url, socket_connect_timeout=1.0, health_check_interval=5
                )
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                pubsub.get_message(timeout=1.0)  # the subscribe confirmation (raises when unreachable)
                listener(None)  # whatever was published while we were away is unknown
                self._subscribed.set()
                logger.info("cache bus subscribed to %s", self.channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        listener(_decode(message["data"]))
            except Exception as exc:  # noqa: BLE001 - any failure: bypass the cache, retry
                if self._subscribed.is_set():
                    logger.warning(
                        "cache bus lost (%s): customer state read from the store", type(exc).__name__
                    )
                self._subscribed.clear()
                listener(None)
                self._stop.wait(1.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # closing a broken connection
                        pubsub.close()
        self._subscribed.clear()

    def publish(self, ids: list[str] | None) -> None:
        """Announce changed keys; a failure is logged (subscribers that lost Redis bypass their caches)."""
        try:
            self._client.publish(self.channel, json.dumps(ALL if ids is None else ids))
        except self._redis.RedisError as exc:
            logger.warning("cache bus publish failed (%s)", type(exc).__name__)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3.0)
        self._client.close()


def _decode(data: bytes | str) -> list[str] | None:
    value = json.loads(data)
    return None if value == ALL else [str(v) for v in value]


def make_bus(url: str | None, channel: str | None = None) -> LocalBus | RedisBus:
    """The bus a URL names: None/'' -> in-process, redis:// or rediss:// -> Redis pub/sub."""
    if not url:
        return LocalBus()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBus(url, channel or DEFAULT_CHANNEL)
    raise ValueError(f"RECSYS_CACHE_BUS_URL must be a redis:// URL, got {url!r}")
