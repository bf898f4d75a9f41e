"""CSV files a spreadsheet can open safely: cells that would start a formula are neutralised.

Spreadsheets run a cell that starts with = + - @ (or a tab / carriage return before one) as a formula
(OWASP "CSV injection"): a product name such as `=HYPERLINK(...)` in a report would become a link.
Every CSV the command line writes goes through `write_csv`, which prefixes such text cells with a
single quote; numbers stay numbers (a negative score is not text), so the files still read back
with pandas.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: First characters that make a spreadsheet treat a cell as a formula.
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """`value` with a leading quote when it is text that starts like a formula; anything else as is."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells (object/string columns, and the header) are neutralised."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(neutralise)
    out.columns = [neutralise(str(c)) for c in out.columns]
    return out


def write_csv(frame: pd.DataFrame, path: str | Path, append: bool = False) -> Path:
    """Write `frame` without its index as a formula-safe CSV (parent directories created); `append`
    adds its rows without a header (a batch job writing block after block)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # CRLF rows (RFC 4180): the writer then quotes any field holding a bare CR, which would split a row
    safe_frame(frame).to_csv(
        path, index=False, lineterminator="\r\n", mode="a" if append else "w", header=not append
    )
    return path
