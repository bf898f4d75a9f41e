"""Errors with an HTTP status and a reason the caller can act on.

BentoML turns unexpected exceptions into a 500 and wraps 4xx bodies oddly, so endpoints convert
every expected failure (bad input, unknown id, missing key) into a JSON `{"error": reason}` response
with the right status themselves.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse

from recsys.data.idmap import UnknownIdError
from serving.store_guard import StoreUnavailable

logger = logging.getLogger("serving")


class ApiError(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def to_response(exc: BaseException) -> JSONResponse:
    """Map an exception to a JSON error response; only truly unexpected errors become a 500."""
    if isinstance(exc, StoreUnavailable):  # nothing was acknowledged: the client retries later
        retry = str(max(1, round(exc.retry_after)))
        return JSONResponse({"error": exc.reason}, status_code=503, headers={"Retry-After": retry})
    if isinstance(exc, ApiError):
        status, reason = exc.status, exc.reason
    elif isinstance(exc, UnknownIdError):
        status, reason = 404, str(exc.args[0])  # str(KeyError) would wrap the message in quotes
    elif isinstance(exc, (ValueError, FileNotFoundError)):
        status, reason = 400, str(exc)
    else:
        logger.exception("unexpected error", exc_info=exc)
        status, reason = 500, "internal error; see the server log"
    return JSONResponse({"error": reason}, status_code=status)
