"""Schemathesis against the running service's own OpenAPI document: server errors and spec violations.

Builds a small synthetic world (data directory + buy-again model), starts `recsys serve` on it with a
key holding every scope (so requests reach the handlers, not just the key check), and runs
`schemathesis run <base>/docs.json` over every operation, the admin reload included. Returns, per
check, the failures found. Run as the `fuzz` section of benchmarks/reliability.py:

    python3 -m venv /tmp/st && /tmp/st/bin/pip install schemathesis   # its pins need not fit ours
    PATH=/tmp/st/bin:$PATH .venv/bin/python benchmarks/reliability.py --only fuzz

Target (issue 24): >= 2,000 generated cases with 0 server errors (`not_a_server_error`).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import ROOT  # noqa: E402

KEY = "fuzz-key-" + "0" * 24


def build_world(root: Path) -> tuple[Path, Path]:
    from lab.synthetic import generate, write_synthetic
    from recsys.data.dataset import Dataset
    from recsys.models.buy_again import BuyAgain
    from recsys.models.model_dir import save_model_dir

    data = root / "data"
    write_synthetic(generate(n_customers=300, n_products=400, weeks=12, seed=0), data)
    dataset = Dataset.load(data)
    model_dir = save_model_dir(BuyAgain().fit(dataset), dataset.items_table, root / "model")
    from mlflow import MlflowClient

    # an empty registry of the world's own, created now: reloads by version ask it (404), and never
    # wait for its tables to be made nor touch the project's mlflow.db
    MlflowClient(tracking_uri=tracking_uri(root)).search_registered_models()
    return data, model_dir


def tracking_uri(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path, data: Path, model: Path, port: int) -> subprocess.Popen:
    from serving.auth import config_entry

    env = {
        **os.environ,
        "RECSYS_EVENTS_URL": f"sqlite:///{root / 'events.db'}",
        "MLFLOW_TRACKING_URI": tracking_uri(root),
        "RECSYS_API_KEYS": config_entry(KEY, ["read", "write", "admin"]),
        "RECSYS_OFFERS_URI": "none",
        "RECSYS_ACCESS_LOG": "false",
        "RECSYS_DEFAULT_CONSENT": "true",
        "PYTHONPATH": str(ROOT),
    }
    cmd = [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--model-dir", str(model), "--data-dir", str(data)]
    log = (root / "serve.log").open("w")
    return subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT
    )


def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited during start-up; see serve.log")
        try:
            if httpx.get(f"{base}/v1/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the server did not become ready")


def fetch_spec(base: str, out: Path, version: str | None) -> tuple[Path, str]:
    """The served OpenAPI document, saved for schemathesis; with `version`, its `openapi` field replaced.

    BentoML declares 3.0.2 but writes JSON Schema 2020-12 (OpenAPI 3.1: `type: null`, numeric
    `exclusiveMinimum`); schemathesis then cannot generate some bodies. `--openapi 3.1.0` fuzzes the
    document as it would be with the right version field."""
    import json

    import httpx

    spec = httpx.get(f"{base}/docs.json", timeout=10).json()
    served = str(spec.get("openapi"))
    if version:
        spec["openapi"] = version
    path = out / "openapi.json"
    path.write_text(json.dumps(spec))
    return path, served


#: Operations whose schema-valid bodies can break a cross-field rule the document states as
#: `if`/`then` (serving/openapi.py) but schemathesis's generator does not follow: a 400 naming the
#: rule is the right answer there, so it counts as expected, on that operation only.
CROSS_FIELD_RULES = {"POST /v1/customers/consent": "consent_marketing false with channels listed"}


def write_config(out: Path) -> Path:
    """A schemathesis.toml for the run: the default accepted statuses plus 400 where a cross-field
    rule applies."""
    accepted = '["2xx", "3xx", "401", "403", "404", "409", "429", "5xx", "400"]'
    blocks = [
        f'[[operations]]\ninclude-name = "{name}"\n'
        f"checks.positive_data_acceptance.expected-statuses = {accepted}\n"
        for name in CROSS_FIELD_RULES
    ]
    path = out / "schemathesis.toml"
    path.write_text("\n".join(blocks))
    return path


def run_schemathesis(spec: Path, base: str, out: Path, max_examples: int, seed: int) -> str:
    st = Path(sys.executable).with_name("st")
    if not st.exists():  # or its own virtualenv on PATH: its pins need not fit the project's
        st = Path(shutil.which("st") or st)
    if not st.exists():
        raise SystemExit("schemathesis is not installed: .venv/bin/pip install schemathesis")
    cmd = [
        str(st), "--config-file", str(write_config(out)), "run", str(spec),
        "--url", base,
        "-H", f"Authorization: Bearer {KEY}",
        "--checks", "all",
        "--max-examples", str(max_examples),
        "--seed", str(seed),
        "--continue-on-failure",
        "--workers", "1",
        "--no-color",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=out)
    return done.stdout + done.stderr


def summarise(text: str) -> tuple[int, pd.DataFrame]:
    """(generated cases, one row per failing check: code, check, unique failures) from the CLI summary,
    e.g. "Test cases: 1199 generated, ..." and "ST202 Schema-valid request rejected: 9"."""
    match = re.search(r"([\d,]+) generated", text)
    cases = int(match.group(1).replace(",", "")) if match else -1
    summary = text[text.rfind("SUMMARY") :]
    rows = [
        (code, title.strip(), int(n))
        for code, title, n in re.findall(r"(ST\d{3}) ([^:\n]+): (\d+)", summary.split("Test cases:")[0])
    ]
    return cases, pd.DataFrame(rows, columns=["code", "check", "unique failures"])


def unexpected_tracebacks(log: str) -> int:
    """Tracebacks in the server log other than BentoML logging a request's validation error (a 400)."""
    blocks = log.split("Traceback (most recent call last)")[1:]
    return sum("validation error" not in block.split("\n\n")[0] for block in blocks)


