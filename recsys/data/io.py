"""Reading and writing a data directory of canonical tables, all-or-nothing.

A data directory holds each canonical table as `<table>.parquet` or, for tables too large for one
frame (the purchase lines of a national program), as a directory of parts `<table>/part-*.parquet`
written block by block; plus `manifest.json`. Extra, source-specific tables (synthetic ground
truth, say) live under `extra/`, laid out the same way. DuckDB reads either layout as one table.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import duckdb
import pandas as pd

from recsys.atomic import staged_dir
from recsys.data.schema import TABLES, Table
from recsys.data.validation import Problem, ValidationError, references, validate_part, validated

MANIFEST = "manifest.json"
PARTS = "part-*.parquet"


def _read_csv(path: Path) -> pd.DataFrame:
    # Everything as text: types are decided by validation, which reports the row that does not parse.
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def read_source_dir(source: Path) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Raw tables from `<table>.csv` / `<table>.parquet` files, with the file each came from."""
    source = Path(source)
    if not source.is_dir():
        raise ValidationError([Problem(str(source), None, None, None, "not a directory")])
    tables: dict[str, pd.DataFrame] = {}
    files: dict[str, str] = {}
    problems: list[Problem] = []
    for path in sorted(source.iterdir()):
        name, suffix = path.name.split(".", 1)[0], "".join(path.suffixes)
        if suffix not in (".csv", ".parquet", ".csv.gz"):
            continue
        if name not in TABLES:
            problems.append(Problem(str(path), None, None, None, f"unknown table {name!r}"))
            continue
        if name in tables:
            problems.append(
                Problem(str(path), None, None, None, f"table {name!r} given twice ({files[name]})")
            )
            continue
        try:
            tables[name] = pd.read_parquet(path) if suffix == ".parquet" else _read_csv(path)
        except Exception as exc:  # unreadable file: report it, don't crash
            problems.append(Problem(str(path), None, None, None, f"cannot read: {exc}"))
            continue
        files[name] = str(path)
    if problems:
        raise ValidationError(problems)
    return tables, files


_CANONICAL_SQL = {
    "id": "VARCHAR",
    "str": "VARCHAR",
    "tristate": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
}


def table_files(data_dir: Path, name: str) -> list[Path]:
    """The Parquet file(s) holding table `name` in a data directory: `<name>.parquet` or its parts."""
    single = Path(data_dir) / f"{name}.parquet"
    return [single] if single.exists() else sorted((Path(data_dir) / name).glob(PARTS))


def table_stats(files: list[Path], table: Table) -> tuple[int, int]:
    """(rows, sum of row hashes mod 2**64) of a table's Parquet files: independent of row order and
    of how the rows are split into files, streamed by DuckDB. Columns are cast to their canonical
    type first, so any writer (pandas, DuckDB, Spark) of the same values gives the same figures."""
    con = connect()
    present = set(con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_list(files)})").df()["column_name"])
    cols = [f'"{c.name}"::{_CANONICAL_SQL[c.kind]}' for c in table.columns if c.name in present]
    rows, total = con.execute(
        f"SELECT count(*), coalesce(sum(hash({', '.join(cols)})::HUGEINT) % 18446744073709551616, 0)"
        f" FROM read_parquet({sql_list(files)})"
    ).fetchone()
    return int(rows), int(total)


def digest(data_dir: Path) -> str:
    """Digest of a data directory's canonical tables: a function of the written Parquet files only
    (row order and part layout do not matter), so two engines writing the same rows agree."""
    return _digest(_all_stats(data_dir))


def _all_stats(data_dir: Path) -> dict[str, tuple[int, int]]:
    return {
        name: table_stats(files, TABLES[name]) for name in TABLES if (files := table_files(data_dir, name))
    }


def _digest(stats: dict[str, tuple[int, int]]) -> str:
    h = hashlib.sha256()
    for name in sorted(stats):
        rows, total = stats[name]
        h.update(f"{name}:{rows}:{total};".encode())
    return h.hexdigest()[:16]


#: DuckDB's working memory; beyond it sorts, joins and aggregates spill to a temporary directory.
DUCKDB_MEMORY = "3GB"


