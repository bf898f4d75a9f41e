"""Reliability, in ONE run: event-store outages, corrupt models, reloads under load, and a soak.

    .venv/bin/python benchmarks/reliability.py [--data-dir data/cj] [--soak-seconds 1800]
    .venv/bin/python benchmarks/reliability.py --only reload [--before-code /path/to/old/checkout]

The BentoML service (one worker, the ALS model fitted on the data set) runs as a subprocess with its
event store on PostgreSQL reached through a TCP proxy this script controls, so the faults are real
network faults, scriptable and undone exactly:
1. outage matrix: healthy, refused (the proxy closes its port and resets every connection), stalled
   (the proxy keeps the connections but forwards nothing), dropped-and-recreated (DROP DATABASE ...
   WITH (FORCE), CREATE DATABASE: the service must recreate its schema), unreachable at start (the
   service is restarted while the proxy refuses). Under a steady mixed load (products, recipes,
   feedback with client event ids): read endpoints must answer 0 5xx, writes 503 while the store is
   out, and every acknowledged event must be in the database afterwards.
2. model corruptions (lab/corrupt.py) and bad paths sent to /v1/admin/reload: each refused with 4xx,
   the same worker process alive and still serving the old version.
3. reload under load: open-loop products at --reload-rate req/s with reloads back to back (two ALS
   fits with different seeds in turn: a retrained champion) against the same load without reloads,
   measured in the same run; worker RSS before and after the reloads. With --before-code (another
   checkout, e.g. `git worktree add /tmp/before main`), that code's service is measured first, the
   same way, in the same run.
4. soak: open-loop products at --soak-rate req/s for --soak-seconds; worker RSS sampled every 10 s,
   growth over the last two thirds.
5. API fuzz: schemathesis over the served OpenAPI document (benchmarks/api_fuzz.py; `st` on PATH).
6. erasure sweep: tests/training/test_erasure_sweep.py (erase a customer, run every batch command,
   look for the id in every artifact and output), as its own pytest process.
The first lines of the results say, per issue-24 target, met or missed, and whether every section
comes from this one run.
Writes benchmarks/results/reliability.{md,csv}; with --only/--skip, the sections not run are kept
from the last results, each with the load average of the machine when it ran. Open-loop load:
benchmarks/serving.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import RESULTS, machine_note, markdown_table, write_results  # noqa: E402
from benchmarks.serving import (  # noqa: E402
    ensure_model,
    free_port,
    run_fixed_rate,
    sample_customers,
    stop,
    wait_ready,
)

PG = "postgresql+psycopg2://postgres@127.0.0.1:{port}/{db}"
KEY = "reliability-bench-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
READS = ("products", "recipes")
WRITES = ("feedback",)
#: --only / --skip name -> the section title in the results (rows' `section`, the md headings)
SECTIONS = {
    "outage": "outage",
    "corrupt": "corrupt model",
    "reload": "reload under load",
    "soak": "soak",
    "fuzz": "API fuzz",
    "erasure": "erasure sweep",
}


# ---- a TCP proxy we can break -------------------------------------------------------------------


class FaultProxy:
    """127.0.0.1:<port> -> upstream, in a thread of its own. Modes: pass, refuse, stall."""

    def __init__(self, upstream: int):
        self.upstream = upstream
        self.port = free_port()
        self.mode = "pass"
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.AbstractServer | None = None
        self.conns: set[asyncio.StreamWriter] = set()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self._do(self._listen())

    def _do(self, coro) -> None:  # noqa: ANN001
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _pump(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                while self.mode == "stall":
                    await asyncio.sleep(0.02)
                w.write(data)
                await w.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            w.close()

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            w.close()
            return
        self.conns |= {w, uw}
        await asyncio.gather(self._pump(r, uw), self._pump(ur, w))
        self.conns -= {w, uw}

    async def _refuse(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for w in list(self.conns):
            w.transport.abort()  # RST: what a crashed or restarted database looks like to a client
        self.conns.clear()

    def set(self, mode: str) -> None:
        if mode == "refuse":
            self._do(self._refuse())
        elif self.mode == "refuse":
            self._do(self._listen())
        self.mode = mode


# ---- the database -------------------------------------------------------------------------------


def admin(sql: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(PG.format(port=5432, db="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


def stored_ids(db: str, ids: set[str]) -> set[str]:
    import sqlalchemy as sa

    if not ids:
        return set()
    engine = sa.create_engine(PG.format(port=5432, db=db))
    try:
        with engine.connect() as conn:
            q = sa.text("SELECT event_id FROM events WHERE event_id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            )
            return {r[0] for r in conn.execute(q, {"ids": sorted(ids)})}
    finally:
        engine.dispose()


# ---- the service --------------------------------------------------------------------------------


@dataclass
class Server:
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    code: Path = ROOT  # the checkout whose serving/ runs

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: str = "/v1/health/ready") -> float:
        cmd = [str(Path(sys.executable).parent / "bentoml"), "serve", "serving.service:RecsysService"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.code,
            env={**self.env, "PYTHONPATH": str(self.code)},
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_ready(self.base + wait, self.proc, timeout=600)
        return time.perf_counter() - t0

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def worker(self):  # noqa: ANN201 - a psutil.Process
        """The worker process: the descendant holding the model (largest RSS)."""
        import psutil

        procs = psutil.Process(self.proc.pid).children(recursive=True)
        return max(procs, key=lambda p: p.memory_info().rss)


# ---- mixed load with statuses -------------------------------------------------------------------


@dataclass
class Tally:
    statuses: dict[str, list[int]] = field(default_factory=dict)
    latency: dict[str, list[float]] = field(default_factory=dict)
    degraded: dict[str, int] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)  # 503s: not acknowledged
    transport: dict[str, list[str]] = field(default_factory=dict)  # no HTTP answer: exception names


async def mixed_load(base: str, customers: list[str], items: list[str], seconds: float, rate: float) -> Tally:
    """Open loop at `rate` req/s: 80% products, 10% recipes, 10% feedback (one event, fresh id)."""
    import httpx

    tally = Tally()
    rng = random.Random(11)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def one(kind: str) -> None:
            cid = rng.choice(customers)
            event_id = None
            if kind == "products":
                body = {"customer_id": cid, "k": 10, "diet": ["gluten-free"]}
            elif kind == "recipes":
                body = {"customer_id": cid, "k": 3}
            else:
                event_id = uuid.uuid4().hex
                ev = {"customer_id": cid, "event_type": "purchase", "item_id": rng.choice(items)}
                body = {"events": [{**ev, "event_id": event_id}]}
            t0 = time.perf_counter()
            try:
                r = await client.post(f"/v1/{kind}", json=body, headers=AUTH)
                status, js = (
                    r.status_code,
                    (r.json() if r.headers.get("content-type", "").startswith("application/json") else {}),
                )
            except httpx.HTTPError as exc:  # no HTTP status at all: counted apart, by exception name
                status, js = 0, {}
                tally.transport.setdefault(kind, []).append(type(exc).__name__)
            tally.latency.setdefault(kind, []).append(time.perf_counter() - t0)
            tally.statuses.setdefault(kind, []).append(status)
            if js.get("degraded"):
                tally.degraded[kind] = tally.degraded.get(kind, 0) + 1
            if event_id is not None:
                if status == 200 and js.get("stored") == 1:
                    tally.acked.add(event_id)
                elif status == 503:
                    tally.refused.add(event_id)

        tasks = []
        t0 = time.perf_counter()
        for i in range(int(seconds * rate)):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            u = rng.random()
            tasks.append(
                asyncio.create_task(one("products" if u < 0.8 else "recipes" if u < 0.9 else "feedback"))
            )
        await asyncio.gather(*tasks)
    return tally


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99) * 1000) if values else float("nan")


def tally_rows(case: str, t: Tally, expect_write: str) -> list[dict]:
    rows = []
    for kind in (*READS, *WRITES):
        st = t.statuses.get(kind, [])
        n5 = sum(s >= 500 for s in st)
        n503 = sum(s == 503 for s in st)
        ok = sum(s == 200 for s in st)
        lost = t.transport.get(kind, [])
        if kind in READS:
            verdict = (
                "FAIL: 5xx on a read" if n5 else f"no 5xx, {len(lost)} without an answer" if lost else "ok"
            )
        elif expect_write == "503":
            verdict = "ok" if n5 == n503 and ok + n503 == len(st) else "FAIL"
        elif n5 - n503:
            verdict = "FAIL: 5xx other than 503 on a write"
        else:
            verdict = "ok" if n503 == 0 else f"ok ({n503} x 503 while reconnecting, not acknowledged)"
        rows.append(
            {
                "section": SECTIONS["outage"],
                "case": case,
                "endpoint": kind,
                "requests": len(st),
                "ok_200": ok,
                "http_503": n503,
                "other_5xx": n5 - n503,
                "degraded": t.degraded.get(kind, 0),
                "no_answer": ",".join(t.transport.get(kind, [])) or "-",
                "p99_ms": p99(t.latency.get(kind, [])),
                "verdict": verdict,
            }
        )
    return rows


# ---- the sections -------------------------------------------------------------------------------


def outage_matrix(
    server: Server, proxy: FaultProxy, db: str, customers, items, args
) -> tuple[list[dict], dict]:
    rows: list[dict] = []
    acked: set[str] = set()
    refused: set[str] = set()
    lost = 0

    def phase(case: str, seconds: float, expect_write: str) -> None:
        t = asyncio.run(mixed_load(server.base, customers, items, seconds, args.mixed_rate))
        acked.update(t.acked)
        refused.update(t.refused)
        rows.extend(tally_rows(case, t, expect_write))
        print(pd.DataFrame(rows[-3:]).to_string(index=False), flush=True)

    def settle() -> None:  # the store answers again: wait for the service to see it
        import httpx

        deadline = time.time() + 60
        while time.time() < deadline:
            if httpx.get(server.base + "/v1/health/ready", timeout=10).json().get("event_store") == "ok":
                return
            time.sleep(0.5)

    d = args.phase_seconds
    phase("healthy", d, "200")
    proxy.set("refuse")
    phase("refused", d, "503")
    proxy.set("pass")
    settle()
    phase("recovered after refused", d / 2, "200")
    proxy.set("stall")
    phase("stalled", d, "503")
    proxy.set("pass")
    settle()
    phase("recovered after stalled", d / 2, "200")
    # everything acknowledged so far must be in the database before we drop it on purpose
    lost += len(acked - stored_ids(db, acked))
    late = len(stored_ids(db, refused))
    verified = len(acked)
    acked.clear()
    refused.clear()
    admin(f'DROP DATABASE "{db}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{db}"')
    phase("dropped and recreated", d, "200")
    server.stop()
    proxy.set("refuse")
    started = server.start()  # ready (200, 'degraded'): warm, serving without its store
    phase("unreachable at start", d, "503")
    proxy.set("pass")
    t0 = time.perf_counter()
    settle()
    ready_after = time.perf_counter() - t0
    phase("recovered after start without store", d / 2, "200")
    lost += len(acked - stored_ids(db, acked))
    late += len(stored_ids(db, refused))
    verified += len(acked)
    return rows, {
        "acknowledged_events": verified,
        "acknowledged_lost": lost,
        "answered_503_but_committed": late,
        "start_without_store_s": round(started, 1),
        "ready_after_store_back_s": round(ready_after, 1),
    }


def corruptions(server: Server, model_root: Path, good: Path) -> list[dict]:
    import httpx

    from lab.corrupt import CORRUPTIONS, corrupt_copy

    rows = []
    cases = {name: str(corrupt_copy(good, model_root / f"bad-{name}", name)) for name in CORRUPTIONS}
    cases |= {"path traversal": "../../../../../etc", "/etc/passwd": "/etc/passwd"}
    for name, path in cases.items():
        before = server.worker().pid
        version = httpx.get(server.base + "/v1/health/live", timeout=30).json()["model_version"]
        t0 = time.perf_counter()
        r = httpx.post(server.base + "/v1/admin/reload", json={"model_dir": path}, headers=AUTH, timeout=300)
        took = time.perf_counter() - t0
        live = httpx.get(server.base + "/v1/health/live", timeout=30)
        products = httpx.post(server.base + "/v1/products", json={"customer_id": "x", "k": 5}, timeout=30)
        same = server.worker().pid == before and live.json()["model_version"] == version
        ok = 400 <= r.status_code < 500 and same and products.status_code == 200
        rows.append(
            {
                "section": SECTIONS["corrupt"],
                "case": name,
                "endpoint": "admin/reload",
                "requests": 1,
                "status": r.status_code,
                "p99_ms": took * 1000,
                "verdict": "refused, old model serving, same worker" if ok else f"FAIL: {r.text[:120]}",
            }
        )
        print(rows[-1], flush=True)
    return rows


def reload_under_load(
    server: Server, dirs: list[Path], customers, args, code: str
) -> tuple[list[dict], dict]:
    import httpx

    machine = machine_note()
    worker = server.worker()
    cpu = [sum(worker.cpu_times()[:2])]  # worker CPU seconds: what reloads take from requests
    base_row = run_fixed_rate(
        server.base + "/v1/products",
        customers,
        ["gluten-free"],
        args.reload_rate,
        args.reload_seconds,
        "no reload",
    )
    done: list[float] = []
    failed: list[str] = []
    stop_flag = threading.Event()
    cpu.append(sum(worker.cpu_times()[:2]))
    rss_before = worker.memory_info().rss

    def reloader() -> None:
        i = 0
        while not stop_flag.is_set():
            t0 = time.perf_counter()
            r = httpx.post(
                server.base + "/v1/admin/reload",
                json={"model_dir": str(dirs[i % 2])},
                headers=AUTH,
                timeout=300,
            )
            if r.status_code == 200:
                done.append(time.perf_counter() - t0)
            else:
                failed.append(f"{r.status_code} {r.text[:80]}")
            i += 1
            stop_flag.wait(args.reload_pause)

    th = threading.Thread(target=reloader)
    th.start()
    with_row = run_fixed_rate(
        server.base + "/v1/products",
        customers,
        ["gluten-free"],
        args.reload_rate,
        args.reload_seconds,
        "reloading",
    )
    stop_flag.set()
    th.join()
    rss_after = worker.memory_info().rss
    cpu.append(sum(worker.cpu_times()[:2]))
    # the same load ran in both phases: the extra CPU of the reloading phase is the reloads'
    cpu_per_reload = ((cpu[2] - cpu[1]) - (cpu[1] - cpu[0])) / max(len(done) + len(failed), 1)
    rows = []
    for row, note in (
        (base_row, "baseline, same server"),
        (with_row, f"{len(done)} reloads, {len(failed)} failed, median {np.median(done or [np.nan]):.1f} s"),
    ):
        rows.append(
            {
                "section": SECTIONS["reload"],
                "code": code,
                "case": row.target,
                "endpoint": "products",
                "requests": row.requests,
                "other_5xx": row.errors,
                "p50_ms": row.p50_ms,
                "p99_ms": row.p99_ms,
                "verdict": note,
                "machine": machine,
            }
        )
        print(rows[-1], flush=True)
    rows[-1]["verdict"] += (
        f"; worker CPU {cpu_per_reload:.1f} s per reload; RSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MB"
    )
    for why in failed:
        print("reload failed:", why, flush=True)
    return rows, {
        "reloads": len(done),
        "reload_failures": len(failed),
        "reload_s_median": float(np.median(done)) if done else float("nan"),
        "reload_p99_ms": with_row.p99_ms,
        "reload_errors": with_row.errors,
        "baseline_p99_ms": base_row.p99_ms,
        "reload_rss_growth_pct": (rss_after - rss_before) / rss_before * 100,
        "reload_worker_cpu_s": cpu_per_reload,
    }


def soak(server: Server, customers, args) -> tuple[list[dict], dict]:
    samples: list[tuple[float, int]] = []
    stop_flag = threading.Event()
    worker = server.worker()

    def sampler() -> None:
        t0 = time.perf_counter()
        while not stop_flag.is_set():
            samples.append((time.perf_counter() - t0, worker.memory_info().rss))
            stop_flag.wait(10)

    th = threading.Thread(target=sampler)
    th.start()
    loads = [os.getloadavg()[0]]
    row = run_fixed_rate(
        server.base + "/v1/products", customers, ["gluten-free"], args.soak_rate, args.soak_seconds, "soak"
    )
    loads.append(os.getloadavg()[0])
    stop_flag.set()
    th.join()
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples], dtype=float)
    tail = rss[t >= t[-1] / 3] if len(t) else rss
    start = float(np.median(tail[:3])) if len(tail) else float("nan")
    end = float(np.median(tail[-3:])) if len(tail) else float("nan")
    growth = (end - start) / start * 100
    rows = [
        {
            "section": SECTIONS["soak"],
            "case": f"{args.soak_rate:.0f} req/s for {args.soak_seconds} s",
            "endpoint": "products",
            "requests": row.requests,
            "other_5xx": row.errors,
            "p50_ms": row.p50_ms,
            "p99_ms": row.p99_ms,
            "verdict": f"worker RSS {start / 2**20:.0f} -> {end / 2**20:.0f} MB over the last 2/3 ({growth:+.2f}%)",
            "machine": f"load average {loads[0]:.2f} at start, {loads[1]:.2f} at end",
        }
    ]
    print(rows[-1], flush=True)
    return rows, {"soak_rss_growth_pct": growth, "soak_errors": row.errors, "soak_p99_ms": row.p99_ms}


def api_fuzz(args) -> tuple[list[dict], dict]:
    from benchmarks.api_fuzz import fuzz

    frame, meta = fuzz(args.fuzz_examples, seed=0)
    rows = [
        {
            "section": SECTIONS["fuzz"],
            "case": f"{r['code']} {r['check']}",
            "unique_failures": r["unique failures"],
        }
        for r in frame.to_dict("records")
    ] or [{"section": SECTIONS["fuzz"], "case": "no failing check", "unique_failures": 0}]
    return rows, {**meta, "machine": machine_note()}


def erasure_sweep() -> tuple[list[dict], dict]:
    """The sweep test in its own pytest process; one row per parametrised case."""
    import xml.etree.ElementTree as ET

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"]
        cmd.append("tests/training/test_erasure_sweep.py")
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=False, capture_output=True)
        seconds = time.perf_counter() - t0
        cases = ET.parse(report).getroot().iter("testcase") if report.exists() else []
        rows = [
            {
                "section": SECTIONS["erasure"],
                "case": c.get("name"),
                "verdict": "failed"
                if len(c) and c[0].tag in ("failure", "error")
                else "erased id found nowhere",
            }
            for c in cases
        ]
    failed = sum(r["verdict"] == "failed" for r in rows)
    return rows, {"erasure_cases": len(rows), "erasure_failed": failed, "erasure_seconds": round(seconds)}


def target_lines(metas: dict[str, dict[str, object]], rows: pd.DataFrame, run: list[str]) -> list[str]:
    """Issue 24's done-when, one line per target, from this run's figures."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    out = []
    if "fuzz" in run:
        m = metas["fuzz"]
        ok = m["fuzz_cases"] >= 2000 and m["fuzz_server_errors"] == 0 and m["fuzz_other_findings"] == 0
        out.append(
            f"- API fuzz >= 2,000 cases, 0 server errors, 0 spec violations: {verdict(ok)} "
            f"({m['fuzz_cases']:,} cases, {m['fuzz_server_errors']} server errors, "
            f"{m['fuzz_other_findings']} other findings)"
        )
    if "outage" in run:
        o = rows[rows["section"] == SECTIONS["outage"]]
        reads = o[o["endpoint"].isin(READS)]
        writes = o[
            o["endpoint"].isin(WRITES) & o["case"].isin(["refused", "stalled", "unreachable at start"])
        ]
        lost = metas["outage"].get("acknowledged_lost")
        ok = reads["other_5xx"].sum() == 0 and (writes["ok_200"] == 0).all() and lost == 0
        out.append(
            f"- outage matrix, 0 5xx on reads, 503 on writes, nothing acknowledged lost: {verdict(ok)} "
            f"(read 5xx {int(reads['other_5xx'].sum())}, acknowledged lost {lost})"
        )
    if "corrupt" in run:
        c = rows[rows["section"] == SECTIONS["corrupt"]]
        refused = int(c["verdict"].str.startswith("refused").sum())
        ok = refused == len(c) and refused >= 6 and not metas["corrupt"].get("worker_crash_in_log")
        out.append(
            f"- >= 6 corruptions refused, 0 worker crashes: {verdict(ok)} ({refused} of {len(c)} refused)"
        )
    if "reload" in run:
        m = metas["reload"]
        ok = m["reload_failures"] == 0 and m["reload_errors"] == 0 and m["reload_p99_ms"] <= 100
        out.append(
            f"- reload under load, 0 failures, p99 <= 100 ms: {verdict(ok)} ({m['reloads']} reloads, "
            f"{m['reload_failures']} failed, p99 {m['reload_p99_ms']:.1f} ms)"
        )
    if "soak" in run:
        m = metas["soak"]
        ok = m["soak_errors"] == 0 and m["soak_rss_growth_pct"] < 2
        out.append(
            f"- soak, RSS growth < 2% over the last 2/3: {verdict(ok)} "
            f"({m['soak_rss_growth_pct']:+.2f}%, {m['soak_errors']} errors)"
        )
    if "erasure" in run:
        m = metas["erasure"]
        ok = m["erasure_cases"] > 0 and m["erasure_failed"] == 0
        out.append(
            f"- erasure sweep finds the erased id nowhere: {verdict(ok)} "
            f"({m['erasure_cases']} cases, {m['erasure_failed']} failed)"
        )
    return out


