"""Request-validation failures are the caller's mistake, not the server's: log them at INFO, one line.

BentoML logs every malformed body (bad JSON, a field out of range) at ERROR with a full traceback,
which buries real faults. This filter rewrites those records only (their exception is pydantic's
ValidationError); every other error keeps its level and traceback.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

BENTOML_HTTP_LOGGER = "bentoml._internal.server.http_app"


class ValidationAtInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ValidationError):
            first = exc.errors(include_url=False)[0] if exc.error_count() else {}
            where = ".".join(str(x) for x in first.get("loc", ())) or "body"
            record.msg = "invalid request %s: %s: %s"
            record.args = (record.args[0] if record.args else "", where, first.get("msg", str(exc)))
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


def install() -> None:
    """Idempotent: one filter on BentoML's HTTP logger."""
    logger = logging.getLogger(BENTOML_HTTP_LOGGER)
    if not any(isinstance(f, ValidationAtInfo) for f in logger.filters):
        logger.addFilter(ValidationAtInfo())
