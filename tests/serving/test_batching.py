"""The micro-batcher: concurrent calls become one batch call; errors reach the right callers."""

from __future__ import annotations

import asyncio
import threading

import pytest

from serving.batching import MicroBatcher


def test_concurrent_calls_share_batches():
    calls: list[list[int]] = []
    gate = threading.Event()

    def fn(items: list[int]) -> list[int]:
        gate.wait(1.0)  # hold the first batch so the rest queue up behind it
        calls.append(list(items))
        return [x * 10 for x in items]

    async def main() -> list[int]:
        batcher = MicroBatcher(fn, max_batch_size=8)
        tasks = [asyncio.create_task(batcher.submit(i)) for i in range(20)]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == [i * 10 for i in range(20)]
    assert sum(len(c) for c in calls) == 20
    assert len(calls) < 20 and max(len(c) for c in calls) == 8  # batched, capped


def test_per_item_and_whole_batch_errors():
    def fn(items: list[int]) -> list[object]:
        if 99 in items:
            raise RuntimeError("batch failed")
        return [ValueError(f"bad {x}") if x < 0 else x for x in items]

    async def main() -> None:
        batcher = MicroBatcher(fn, max_batch_size=4)
        ok, bad = await asyncio.gather(batcher.submit(1), batcher.submit(-1), return_exceptions=True)
        assert ok == 1 and isinstance(bad, ValueError)
        with pytest.raises(RuntimeError):
            await batcher.submit(99)
        assert await batcher.submit(2) == 2  # the batcher survives a failed batch

    asyncio.run(main())


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError):
        MicroBatcher(lambda xs: xs, max_batch_size=0)


def test_prepare_is_awaited_once_per_batch_and_handed_to_fn():
    prepared: list[list[int]] = []

    async def prepare(items: list[int]) -> int:
        prepared.append(list(items))
        await asyncio.sleep(0)  # I/O on the loop, e.g. the event-store read
        return 100

    async def main() -> list[int]:
        batcher = MicroBatcher(
            lambda xs, extra: [x + extra for x in xs], max_batch_size=8, inline_max_size=8, prepare=prepare
        )
        return await asyncio.gather(*(batcher.submit(i) for i in range(3)))

    assert asyncio.run(main()) == [100, 101, 102]
    assert prepared == [[0, 1, 2]]
