"""The event store behind a deadline: faults degrade the service, they never freeze or break it.

Every store call runs on a small thread pool of its own (never on the event loop) and is given up
after `timeout` seconds; after a failure the store is left alone for `retry_after` seconds (calls
fail fast meanwhile), then the next call reconnects and re-runs the schema migration, so a database
that was down, stalled, or dropped and recreated is picked up again without a restart.

Reads that fail fall back per customer to the last state read successfully in this worker (a bounded
LRU, dropped per customer when any replica writes that customer's state), else to a fail-closed
stand-in: not personalised and, unless the request names a diet, the strictest diet (every attribute
excluded), since the customer's stored allergies cannot be read. Writes that fail
raise `StoreUnavailable` (-> 503 with Retry-After): nothing is acknowledged that was not committed.
A write given up on may still commit later; feedback carries client event ids, so a retry is
stored once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from recsys.data.schema import DIET_ATTRIBUTES
from serving.events import CustomerRecord, CustomerState, EventStore

logger = logging.getLogger("serving")
T = TypeVar("T")

#: why an answer was computed without live customer state (the response's `degraded` field)
LAST_KNOWN = "event store unavailable: customer state as last read by this worker"
FAIL_CLOSED = "event store unavailable: not personalised, strictest diet unless the request names one"


class StoreUnavailable(Exception):
    """The event store did not answer in time or failed; maps to 503 with Retry-After."""

    def __init__(self, reason: str, retry_after: float):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def fail_closed_state(customer_id: str) -> CustomerState:
    """No consent (not personalised, no events stored) and every diet attribute excluded."""
    record = CustomerRecord(customer_id, False, False, ",".join(DIET_ATTRIBUTES), None)
    return CustomerState(record=record, erased=True)


class GuardedStore:
    """Thread-safe; one per worker. `status()` is what readiness reports."""

    LAST_KNOWN_SIZE = 20_000

    def __init__(
        self,
        store: EventStore,
        timeout: float = 1.0,
        retry_after: float = 1.0,
        threads: int = 8,
        last_known: int = LAST_KNOWN_SIZE,
    ):
        self.store = store
        self.last_known = last_known
        self.timeout = timeout
        self.retry_after = retry_after
        self._pool = cf.ThreadPoolExecutor(threads, thread_name_prefix="recsys-store")
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._error: str | None = "not connected yet"
        self._last: OrderedDict[str, CustomerState] = OrderedDict()
        store.on_invalidate(self._dropped)  # a write on any replica: never serve that state again

    # ---- the guarded call -----------------------------------------------------------------------
    def _submit(self, fn: Callable[..., T], *args: Any) -> cf.Future:
        with self._lock:
            if time.monotonic() < self._down_until:
                raise StoreUnavailable(f"event store unavailable ({self._error})", self.retry_after)
        return self._pool.submit(fn, *args)

    def _failed(self, fut: cf.Future, exc: BaseException) -> StoreUnavailable:
        fut.cancel()  # not started yet: it never will (a started call is left to its driver timeout)
        reason = (
            f"timed out after {self.timeout:g} s" if isinstance(exc, TimeoutError) else type(exc).__name__
        )
        self.store.stale()  # the next call reconnects and re-checks the schema (it may have been dropped)
        with self._lock:
            self._down_until = time.monotonic() + self.retry_after
            if self._error != reason:
                logger.warning("event store unavailable: %s", reason)
            self._error = reason
        return StoreUnavailable(f"event store unavailable ({reason})", self.retry_after)

    def _succeeded(self) -> None:
        if self._error is not None:
            with self._lock:
                if self._error is not None:
                    logger.info("event store available again")
                self._error = None

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on a store thread; for callers already off the event loop."""
        fut = self._submit(fn, *args)
        try:
            result = fut.result(self.timeout)
        except (TimeoutError, SQLAlchemyError, OSError) as exc:
            raise self._failed(fut, exc) from exc
        self._succeeded()
        return result

    async def acall(self, fn: Callable[..., T], *args: Any) -> T:
        """`call` for the event loop: awaits the store thread, never blocks the loop."""
        fut = self._submit(fn, *args)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(fut), self.timeout)
        except (TimeoutError, SQLAlchemyError, OSError) as exc:
            raise self._failed(fut, exc) from exc
        self._succeeded()
        return result

    # ---- reads that degrade -----------------------------------------------------------------------
    def _remember(self, states: dict[str, CustomerState]) -> None:
        with self._lock:
            for cid, state in states.items():
                self._last[cid] = state
                self._last.move_to_end(cid)
            while len(self._last) > self.last_known:
                self._last.popitem(last=False)

    def _fallback(self, ids: Iterable[str]) -> tuple[dict[str, CustomerState], dict[str, str]]:
        states, why = {}, {}
        with self._lock:
            for cid in ids:
                known = self._last.get(cid)
                states[cid] = known if known is not None else fail_closed_state(cid)
                why[cid] = LAST_KNOWN if known is not None else FAIL_CLOSED
        return states, why

    async def astates(self, ids: list[str]) -> tuple[dict[str, CustomerState], dict[str, str]]:
        """(state per customer, degraded reason per customer whose state is not live); answered
        inline when the store's cache is known current, else from a store thread."""
        hit = self.store.cached_states(ids)
        if hit is not None:
            return hit, {}
        try:
            states = await self.acall(self.store.states, ids)
        except StoreUnavailable:
            return self._fallback(ids)
        self._remember(states)
        return states, {}

    # ---- health -------------------------------------------------------------------------------------
    def status(self) -> str | None:
        """None when the store answers a ping now, else why not (a ping also reconnects)."""
        try:
            self.call(self.store.ping)
        except StoreUnavailable as exc:
            return exc.reason
        return None

    def connect(self) -> bool:
        """Connect and migrate without the per-call deadline (a first migration can take longer than
        a query); driver timeouts still bound it. False (logged) when the store cannot be reached."""
        try:
            self.store.connect()
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("event store not reachable at start (%s); serving without it", type(exc).__name__)
            self.store.stale()
            return False
        self._succeeded()
        return True

    def _dropped(self, ids: list[str] | None) -> None:
        """Forget these customers' last-known state (None: the bus may have missed some: all)."""
        with self._lock:
            if ids is None:
                self._last.clear()
            else:
                for cid in ids:
                    self._last.pop(cid, None)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()
