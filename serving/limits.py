"""Request-body limits in front of every API route (one ASGI middleware), and 400 bodies as documented.

- a body that is not `application/json`: 415 (BentoML would answer a multipart type without a
  boundary with a 500, and parse text/plain as JSON);
- a body larger than RECSYS_MAX_BODY_BYTES (default 1 MiB): 413, from Content-Length before anything
  is read, else counted while reading;
- JSON with a key given twice (which one would win is the parser's choice), with NaN/Infinity, or a
  number that overflows to infinity (1e309): 400 naming it;
- BentoML's own validation errors carry `detail` as a list; the spec says `{"error": str, "detail":
  str}`, so those bodies are rewritten to `error` = the first problem, `detail` = all of them.

Health probes, /metrics and the docs are passed through untouched.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 1 << 20
ENV = "RECSYS_MAX_BODY_BYTES"


class BadBody(ValueError):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def max_body_bytes(env: MutableMapping[str, str] | None = None) -> int:
    value = (os.environ if env is None else env).get(ENV)
    return int(value) if value else DEFAULT_MAX_BODY_BYTES


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadBody(400, f"duplicate key {key!r} in the JSON body")
        out[key] = value
    return out


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadBody(400, f"number {text[:40]} is out of range")
    return value


def _constant(name: str) -> float:
    raise BadBody(400, f"{name} is not valid JSON (numbers must be finite)")


def check_json(body: bytes) -> None:
    """Raise BadBody for duplicate keys and non-finite numbers; other JSON errors are BentoML's to name."""
    try:
        json.loads(body, object_pairs_hook=_pairs, parse_float=_finite, parse_constant=_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return  # BentoML answers malformed JSON with a 400 of its own (rewritten below)


def flatten_detail(body: dict[str, Any]) -> dict[str, Any]:
    """`{"error", "detail": [pydantic errors]}` -> `{"error": first problem, "detail": all, joined}`."""
    detail = body.get("detail")
    if not isinstance(detail, list):
        return body
    problems = []
    for item in detail:
        if isinstance(item, dict):
            loc = ".".join(str(x) for x in item.get("loc") or ())
            msg = str(item.get("msg", "invalid"))
            problems.append(f"{loc}: {msg}" if loc else msg)
        else:
            problems.append(str(item))
    text = "; ".join(problems) or str(body.get("error", "invalid request"))
    return {"error": problems[0] if problems else text, "detail": text}


class InputLimits:
    """ASGI middleware applying the rules above to POST/PUT/PATCH requests under /v1/ (not health)."""

    def __init__(self, app: Callable[..., Awaitable[None]], max_bytes: int | None = None):
        self.app = app
        self._max_bytes = max_bytes  # None: RECSYS_MAX_BODY_BYTES, read per request (cheap; tests vary it)

    @property
    def max_bytes(self) -> int:
        return max_body_bytes() if self._max_bytes is None else self._max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope.get("method") not in ("POST", "PUT", "PATCH")
            or not path.startswith("/v1/")
            or path.startswith("/v1/health")
        ):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._body(scope, receive)
            check_json(body)
        except BadBody as exc:
            await _answer(send, exc.status, str(exc))
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, _documented_errors(send))

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media and media != "application/json":
            raise BadBody(415, f"unsupported media type {media!r}: send Content-Type: application/json")
        limit = self.max_bytes
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                raise BadBody(400, f"bad Content-Length {length[:20]!r}")
            if int(length) > limit:
                raise BadBody(413, f"request body of {int(length):,} bytes exceeds the limit of {limit:,}")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BadBody(413, f"request body exceeds the limit of {limit:,} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if not media and body.strip():  # no type at all: fine for an empty body (BentoML reads {})
            raise BadBody(415, "unsupported media type 'none': send Content-Type: application/json")
        return body


async def _answer(send: Send, status: int, reason: str) -> None:
    payload = json.dumps({"error": reason}).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


def _documented_errors(send: Send) -> Send:
    """A `send` that rewrites 400 JSON bodies whose `detail` is a list (see the module docstring)."""
    start: Message | None = None
    parts: list[bytes] = []

    async def wrapped(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start" and message.get("status") == 400:
            start = message
            return
        if start is None:
            await send(message)
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        parts.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(parts)
        try:
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                body = json.dumps(flatten_detail(parsed)).encode("utf-8")
        except ValueError:
            pass
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return wrapped
