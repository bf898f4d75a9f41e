"""Serving that scales out, in ONE run: worker memory vs number of customers, and products latency
with the customer-state cache hit vs missed, against the in-memory design of an earlier commit.

    .venv/bin/python benchmarks/scaleout.py [--data-dir data/cj] [--customers 10000,100000]

Both designs serve ALS fitted on all of the data (benchmarks/serving.py's model) through
`recsys serve` (one BentoML worker) on one PostgreSQL event store:
- store: this tree. The data set's customers are published into the store, plus N synthetic
  customers (consent, diet, 20 recent products and a lifecycle profile each); a worker reads them by
  key through its bounded cache (RECSYS_STATE_CACHE_SIZE), invalidated over Redis pub/sub.
- in-memory: `--baseline-ref` (default: the last commit before customer state moved to the store)
  checked out as a temporary git worktree, serving a copy of the data directory whose customers
  table holds the same N synthetic customers beside the real ones (it loads them all per worker).
Per (design, N): start, warm up with `--warm` products requests for synthetic customers (the same
for both designs), then read the worker's resident memory (the largest process of the server's
tree). Latency, one request at a time: a first pass over `--sample` real customers (misses: never
read before), then a second pass over the same customers (hits). Writes
benchmarks/results/scaleout.{md,csv}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.serving import ensure_model, free_port, sample_customers, stop, wait_ready  # noqa: E402

PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
API_KEY = "bench-key-0123456789"
DIETS = (None, "gluten-free", "vegan", "lactose-free")


@dataclass
class Row:
    design: str
    customers: int
    worker_rss_mb: float
    miss_p50_ms: float
    miss_p99_ms: float
    hit_p50_ms: float
    hit_p99_ms: float
    start_s: float


def synthetic_ids(n: int) -> list[str]:
    return [f"syn{i:07d}" for i in range(n)]


def synthetic_customers(n: int) -> pd.DataFrame:
    ids = synthetic_ids(n)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "consent_personalisation": True,
            "consent_marketing": [i % 2 == 0 for i in range(n)],
            "diet_exclusions": [DIETS[i % len(DIETS)] for i in range(n)],
            "diet_preferences": None,
        }
    )


def fresh_database(name: str) -> str:
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def publish_store(url: str, data_dir: Path, n: int, products: list[str]) -> None:
    """The data set's customers, then N synthetic ones, into the store's customer_base."""
    from sqlalchemy import insert

    from serving.events import EventStore, customer_base
    from serving.publish import publish

    store = EventStore(url)
    publish(store, data_dir)
    rng = random.Random(0)
    profile = json.dumps(
        {"as_of": "2017-12-31", "segment": "stable", "churn_risk": 0.2, "churn_tier": "loyal"}
    )
    frame = synthetic_customers(n)
    rows = [
        {
            "customer_id": cid,
            "consent_personalisation": True,
            "consent_marketing": bool(cm),
            "diet_exclusions": ex,
            "diet_preferences": None,
            "recent_items": json.dumps(rng.sample(products, 20)),
            "lifecycle": profile,
        }
        for cid, cm, ex in zip(
            frame["customer_id"], frame["consent_marketing"], frame["diet_exclusions"], strict=True
        )
    ]
    with store.engine.begin() as conn:
        for lo in range(0, len(rows), 10_000):
            conn.execute(insert(customer_base), rows[lo : lo + 10_000])
    store.close()


def baseline_data(data_dir: Path, n: int, out: Path) -> Path:
    """A copy of the data dir (links) whose customers table also holds the N synthetic customers."""
    out.mkdir(parents=True)
    for p in data_dir.iterdir():
        if p.name != "customers.parquet":
            (out / p.name).symlink_to(p.resolve())
    real = pd.read_parquet(data_dir / "customers.parquet")
    extra = synthetic_customers(n).reindex(columns=real.columns)
    pd.concat([real, extra], ignore_index=True).to_parquet(out / "customers.parquet", index=False)
    return out


def tree_rss_mb(pid: int) -> float:
    """Largest resident set in the server's process tree: the worker that holds model and state."""
    import psutil

    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    rss = []
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            rss.append(p.memory_info().rss)
    return max(rss) / 2**20


def pass_latency(client, base: str, customers: list[str]) -> list[float]:
    out = []
    for i, cid in enumerate(customers):
        body = {"customer_id": cid, "k": 10, "diet": ["gluten-free"] if i % 2 else None}
        start = time.perf_counter()
        r = client.post(f"{base}/v1/products", json=body)
        out.append((time.perf_counter() - start) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"{cid}: {r.status_code} {r.text[:200]}")
    return out


