"""The synthetic generator's purchase lines drawn in worker processes, block by block.

Every block of customers after the first draws from its own seeded stream
(`np.random.default_rng([seed, i])`), and its basket ids start after the baskets of the blocks before
it, a count known before any line is drawn (`_Synthesis.basket_offsets`). So a block needs nothing from
its neighbours: drawn in any process, in any order, it gives the same part file as in one process.

Workers are started with "spawn". Each reads once what every block reads (the catalog's draw tables,
the promotion calendar, the ids and the key columns a part is validated against) from a temporary
pickle, then receives one block of customers' traits per task; it draws the block's lines, validates and writes its part itself
(`recsys.data.io.write_part`) and returns only the problems found, so the parent serialises nothing
but its own first block and the redemptions. "fork" would share the world copy-on-write instead, but
RSS summed over the process tree (how the scale benchmark measures) then counts the shared pages once
per process, and forking a parent whose Arrow and BLAS thread pools are running is fragile; a spawned
worker holds only its block and what it reads, and costs a second of start-up. At most `workers + 1`
blocks are submitted at a time, so at most that many are in memory.

Like any spawned pool, a script that calls this needs the `if __name__ == "__main__":` guard (the
`recsys` command has it): a spawned worker imports the main script first. Without the guard the worker
dies and a RuntimeError says so; the shared context goes through a file rather than the start-up pipe
because CPython's spawn blocks for ever writing a large start-up message to a worker that died.
"""

from __future__ import annotations

import multiprocessing
import pickle
import tempfile
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from lab.synthetic import _interactions_table, _lines, _Shelf, _Shoppers, _Synthesis
from recsys.data.io import PartWriter, write_part
from recsys.data.validation import Problem

#: Worker processes the command line starts by default at most, whatever the machine: each holds a block.
MAX_DEFAULT_WORKERS = 8


@dataclass(frozen=True)
class _Context:
    """What every block reads, sent once to each worker."""

    shelf: _Shelf
    promo: np.ndarray
    customer_ids: pa.Array
    product_ids: pa.Array
    t0: np.datetime64
    refs: dict[str, pd.DataFrame]  # validation references (`recsys.data.validation.references`)
    directory: Path  # where the interactions parts go


@dataclass(frozen=True)
class _Task:
    index: int  # block number = part number
    shoppers: _Shoppers
    offset: int  # first basket id
    baskets: int  # baskets the block must draw


_CONTEXT: _Context | None = None  # set in each worker by `_init`


def _init(context_file: str) -> None:
    global _CONTEXT
    with open(context_file, "rb") as f:
        _CONTEXT = pickle.load(f)


def _draw(task: _Task) -> list[Problem]:
    assert _CONTEXT is not None, "worker not initialised"
    ctx = _CONTEXT
    rng = np.random.default_rng([ctx.shelf.seed, task.index])
    lines = _lines(ctx.shelf, task.shoppers, rng, ctx.promo)[0]
    table = _table(ctx, task.index, lines, task.offset, task.baskets)
    del lines  # before validation copies the table
    return _write(ctx, task.index, table)


def _table(ctx: _Context, index: int, lines: dict, offset: int, baskets: int | None) -> pd.DataFrame:
    drawn = int(lines["basket"].max()) + 1 if len(lines["basket"]) else 0
    if baskets is not None and drawn != baskets:  # the offsets of the blocks after it would be wrong
        raise RuntimeError(f"block {index} drew {drawn} baskets, {baskets} were counted ahead")
    return _interactions_table(lines, offset, ctx.customer_ids, ctx.product_ids, ctx.t0)


def _write(ctx: _Context, index: int, table: pd.DataFrame) -> list[Problem]:
    return write_part("interactions", table, ctx.refs, ctx.directory / f"part-{index:05d}.parquet")


def interaction_writer(syn: _Synthesis, workers: int) -> PartWriter:
    """A `PartWriter` of `syn`'s purchase lines: the first block (drawn already) and the redemptions
    in this process, the other blocks in `workers` spawned processes; parts numbered as
    `_Synthesis.interaction_parts` yields them."""

    def write(refs: dict[str, pd.DataFrame], directory: Path) -> list[Problem]:
        ctx = _Context(syn.w.shelf(), syn.promo, syn.customer_ids, syn.product_ids, syn.t0, refs, directory)
        blocks, offsets = syn.blocks(), syn.basket_offsets()
        last = len(blocks)  # the redemptions' part
        found: dict[int, list[Problem]] = {}

        def here(i: int, lines: dict, baskets: int | None) -> None:
            found[i] = _write(ctx, i, _table(ctx, i, lines, offsets[i], baskets))

        tasks = (
            _Task(i, syn.w.shoppers(blocks[i]), offsets[i], offsets[i + 1] - offsets[i])
            for i in range(1, last)
        )
        n = min(workers, last - 1)
        if n:
            with tempfile.TemporaryDirectory(prefix="recsys-synthetic-") as tmp:
                context_file = Path(tmp) / "context.pickle"
                context_file.write_bytes(pickle.dumps(ctx, protocol=pickle.HIGHEST_PROTOCOL))
                spawn = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(
                    n, mp_context=spawn, initializer=_init, initargs=(str(context_file),)
                ) as pool:
                    pending: deque[tuple[int, Future]] = deque()
                    try:
                        for task in tasks:
                            while len(pending) > n:  # bounded window: at most n + 1 blocks submitted
                                i, done = pending.popleft()
                                found[i] = done.result()
                            pending.append((task.index, pool.submit(_draw, task)))
                            if 0 not in found:  # the parent's own block while the first workers start
                                here(0, syn.first, offsets[1] - offsets[0])
                        while pending:
                            i, done = pending.popleft()
                            found[i] = done.result()
                    except BrokenProcessPool as exc:
                        raise RuntimeError(
                            "a worker process died (out of memory? a script calling this with workers > 1"
                            " needs the `if __name__ == '__main__':` guard)"
                        ) from exc
                    finally:
                        for _, future in pending:
                            future.cancel()
        if 0 not in found:
            here(0, syn.first, offsets[1] - offsets[0])
        here(last, syn.redemptions, None)
        return [p for i in sorted(found) for p in found[i]]

    return write
