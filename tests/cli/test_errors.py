"""Wrong use of the CLI exits 2 with one line naming the problem (never a traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def _one_line_error(capsys, argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, err
    return err


def test_param_of_the_wrong_type(capsys, tmp_path):
    argv = ["train", "--data", str(tmp_path), "--until", "2024-01-01", "--model", "als", "--out", "m"]
    _one_line_error(capsys, [*argv, "--param", "factors=abc"], "factors='abc'", "int")


def test_config_param_of_the_wrong_type(capsys):
    argv = ["train", "--config", str(ROOT / "experiments/configs/als.yaml"), "--param", "factors=abc"]
    _one_line_error(capsys, argv, "factors='abc'")


def test_recommend_out_in_a_missing_directory(capsys, tmp_path):
    argv = ["recommend", "--model", str(tmp_path), "--users", "u.csv", "--out", "/missing/dir/r.csv"]
    _one_line_error(capsys, argv, "/missing/dir")


def test_unknown_source_names_the_valid_ones(capsys, tmp_path):
    argv = ["data", "prepare", "--source", "complete-journey", "--out", str(tmp_path / "x")]
    _one_line_error(capsys, argv, "completejourney", "synthetic", "complete-journey")


def test_report_rows_are_integers(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    pd.DataFrame({"product_id": ["1", "1"], "name": ["a", "b"]}).to_csv(src / "products.csv", index=False)
    assert main(["data", "validate", str(src), "--report", str(tmp_path / "p.csv")]) == 2
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert any(",2," in line for line in rows[1:]), rows
    assert not any(".0," in line for line in rows[1:]), rows


def test_schema_into_a_closed_pipe_is_quiet():
    # `true` exits without reading, so the write meets a closed pipe
    cmd = f"{sys.executable} -m cli data schema | true; exit ${{PIPESTATUS[0]}}"
    done = subprocess.run(["bash", "-c", cmd], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("argv", [["train", "--bogus"], ["tune"]])
def test_argparse_misuse_exits_2(argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_synthetic_workers_must_be_positive(capsys, tmp_path, workers):
    argv = ["data", "prepare", "--source", "synthetic", "--out", str(tmp_path / "x"), "--workers", workers]
    _one_line_error(capsys, argv, "--workers must be at least 1", workers)
    assert not (tmp_path / "x").exists()
