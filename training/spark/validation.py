"""Canonical-table validation in Spark: the rules of `recsys.data.validation`, one pass per table.

The Spark engine writes tables too large for one machine, so it cannot hand them to the pandas
validator; it applies the same schema (`recsys.data.schema`) with the same coercions (text stripped,
empty text and NaN are missing) and raises the same `ValidationError`. A problem's row is the
`_row` of the offending record (its position in the source file); each table reports its first
`MAX_PROBLEMS` problems and how many more there are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from recsys.data.schema import TABLE_ORDER, TABLES, TRISTATE_VALUES, Column, Table
from recsys.data.validation import MAX_FUTURE, MAX_PLANNED, MIN_TIMESTAMP, Problem, ValidationError

if TYPE_CHECKING:
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

MAX_PROBLEMS = 1000
_STRIP = r"^\s+|\s+$"  # Python's str.strip()


def spark_schema(table: Table, with_row: bool = False) -> StructType:
    from pyspark.sql import types as T

    kinds = {
        "id": T.StringType(),
        "str": T.StringType(),
        "tristate": T.StringType(),
        "int": T.LongType(),
        "float": T.DoubleType(),
        "bool": T.BooleanType(),
        "timestamp": T.TimestampNTZType(),
    }
    fields = [T.StructField(c.name, kinds[c.kind], True) for c in table.columns]
    if with_row:
        fields.append(T.StructField("_row", T.LongType(), False))
    return T.StructType(fields)


def _coerced(col: Column) -> SparkColumn:
    """The canonical value of a column, as `recsys.data.validation._coerce` makes it."""
    from pyspark.sql import functions as F

    c = F.col(col.name)
    if col.kind in ("id", "str", "tristate"):
        text = F.regexp_replace(c.cast("string"), _STRIP, "")
        text = F.lower(text) if col.kind == "tristate" else text
        return F.when(text != "", text)
    if col.kind in ("int", "float"):
        number = c.cast("double")
        number = F.when(~F.isnan(number), number)
        return number.cast("long") if col.kind == "int" else number
    if col.kind == "bool":
        return c.cast("boolean")
    return c.cast("timestamp_ntz")


def _checks(col: Column) -> list[tuple[SparkColumn, str]]:
    """(bad, reason) pairs over the coerced column `col.name`."""
    from pyspark.sql import functions as F

    c = F.col(col.name)
    checks: list[tuple[SparkColumn, str]] = []
    if col.kind == "tristate":
        checks.append((c.isNotNull() & ~c.isin(*TRISTATE_VALUES), "must be one of yes/no/unknown"))
    if col.kind == "float":
        checks.append((c.isin(float("inf"), float("-inf")), "not a finite number"))
    if col.kind == "timestamp":
        ahead = MAX_PLANNED if col.planned else MAX_FUTURE
        latest = pd.Timestamp.now(tz="UTC").tz_localize(None) + ahead
        upper = "a year from now" if col.planned else "now"
        early = F.lit(MIN_TIMESTAMP.to_pydatetime()).cast("timestamp_ntz")
        late = F.lit(latest.to_pydatetime()).cast("timestamp_ntz")
        checks.append(((c < early) | (c > late), f"timestamp out of range {MIN_TIMESTAMP.date()}..{upper}"))
    if not col.nullable:
        checks.append((c.isNull(), "required value is missing"))
    if col.min_value is not None and col.kind in ("int", "float"):
        reason = "negative value not allowed" if col.min_value == 0 else f"must be >= {col.min_value}"
        checks.append((c < col.min_value, reason))
    if col.allowed is not None:
        checks.append((c.isNotNull() & ~c.isin(*col.allowed), f"must be one of {', '.join(col.allowed)}"))
    return checks


def _collect(name: str, bad_rows: DataFrame) -> list[Problem]:
    """The first MAX_PROBLEMS rows of (_row, field, value, reason) as Problems, plus a count of the rest."""
    first = bad_rows.orderBy("_row", "field").limit(MAX_PROBLEMS + 1).collect()
    problems = [Problem(name, int(r["_row"]) + 1, r["field"], r["value"], r["reason"]) for r in first]
    if len(problems) > MAX_PROBLEMS:
        more = bad_rows.count() - MAX_PROBLEMS
        problems = problems[:MAX_PROBLEMS]
        problems.append(Problem(name, None, None, None, f"... and {more} more problem(s) in this table"))
    return problems


def _check_table(name: str, df: DataFrame, typed: dict[str, DataFrame]) -> tuple[DataFrame, list[Problem]]:
    """The typed table (persisted: it is checked, counted and written) and its problems, found in
    one pass: column rules, duplicate keys and foreign keys into the tables `typed` so far."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    table = TABLES[name]
    problems = [
        Problem(name, None, c, None, f"unknown column (expected: {', '.join(table.column_names)})")
        for c in df.columns
        if c != "_row" and c not in table.column_names
    ]
    present = [c for c in table.columns if c.name in df.columns]
    problems += [
        Problem(name, None, c.name, None, "missing required column")
        for c in table.columns
        if c.required and c.name not in df.columns
    ]
    result = df.select(*(_coerced(c).alias(c.name) for c in present), "_row").persist()

    def problem(field: str, value, reason: str):
        return F.struct(
            F.lit(field).alias("field"), value.cast("string").alias("value"), F.lit(reason).alias("reason")
        )

    checked = result
    found = [F.when(bad, problem(c.name, F.col(c.name), why)) for c in present for bad, why in _checks(c)]
    key = list(table.primary_key)
    if key and all(k in result.columns for k in key):
        number = F.row_number().over(Window.partitionBy(*key).orderBy("_row"))
        checked = checked.withColumn("_nth", number)  # a window cannot sit inside the array below
        value = F.concat_ws("|", *(F.col(k).cast("string") for k in key))
        found.append(F.when(F.col("_nth") > 1, problem("+".join(key), value, "duplicate id")))
    for fk in table.foreign_keys:
        if fk.column in result.columns and fk.table in typed:
            known = f"_known_{fk.column}"
            target = typed[fk.table].select(F.col(fk.target).alias(fk.column)).distinct()
            checked = checked.join(target.withColumn(known, F.lit(True)), fk.column, "left")
            orphan = F.col(fk.column).isNotNull() & F.col(known).isNull()
            found.append(
                F.when(orphan, problem(fk.column, F.col(fk.column), f"unknown {fk.table} {fk.target}"))
            )
    if found:
        rows = checked.select(
            "_row", F.explode(F.filter(F.array(*found), lambda p: p.isNotNull())).alias("p")
        )
        problems += _collect(name, rows.select("_row", "p.field", "p.value", "p.reason"))
    return result, problems


def validated(tables: dict[str, DataFrame]) -> dict[str, DataFrame]:
    """Typed, persisted tables (with `_row`), or ValidationError listing every table's problems."""
    problems = [Problem(n, None, None, None, f"unknown table {n!r}") for n in tables if n not in TABLES]
    typed: dict[str, DataFrame] = {}
    for name in TABLE_ORDER:
        if name in tables:
            typed[name], found = _check_table(name, tables[name], typed)
            problems += found
        elif TABLES[name].required:
            problems.append(Problem(name, None, None, None, f"required table {name!r} is missing"))
    if problems:
        for frame in typed.values():
            frame.unpersist()
        raise ValidationError(problems)
    return typed
