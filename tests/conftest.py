"""Fixtures shared across the test packages."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def completejourney_dir(tmp_path_factory):
    """The real Complete Journey data prepared once per test session (about 10 s); the one real-data path."""
    from recsys.prepare import prepare_completejourney

    out = tmp_path_factory.mktemp("realdata") / "cj"
    tables, report = prepare_completejourney(out)
    return out, tables, report