def fuzz(
    max_examples: int = 180, seed: int = 0, openapi: str = "3.1.0", keep: bool = False
) -> tuple[pd.DataFrame, dict]:
    """Fuzz a fresh service; (one row per failing check, summary). The section `fuzz` of
    benchmarks/reliability.py: its run is the record, so this writes no results file of its own."""
    root = Path(tempfile.mkdtemp(prefix="api-fuzz-"))
    data, model = build_world(root)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(root, data, model, port)
    start = time.perf_counter()
    try:
        wait_ready(base, proc)
        spec, served = fetch_spec(base, root, openapi)
        text = run_schemathesis(spec, base, root, max_examples, seed)
    finally:
        os.killpg(proc.pid, 15)  # our own process group only
        proc.wait(timeout=60)
    seconds = time.perf_counter() - start
    (root / "schemathesis.txt").write_text(text)
    cases, frame = summarise(text)
    print(text[text.rfind("SUMMARY") - 40 :], flush=True)
    summary = {
        "fuzz_cases": cases,
        "fuzz_server_errors": int(frame.loc[frame["code"] == "ST101", "unique failures"].sum()),  # ST101
        "fuzz_other_findings": int(frame.loc[frame["code"] != "ST101", "unique failures"].sum()),
        "fuzz_server_log_tracebacks": unexpected_tracebacks((root / "serve.log").read_text()),
        "fuzz_seconds": round(seconds),
        "fuzz_setup": f"max {max_examples} examples per operation and phase, seed {seed}, `--checks all`; "
        f"the service declares OpenAPI {served}, fuzzed as {openapi or served}; 400 accepted for "
        + "; ".join(f"{k} ({v})" for k, v in CROSS_FIELD_RULES.items()),
    }
    if keep:
        print(f"world and logs kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return frame, summary
