"""A bad file is rejected whole, every bad row is named, and nothing is written."""

from __future__ import annotations

import pandas as pd
import pytest

from recsys.data.io import import_dir, read_tables
from recsys.data.validation import ValidationError, validate_tables
from tests.data.conftest import write_csv_dir


def _problems(tables):
    _, problems = validate_tables(tables, {n: f"{n}.csv" for n in tables})
    return problems


def test_valid_tables_have_no_problems(tables):
    typed, problems = validate_tables(tables)
    assert problems == []
    assert typed["interactions"]["quantity"].dtype == "float64"
    assert str(typed["interactions"]["timestamp"].dtype) == "datetime64[ns]"
    assert typed["customers"]["consent_personalisation"].tolist() == [True, True, False]


@pytest.mark.parametrize(
    ("table", "column", "row", "value", "reason"),
    [
        ("interactions", "quantity", 2, "-3", "negative value not allowed"),
        ("interactions", "quantity", 1, "two", "not a number"),
        ("interactions", "timestamp", 3, "1970-01-01T00:00:00", "timestamp out of range"),
        ("interactions", "timestamp", 4, "yesterday", "not an ISO-8601 timestamp"),
        ("interactions", "timestamp", 5, "2999-01-01T00:00:00", "timestamp out of range"),
        ("interactions", "channel", 1, "fax", "must be one of store, online, app"),
        ("interactions", "product_id", 2, "p99", "unknown products product_id"),
        ("interactions", "customer_id", 3, "c99", "unknown customers customer_id"),
        ("products", "contains_gluten", 2, "maybe", "must be one of yes/no/unknown"),
        ("products", "price", 1, "-1", "negative value not allowed"),
        ("customers", "consent_marketing", 2, "perhaps", "not a boolean"),
        ("products", "product_id", 3, "p1", "duplicate id"),
        ("customers", "customer_id", 2, "", "required value is missing"),
    ],
)
def test_each_kind_of_bad_row_is_named(tables, table, column, row, value, reason):
    tables[table].loc[row - 1, column] = value
    problems = _problems(tables)
    match = [p for p in problems if p.field == column and p.row == row and reason in p.reason]
    assert match, f"expected {reason!r} for {table} row {row}; got {[str(p) for p in problems]}"
    assert match[0].file == f"{table}.csv"
    if value:
        assert match[0].value == value


def test_missing_and_unknown_columns_are_file_level_problems(tables):
    tables["interactions"] = tables["interactions"].drop(columns=["quantity"]).assign(qty="1")
    problems = _problems(tables)
    reasons = {(p.field, p.reason.split(" (")[0]) for p in problems if p.row is None}
    assert ("quantity", "missing required column") in reasons
    assert ("qty", "unknown column") in reasons


def test_missing_required_table(tables):
    del tables["products"]
    assert any("required table 'products' is missing" in p.reason for p in _problems(tables))


def test_every_bad_row_is_listed_not_just_the_first(tables):
    tables["interactions"]["quantity"] = "-1"
    problems = [p for p in _problems(tables) if p.field == "quantity"]
    assert [p.row for p in problems] == [1, 2, 3, 4, 5]


def test_import_rejects_whole_directory_and_writes_nothing(tables, tmp_path):
    tables["interactions"].loc[4, "quantity"] = "-2"
    write_csv_dir(tables, tmp_path / "in")
    out = tmp_path / "out"
    with pytest.raises(ValidationError) as err:
        import_dir(tmp_path / "in", out)
    assert "interactions.csv row 5: field 'quantity' value '-2': negative value not allowed" in str(err.value)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "in"]  # no temp leftovers either


def test_failed_reimport_keeps_previous_good_data(tables, tmp_path):
    write_csv_dir(tables, tmp_path / "good")
    out = tmp_path / "out"
    import_dir(tmp_path / "good", out)
    before = read_tables(out)["interactions"]
    bad = {k: v.copy() for k, v in tables.items()}
    bad["products"].loc[0, "contains_meat"] = "perhaps"
    write_csv_dir(bad, tmp_path / "bad")
    with pytest.raises(ValidationError):
        import_dir(tmp_path / "bad", out)
    pd.testing.assert_frame_equal(read_tables(out)["interactions"], before)


