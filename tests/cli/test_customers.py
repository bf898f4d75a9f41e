"""`recsys customers --data DIR --out lifecycle.csv`: one profile per consenting customer."""

from __future__ import annotations

import pandas as pd

from cli.main import main
from lab.synthetic import generate, write_synthetic


def test_customers_writes_profiles_of_consenting_customers_only(tmp_path, monkeypatch):
    (tmp_path / "events.db").touch()  # a configured store must exist (an empty one: nothing erased yet)
    monkeypatch.setenv("RECSYS_EVENTS_URL", f"sqlite:///{tmp_path / 'events.db'}")
    data = tmp_path / "syn"
    write_synthetic(generate(n_customers=150, n_products=120, weeks=12, seed=5), data)
    customers = pd.read_parquet(data / "customers.parquet")
    assert main(["customers", "--data", str(data), "--out", str(tmp_path / "lifecycle.csv")]) == 0
    out = pd.read_csv(tmp_path / "lifecycle.csv", dtype={"customer_id": str})
    consenting = set(customers.loc[customers["consent_personalisation"].astype(bool), "customer_id"])
    assert len(out) > 0 and set(out["customer_id"]) <= consenting
    assert {
        "segment",
        "churn_risk",
        "churn_tier",
        "clv",
        "avg_order_value",
        "frequency",
        "best_send_time",
    } <= set(out.columns)
    assert out["churn_risk"].between(0, 1).all()


def test_customers_out_in_a_missing_directory_is_one_line(tmp_path, capsys):
    assert main(["customers", "--data", str(tmp_path), "--out", "/missing/dir/x.csv"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