def connect(memory_limit: str = DUCKDB_MEMORY) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with bounded memory that spills to the system temp directory."""
    con = duckdb.connect()
    spill = Path(tempfile.gettempdir()) / "recsys-duckdb"
    con.execute(f"SET memory_limit = '{memory_limit}'; SET temp_directory = '{spill}'")
    return con


def sql_list(files: list[Path]) -> str:
    return "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"


#: A table's parts written by their producer itself (in worker processes, say): called with the tables
#: the parts refer to (`references`) and the directory for `part-NNNNN.parquet`, it writes every part
#: through `write_part` and returns the problems found.
PartWriter = Callable[[dict[str, pd.DataFrame], Path], list[Problem]]


def write_part(name: str, block: pd.DataFrame, refs: dict[str, pd.DataFrame], path: Path) -> list[Problem]:
    """Validate one block of table `name` against the tables it refers to (`references`) and write it
    to `path` unless it has problems; returns them. What `write_tables` does with each part."""
    part, found = validate_part(name, block, refs, f"{name}/{Path(path).name}")
    if not found:
        part.to_parquet(path, index=False)
    return found


def write_tables(
    tables: dict[str, pd.DataFrame],
    out: Path,
    manifest: dict | None = None,
    extra: dict[str, pd.DataFrame] | None = None,
    sources: dict[str, str] | None = None,
    parts: dict[str, Iterable[pd.DataFrame] | PartWriter] | None = None,
    extra_parts: dict[str, Iterable[pd.DataFrame]] | None = None,
) -> dict:
    """Validate, then write every table into `out` atomically (temp dir + rename).

    `parts` gives tables (without a primary key) as a stream of blocks, each validated against the
    other tables and written as `<table>/part-NNNNN.parquet` as it comes, so memory holds one block,
    or as a `PartWriter` that writes them itself; `extra_parts` does the same under `extra/`. On any
    problem a ValidationError lists them all and nothing is touched in `out`.
    """
    out = Path(out)
    parts = parts or {}
    typed = validated(tables, sources, partitioned=tuple(parts))
    info = dict(manifest or {})
    with staged_dir(out) as tmp:
        for name in typed:
            typed[name].to_parquet(tmp / f"{name}.parquet", index=False)
        refs_of = {name: references(name, typed) for name in parts}
        del typed  # parts are checked against the key columns only: the typed copies are written
        problems: list[Problem] = []
        for name, blocks in parts.items():
            (tmp / name).mkdir()
            refs = refs_of[name]
            if callable(blocks):
                problems.extend(blocks(refs, tmp / name))
                continue
            for i, block in enumerate(blocks):
                problems.extend(write_part(name, block, refs, tmp / name / f"part-{i:05d}.parquet"))
        if problems:
            raise ValidationError(problems)
        if extra or extra_parts:
            (tmp / "extra").mkdir()
        for name, df in (extra or {}).items():
            df.to_parquet(tmp / "extra" / f"{name}.parquet", index=False)
        for name, blocks in (extra_parts or {}).items():
            (tmp / "extra" / name).mkdir()
            for i, block in enumerate(blocks):
                block.to_parquet(tmp / "extra" / name / f"part-{i:05d}.parquet", index=False)
        stats = _all_stats(tmp)  # one pass over each table gives the row counts and the digest
        info["tables"] = {name: rows for name, (rows, _) in stats.items()}
        info["digest"] = _digest(stats)
        (tmp / MANIFEST).write_text(json.dumps(info, indent=2, default=str))
    return info


def read_tables(data_dir: Path, skip: tuple[str, ...] = ()) -> dict[str, pd.DataFrame]:
    """Canonical tables of a prepared data directory (already validated when written). `skip` leaves
    out tables a caller does not use (the promotion calendar is tens of millions of rows)."""
    data_dir = Path(data_dir)
    if not (data_dir / MANIFEST).exists():
        raise FileNotFoundError(
            f"{data_dir} is not a prepared data directory (no {MANIFEST}); run 'recsys data prepare' first"
        )
    return {
        name: _read_files(files)
        for name in TABLES
        if name not in skip and (files := table_files(data_dir, name))
    }


def _read_files(files: list[Path]) -> pd.DataFrame:
    if len(files) == 1:
        return pd.read_parquet(files[0])
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def read_extra(data_dir: Path, name: str) -> pd.DataFrame:
    return _read_files(table_files(Path(data_dir) / "extra", name))


def read_manifest(data_dir: Path) -> dict:
    return json.loads((Path(data_dir) / MANIFEST).read_text())


def import_dir(source: Path, out: Path, manifest: dict | None = None) -> dict:
    """CSV/Parquet import of canonical tables: the whole directory is accepted or nothing is written."""
    tables, files = read_source_dir(source)
    return write_tables(tables, out, {"source": str(source), **(manifest or {})}, sources=files)
