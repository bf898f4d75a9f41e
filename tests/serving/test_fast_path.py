"""The products hot path as served: the selection shortcuts give exactly what the general path gives
over the service's own runtime, the event-state cache, inline batches."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from recsys.ranking.selection import ProductSelector
from serving.batching import MicroBatcher
from serving.config import Settings
from serving.customers import diet_profile
from serving.events import CustomerRecord, EventStore, NewEvent
from serving.products import ProductJob, recommend_batch
from serving.publish import publish
from serving.runtime import load_runtime
from serving.schemas import ProductsRequest, ProductsResponse
from tests.serving.conftest import BREAD_BUYERS, MEAT_BUYERS, VEGAN


@pytest.fixture
def runtime_and_store(world: dict[str, Path], tmp_path: Path):
    settings = Settings(
        model_dir=world["model"], data_dir=world["data"], events_url=f"sqlite:///{tmp_path / 'e.db'}"
    )
    store = EventStore(settings.events_url)
    publish(store, world["data"])  # the customers' consent and diets, read by key
    yield load_runtime(settings), store
    store.close()


def _run(rt, store, customer_ids, diet=None, default_consent=False):
    jobs = [
        ProductJob(ProductsRequest(customer_id=c, k=6, diet=diet), diet_profile(diet)) for c in customer_ids
    ]
    out = recommend_batch(rt, jobs, store.states(customer_ids), default_consent)
    return [ProductsResponse.model_validate_json(body) for body in out]


@pytest.mark.parametrize("diet", [None, ["vegan"], ["gluten-free"]])
def test_fast_paths_equal_the_general_path(runtime_and_store, monkeypatch, diet):
    rt, store = runtime_and_store
    assert rt.selector.dot_product_model
    ids = [*BREAD_BUYERS[:3], *MEAT_BUYERS[:3], VEGAN, "nc1", "somebody-new"]
    fast = _run(rt, store, ids, diet)
    # the general path for everyone: full score rows, mask, top-k
    monkeypatch.setattr(ProductSelector, "_path", lambda self, q, s: "general")
    slow = _run(rt, store, ids, diet)
    for a, b in zip(fast, slow, strict=True):
        assert [i.item_id for i in a.items] == [i.item_id for i in b.items]
        np.testing.assert_allclose(
            [i.score for i in a.items], [i.score for i in b.items], rtol=1e-5, atol=1e-6
        )
        assert [i.reason for i in a.items] == [i.reason for i in b.items]
        assert (a.personalised, a.fallback, a.diet) == (b.personalised, b.fallback, b.diet)


def test_fold_in_still_changes_the_list_with_the_cache(runtime_and_store):
    rt, store = runtime_and_store
    before = _run(rt, store, [VEGAN])[0]
    store.add_events([NewEvent(VEGAN, "purchase", "p_beef"), NewEvent(VEGAN, "purchase", "p_bbq")])
    after = _run(rt, store, [VEGAN])[0]  # fresh events: the fold-in path, not a stale cached state
    assert [(i.item_id, i.score) for i in after.items] != [(i.item_id, i.score) for i in before.items]
    assert "p_beef" not in [i.item_id for i in after.items]  # the vegan profile still applies


def test_event_state_cache_sees_writes_of_other_workers(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = EventStore(url), EventStore(url)  # two worker processes' stores on one database
    try:
        assert b.states(["c1"])["c1"].fresh_items == ()
        assert b.states(["c1"])["c1"].fresh_items == ()  # now cached
        a.add_events([NewEvent("c1", "purchase", "p1")])
        assert b.states(["c1"])["c1"].fresh_items == ("p1",)
        a.upsert_customer(CustomerRecord("c1", False, False))
        assert b.states(["c1"])["c1"].record == CustomerRecord("c1", False, False)
        a.erase("c1")
        erased = b.states(["c1"])["c1"]
        assert erased.erased and erased.fresh_items == () and erased.record is None
        b.add_events([NewEvent("c2", "add_to_cart", "p2")])  # own writes too
        assert b.states(["c2"])["c2"].fresh_items == ("p2",)
        assert a.states(["c2"])["c2"].fresh_items == ("p2",)
    finally:
        a.close()
        b.close()


def test_inline_batches_share_calls_and_keep_errors_per_caller():
    calls: list[list[int]] = []

    def fn(items: list[int]) -> list[object]:
        calls.append(list(items))
        return [ValueError(f"bad {x}") if x < 0 else x * 10 for x in items]

    async def main() -> list[object]:
        batcher = MicroBatcher(fn, max_batch_size=8, inline_max_size=8)
        return await asyncio.gather(*(batcher.submit(i) for i in [*range(11), -1]), return_exceptions=True)

    results = asyncio.run(main())
    assert results[:11] == [i * 10 for i in range(11)] and isinstance(results[11], ValueError)
    assert [len(c) for c in calls] == [8, 4]  # one loop iteration's submits -> full batches


def test_shared_accepts_still_serve_every_connection():
    from serving.accept import share_accepts

    assert share_accepts()
    assert share_accepts()  # idempotent

    async def main() -> list[bytes]:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=100)
        port = server.sockets[0].getsockname()[1]

        async def client(i: int) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"{i}\n".encode())
            line = await reader.readline()
            writer.close()
            return line

        try:
            return await asyncio.gather(*(client(i) for i in range(20)))  # a burst, one accept per tick
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(main()) == [f"{i}\n".encode() for i in range(20)]


def test_a_reload_builds_what_the_old_runtime_served_before_it_swaps(runtime_and_store, world):
    """The first request after a reload must not wait for a per-diet factor index: `warm` (run in the
    reload's thread) builds every diet the replaced runtime had served, and the answers are the same
    as from a runtime that built them on demand."""
    rt, store = runtime_and_store
    ids = [*BREAD_BUYERS[:2], VEGAN]
    _run(rt, store, ids, ["vegan"])
    _run(rt, store, ids, ["gluten-free", "nut-free"])
    served = set(rt.selector._factor_indexes.keys())
    assert {
        diet_profile(["vegan"]).exclusions,
        diet_profile(["gluten-free", "nut-free"]).exclusions,
    } <= served

    settings = Settings(model_dir=world["model"], data_dir=world["data"])
    new = load_runtime(settings, previous=rt)
    assert new.catalog is rt.catalog  # same data dir: the catalog is shared
    assert new.selector._forbidden is rt.selector._forbidden  # catalog-only caches too
    assert new.selector._factor_indexes.keys() == []
    new.warm()
    assert set(new.selector._factor_indexes.keys()) == served
    cold = load_runtime(settings)
    for diet in (["vegan"], ["gluten-free", "nut-free"]):
        warm_answers = _run(new, store, ids, diet)
        cold_answers = _run(cold, store, ids, diet)
        assert [[i.item_id for i in a.items] for a in warm_answers] == [
            [i.item_id for i in a.items] for a in cold_answers
        ]
