"""Serving speed, in ONE run on this machine: the champion (grocery ranker) and ALS behind the BentoML
service, their in-process floors, and a naive FastAPI service calling implicit directly.

    .venv/bin/python benchmarks/serving.py [--data-dir data/cj] [--models grocery_ranker,als]

1. floor: the service's own products path called in-process, one request at a time (event-store
   read, consent/diet resolution, scoring, masks, top-k, reasons, JSON) -> req/s and latency.
2. bentoml <model>: `bentoml serve serving.service:RecsysService` as a subprocess on a free port, one
   per model (fitted on all of the data into artifacts/serving-bench/<model> when missing).
3. naive: FastAPI + uvicorn calling implicit's `AlternatingLeastSquares.recommend` per request
   (the ALS factors, same diet filter as `filter_items`, precomputed per diet so the naive side is
   not handicapped).
Load: wrk (closed loop, fixed connections) for throughput, and an open-loop raw-socket generator at a
fixed rate (latency measured from the scheduled send time, so queueing is not hidden) for p99 at
200 req/s. Every request carries a diet filter. Writes benchmarks/results/serving.{md,csv}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass
class Row:
    target: str
    load: str
    requests: int
    errors: int
    req_per_s: float
    p50_ms: float
    p99_ms: float
    note: str = ""


# ---- setup --------------------------------------------------------------------------------------


def ensure_model(
    data_dir: Path, model_dir: Path, name: str, basket_rerank: bool = False, **params: object
) -> None:
    """Fit `name` (registry name, default parameters but `params`) on all of `data_dir` unless saved
    (with the learned basket re-ranker when `basket_rerank`, as the pipeline's config serves it)."""
    from recsys.ranking.basket_rerank import RERANK_FILE

    if (model_dir / "model.json").exists() and (model_dir / RERANK_FILE).exists() == basket_rerank:
        return
    import recsys.models  # noqa: F401  (registers every model)
    from recsys.data.dataset import Dataset
    from recsys.models.base import Recommender
    from recsys.models.model_dir import save_model_dir

    print(f"fitting {name} on {data_dir} -> {model_dir}", flush=True)
    dataset = Dataset.load(data_dir)
    start = time.perf_counter()
    model = Recommender.registry[name](**params).fit(dataset)
    print(f"  fitted in {time.perf_counter() - start:.1f}s", flush=True)
    start = time.perf_counter()
    save_model_dir(
        model, dataset.items_table, model_dir, dataset.basket_lines(), dataset if basket_rerank else None
    )
    print(f"  basket files in {time.perf_counter() - start:.1f}s", flush=True)


def sample_customers(model_dir: Path, n: int, seed: int = 0) -> list[str]:
    users = json.loads((model_dir / "model.json").read_text())["users"]
    rng = random.Random(seed)
    return rng.sample(users, min(n, len(users)))


def basket_pool(data_dir: Path, n: int) -> list[str]:
    """The `n` products in most baskets: what random baskets of the complete_basket rounds hold."""
    lines = pd.read_parquet(data_dir / "interactions.parquet", columns=["product_id", "basket_id"])
    return lines.drop_duplicates()["product_id"].value_counts().index[:n].astype(str).tolist()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen) -> None:
    """Stop the server we started (its own process group only)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ---- floor --------------------------------------------------------------------------------------


def measure_floor(
    model_dir: Path, data_dir: Path, customers: list[str], diet: list[str], n: int, target: str
) -> list[Row]:
    """The same products code the service runs, called in-process: sequential, and batched (16)."""
    from serving.config import Settings
    from serving.customers import diet_profile
    from serving.events import EventStore
    from serving.products import ProductJob, recommend_batch
    from serving.publish import publish
    from serving.runtime import load_runtime
    from serving.schemas import ProductsRequest

    tmp = Path(tempfile.mkdtemp(prefix="recsys-floor-"))
    settings = Settings(model_dir=model_dir, data_dir=data_dir, events_url=f"sqlite:///{tmp / 'events.db'}")
    rt = load_runtime(settings)
    store = EventStore(settings.events_url)
    publish(store, data_dir)  # the customers' consent and diets, read by key as the service does

    def run(batch: list[str]) -> list[bytes | Exception]:
        jobs = [
            ProductJob(ProductsRequest(customer_id=c, k=10, diet=diet), diet_profile(diet)) for c in batch
        ]
        states = store.states(batch)
        return recommend_batch(rt, jobs, states, True)  # JSON bodies, as the service sends them

    for c in customers[:50]:
        run([c])
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        s = time.perf_counter()
        run([customers[i % len(customers)]])
        lat.append(time.perf_counter() - s)
    total = time.perf_counter() - t0
    rows = [Row(target, "sequential, batch 1", n, 0, n / total, *_pcts(lat), "per-request compute")]
    t0 = time.perf_counter()
    for i in range(0, n, 16):
        run([customers[(i + j) % len(customers)] for j in range(16)])
    total = time.perf_counter() - t0
    rows.append(Row(target, "sequential, batch 16", n, 0, n / total, float("nan"), float("nan")))
    store.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _pcts(lat: list[float]) -> tuple[float, float]:
    a = np.asarray(lat) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


# ---- load generators ----------------------------------------------------------------------------


def wrk_script(path: Path, customers: list[str], diet: list[str]) -> Path:
    ids = ",".join(f'"{c}"' for c in customers)
    path.write_text(
        f"""
