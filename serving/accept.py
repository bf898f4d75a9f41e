"""Fair sharing of new connections between worker processes that listen on one socket."""

from __future__ import annotations

import inspect
import logging

logger = logging.getLogger("serving")


def share_accepts(per_tick: int = 1) -> bool:
    """Make sibling worker processes share new connections (asyncio event loop; no-op under uvloop).

    All workers listen on one socket. asyncio accepts up to `backlog` (BentoML: 2048) pending
    connections per wake-up, so when a client opens its keep-alive connections at once, the first
    worker to wake takes all of them and the other workers idle: with 2 workers and wrk's 32
    connections, most runs served ~1,100 req/s from one busy worker instead of ~2,200 from two.
    Accepting `per_tick` per event-loop iteration (the socket stays readable, so the rest follow
    on the next iterations) lets every idle worker take its share, and a worker busy computing a
    batch takes fewer. The kernel's listen queue is unchanged.
    """
    from asyncio import selector_events

    cls = selector_events.BaseSelectorEventLoop
    original = cls._accept_connection
    if getattr(original, "_recsys_shared", False):
        return True
    if list(inspect.signature(original).parameters)[:6] != [
        "self",
        "protocol_factory",
        "sock",
        "sslcontext",
        "server",
        "backlog",
    ]:
        logger.warning("asyncio's accept loop changed; connections are not shared between workers")
        return False

    def accept(self, protocol_factory, sock, sslcontext=None, server=None, backlog=100, *args):  # noqa: ANN001, ANN202
        return original(self, protocol_factory, sock, sslcontext, server, min(backlog, per_tick), *args)

    accept._recsys_shared = True  # type: ignore[attr-defined]
    cls._accept_connection = accept  # type: ignore[method-assign]
    return True
