"""`recsys customers --data DIR --out lifecycle.csv`: one profile row per consenting customer.

Consent-aware: customers erased through the service are dropped before anything is computed, and
only customers with personalisation consent (the data's flag, overridden by what they told the app
last) are written; the count left out is printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.common import output_path


def _cmd_customers(args: argparse.Namespace) -> int:
    from recsys.data.csv_safety import write_csv
    from recsys.data.io import read_tables
    from recsys.offers.profiles import customer_profiles
    from training.privacy import apply_customer_overrides, read_privacy

    out = output_path(args.out)
    data = Path(args.data)
    if not data.is_dir():
        raise FileNotFoundError(f"data directory {data} does not exist")
    privacy = read_privacy()  # fails closed on a configured store it cannot read
    tables, erased = privacy.drop_erased(read_tables(data, skip=("promotions",)))
    customers, _ = apply_customer_overrides(tables["customers"], privacy.overrides)
    consent = customers.get("consent_personalisation")
    allowed = (
        set(customers["customer_id"].astype(str)[consent.fillna(False).astype(bool)])
        if consent is not None
        else set()
    )
    inter = tables["interactions"]
    inter = inter[inter["customer_id"].astype(str).isin(allowed)]
    profiles = customer_profiles(inter, args.as_of, churn=args.churn)
    profiles.index.name = "customer_id"
    write_csv(profiles.round(4).reset_index(), out)
    left_out = customers["customer_id"].nunique() - len(profiles)
    print(
        f"Wrote {len(profiles):,} customer profiles to {out} ({left_out:,} without personalisation "
        f"consent or history left out; {erased:,} erased customers dropped)"
    )
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "customers", help="lifecycle profiles (segment, churn risk and tier, CLV, AOV, send time) as CSV"
    )
    p.add_argument("--data", required=True, help="prepared data directory")
    p.add_argument("--out", required=True, help="output CSV, one row per consenting customer")
    p.add_argument("--as-of", dest="as_of", help="profile as of this date (default: the day after the data)")
    p.add_argument(
        "--churn", choices=("auto", "model", "heuristic"), default="auto", help="churn risk method"
    )
    p.set_defaults(func=_cmd_customers)
