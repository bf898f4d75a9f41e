"""`recsys data ...`: prepare, import and validate canonical data directories."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from cli.common import EXIT_BAD_INPUT, output_path


def _cmd_data_prepare(args: argparse.Namespace) -> int:
    from recsys.data.io import import_dir
    from recsys.data.progress import Progress
    from recsys.prepare import summarize

    start = time.perf_counter()
    out = Path(args.out)
    if args.engine == "spark" and args.source != "completejourney":
        raise ValueError("--engine spark prepares --source completejourney; other sources use --engine local")
    if args.source == "completejourney":
        if args.engine == "spark":
            from training.spark.prepare import SPARK_STEPS, prepare_completejourney_spark

            _, report = prepare_completejourney_spark(out, args.raw, Progress(SPARK_STEPS))
        else:
            from recsys.prepare import COMPLETEJOURNEY_STEPS, prepare_completejourney

            _, report = prepare_completejourney(out, Progress(COMPLETEJOURNEY_STEPS))
        print("Complete Journey raw sizes: " + ", ".join(f"{k} {v:,}" for k, v in report.raw_sizes.items()))
        for reason, n in report.dropped.items():
            print(f"Dropped {n:,} {reason}")
    elif args.source == "synthetic":
        from lab.synthetic import write_synthetic_parts

        workers = _synthetic_workers(args.workers)
        progress = Progress(1)
        with progress.step(
            f"generating and writing {args.customers:,} customers x {args.products:,} products"
            f" ({workers} worker{'s' if workers > 1 else ''})"
        ):
            write_synthetic_parts(out, args.customers, args.products, args.weeks, args.seed, workers=workers)
    else:
        if not Path(args.source).is_dir():
            raise ValueError(
                f"--source {args.source!r} is neither completejourney, synthetic nor an existing directory"
            )
        progress = Progress(1)
        with progress.step(f"importing {args.source}"):
            import_dir(Path(args.source), out)
    print(summarize(out))
    print(f"\nWrote {out} in {time.perf_counter() - start:.1f}s")
    return 0


def _synthetic_workers(given: int | None) -> int:
    """--workers, checked; by default the processors this process may run on, at most a few."""
    if given is None:
        from lab.synthetic_workers import MAX_DEFAULT_WORKERS

        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, min(usable, MAX_DEFAULT_WORKERS))
    if given < 1:
        raise ValueError(f"--workers must be at least 1, got {given}")
    return given


def _cmd_data_validate(args: argparse.Namespace) -> int:
    from recsys.data.io import MANIFEST, read_source_dir, read_tables
    from recsys.data.validation import validate_tables

    path = Path(args.dir)
    report = output_path(args.report) if args.report else None
    if (path / MANIFEST).exists():
        tables, files = read_tables(path), {}
    else:
        tables, files = read_source_dir(path)
    _, problems = validate_tables(tables, files)
    if report is not None:
        import pandas as pd

        from recsys.data.csv_safety import write_csv

        frame = pd.DataFrame(
            [p.__dict__ for p in problems], columns=["file", "row", "field", "value", "reason"]
        )
        frame["row"] = frame["row"].astype("Int64")  # record numbers, not 1.0 (file-level: empty)
        write_csv(frame, report)
    if problems:
        for p in problems[: args.show]:
            print(p, file=sys.stderr)
        if len(problems) > args.show:
            print(f"... and {len(problems) - args.show} more (use --report FILE for all)", file=sys.stderr)
        print(f"INVALID: {len(problems)} problem(s) in {path}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"OK: {path} is valid (" + ", ".join(f"{k} {len(v):,}" for k, v in tables.items()) + ")")
    return 0


def _cmd_data_schema(args: argparse.Namespace) -> int:
    from recsys.data.schema import schema_markdown

    print(schema_markdown())
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="prepare, import and validate data").add_subparsers(
        dest="data_command", required=True
    )
    prep = data.add_parser("prepare", help="build a canonical data directory (Parquet)")
    prep.add_argument(
        "--source", required=True, help="completejourney | synthetic | DIR of canonical CSV/Parquet tables"
    )
    prep.add_argument("--out", required=True, help="output data directory (replaced atomically)")
    prep.add_argument("--customers", type=int, default=2000, help="synthetic: number of customers")
    prep.add_argument("--products", type=int, default=3000, help="synthetic: number of products")
    prep.add_argument("--weeks", type=int, default=26, help="synthetic: weeks of history")
    prep.add_argument("--seed", type=int, default=0, help="synthetic: random seed")
    prep.add_argument(
        "--workers",
        type=int,
        help="synthetic: processes drawing blocks of customers (default: usable CPUs, at most 8;"
        " 1 = in this process); the data are the same whatever the number",
    )
    prep.add_argument(
        "--engine",
        choices=("local", "spark"),
        default="local",
        help="spark: prepare in Spark (docs/spark.md)",
    )
    prep.add_argument("--raw", help="spark: directory (or URI) of the raw Complete Journey Parquet files")
    prep.set_defaults(func=_cmd_data_prepare)
    val = data.add_parser("validate", help="check a data directory or a directory of CSV/Parquet tables")
    val.add_argument("dir")
    val.add_argument("--report", help="write every problem to this CSV file")
    val.add_argument("--show", type=int, default=50, help="problems printed (default 50)")
    val.set_defaults(func=_cmd_data_validate)
    schema = data.add_parser("schema", help="print the canonical schema as Markdown")
    schema.set_defaults(func=_cmd_data_schema)
