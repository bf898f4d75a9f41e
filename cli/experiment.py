"""`recsys experiment`: list the configured A/B tests, show assignments, report one.

    recsys experiment list [--dir experiments/ab]
    recsys experiment assign NAME CUSTOMER_ID...
    recsys experiment report NAME [--events URL] [--data DIR] [--now ISO] [--out DIR] [--no-track]

The report reads the experiment's exposures and feedback events from the event store and, with
--data, the imported purchases and prices; it prints the Markdown report, writes it with one plot per
metric under --out and logs an MLflow run of aggregates (experiment `ab-<name>`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_DIR = Path("experiments/ab")


def add_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("experiment", help="A/B tests: list, assign, report")
    cmds = parser.add_subparsers(dest="experiment_command", required=True)

    ls = cmds.add_parser("list", help="the configured experiments")
    ls.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ls.set_defaults(func=_list)

    assign = cmds.add_parser("assign", help="variant of each customer (as if consenting)")
    assign.add_argument("name")
    assign.add_argument("customers", nargs="+")
    assign.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    assign.set_defaults(func=_assign)

    report = cmds.add_parser("report", help="per-variant metrics, lifts, sequential test, SRM, guardrails")
    report.add_argument("name")
    report.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    report.add_argument("--events", default=None, help="event store URL (default RECSYS_EVENTS_URL)")
    report.add_argument("--data", type=Path, default=None, help="data dir: imported purchases and prices")
    report.add_argument("--now", default=None, help="ISO time of the look (default: now)")
    report.add_argument("--out", type=Path, default=None, help="default reports/<name>")
    report.add_argument("--no-track", action="store_true", help="do not log an MLflow run")
    report.set_defaults(func=_report)


def _experiment(args: argparse.Namespace):  # noqa: ANN202
    from recsys.experiments.config import load_experiments

    if not args.dir.is_dir():
        raise FileNotFoundError(f"experiments directory {args.dir} does not exist")
    found = load_experiments(args.dir)
    if args.name not in found:
        raise ValueError(
            f"no experiment {args.name!r} in {args.dir} (have: {', '.join(sorted(found)) or 'none'})"
        )
    return found[args.name]


def _list(args: argparse.Namespace) -> int:
    from recsys.experiments.config import load_experiments

    if not args.dir.is_dir():
        raise FileNotFoundError(f"experiments directory {args.dir} does not exist")
    for exp in load_experiments(args.dir).values():
        variants = ", ".join(f"{v.name} {v.share:.0%}" for v in exp.variants)
        print(
            f"{exp.name}\t{exp.surface}\t{exp.start:%Y-%m-%d}..{exp.stop:%Y-%m-%d}\t{exp.primary_metric}\t{variants}"
        )
    return 0


def _assign(args: argparse.Namespace) -> int:
    from recsys.experiments.assignment import assign

    exp = _experiment(args)
    for customer in args.customers:
        print(f"{customer}\t{assign(exp, customer, consent=True)}")
    return 0


def _report(args: argparse.Namespace) -> int:
    import os
    from datetime import UTC, datetime

    import pandas as pd

    from recsys.defaults import DEFAULT_EVENTS_URL
    from recsys.experiments.analysis import analyse, attribute
    from serving.experiments import observations
    from training.experiments import log_report, markdown, write_report

    exp = _experiment(args)
    now = datetime.fromisoformat(args.now) if args.now else datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    url = args.events or os.environ.get("RECSYS_EVENTS_URL") or DEFAULT_EVENTS_URL
    exposures, events = observations(url, exp.name)
    if exposures.empty:
        raise ValueError(f"experiment {exp.name!r} has no exposures in {url}")
    purchases = prices = None
    if args.data is not None:
        if not (args.data / "interactions.parquet").is_file():
            raise FileNotFoundError(f"--data {args.data} has no interactions.parquet")
        columns = ["customer_id", "timestamp", "value", "discount"]
        purchases = pd.read_parquet(args.data / "interactions.parquet", columns=columns)
        products = pd.read_parquet(args.data / "products.parquet", columns=["product_id", "price"])
        prices = products.set_index("product_id")["price"]
    customers = attribute(exp, exposures, events, purchases, prices)
    latency = exposures["latency_ms"].dropna()
    p95 = float(latency.quantile(0.95)) if len(latency) else None
    result = analyse(exp, customers, now, latency_p95_ms=p95)
    print(markdown(result))
    files = write_report(result, args.out or Path("reports") / exp.name)
    print(f"report: {files[0]}")
    if not args.no_track:
        print(f"MLflow run: {log_report(result, files)}")
    return 0
