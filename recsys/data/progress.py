"""A tiny step reporter for long jobs: one line per step with its duration, on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Progress:
    def __init__(self, total: int, enabled: bool = True, stream=None, prefix: str = ""):
        self.total = total
        self.prefix = prefix
        self.done = 0
        self.enabled = enabled
        self.stream = stream or sys.stderr

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        self.done += 1
        start = time.perf_counter()
        if self.enabled:
            print(
                f"{self.prefix}[{self.done}/{self.total}] {label} ...", end="", file=self.stream, flush=True
            )
        yield
        if self.enabled:
            print(f" {time.perf_counter() - start:.1f}s", file=self.stream, flush=True)
