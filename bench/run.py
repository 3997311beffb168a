"""Kiezstimme benchmark: one command, one table, baseline and product side by side.

    python bench/run.py            # everything (a few minutes)
    python bench/run.py --quick    # smaller numbers, for a smoke run

The server runs pinned to core 0, the load generator (and the fake Telegram
server) to core 1 (``taskset``), all on loopback. Figures go to stdout and to
``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.delivery.outbox import Audience, enqueue_bulk  # noqa: E402
from bot.storage.db import Database  # noqa: E402
from bot.storage.seed import seed_residents  # noqa: E402

TOKEN = "123456:BENCH-token_abcdefghijklmnopqrstu"
SECRET = "bench-secret_0123456789"
PG_ADMIN = os.environ.get("KIEZSTIMME_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
# addresses are encrypted at rest: one key for the run's bot processes and its seeding (PostgreSQL needs it set)
os.environ.setdefault("DATA_KEY", __import__("base64").urlsafe_b64encode(secrets.token_bytes(32)).decode())
STEPS = ["👋", "1", "1", "1", "2", "Mehr Bäume und Schatten auf dem Hermannplatz bitte", "3", "1", "1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(core: int, args: list[str]) -> list[str]:
    return (
        ["taskset", "-c", str(core)] if shutil.which("taskset") and os.cpu_count() and os.cpu_count() > 1 else []
    ) + args


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


class Process:
    def __init__(self, args: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> None:
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env or os.environ.copy(),
            stdout=open(log, "ab") if log else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()


# --- databases ---------------------------------------------------------------------------


async def new_database(kind: str, workdir: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{workdir / f'bench-{secrets.token_hex(3)}.db'}"
    import asyncpg

    name = f"kiezstimme_bench_{secrets.token_hex(3)}"
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return PG_ADMIN.rpartition("/")[0] + "/" + name


async def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')
        await conn.close()


def bot_env(database_url: str, port: int, tg_root: str, workdir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "MEDIA_DIR": str(workdir / "media"),
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_API_BASE_URL": tg_root,
        "TELEGRAM_RATE_PER_S": "0",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


# --- load generation -----------------------------------------------------------------------


def update(update_id: int, chat: int, text: str) -> bytes:
    return json.dumps(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": int(time.time()),
                "text": text,
                "chat": {"id": chat, "type": "private", "first_name": "B"},
                "from": {"id": chat, "is_bot": False, "first_name": "B", "language_code": "xx"},
            },
        }
    ).encode()


async def closed_loop(
    url: str, total: int, residents: int, concurrency: int, headers: dict[str, str]
) -> dict[str, float]:
    """As fast as the server acknowledges: ``concurrency`` residents at a time."""
    latencies: list[float] = []
    counter = iter(range(total))
    errors = 0

    async def runner(session: aiohttp.ClientSession, lane: int) -> None:
        nonlocal errors
        for n in counter:
            chat = 10_000 + (n % residents)
            step = (n // residents) % len(STEPS)
            body = update(1 + n, chat, STEPS[step])
            start = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(runner(session, i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "rate": total / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "errors": errors,
    }


async def open_loop(
    url: str, rate: float, seconds: float, residents: int, headers: dict[str, str], first_id: int
) -> dict[str, float]:
    """A fixed offered rate, for latency under a realistic load."""
    latencies: list[float] = []
    tasks = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(n: int) -> None:
            chat = 10_000 + (n % residents)
            body = update(first_id + n, chat, STEPS[(n // residents) % len(STEPS)])
            start = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
            latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        for n in range(int(rate * seconds)):
            due = started + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return {"offered": rate, "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}


# --- the measurements ------------------------------------------------------------------------


async def inbound(kind: str, workdir: Path, tg_root: str, total: int, results: dict[str, Any]) -> None:
    """SQLite: ``serve`` alone on one core. PostgreSQL: ``serve --web-only`` on core 0 and
    two ``worker``s that process (on both cores, beside the load generator)."""
    url_db = await new_database(kind, workdir)
    port = free_port()
    env = bot_env(url_db, port, tg_root, workdir)
    if kind == "sqlite":
        server = Process(pinned(0, [sys.executable, "-m", "bot", "serve"]), env, workdir / f"serve-{kind}.log")
        workers: list[Process] = []
    else:
        await migrate_database(url_db)
        server = Process(
            pinned(0, [sys.executable, "-m", "bot", "serve", "--web-only"]), env, workdir / f"serve-{kind}.log"
        )
        workers = [Process([sys.executable, "-m", "bot", "worker"], env, workdir / f"worker-{i}.log") for i in range(2)]
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz")
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
        url = f"http://127.0.0.1:{port}/webhooks/telegram"
        await closed_loop(url, 500, 1000, 32, headers)  # warm-up
        fig = await closed_loop(url, total, 1000, 64, headers)
        lat = await open_loop(url, 1000, 5, 1000, headers, first_id=10_000_000)
        # how fast the server works through the dialogue steps (sampled for up to 30 s)
        from sqlalchemy import func, select

        from bot.storage.models import InboundMessage

        db = Database(url_db)

        async def counts() -> tuple[int, int]:
            async with db.read() as conn:
                pending = (
                    await conn.execute(
                        select(func.count()).select_from(InboundMessage).where(InboundMessage.status == "pending")
                    )
                ).scalar_one()
                done = (
                    await conn.execute(
                        select(func.count()).select_from(InboundMessage).where(InboundMessage.status == "done")
                    )
                ).scalar_one()
            return pending, done

        pending0, done0 = await counts()
        started = time.perf_counter()
        pending, processed = pending0, done0
        while pending and time.perf_counter() - started < 30:
            await asyncio.sleep(1)
            pending, processed = await counts()
        elapsed = time.perf_counter() - started
        await db.dispose()
        step_rate = (processed - done0) / elapsed if elapsed > 0 and processed > done0 else float("nan")
        results[f"inbound_{kind}"] = {
            **fig,
            "open_loop_1000": lat,
            "processed": processed,
            "backlog_after_load": pending0,
            "steps_per_s": step_rate,
        }
    finally:
        server.stop()
        for worker in workers:
            worker.stop()
        await drop_database(url_db)


async def migrate_database(url: str) -> None:
    db = Database(url)
    try:
        await db.migrate()
    finally:
        await db.dispose()


def engine_baseline(results: dict[str, Any], steps: int = 20_000) -> None:
    """The pure engine step and rendering alone, in this process (no database, no HTTP): the ceiling."""
    from bot.conversation.engine import Engine
    from bot.conversation.flow_files import load_flows
    from bot.conversation.i18n import Catalogs
    from bot.conversation.render import Renderer
    from bot.conversation.session import Conversation
    from bot.conversation.step import Context, Message
    from channels.registry import capabilities

    flows = load_flows(ROOT / "flows")
    catalogs = Catalogs.load(flows, ROOT / "i18n")
    engine, renderer, caps = Engine(flows, catalogs), Renderer(catalogs), capabilities("telegram")
    conversations = [Conversation() for _ in range(1000)]
    now = datetime.now(UTC)
    started = time.perf_counter()
    for n in range(steps):
        i = n % len(conversations)
        ctx = Context(now=now, new_reference="K7Q-3MX")
        outcome = engine.step(conversations[i], Message(text=STEPS[(n // len(conversations)) % len(STEPS)]), ctx)
        conversations[i] = outcome.conversation
        for reply in outcome.replies:
            renderer.render_parts(reply, caps)
    results["engine_baseline"] = {"steps_per_s": steps / (time.perf_counter() - started)}


async def burst(workdir: Path, results: dict[str, Any], residents: int = 300, limit: float = 30.0) -> None:
    """``residents`` new residents write at once to a channel limited to ``limit`` messages per second
    (SQLite, ``serve`` alone): how long until every one of them has an answer, and how many 429s."""
    tg_port = free_port()
    fake = Process(pinned(1, [sys.executable, "-m", "bench.fake_server", str(tg_port), str(limit)]))
    tg_root = f"http://127.0.0.1:{tg_port}"
    await wait_http(tg_root + "/stats")
    url_db = await new_database("sqlite", workdir)
    port = free_port()
    env = bot_env(url_db, port, tg_root, workdir, TELEGRAM_RATE_PER_S=str(limit))
    server = Process(pinned(0, [sys.executable, "-m", "bot", "serve"]), env, workdir / "burst.log")
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            url = f"http://127.0.0.1:{port}/webhooks/telegram"
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    session.post(url, data=update(70_000_000 + n, 5_000_000 + n, "👋"), headers=headers)
                    for n in range(residents)
                )
            )
            stats: dict[str, Any] = {}
            while time.perf_counter() - started < 120:
                async with session.get(tg_root + "/stats") as resp:
                    stats = await resp.json()
                if stats["chats"] >= residents:
                    break
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
        results["burst"] = {
            "residents": residents,
            "answered": stats.get("chats", 0),
            "seconds": elapsed,
            "ideal_seconds": residents / limit,
            "share_of_limit": (residents / elapsed) / limit,
            "http_429": stats.get("violations", 0),
        }
    finally:
        server.stop()
        fake.stop()


async def bare_baseline(results: dict[str, Any], total: int) -> None:
    port = free_port()
    code = (
        "from aiohttp import web\n"
        "async def h(r):\n    await r.read()\n    return web.json_response({})\n"
        "async def hz(r):\n    return web.json_response({'status':'ok'})\n"
        "app=web.Application(); app.router.add_post('/webhooks/telegram', h); app.router.add_get('/healthz', hz)\n"
        f"web.run_app(app, host='127.0.0.1', port={port}, access_log=None, print=None)\n"
    )
    server = Process(pinned(0, [sys.executable, "-c", code]))
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz")
        url = f"http://127.0.0.1:{port}/webhooks/telegram"
        headers = {"Content-Type": "application/json"}
        await closed_loop(url, 500, 1000, 32, headers)
        results["inbound_bare_aiohttp"] = {
            **await closed_loop(url, total, 1000, 64, headers),
            "open_loop_1000": await open_loop(url, 1000, 5, 1000, headers, 1),
        }
    finally:
        server.stop()


async def broadcast_enqueue(kind: str, workdir: Path, residents: int, results: dict[str, Any]) -> str:
    url_db = await new_database(kind, workdir)
    db = Database(url_db)
    await db.migrate()
    langs = ("de", "en", "tr", "ar", "uk")
    await seed_residents(db, residents, languages=langs, channels=("telegram",))
    texts = {lang: f"Die Feedback-Phase beginnt heute ({lang})." for lang in langs}
    started = time.perf_counter()
    result = await enqueue_bulk(
        db, key="bench", texts=texts, audience=Audience(), channels=("telegram",), now=datetime.now(UTC)
    )
    elapsed = time.perf_counter() - started
    await db.dispose()
    results[f"broadcast_enqueue_{kind}"] = {"recipients": result.total, "seconds": elapsed}
    return url_db


async def sender(
    kind: str, url_db: str, workdir: Path, tg_port: int, results: dict[str, Any], limit: float | None, count: int
) -> None:
    """Drain ``count`` of the enqueued broadcast with the fake Telegram (optionally rate-limited)."""
    fake = Process(pinned(1, [sys.executable, "-m", "bench.fake_server", str(tg_port), str(limit or 0)]))
    tg_root = f"http://127.0.0.1:{tg_port}"
    await wait_http(tg_root + "/stats")
    port = free_port()
    env = bot_env(url_db, port, tg_root, workdir, TELEGRAM_RATE_PER_S=str(limit or 0))
    server = Process(pinned(0, [sys.executable, "-m", "bot", "serve"]), env, workdir / "sender.log")
    # on PostgreSQL the web process only receives; a worker (same core) sends
    worker = (
        None
        if kind == "sqlite"
        else Process(pinned(0, [sys.executable, "-m", "bot", "worker"]), env, workdir / "worker.log")
    )
    reply_latency: list[float] = []
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz")
        async with aiohttp.ClientSession() as session:
            started = time.perf_counter()
            stats: dict[str, Any] = {}
            deadline = started + (count / (limit or 1000) + 120)
            probe = 0
            while time.perf_counter() < deadline:
                async with session.get(tg_root + "/stats") as resp:
                    stats = await resp.json()
                if stats["sent"] >= count:
                    break
                if limit is None and probe < 40 and stats["sent"] > 2000:
                    # a resident writes while the broadcast drains: time until their reply arrives
                    probe += 1
                    chat = 900_000 + probe
                    t0 = time.perf_counter()
                    await session.post(
                        f"http://127.0.0.1:{port}/webhooks/telegram",
                        data=update(50_000_000 + probe, chat, "👋"),
                        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"},
                    )
                    while True:
                        async with session.get(tg_root + f"/stats?chat={chat}") as resp:
                            if (await resp.json())["chat_sent"] > 0:
                                break
                        await asyncio.sleep(0.005)
                    reply_latency.append(time.perf_counter() - t0)
                await asyncio.sleep(0.05)
            elapsed = (stats["last_at"] - stats["first_at"]) if stats.get("first_at") else float("nan")
        key = f"sender_{kind}_{'limit_' + str(int(limit)) if limit else 'unlimited'}"
        results[key] = {
            "sent": stats["sent"],
            "rate": (stats["sent"] - 1) / elapsed if elapsed else 0,
            "violations": stats["violations"],
            "limit": limit,
        }
        if reply_latency:
            results[f"reply_during_broadcast_{kind}"] = {
                "p50_s": percentile(reply_latency, 50),
                "p99_s": percentile(reply_latency, 99),
                "samples": len(reply_latency),
            }
    finally:
        server.stop()
        if worker is not None:
            worker.stop()
        fake.stop()


async def memory(kind: str, workdir: Path, tg_root: str, results: dict[str, Any], sizes: tuple[int, int]) -> None:
    figures = {}
    for size in sizes:
        url_db = await new_database(kind, workdir)
        db = Database(url_db)
        await db.migrate()
        await seed_residents(db, size, languages=("de", "en"), channels=("telegram",))
        async with db.transaction() as conn:
            from sqlalchemy import insert, select

            from bot.storage.models import Resident, Session

            ids = (await conn.execute(select(Resident.id))).scalars().all()
            now = datetime.now(UTC)
            for i in range(0, len(ids), 5000):
                await conn.execute(
                    insert(Session),
                    [
                        {
                            "resident_id": rid,
                            "state": {"node": "idea.topic", "vars": {"language": "de"}},
                            "version": 1,
                            "updated_at": now,
                        }
                        for rid in ids[i : i + 5000]
                    ],
                )
        await db.dispose()
        port = free_port()
        server = Process(
            pinned(0, [sys.executable, "-m", "bot", "serve"]),
            bot_env(url_db, port, tg_root, workdir),
            workdir / "mem.log",
        )
        try:
            await wait_http(f"http://127.0.0.1:{port}/healthz")
            headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
            await closed_loop(f"http://127.0.0.1:{port}/webhooks/telegram", 2000, min(size, 1000), 16, headers)
            await asyncio.sleep(2)
            figures[size] = rss_mb(server.popen.pid)
        finally:
            server.stop()
            await drop_database(url_db)
    results[f"rss_{kind}"] = {str(k): v for k, v in figures.items()} | {
        "growth_mb": figures[sizes[1]] - figures[sizes[0]]
    }


def table(results: dict[str, Any]) -> str:
    rows = [("measurement", "figure", "target")]
    bare = results.get("inbound_bare_aiohttp")
    if bare:
        rows.append(
            (
                "bare aiohttp JSON endpoint (baseline)",
                f"{bare['rate']:,.0f} msg/s, p50 {bare['p50_ms']:.1f} ms, p99 {bare['p99_ms']:.1f} ms; "
                f"at 1,000/s p99 {bare['open_loop_1000']['p99_ms']:.1f} ms",
                "ceiling",
            )
        )
    engine = results.get("engine_baseline")
    if engine:
        rows.append(
            ("pure engine step + rendering (baseline)", f"{engine['steps_per_s']:,.0f} steps/s, one core", "ceiling")
        )
    for kind, label, target, steps_target in (
        ("sqlite", "sqlite, serve alone", "≥ 25 % of the echo", "≥ 1,500 steps/s"),
        ("postgresql", "postgresql, serve --web-only + 2 workers", "—", "≥ 2,000 steps/s"),
    ):
        r = results.get(f"inbound_{kind}")
        if r:
            share = f" = {r['rate'] / bare['rate'] * 100:.1f} % of the echo" if bare else ""
            rows.append(
                (
                    f"/webhooks/telegram, {label}",
                    f"{r['rate']:,.0f} msg/s acked{share}, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms",
                    target,
                )
            )
            rows.append(
                (
                    f"  ack latency at 1,000 msg/s offered ({kind})",
                    f"p50 {r['open_loop_1000']['p50_ms']:.1f} ms, p99 {r['open_loop_1000']['p99_ms']:.1f} ms",
                    "p99 ≤ 50 ms",
                )
            )
            rows.append(
                (
                    f"  dialogue steps processed ({kind})",
                    f"{r['steps_per_s']:,.0f} steps/s; {r['backlog_after_load']:,} still queued when the load stopped",
                    steps_target,
                )
            )
    b = results.get("burst")
    if b:
        rows.append(
            (
                f"burst: {b['residents']} new residents at a 30 msg/s limit",
                f"all answered in {b['seconds']:.1f} s (ideal {b['ideal_seconds']:.0f} s) = "
                f"{b['share_of_limit'] * 100:.0f} % of the limit; {b['http_429']} × HTTP 429",
                "≥ 95 %, 0 × 429",
            )
        )
    for kind in ("sqlite", "postgresql"):
        r = results.get(f"broadcast_enqueue_{kind}")
        if r:
            rows.append(
                (
                    f"enqueue broadcast, 5 languages ({kind})",
                    f"{r['recipients']:,} recipients in {r['seconds']:.2f} s",
                    "≤ 3 s for 100,000 (PostgreSQL)",
                )
            )
        for key, label, target in (
            (f"sender_{kind}_unlimited", "sender, no limit", "≥ 1,500/s with 100,000 queued"),
            (f"sender_{kind}_limit_30", "sender, 30/s limit", "≥ 95 % of limit, 0 violations"),
        ):
            s = results.get(key)
            if s:
                rows.append(
                    (
                        f"{label} ({kind})",
                        f"{s['rate']:,.1f} msg/s, {s['violations']} violations ({s['sent']:,} sent)",
                        target,
                    )
                )
        r = results.get(f"reply_during_broadcast_{kind}")
        if r:
            rows.append(
                (
                    f"reply while a broadcast drains ({kind})",
                    f"p50 {r['p50_s']:.3f} s, p99 {r['p99_s']:.3f} s ({r['samples']} replies)",
                    "p99 ≤ 2 s",
                )
            )
        m = results.get(f"rss_{kind}")
        if m:
            sizes = [k for k in m if k != "growth_mb"]
            rows.append(
                (
                    f"RSS of serve ({kind})",
                    ", ".join(f"{int(k):,} residents: {m[k]:.0f} MB" for k in sizes)
                    + f"; growth {m['growth_mb']:.1f} MB",
                    "growth ≤ 50 MB",
                )
            )
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [" | ".join(c.ljust(width[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in width))
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller numbers (smoke run)")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--only", choices=["inbound", "outbound", "memory"], default=None)
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    total = 5_000 if args.quick else 10_000
    broadcast = 10_000 if args.quick else 100_000
    kinds = ([] if args.skip_sqlite else ["sqlite"]) + ([] if args.skip_postgres else ["postgresql"])
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        tg_port = free_port()
        fake = Process(pinned(1, [sys.executable, "-m", "bench.fake_server", str(tg_port), "0"]))
        tg_root = f"http://127.0.0.1:{tg_port}"
        await wait_http(tg_root + "/stats")
        try:
            if args.only in (None, "inbound"):
                engine_baseline(results)
                await bare_baseline(results, total)
                for kind in kinds:
                    await inbound(kind, workdir, tg_root, total, results)
                if "sqlite" in kinds:
                    await burst(workdir, results)
        finally:
            fake.stop()
        for kind in kinds if args.only in (None, "outbound", "memory") else []:
            if args.only in (None, "outbound"):
                url_db = await broadcast_enqueue(kind, workdir, broadcast, results)
                try:
                    await sender(
                        kind,
                        url_db,
                        workdir,
                        free_port(),
                        results,
                        None,
                        min(broadcast, 20_000 if not args.quick else 5_000),
                    )
                    await sender(kind, url_db, workdir, free_port(), results, 30.0, 300 if not args.quick else 150)
                finally:
                    await drop_database(url_db)
            if args.only not in (None, "memory"):
                continue
            tg_port = free_port()
            fake = Process(pinned(1, [sys.executable, "-m", "bench.fake_server", str(tg_port), "0"]))
            await wait_http(f"http://127.0.0.1:{tg_port}/stats")
            try:
                await memory(
                    kind, workdir, f"http://127.0.0.1:{tg_port}", results, (1_000, 10_000 if args.quick else 100_000)
                )
            finally:
                fake.stop()
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"Kiezstimme benchmark, {results['date']}, {results['machine']}")
    print(table(results))


if __name__ == "__main__":
    asyncio.run(main())
