"""The hand-audited sample: the labeler never says 'no' where a person read 'yes' or 'unknown'."""

from pathlib import Path

import pandas as pd

from recsys.diet.labeler import _read_commented_csv, label_products

SAMPLE = Path(__file__).parent / "audit_sample.csv"
AUDITED = ("contains_gluten", "contains_meat", "contains_dairy", "contains_egg")


def test_audit_sample_has_400_products_with_a_decided_no():
    sample = _read_commented_csv(SAMPLE)
    assert len(sample) >= 400
    assert sample["product_id"].is_unique
    assert (sample[list(AUDITED)] == "no").any(axis=1).all()


def test_no_wrong_no_on_the_audited_sample():
    sample = _read_commented_csv(SAMPLE)
    labels = label_products(sample[["department", "category", "type", "name"]])
    wrong = pd.DataFrame(
        [
            (row.product_id, attr, row.type)
            for attr in AUDITED
            for row, said in zip(sample.itertuples(), labels[attr], strict=True)
            if said == "no" and getattr(row, attr) != "no"
        ],
        columns=["product_id", "attribute", "type"],
    )
    assert wrong.empty, f"labeler says 'no' against the audit:\n{wrong.to_string()}"