def test_import_round_trips_csv_and_parquet(tables, tmp_path):
    write_csv_dir(tables, tmp_path / "csv")
    import_dir(tmp_path / "csv", tmp_path / "a")
    typed = read_tables(tmp_path / "a")
    (tmp_path / "pq").mkdir()
    for name, df in typed.items():
        df.to_parquet(tmp_path / "pq" / f"{name}.parquet")
    import_dir(tmp_path / "pq", tmp_path / "b")
    for name in typed:
        pd.testing.assert_frame_equal(read_tables(tmp_path / "b")[name], typed[name])


def test_cli_validate_reports_rows_and_exits_2(tables, tmp_path, capsys):
    from cli.main import main

    tables["interactions"].loc[1, "product_id"] = "nope"
    write_csv_dir(tables, tmp_path / "in")
    assert main(["data", "validate", str(tmp_path / "in"), "--report", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "interactions.csv row 2: field 'product_id' value 'nope': unknown products product_id" in err
    report = pd.read_csv(tmp_path / "r.csv")
    assert report[["row", "field"]].values.tolist() == [[2, "product_id"]]
    assert main(["data", "prepare", "--source", str(tmp_path / "in"), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_empty_optional_table_with_composite_key_is_valid(tables):
    import pandas as pd

    tables["campaign_products"] = pd.DataFrame({"campaign_id": [], "product_id": []}, dtype=object)
    assert _problems(tables) == []


def test_duplicate_composite_key_is_named(tables):
    import pandas as pd

    tables["campaign_products"] = pd.DataFrame({"campaign_id": ["1", "1"], "product_id": ["p1", "p1"]})
    problems = _problems(tables)
    assert [(p.row, p.field, p.value, p.reason) for p in problems] == [
        (2, "campaign_id+product_id", "1|p1", "duplicate id")
    ]


def test_cli_prepares_a_small_synthetic_directory(tmp_path, capsys):
    from cli.main import main
    from recsys.data.io import read_manifest

    out = tmp_path / "syn"
    args = [
        "data",
        "prepare",
        "--source",
        "synthetic",
        "--customers",
        "50",
        "--products",
        "80",
        "--weeks",
        "4",
    ]
    assert main([*args, "--out", str(out)]) == 0
    assert read_manifest(out)["tables"]["customers"] == 50
    assert "Diet-attribute coverage" in capsys.readouterr().out
    assert main(["data", "validate", str(out)]) == 0


def test_promotion_calendar_may_be_planned_ahead_but_not_for_ever(tables):
    """Promotion weeks are a plan: next month is fine, 2999 is a typo; products must exist."""
    soon = (pd.Timestamp.now() + pd.Timedelta(days=30)).strftime("%Y-%m-%dT00:00:00")
    tables["promotions"] = pd.DataFrame(
        {
            "product_id": ["p1", "p2", "p9", "p1"],
            "store_id": ["s1", "s1", "s1", "s1"],
            "week_start": [soon, "2999-01-01T00:00:00", soon, soon],
            "display": ["true", "false", "true", "false"],
            "mailer": ["false", "true", "true", "true"],
        }
    )
    problems = [(p.row, p.field, p.reason.split(" ")[0]) for p in _problems(tables)]
    assert sorted(problems) == [
        (2, "week_start", "timestamp"),  # out of range: more than a year ahead
        (3, "product_id", "unknown"),
        (4, "product_id+store_id+week_start", "duplicate"),
    ]


@pytest.mark.parametrize("value", ["inf", "-inf", "1e309", "Infinity", "-Infinity"])
@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("interactions", "quantity"),
        ("interactions", "value"),
        ("products", "price"),
        ("products", "co2e_per_kg"),
    ],
)
def test_non_finite_numbers_are_rejected_with_file_row_field_value(tables, tmp_path, table, column, value):
    tables[table].loc[1, column] = value
    write_csv_dir(tables, tmp_path / "in")
    with pytest.raises(ValidationError) as err:
        import_dir(tmp_path / "in", tmp_path / "out")
    assert f"{table}.csv row 2: field '{column}' value '{value}': not a finite number" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_csv_outputs_neutralise_formula_prefixes(tmp_path):
    from recsys.data.csv_safety import write_csv

    frame = pd.DataFrame(
        {
            "name": ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "plain", "a=b"],
            "score": [-1.5, 2.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        }
    )
    back = pd.read_csv(write_csv(frame, tmp_path / "o" / "x.csv"), dtype={"name": str})
    assert list(back["name"]) == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "'-2+3",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        "plain",
        "a=b",
    ]
    assert list(back["score"]) == list(frame["score"])  # numbers stay numbers, negatives included


def test_cli_report_is_formula_safe(tables, tmp_path):
    from cli.main import main

    tables["interactions"].loc[0, "product_id"] = "=1+2"
    write_csv_dir(tables, tmp_path / "in")
    assert main(["data", "validate", str(tmp_path / "in"), "--report", str(tmp_path / "r.csv")]) == 2
    assert "'=1+2" in (tmp_path / "r.csv").read_text() and ",=1+2" not in (tmp_path / "r.csv").read_text()


def test_parts_are_validated_block_by_block_and_named(tables, tmp_path):
    from recsys.data.io import write_tables

    inter = tables.pop("interactions")
    bad = inter.iloc[3:].copy()
    bad.loc[4, "product_id"] = "p404"
    with pytest.raises(ValidationError) as err:
        write_tables(tables, tmp_path / "out", parts={"interactions": [inter.iloc[:3], bad]})
    assert "interactions/part-00001.parquet row 2: field 'product_id' value 'p404': unknown products" in str(
        err.value
    )
    assert list(tmp_path.iterdir()) == []  # nothing written, no temp leftovers


def test_digest_depends_on_rows_not_on_their_order_or_parts(tables, tmp_path):
    from recsys.data.io import read_manifest, write_tables

    inter = tables.pop("interactions")
    whole = write_tables({**tables, "interactions": inter}, tmp_path / "whole")
    parts = write_tables(
        tables, tmp_path / "parts", parts={"interactions": [inter.iloc[::-1][:2], inter[:3]]}
    )
    assert whole["digest"] == parts["digest"] == read_manifest(tmp_path / "parts")["digest"]
    assert parts["tables"]["interactions"] == len(inter)
    pd.testing.assert_frame_equal(
        read_tables(tmp_path / "parts")["interactions"].sort_values("timestamp", ignore_index=True),
        read_tables(tmp_path / "whole")["interactions"].sort_values("timestamp", ignore_index=True),
    )
    changed = inter.copy()
    changed.loc[0, "quantity"] = "3"
    assert (
        write_tables(tables, tmp_path / "changed", parts={"interactions": [changed]})["digest"]
        != whole["digest"]
    )


def _engagement() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2"],
            "channel": ["email", "app", "store"],
            "timestamp": ["2024-01-02T08:00:00", "2024-01-03T19:30:00", "2024-01-04T12:00:00"],
            "event": ["open", "click", "visit"],
        }
    )