# ---- main ---------------------------------------------------------------------------------------


def kept_sections(run: set[str]) -> tuple[list[str], pd.DataFrame]:
    """Markdown blocks and CSV rows of the last results for the sections not run now."""
    md, csv = RESULTS / "reliability.md", RESULTS / "reliability.csv"
    if not md.exists() or not csv.exists():
        return [], pd.DataFrame()
    titles = {SECTIONS[name] for name in run}
    blocks = [b for b in md.read_text().split("\n## ")[1:] if b.split("\n", 1)[0].strip() not in titles]
    rows = pd.read_csv(csv)
    return [f"## {b.rstrip()}" for b in blocks], rows[~rows["section"].isin(titles)]


def section_md(title: str, frame: pd.DataFrame, meta: dict[str, object]) -> str:
    lines = [f"## {title}", ""] + [f"- {k}: {v}" for k, v in meta.items()]
    table = frame.dropna(axis=1, how="all").drop(columns="section")
    return "\n".join([*lines, "", markdown_table(table, "{:.1f}")])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(ROOT / "data/cj"))
    p.add_argument("--model-root", default=str(ROOT / "artifacts/reliability-bench"))
    p.add_argument("--phase-seconds", type=float, default=20.0)
    p.add_argument("--mixed-rate", type=float, default=40.0, help="req/s of the outage matrix's mixed load")
    p.add_argument("--reload-rate", type=float, default=100.0)
    p.add_argument("--reload-seconds", type=int, default=30)
    p.add_argument("--reload-pause", type=float, default=2.0, help="seconds between reloads")
    p.add_argument(
        "--before-code", default="", help="another checkout: its service's reloads measured first, same run"
    )
    p.add_argument("--soak-rate", type=float, default=200.0)
    p.add_argument("--soak-seconds", type=int, default=300, help="the issue asks 1800")
    p.add_argument(
        "--fuzz-examples", type=int, default=180, help="schemathesis examples per operation and phase"
    )
    p.add_argument("--only", default="", help=f"comma list of sections to run: {','.join(SECTIONS)}")
    p.add_argument("--skip", default="", help="comma list of sections to skip")
    p.add_argument("--no-write", action="store_true", help="print only; keep the results files")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below on kill
    named = {x for x in (args.only + "," + args.skip).split(",") if x}
    if named - set(SECTIONS):
        p.error(f"unknown sections {sorted(named - set(SECTIONS))}; choose from {', '.join(SECTIONS)}")
    run = [
        x for x in SECTIONS if (not args.only or x in args.only.split(",")) and x not in args.skip.split(",")
    ]
    data_dir = Path(args.data_dir)
    model_root = Path(args.model_root)
    ensure_model(data_dir, model_root / "als", "als")
    second = model_root / "als-seed1"  # the same model refitted with another seed: a retrained version
    ensure_model(data_dir, second, "als", random_state=1)
    customers = sample_customers(model_root / "als", 1000)
    items = json.loads((model_root / "als" / "model.json").read_text())["items"][:2000]
    db = f"recsys_resil_bench_{os.getpid()}"
    admin(f'CREATE DATABASE "{db}"')
    proxy = FaultProxy(5432)
    tmp = Path(tempfile.mkdtemp(prefix="recsys-reliability-"))
    env = {
        **os.environ,
        "RECSYS_MODEL_DIR": str(model_root / "als"),
        "RECSYS_DATA_DIR": str(data_dir),
        "RECSYS_MODEL_ROOT": str(model_root),
        "RECSYS_ACTIVE_MODEL_FILE": str(tmp / "active-model.json"),
        "RECSYS_EVENTS_URL": PG.format(port=proxy.port, db=db),
        "RECSYS_API_KEYS": KEY,
        "RECSYS_ERASURE_SECRET_FILE": str(tmp / "erasure.key"),  # one secret for every server started
        # the open-loop generator (benchmarks/serving.py) sends no key; writes and reload still need one
        "RECSYS_READ_REQUIRES_KEY": "false",
        "RECSYS_DEFAULT_CONSENT": "true",
        "RECSYS_OFFERS_URI": "none",
        "RECSYS_ACCESS_LOG": "false",
        "RECSYS_WORKERS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    server = Server(env, tmp / "server.log")
    rows: list[dict] = []
    metas: dict[str, dict[str, object]] = {}
    try:
        if "reload" in run and args.before_code:
            before = Server(env, tmp / "before.log", code=Path(args.before_code).resolve())
            try:
                before.start()
                label = f"before ({before.code})"
                r, m = reload_under_load(before, [second, model_root / "als"], customers, args, label)
                rows += r
                metas["reload"] = {f"before: {k}": v for k, v in m.items()}
            finally:
                before.stop()
        start_s = round(server.start(), 1)
        if "outage" in run:
            r, m = outage_matrix(server, proxy, db, customers, items, args)
            rows += r
            metas["outage"] = {"machine_before": machine_note(), "start_s": start_s, **m}
        if "corrupt" in run:
            metas["corrupt"] = {"machine_before": machine_note()}
            rows += corruptions(server, model_root, model_root / "als")
        if "reload" in run:
            r, m = reload_under_load(server, [second, model_root / "als"], customers, args, "this checkout")
            rows += r
            metas.setdefault("reload", {}).update(m)
        if "soak" in run:
            r, m = soak(server, customers, args)
            rows += r
            metas["soak"] = m
        if "fuzz" in run:
            r, metas["fuzz"] = api_fuzz(args)
            rows += r
        if "erasure" in run:
            r, metas["erasure"] = erasure_sweep()
            rows += r
        crashed = "worker exited" in (tmp / "server.log").read_text().lower()
        for name in run:
            metas.setdefault(name, {}).update(machine_after=machine_note(), worker_crash_in_log=crashed)
    finally:
        server.stop()
        with contextlib.suppress(Exception):
            admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        for bad in model_root.glob("bad-*"):
            shutil.rmtree(bad, ignore_errors=True)
    table = pd.DataFrame(rows)
    blocks, kept = kept_sections(set(run)) if not args.no_write else ([], pd.DataFrame())
    new_blocks = {
        SECTIONS[name]: section_md(SECTIONS[name], table[table["section"] == SECTIONS[name]], metas[name])
        for name in run
    }
    old_blocks = {b.split("\n", 1)[0][3:].strip(): b for b in blocks}
    ordered = [new_blocks.get(t) or old_blocks.get(t) for t in SECTIONS.values()]
    md = ["# Reliability (benchmarks/reliability.py)", ""]
    whole = set(run) == set(SECTIONS)
    md += [
        "Every section below comes from ONE run of the script."
        if whole
        else f"Sections re-run now: {', '.join(run)}; the others are kept from earlier runs (`--only`).",
        "Latencies depend on what else ran: see each section's machine load average.",
        "",
        "Issue 24 targets, from the sections run now:",
        "",
        *target_lines(metas, table, run),
    ]
    md += ["", "\n\n".join(b for b in ordered if b)]
    full = pd.concat([kept, table], ignore_index=True) if len(kept) else table
    order = {t: i for i, t in enumerate(SECTIONS.values())}
    full = full.sort_values("section", key=lambda c: c.map(order), kind="stable")
    write_results("reliability", "\n".join(md), full, headline=not args.no_write)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