local ids = {{{ids}}}
local diet = '{json.dumps(diet)}'
math.randomseed(42)
request = function()
  local id = ids[math.random(#ids)]
  local body = '{{"customer_id":"' .. id .. '","k":10,"diet":' .. diet .. '}}'
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}}, body)
end
"""
    )
    return path


def run_wrk(url: str, script: Path, connections: int, duration: int, target: str) -> Row:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    n = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    return Row(target, f"wrk closed loop, {connections} conns", n, errors, rps, ms("50"), ms("99"))


def run_fixed_rate(
    url: str,
    customers: list[str],
    diet: list[str],
    rate: float,
    duration: int,
    target: str,
    basket: tuple[list[str], int] | None = None,
) -> Row:
    """Open loop: request i is due at t0 + i/rate; latency counts from when it was due.

    Raw HTTP/1.1 keep-alive over asyncio streams (an httpx client costs ~1 ms of CPU per request,
    which on 2 shared CPUs would measure the generator, not the server). A request waits for a free
    connection only when all `max_conns` are busy, and that wait is part of its latency.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port, path = parts.hostname, parts.port, parts.path
    rng = random.Random(7)

    def request_bytes() -> bytes:
        fields = {"customer_id": rng.choice(customers), "k": 10, "diet": diet}
        if basket is not None:  # (product pool, size): complete a random basket of that size
            fields.update(mode="complete_basket", basket=rng.sample(basket[0], basket[1]))
        body = json.dumps(fields).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def main() -> tuple[list[float], int, float]:
        lat: list[float] = []
        errors = 0
        idle: asyncio.Queue = asyncio.Queue()
        opened = 0
        max_conns = 128

        async def connection():
            nonlocal opened
            if not idle.empty() or opened >= max_conns:
                conn = await idle.get()
                if conn is not None:
                    return conn
            opened += 1  # a new connection, or the one a broken connection left room for (None)
            try:
                return await asyncio.open_connection(host, port)
            except OSError:
                opened -= 1
                idle.put_nowait(None)
                raise

        async def one(due: float) -> None:
            nonlocal errors, opened
            conn = None
            try:
                conn = reader, writer = await connection()
                writer.write(request_bytes())
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                lat.append(time.perf_counter() - due)
                if status != 200:
                    errors += 1
                idle.put_nowait((reader, writer))
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                errors += 1
                lat.append(time.perf_counter() - due)
                if conn is not None:  # a broken connection is replaced: a waiter opens a new one
                    conn[1].close()
                    opened -= 1
                    idle.put_nowait(None)

        n = int(rate * duration)
        t0 = time.perf_counter() + 0.05
        tasks = []
        for i in range(n):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
        while not idle.empty():
            conn = idle.get_nowait()
            if conn is not None:
                conn[1].close()
        return lat, errors, elapsed

    lat, errors, elapsed = asyncio.run(main())
    return Row(target, f"open loop {rate:.0f} req/s", len(lat), errors, len(lat) / elapsed, *_pcts(lat))


