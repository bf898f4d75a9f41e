"""One small thread-safe LRU cache for everything derived per diet, filter or list length.

Masks, forbidden-item indices, per-diet factor indexes and non-personalised top lists are each built
once per key and shared by every request that needs them; values must be treated as read-only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class LRUCache(Generic[V]):
    """`get(key, build)`: the cached value, or `build()` stored under `key` (least recently used
    entries leave first). Two threads may build the same key at once; both get an equal value, the
    cache keeps one. Building runs outside the lock so one slow build never blocks other keys."""

    def __init__(self, max_size: int = 256):
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {max_size}")
        self.max_size = max_size
        self._data: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        value = build()
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.max_size:
                self._data.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> list[Hashable]:
        """The cached keys, least recently used first (a copy: safe to iterate while others build)."""
        with self._lock:
            return list(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