def run_design(
    design: str, tree: Path, data_dir: Path, model_dir: Path, url: str, n: int, args: argparse.Namespace
) -> Row:
    import httpx

    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "OPENBLAS_NUM_THREADS": "1",
        "RECSYS_EVENTS_URL": url,
        "RECSYS_API_KEYS": API_KEY,
        "RECSYS_READ_REQUIRES_KEY": "false",
        "RECSYS_ACCESS_LOG": "false",
        "RECSYS_OFFERS_URI": "none",
        "RECSYS_WORKERS": "1",
        "RECSYS_CACHE_BUS_URL": args.redis,
        "RECSYS_CACHE_CHANNEL": f"recsys-bench:{os.getpid()}",
        "RECSYS_STATE_CACHE_SIZE": str(args.cache_size),
    }
    cmd = [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--model-dir", str(model_dir), "--data-dir", str(data_dir)]
    log = Path(tempfile.mkstemp(prefix=f"scaleout-{design}-", suffix=".log")[1])
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=tree, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/v1/health/ready", proc, timeout=600)
        start_s = time.perf_counter() - started
        rng = random.Random(1)
        warm = rng.sample(synthetic_ids(n), min(args.warm, n))
        sample = sample_customers(model_dir, args.sample, seed=2)
        with httpx.Client(timeout=30) as client:
            pass_latency(client, base, warm)
            rss = tree_rss_mb(proc.pid)
            miss = pass_latency(client, base, sample)
            hit = pass_latency(client, base, sample)
    except Exception:
        print(log.read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        stop(proc)
    log.unlink()
    p = lambda xs, q: float(np.percentile(xs, q))  # noqa: E731
    return Row(design, n, round(rss, 1), p(miss, 50), p(miss, 99), p(hit, 50), p(hit, 99), round(start_s, 1))


def write_results(rows: list[Row], out: Path, meta: dict[str, object]) -> list[str]:
    frame = pd.DataFrame([asdict(r) for r in rows])
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out.with_suffix(".csv"), index=False)
    lines = [
        "| design | customers | worker RSS MB | miss p50 ms | miss p99 ms | hit p50 ms | hit p99 ms | start s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.design} | {r.customers:,} | {r.worker_rss_mb:.0f} | {r.miss_p50_ms:.1f} | {r.miss_p99_ms:.1f} "
            f"| {r.hit_p50_ms:.1f} | {r.hit_p99_ms:.1f} | {r.start_s:.0f} |"
        )
    growth = []
    for design in dict.fromkeys(r.design for r in rows):
        mine = sorted((r for r in rows if r.design == design), key=lambda r: r.customers)
        if len(mine) >= 2:
            lo, hi = mine[0], mine[-1]
            growth.append(
                f"- {design}: worker RSS {lo.worker_rss_mb:.0f} MB at {lo.customers:,} customers -> "
                f"{hi.worker_rss_mb:.0f} MB at {hi.customers:,} ({hi.worker_rss_mb - lo.worker_rss_mb:+.0f} MB)"
            )
    text = [
        "# Scale-out serving: worker memory vs customers, cache hit vs miss latency",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: 2 cores shared with other jobs; {meta['when']}; one BentoML worker per server; "
        f"PostgreSQL event store, Redis cache bus; cache size {meta['cache_size']:,}; warm-up "
        f"{meta['warm']:,} products requests for synthetic customers; latency over {meta['sample']:,} "
        f"real customers, one request at a time (first pass: misses, second: hits). in-memory = "
        f"`{meta['baseline_ref']}` (customer tables loaded into every worker).",
        "",
        *lines,
        "",
        "Memory growth with the number of customers:",
        *growth,
        "",
        "The in-memory design has no customer-state cache on PostgreSQL (it reads the store on every "
        "request), so its two passes are the same path; the store design's first pass reads each "
        "customer's state from PostgreSQL (miss), the second from its cache (hit). Latencies are "
        "sequential requests on a shared, loaded machine: compare within one run only.",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(text))
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=str(ROOT / "data/cj"))
    p.add_argument(
        "--model-dir", default=str(ROOT / "artifacts/serving-bench/als"), help="ALS, fitted if missing"
    )
    p.add_argument("--customers", default="10000,100000", help="synthetic customers, comma separated")
    p.add_argument("--baseline-ref", default="3ee1a2d", help="commit of the in-memory design ('' to skip)")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--cache-size", type=int, default=5_000)
    p.add_argument("--warm", type=int, default=3_000)
    p.add_argument("--sample", type=int, default=1_000)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/scaleout"))
    args = p.parse_args(argv)
    data_dir, model_dir = Path(args.data_dir).resolve(), Path(args.model_dir).resolve()
    ensure_model(data_dir, model_dir, "als")
    products = pd.read_parquet(data_dir / "products.parquet", columns=["product_id"])["product_id"].astype(
        str
    )
    products = products.sample(5000, random_state=0).tolist()
    sizes = [int(x) for x in args.customers.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="scaleout-bench-"))
    baseline_tree = scratch / "baseline"
    rows: list[Row] = []
    db = f"scaleout_bench_{os.getpid()}"
    try:
        if args.baseline_ref:
            subprocess.run(
                [
                    "git",
                    "-C",
                    str(ROOT),
                    "worktree",
                    "add",
                    "--detach",
                    str(baseline_tree),
                    args.baseline_ref,
                ],
                check=True,
                capture_output=True,
            )
        for n in sizes:
            url = fresh_database(db)
            publish_store(url, data_dir, n, products)
            rows.append(run_design("store", ROOT, data_dir, model_dir, url, n, args))
            print(rows[-1], flush=True)
            if args.baseline_ref:
                url = fresh_database(db)
                copy = baseline_data(data_dir, n, scratch / f"data-{n}")
                rows.append(run_design("in-memory", baseline_tree, copy, model_dir, url, n, args))
                print(rows[-1], flush=True)
    finally:
        drop_database(db)
        if baseline_tree.exists():
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline_tree)], check=False
            )
        shutil.rmtree(scratch, ignore_errors=True)
    meta = {
        "command": "python benchmarks/scaleout.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cache_size": args.cache_size,
        "warm": args.warm,
        "sample": args.sample,
        "baseline_ref": args.baseline_ref or "none",
    }
    print("\n".join(write_results(rows, Path(args.out), meta)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
