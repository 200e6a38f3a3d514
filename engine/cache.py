"""A byte-bounded LRU with hit/miss counters: resident avatars and rendered JPEGs both live in one of these."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int
    max_bytes: int
    hits: int
    misses: int
    evictions: int

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"entries": self.entries, "bytes": self.bytes, "max_bytes": self.max_bytes, "hits": self.hits,
                "misses": self.misses, "evictions": self.evictions, "hit_rate": round(self.hit_rate, 4)}


class ByteLRU(Generic[V]):
    """Least-recently-used map bounded by the summed size of its values. Thread-safe.

    ``pinned(key)`` entries are never evicted (a streaming avatar); a value larger than the whole bound is not stored.
    """

    def __init__(self, max_bytes: int, sizeof: Callable[[V], int],
                 pinned: Callable[[Hashable], bool] | None = None, max_entries: int | None = None) -> None:
        self.max_bytes = int(max_bytes)
        self.max_entries = max_entries
        self._sizeof = sizeof
        self._pinned = pinned or (lambda key: False)
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = self.evictions = 0

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def peek(self, key: Hashable) -> V | None:
        """Look up without counting a hit or refreshing recency."""
        with self._lock:
            item = self._items.get(key)
            return None if item is None else item[0]

    def put(self, key: Hashable, value: V) -> list[Hashable]:
        """Store a value; returns the keys evicted to make room."""
        size = int(self._sizeof(value))
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key)[1]
            if size > self.max_bytes:
                return []
            self._items[key] = (value, size)
            self._bytes += size
            return self._shrink(keep=key)

    def pop(self, key: Hashable) -> V | None:
        with self._lock:
            item = self._items.pop(key, None)
            if item is None:
                return None
            self._bytes -= item[1]
            return item[0]

    def _shrink(self, keep: Hashable) -> list[Hashable]:
        evicted = []
        for key in list(self._items):
            too_many = self.max_entries is not None and len(self._items) > self.max_entries
            if self._bytes <= self.max_bytes and not too_many:
                break
            if key == keep or self._pinned(key):
                continue
            self._bytes -= self._items.pop(key)[1]
            self.evictions += 1
            evicted.append(key)
        return evicted

    def list_keys(self) -> list[Hashable]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(len(self._items), self._bytes, self.max_bytes, self.hits, self.misses, self.evictions)
