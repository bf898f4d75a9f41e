"""Adaptive micro-batching: concurrent requests become one batch call (one matrix product).

While a batch is being computed (in a worker thread, so the event loop keeps accepting requests),
new requests queue up; the next batch takes all of them, up to `max_batch_size`. The batch size
therefore adapts to the load by itself: 1 when requests arrive one at a time (no added latency), many
under load (one BLAS matrix product instead of many matrix-vector products).

Small batches (<= `inline_max_size`) run on the event loop itself: a hand-off to a worker thread and
back costs more CPU than scoring a few requests (~0.6 ms per batch measured under load, against
~0.3 ms per request of compute), and with the GIL the thread buys no parallelism for them anyway.
Before taking a batch the drainer yields once, so requests that reached `submit` in the same event
loop iteration are batched together; large batches still go to a thread so the loop keeps reading
sockets meanwhile.

We do not use BentoML's `batchable=True` dispatcher here: it batches only whole API calls (the
products endpoint also needs auth, consent and per-request errors), it polls its queue every
millisecond and it sheds load with 503s once its latency model says a deadline is at risk.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """`await submit(x)` returns `fn([..., x, ...])[i]`; an Exception in the result list is raised
    for that caller only, an exception from `fn` is raised for every caller of the batch.

    With `prepare`, `fn(items, await prepare(items))` instead: I/O a batch needs (the event-store
    read) is awaited on the loop first, so an inline batch never blocks the loop on it."""

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R | BaseException]],
        max_batch_size: int = 64,
        on_batch: Callable[[int], None] | None = None,
        inline_max_size: int = 0,
        prepare: Callable[[list[T]], Awaitable[Any]] | None = None,
    ):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.inline_max_size = inline_max_size
        self.on_batch = on_batch
        self.prepare = prepare
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let requests already in flight in this loop iteration join
        while self._queue:
            n = min(len(self._queue), self.max_batch_size)
            batch = [self._queue.popleft() for _ in range(n)]
            if self.on_batch is not None:
                self.on_batch(n)
            try:
                items = [item for item, _ in batch]
                args = (items,) if self.prepare is None else (items, await self.prepare(items))
                if n <= self.inline_max_size:
                    results = self.fn(*args)
                    await asyncio.sleep(0)  # the loop reads the sockets that became ready meanwhile
                else:
                    results = await asyncio.to_thread(self.fn, *args)
                if len(results) != len(batch):
                    raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)}")
            except BaseException as exc:  # noqa: BLE001 - every waiter must be released
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, fut), res in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)