# ---- the naive service --------------------------------------------------------------------------


class NaiveRequest(BaseModel):
    """Module level: FastAPI resolves (string) annotations in the module namespace."""

    customer_id: str
    k: int = 10
    diet: list[str] | None = None


def naive_app(model_dir: Path, data_dir: Path):
    """FastAPI calling implicit directly, one `recommend` per request: the baseline to beat."""
    import pandas as pd
    from fastapi import FastAPI
    from implicit.cpu.als import AlternatingLeastSquares

    import recsys.models  # noqa: F401  (registers every model)
    from recsys.diet.constraints import ConstraintEngine
    from recsys.diet.profiles import parse_profile
    from recsys.models.base import Recommender
    from recsys.personalize import align_items

    model = Recommender.load(model_dir)
    als = AlternatingLeastSquares(factors=model.item_factors_.shape[1])
    als.user_factors, als.item_factors = model.user_factors_, model.item_factors_
    user_items = model.seen_.tocsr()
    items = align_items(pd.read_parquet(data_dir / "products.parquet"), model.items_)
    engine = ConstraintEngine(items)
    item_ids = model.items_.external_ids
    users = {u: i for i, u in enumerate(model.users_.to_list())}
    popular = np.argsort(-model.item_popularity_)
    blocked: dict[tuple[str, ...], np.ndarray] = {}

    app = FastAPI()

    @app.post("/v1/products")
    def products(req: NaiveRequest) -> dict:
        key = tuple(sorted(req.diet or []))
        if key not in blocked:
            blocked[key] = np.flatnonzero(~engine.allowed(parse_profile(list(key))))
        uid = users.get(req.customer_id)
        if uid is None or user_items.indptr[uid + 1] == user_items.indptr[uid]:
            ok = np.setdiff1d(popular, blocked[key], assume_unique=True)[: req.k]
            ids, scores = ok, model.item_popularity_[ok]
        else:
            ids, scores = als.recommend(
                uid, user_items[uid], N=req.k, filter_items=blocked[key], filter_already_liked_items=False
            )
        return {
            "customer_id": req.customer_id,
            "items": [
                {"item_id": str(item_ids[i]), "score": float(s)} for i, s in zip(ids, scores, strict=True)
            ],
        }

    @app.get("/ready")
    def ready() -> dict:
        return {"ok": True}

    return app


def naive_app_from_env():
    """uvicorn factory for several naive worker processes (they import the app by name)."""
    from serving.accept import share_accepts

    share_accepts()  # the same fair accept as the BentoML workers: both services get both CPUs
    return naive_app(Path(os.environ["NAIVE_MODEL_DIR"]), Path(os.environ["NAIVE_DATA_DIR"]))


def serve_naive(args: argparse.Namespace) -> None:
    import uvicorn

    common = {"host": "127.0.0.1", "port": args.port, "log_level": "warning", "access_log": False}
    if args.workers <= 1:
        uvicorn.run(naive_app(Path(args.model_dir), Path(args.data_dir)), **common)
        return
    os.environ["NAIVE_MODEL_DIR"], os.environ["NAIVE_DATA_DIR"] = args.model_dir, args.data_dir
    uvicorn.run(
        "benchmarks.serving:naive_app_from_env",
        factory=True,
        workers=args.workers,
        app_dir=str(ROOT),
        **common,
    )


# ---- main ---------------------------------------------------------------------------------------

BENTO = [str(ROOT / ".venv/bin/bentoml"), "serve", "serving.service:RecsysService", "--host", "127.0.0.1"]


def service_env(data_dir: Path, workers: int) -> dict[str, str]:
    """The environment every benchmarked service runs with: reads open like the naive server's (no
    key check on the hot path), no access log, one BLAS thread."""
    return {
        **os.environ,
        "RECSYS_DATA_DIR": str(data_dir),
        "RECSYS_DEFAULT_CONSENT": "true",
        "RECSYS_READ_REQUIRES_KEY": "false",
        "RECSYS_ACCESS_LOG": "false",
        "OPENBLAS_NUM_THREADS": "1",
        "RECSYS_WORKERS": str(workers),
    }


