"""Shared fixtures: real databases (a SQLite file per test and a fresh
PostgreSQL database per run), an injectable clock, and the app over HTTP.

PostgreSQL tests skip with a visible reason when the server is not reachable,
unless ``KIEZSTIMME_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) makes them fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text

from bot.app import Kiezstimme, build
from bot.config import Settings, load_settings
from bot.storage.db import Database
from bot.storage.models import Base

ROOT = Path(__file__).resolve().parent.parent


def _open_flows() -> Path:
    """The shipped flows with every phase open, for tests about dialogues rather
    than dates (phase tests use the shipped process or their own)."""
    import re
    import shutil
    import tempfile

    target = Path(tempfile.mkdtemp(prefix="kiezstimme-flows-")) / "flows"
    shutil.copytree(ROOT / "flows", target)
    process = target / "process.yaml"
    text = re.sub(r"starts: .*", "starts: 2020-01-01 00:00", process.read_text(encoding="utf-8"))
    text = re.sub(r"ends: .*", "ends: 2099-12-31 23:59", text)
    process.write_text(text, encoding="utf-8")
    return target


OPEN_FLOWS = _open_flows()
os.environ["FLOWS_DIR"] = str(OPEN_FLOWS)  # subprocesses (python -m bot …) see the same
# one DATA_KEY for the run (PostgreSQL needs one; subprocesses and Database() see the same)
TEST_DATA_KEY = os.environ.setdefault("DATA_KEY", "dGVzdC1vbmx5LWtpZXpzdGltbWUtZGF0YS1rZXktMzI=")
PG_ADMIN_URL = os.environ.get("KIEZSTIMME_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("KIEZSTIMME_REQUIRE_POSTGRES") == "1"


class Clock:
    """A settable clock for tests; always timezone-aware."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


# --- PostgreSQL: one fresh database per test run ------------------------------------


_pg_state: dict[str, object] = {}


async def _pg_create() -> str:
    import asyncpg

    name = f"kiezstimme_test_{os.getpid()}_{secrets.token_hex(3)}"
    dsn = PG_ADMIN_URL
    conn = await asyncio.wait_for(asyncpg.connect(dsn), timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = dsn.rpartition("/")
    url = f"{base}/{name}"
    db = Database(url)
    await db.migrate()
    await db.dispose()
    return url


async def _pg_drop(url: str) -> None:
    import asyncpg

    name = url.rpartition("/")[2]
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def postgres_url() -> str:
    """The run's PostgreSQL test database URL, created on first use."""
    if "url" in _pg_state:
        return _pg_state["url"]  # type: ignore[return-value]
    if "error" in _pg_state:
        pytest.skip(str(_pg_state["error"]))
    try:
        _pg_state["url"] = asyncio.run(_pg_create())
    except Exception as exc:  # noqa: BLE001
        reason = f"PostgreSQL not reachable at {PG_ADMIN_URL} ({type(exc).__name__}: {exc})"
        if REQUIRE_PG:
            pytest.fail(reason + " — KIEZSTIMME_REQUIRE_POSTGRES=1 makes this an error", pytrace=False)
        _pg_state["error"] = reason + "; set up PostgreSQL or see README"
        pytest.skip(str(_pg_state["error"]))
    return _pg_state["url"]  # type: ignore[return-value]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    url = _pg_state.get("url")
    if url:
        asyncio.run(_pg_drop(url))  # type: ignore[arg-type]


async def _truncate(db: Database) -> None:
    names = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
    async with db.transaction() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


# --- the database under test --------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kiezstimme.db'}"
    return postgres_url()


@pytest_asyncio.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    if database.is_sqlite:
        await database.migrate()
    else:
        await _truncate(database)
    yield database
    await database.dispose()


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    env = {
        "DATABASE_URL": database_url,
        "MEDIA_DIR": str(tmp_path / "media"),
        "PORT": "8080",
        "FLOWS_DIR": str(OPEN_FLOWS),
        "DATA_KEY": TEST_DATA_KEY,
    }
    settings = load_settings(env)
    return settings.model_copy(update=overrides) if overrides else settings


@pytest_asyncio.fixture
async def kz(db: Database, database_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Kiezstimme]:
    app = build(make_settings(database_url, tmp_path), clock=clock, db=db)
    yield app


@pytest_asyncio.fixture
async def http(kz: Kiezstimme) -> AsyncIterator[TestClient]:
    """The real aiohttp app on a loopback port, with a real HTTP client."""
    from bot.web.app import make_app

    server = TestServer(make_app(kz), host="127.0.0.1")
    client = TestClient(server)
    await client.start_server()
    yield client
    await client.close()


# --- real headless Chromium (Debian's package), driven by Playwright --------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRE_BROWSER = os.environ.get("KIEZSTIMME_REQUIRE_BROWSER") == "1"


@pytest_asyncio.fixture
async def page() -> AsyncIterator[object]:
    """A page in a fresh browser context (German locale)."""
    if CHROMIUM is None:
        if REQUIRE_BROWSER:
            pytest.fail("chromium is not installed but KIEZSTIMME_REQUIRE_BROWSER=1", pytrace=False)
        pytest.skip("chromium not found on PATH (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        context = await browser.new_context(locale="de-DE")
        yield await context.new_page()
        await browser.close()
