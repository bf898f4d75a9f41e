"""The discount plan as a versioned artifact: what a campaign run decided and all serving needs.

A directory of JSON and Parquet files (no pickle), written by the training job and read, read-only,
by the service at start-up:

    planner.json          format, budget, expected cost and profit, offers, customers, as_of,
                          max_per_customer, min_compliant_share, config and data digests, ...
    plan.parquet          one row per offer (PLAN_COLUMNS), pseudonymous customer ids only
    no_offer.parquet      customer_id, reason: candidates the plan leaves out, and why
    groups.parquet        per product group: department, age_restricted, excluded, exclusion, ...
    diet_patterns.parquet per product group, the diet-attribute value combinations and their product
                          counts: what the service needs to check a group against a live diet profile
    channels.parquet      the channel and send-hour model (recsys.offers.channels.ChannelTimingModel):
                          the service picks each customer's channel under their LIVE channel consent

`load` refuses a directory whose plan costs more than its budget: the service answers from the plan,
so the budget a plan was made for is a promise the files themselves must keep.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.atomic import staged_dir
from recsys.data.schema import DIET_ATTRIBUTES
from recsys.offers.channels import ChannelTimingModel

FORMAT = "discount-plan/2"  # /2: channel per offer and the channel model
META_FILE = "planner.json"

PLAN_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "product_group",
    "discount_level",
    "expected_uplift",
    "expected_profit",
    "expected_cost",
    "propensity",
    "reason",
    "best_send_time",
    "channel",
    "tier",
)
REQUIRED_META: tuple[str, ...] = (
    "format",
    "budget",
    "expected_cost",
    "max_per_customer",
    "min_compliant_share",
)
_TABLES: dict[str, tuple[str, ...]] = {
    "plan": PLAN_COLUMNS,
    "no_offer": ("customer_id", "reason"),
    "groups": ("product_group", "department", "age_restricted", "excluded", "exclusion"),
    "diet_patterns": ("product_group", *DIET_ATTRIBUTES, "products"),
    "channels": ("customer_id",),
}


@dataclass(frozen=True)
class PlanArtifact:
    meta: dict[str, Any]
    plan: pd.DataFrame
    no_offer: pd.DataFrame
    groups: pd.DataFrame
    diet_patterns: pd.DataFrame
    channels: pd.DataFrame  # ChannelTimingModel.to_frame()
    source: str = field(default="", compare=False)

    def channel_model(self) -> ChannelTimingModel:
        """The channel and send-hour model the plan was made with."""
        return ChannelTimingModel.from_frame(self.channels, self.meta.get("channel_model"))

    def save(self, path: str | Path) -> Path:
        """Write the directory all-or-nothing (a temporary sibling renamed into place)."""
        path = Path(path)
        with staged_dir(path) as tmp:
            (tmp / META_FILE).write_text(
                json.dumps({**self.meta, "format": FORMAT}, indent=2, sort_keys=True)
            )
            for name in _TABLES:
                getattr(self, name).to_parquet(tmp / f"{name}.parquet", index=False)
        return path

    @classmethod
    def load(cls, path: str | Path) -> PlanArtifact:
        """Read and check a plan directory; ValueError / FileNotFoundError name the file and field."""
        path = Path(path)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{path} is not a discount plan directory (no {META_FILE})")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{meta_path}: not valid JSON: {exc}") from None
        missing = [k for k in REQUIRED_META if k not in meta]
        if missing:
            raise ValueError(f"{meta_path}: missing field(s) {missing}")
        if meta["format"] != FORMAT:
            raise ValueError(f"{meta_path}: field 'format' value {meta['format']!r}: expected {FORMAT!r}")
        tables = {}
        for name, columns in _TABLES.items():
            file = path / f"{name}.parquet"
            if not file.is_file():
                raise FileNotFoundError(f"{file} is missing from the discount plan")
            frame = pd.read_parquet(file)
            absent = [c for c in columns if c not in frame.columns]
            if absent:
                raise ValueError(f"{file}: missing column(s) {absent}")
            tables[name] = frame
        plan = tables["plan"]
        cost, budget = float(plan["expected_cost"].sum()), float(meta["budget"])
        if cost > budget * (1.0 + 1e-9) + 1e-9:
            raise ValueError(
                f"{path / 'plan.parquet'}: field 'expected_cost' sums to {cost:.2f}, over the budget "
                f"{budget:.2f} in {META_FILE}"
            )
        per_customer = plan.groupby("customer_id").size()
        if len(per_customer) and int(per_customer.max()) > int(meta["max_per_customer"]):
            worst = per_customer.idxmax()
            raise ValueError(
                f"{path / 'plan.parquet'}: customer {worst!r} has {int(per_customer.max())} offers, more "
                f"than max_per_customer {meta['max_per_customer']} in {META_FILE}"
            )
        for name in ("plan", "no_offer", "channels"):
            tables[name] = tables[name].assign(customer_id=tables[name]["customer_id"].astype(str))
        return cls(meta=meta, source=str(path), **tables)