@pytest.mark.parametrize(
    ("column", "row", "value", "reason"),
    [
        ("channel", 1, "fax", "must be one of app, email, store"),
        ("event", 2, "liked", "must be one of open, click, visit"),
        ("timestamp", 3, "soon", "not an ISO-8601 timestamp"),
        ("timestamp", 1, "2999-01-01T00:00:00", "timestamp out of range"),
        ("customer_id", 2, "c99", "unknown customers customer_id"),
        ("channel", 3, "", "required value is missing"),
    ],
)
def test_engagement_rows_are_checked_like_every_table(tables, column, row, value, reason):
    tables["engagement"] = _engagement()
    assert _problems(tables) == []
    tables["engagement"].loc[row - 1, column] = value
    match = [p for p in _problems(tables) if p.field == column and p.row == row and reason in p.reason]
    assert match and match[0].file == "engagement.csv"
    assert match[0].value == value


def test_engagement_is_optional_and_a_bad_row_rejects_the_whole_import(tables, tmp_path):
    assert "engagement" not in validate_tables(tables)[0] and _problems(tables) == []  # no table: fine
    tables["engagement"] = _engagement()
    write_csv_dir(tables, tmp_path / "good")
    import_dir(tmp_path / "good", tmp_path / "ok")
    assert list(read_tables(tmp_path / "ok")["engagement"]["event"]) == ["open", "click", "visit"]
    tables["engagement"].loc[1, "channel"] = "sms"
    write_csv_dir(tables, tmp_path / "bad")
    with pytest.raises(ValidationError) as err:
        import_dir(tmp_path / "bad", tmp_path / "out")
    assert "engagement.csv row 2: field 'channel' value 'sms': must be one of app, email, store" in str(
        err.value
    )
    assert not (tmp_path / "out").exists()