def launch(cmd: list[str], env: dict[str, str], ready: str, log) -> tuple[subprocess.Popen, str]:
    """Start a server on a free port in its own process group; (process, base URL) once `ready`
    answers."""
    port = free_port()
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + ready, proc)
    except BaseException:
        stop(proc)
        raise
    return proc, base


def basket_round(base: str, target: str, customers, diet, pool: list[str], args, rnd: int) -> Row:
    """One open-loop complete_basket round: a random `--basket-size` basket from `pool` per request."""
    basket = (pool, args.basket_size)
    row = run_fixed_rate(
        base + "/v1/products", customers, diet, args.rate, args.duration, f"{target} basket", basket
    )
    row.note = f"round {rnd}, {args.basket_size}-item basket"
    print(row, flush=True)
    return row


def basket_only(
    args: argparse.Namespace,
    data_dir: Path,
    model_dirs: dict[str, Path],
    customers: list[str],
    diet: list[str],
) -> int:
    """The complete_basket open-loop rounds alone, one BentoML service per model at a time; prints
    the rows and the median p99 (the full run writes the results file)."""
    tmp = Path(tempfile.mkdtemp(prefix="recsys-bench-"))
    env = service_env(data_dir, args.workers)
    pool = basket_pool(data_dir, 2000)
    print(f"load before: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    try:
        for name, directory in model_dirs.items():
            extra = {"RECSYS_MODEL_DIR": str(directory), "RECSYS_EVENTS_URL": f"sqlite:///{tmp / name}.db"}
            with (tmp / f"{name}.log").open("w") as log:
                proc, base = launch(BENTO, {**env, **extra}, "/v1/health/ready", log)
                try:
                    target = f"bentoml {name}"
                    basket = (pool, args.basket_size)  # warm-up: caches, masks, the batcher
                    run_fixed_rate(base + "/v1/products", customers, diet, args.rate, 5, target, basket)
                    rows = [
                        basket_round(base, target, customers, diet, pool, args, r)
                        for r in range(1, args.rounds + 1)
                    ]
                    p99 = float(np.median([r.p99_ms for r in rows]))
                    print(f"{name}: complete_basket p99 at {args.rate:.0f} req/s {p99:.1f} ms (median of "
                          f"{len(rows)} rounds); load {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")  # fmt: skip
                finally:
                    stop(proc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def summarize(rows: list[Row], models: list[str], rate: float) -> tuple[list[str], dict[str, float]]:
    """Target lines for the markdown and the figures logged to MLflow (medians over the rounds)."""

    def med(target: str, load: str, field: str) -> float:
        vals = [getattr(r, field) for r in rows if r.target == target and r.load.startswith(load)]
        return float(np.median(vals)) if vals else float("nan")

    lines, metrics = [], {}
    naive = med("naive fastapi (als)", "wrk", "req_per_s")
    naive_p99 = med("naive fastapi (als)", "open loop", "p99_ms")
    metrics.update(naive_req_per_s=naive, naive_p99_ms=naive_p99)
    for name in models:
        target = f"bentoml {name}"
        floor = med(f"floor {name}", "sequential, batch 1", "req_per_s")
        rps = med(target, "wrk", "req_per_s")
        p99 = med(target, "open loop", "p99_ms")
        errors = sum(r.errors for r in rows if r.target == target)
        metrics.update({f"{name}_req_per_s": rps, f"{name}_p99_ms": p99, f"{name}_floor_req_per_s": floor})
        lines += [
            f"- **{name}**: closed loop {rps:.0f} req/s ({'met' if rps >= 800 else 'NOT met'} >= 800; "
            f"{100 * rps / floor:.0f}% of its in-process floor, {rps / naive:.2f}x the naive service); "
            f"p99 at {rate:.0f} req/s **{p99:.1f} ms** ({'met' if p99 <= 20 else 'NOT met'} <= 20 ms; "
            f"naive {naive_p99:.1f} ms); errors {errors}",
        ]
        basket_p99 = med(f"{target} basket", "open loop", "p99_ms")
        if basket_p99 == basket_p99:
            metrics[f"{name}_basket_p99_ms"] = basket_p99
            lines.append(
                f"- **{name}, complete_basket** (random 10-item basket from the 2,000 most bought products): "
                f"p99 at {rate:.0f} req/s **{basket_p99:.1f} ms** ({'met' if basket_p99 <= 20 else 'NOT met'} "
                "<= 20 ms)"
            )
    return lines, metrics


def write_results(rows: list[Row], out: Path, meta: dict[str, object], models: list[str]) -> dict[str, float]:
    from benchmarks.report import markdown_table
    from benchmarks.report import write_results as write

    def fmt(x: float) -> str:
        return "-" if x != x else f"{x:.1f}"

    table = pd.DataFrame([asdict(r) for r in rows])
    shown = pd.DataFrame(
        {
            "target": table["target"],
            "load": table["load"],
            "requests": table["requests"],
            "errors": table["errors"],
            "req/s": [f"{v:,.0f}" for v in table["req_per_s"]],
            "p50 ms": [fmt(v) for v in table["p50_ms"]],
            "p99 ms": [fmt(v) for v in table["p99_ms"]],
            "note": table["note"],
        }
    )
    targets, metrics = summarize(rows, models, float(meta["rate"]))
    lines = [
        "# Serving benchmark: products endpoint, diet filter on every request",
        "",
        f"Run {meta['when']} on {meta['cpus']} CPUs (load average 1/5/15 min before the run: {meta['load']}, "
        f"after: {meta.get('load_after', '?')}); {meta.get('workers', 1)} worker process(es) per service; "
        f"data {meta['data']} ({meta['n_users']} users x {meta['n_items']} items), k=10, diet {meta['diet']}, "
        f"{meta['customers']} random customers. Models: {meta['model']}. "
        "Produced by `.venv/bin/python benchmarks/serving.py` in one run.",
        "",
        markdown_table(shown),
        "",
        "## Targets (medians over the interleaved rounds)",
        "",
        *targets,
        "",
        "The floor runs the service's own products code in-process (event-store read, consent and diet "
        "resolution, scoring, masks, top-k, reasons, JSON), one request at a time; batch 16 shows what "
        "micro-batching buys. All services run the same number of worker processes, all started before the "
        "first measurement and measured in alternation (rounds), so background load hits them alike; wrk and "
        "the open-loop generator share the same 2 CPUs with the servers.",
    ]
    write(Path(out).name, "\n".join(lines), table)
    return metrics


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", nargs="?", default="bench", choices=["bench", "naive-server"])
    p.add_argument("--data-dir", default=str(ROOT / "data/cj"))
    p.add_argument("--models", default="grocery_ranker,als", help="registry names served, in this order")
    p.add_argument("--model-root", default=str(ROOT / "artifacts/serving-bench"), help="<root>/<model> dirs")
    p.add_argument("--model-dir", help="naive-server only: the ALS model directory")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--floor-requests", type=int, default=600)
    p.add_argument("--diet", default="gluten-free")
    p.add_argument("--basket-size", type=int, default=10, help="complete_basket rounds (0: none)")
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes of EACH service (BentoML and the naive one alike; default: one per CPU)",
    )
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/serving"))
    p.add_argument(
        "--basket-only",
        action="store_true",
        help="only the complete_basket open-loop rounds of the BentoML services; prints, writes nothing",
    )
    p.add_argument(
        "--no-basket-rerank",
        dest="basket_rerank",
        action="store_false",
        help="serve the pipeline's model without the learned basket re-ranker (default: as its config)",
    )
    args = p.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if args.mode == "naive-server":
        serve_naive(args)
        return 0
    if shutil.which("wrk") is None and not args.basket_only:  # the basket rounds are open loop only
        raise SystemExit("wrk not found: apt-get install -y wrk")
    data_dir = Path(args.data_dir)
    if not (data_dir / "manifest.json").exists():
        raise SystemExit(
            f"{data_dir} missing: .venv/bin/recsys data prepare --source completejourney --out {data_dir}"
        )
    models = [m for m in args.models.split(",") if m]
    if "als" not in models and not args.basket_only:
        raise SystemExit("--models must include als (the naive service serves its factors)")
    model_dirs = {m: Path(args.model_root) / m for m in models}
    from training.config import DEFAULT_CONFIG, load_config

    served = load_config(ROOT / DEFAULT_CONFIG).model  # the pipeline's model, served as it serves it
    for name, directory in model_dirs.items():
        rerank = args.basket_rerank and served.name == name and served.basket_rerank
        ensure_model(data_dir, directory, name, basket_rerank=rerank)
    diet = [d for d in args.diet.split(",") if d]
    customers = sample_customers(model_dirs["als" if "als" in model_dirs else models[0]], args.customers)
    if args.basket_only:
        return basket_only(args, data_dir, model_dirs, customers, diet)
    metas = {m: json.loads((d / "model.json").read_text()) for m, d in model_dirs.items()}
    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "load": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
        "data": data_dir.name,
        "model": "; ".join(f"{m} {metas[m]['params']}" for m in models),
        "n_users": len(metas["als"]["users"]),
        "n_items": len(metas["als"]["items"]),
        "diet": ",".join(diet),
        "customers": len(customers),
        "rate": args.rate,
        "workers": args.workers,
    }
    rows: list[Row] = []
    for name, directory in model_dirs.items():
        print(f"floor {name} ...", flush=True)
        rows += measure_floor(directory, data_dir, customers, diet, args.floor_requests, f"floor {name}")
        print(rows[-2], rows[-1], sep="\n", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="recsys-bench-"))
    script = wrk_script(tmp / "products.lua", customers, diet)
    env = service_env(data_dir, args.workers)
    servers = {
        f"bentoml {name}": (
            BENTO,
            "/v1/health/ready",
            {
                "RECSYS_MODEL_DIR": str(directory),
                "RECSYS_EVENTS_URL": f"sqlite:///{tmp / f'events-{name}.db'}",
            },
        )
        for name, directory in model_dirs.items()
    }
    servers["naive fastapi (als)"] = (
        [
            sys.executable,
            __file__,
            "naive-server",
            "--model-dir",
            str(model_dirs["als"]),
            "--data-dir",
            str(data_dir),
            "--workers",
            str(args.workers),
        ],
        "/ready",
        {},
    )
    procs: dict[str, tuple[subprocess.Popen, str]] = {}
    logs = []
    try:
        # Both servers up at once, measured in alternation: the machine is shared, so background
        # load drifts; interleaved rounds expose both targets to the same drift.
        for target, (cmd, ready, extra_env) in servers.items():
            log = (tmp / f"{target.split()[0]}.log").open("w")
            logs.append(log)
            procs[target] = launch(cmd, {**env, **extra_env}, ready, log)
        for target, (_, base) in procs.items():
            print(f"{target}: warm-up ...", flush=True)
            run_wrk(base + "/v1/products", script, 8, 5, target)  # caches, masks, the batcher
        for rnd in range(1, args.rounds + 1):
            for target, (_, base) in procs.items():
                row = run_wrk(base + "/v1/products", script, args.connections, args.duration, target)
                row.note = f"round {rnd}"
                rows.append(row)
                print(row, flush=True)
        for rnd in range(1, args.rounds + 1):
            for target, (_, base) in procs.items():
                row = run_fixed_rate(base + "/v1/products", customers, diet, args.rate, args.duration, target)
                row.note = f"round {rnd}"
                rows.append(row)
                print(row, flush=True)
        pool = basket_pool(data_dir, 2000) if args.basket_size else []
        for rnd in range(1, (args.rounds if pool else 0) + 1):
            for target, (_, base) in procs.items():
                if target.startswith("bentoml"):  # basket completion: the project's service only
                    rows.append(basket_round(base, target, customers, diet, pool, args, rnd))
    finally:
        for proc, _ in procs.values():
            stop(proc)
        for log in logs:
            log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    meta["load_after"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    metrics = write_results(rows, Path(args.out), meta, models)
    from benchmarks.report import log_run

    log_run("serving", {k: v for k, v in meta.items() if k != "when"}, metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
