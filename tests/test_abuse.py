"""Abuse limits and operations (issue 12): flood control per resident, the loop guard,
body size limits, the web chat's budget of new conversations per source, the token of
/metrics, security headers, and no address or secret in any log line — over real HTTP
with the fakes of tests/fakes, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from sqlalchemy import func, select

import tests.conftest as conftest
from bot.app import build
from bot.cli.logs import Redact, quiet_providers
from bot.config import ConfigError, load_settings
from bot.conversation import texts as M
from bot.storage import limits as marks
from bot.storage.db import Database
from bot.storage.models import InboundMessage, OutboundMessage, Resident
from bot.web import guards
from bot.web.app import make_app
from tests import test_channels
from tests.conftest import OPEN_FLOWS, Clock
from tests.fakes.telegram import FakeTelegram, make_text_update
from tests.fakes.twilio import FakeTwilio, inbound_sms_params, sign, status_callback_params
from tests.test_channels import PUBLIC, SECRET, SMS_FROM, TOKEN, WA_FROM, Stack, wait_until

METRICS_TOKEN = "metrics-token-0123456789abcdef"


@pytest_asyncio.fixture
async def fakes() -> AsyncIterator[tuple[FakeTelegram, FakeTwilio]]:
    os.environ.pop("TWILIO_REGION", None)
    os.environ.pop("TWILIO_EDGE", None)
    async with FakeTelegram(token=TOKEN) as tg, FakeTwilio() as tw:
        yield tg, tw


def _env(database_url: str, tmp_path: Path, tg: FakeTelegram, tw: FakeTwilio, **overrides: str) -> dict[str, str]:
    flows = tmp_path / "flows"
    if not flows.exists():
        shutil.copytree(OPEN_FLOWS, flows)
        (flows / "whatsapp.yaml").write_text("templates:\n  de: HX00000000000000000000000000000de0\n", encoding="utf-8")
    env = {
        "DATABASE_URL": database_url,
        "PUBLIC_URL": PUBLIC,
        "FLOWS_DIR": str(flows),
        "MEDIA_DIR": str(tmp_path / "media"),
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_API_BASE_URL": tg.root,
        "TWILIO_ACCOUNT_SID": tw.account_sid,
        "TWILIO_AUTH_TOKEN": tw.auth_token,
        "TWILIO_SMS_FROM": SMS_FROM,
        "TWILIO_WHATSAPP_FROM": WA_FROM,
        "TWILIO_API_BASE_URL": tw.root,
        "TELEGRAM_RATE_PER_S": "0",
        "SMS_SEGMENTS_PER_S": "0",
        "WHATSAPP_RATE_PER_S": "0",
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    data_key = getattr(conftest, "TEST_DATA_KEY", None)  # addresses sealed at rest, where they are
    if data_key:
        env["DATA_KEY"] = data_key
    return env | overrides


@asynccontextmanager
async def running(
    fakes: tuple[FakeTelegram, FakeTwilio], db: Database, database_url: str, tmp_path: Path, clock: Clock, **env: str
) -> AsyncIterator[Stack]:
    """The bot as ``serve`` runs it (webhooks, inbox, sender), with the given variables."""
    tg, tw = fakes
    settings = load_settings(_env(database_url, tmp_path, tg, tw, **env))
    async with test_channels.running(settings, db, clock, tg, tw) as stack:
        yield stack


def metric(stack: Stack, name: str, **labels: str) -> float:
    return stack.kz.metrics.registry.get_sample_value(name, labels or None) or 0.0


async def inbox_marks(stack: Stack) -> dict[str | None, int]:
    async with stack.kz.db.read() as conn:
        rows = (
            await conn.execute(
                select(InboundMessage.error, func.count())
                .group_by(InboundMessage.error)
                .where(InboundMessage.status == "done")
            )
        ).all()
    return {r[0]: r[1] for r in rows}


# --- flood control -----------------------------------------------------------------------------


async def test_a_flooding_resident_gets_one_notice_while_another_is_answered_fast(
    fakes: tuple[FakeTelegram, FakeTwilio], db: Database, database_url: str, tmp_path: Path, clock: Clock
) -> None:
    limit = 10
    async with running(
        fakes, db, database_url, tmp_path, clock, FLOOD_MESSAGES_PER_MINUTE=str(limit), TELEGRAM_RATE_PER_S="30"
    ) as stack:
        flooder, other = 610001, 620002
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}

        async def post(chat: int, text: str, update_id: int) -> None:
            resp = await stack.http.post(
                "/webhooks/telegram", json=make_text_update(update_id, chat, text), headers=headers
            )
            assert resp.status == 200

        async def flood() -> None:
            await asyncio.gather(*(post(flooder, f"Nachricht Nummer {i}", 10_000 + i) for i in range(200)))

        latencies: list[float] = []

        async def converse() -> None:
            for i, text in enumerate(["Hallo", "ja", "Idee", "Wohnen"]):
                before = len(stack.tg.sent_messages(other))
                started = time.monotonic()
                await post(other, text, 50_000 + i)
                await wait_until(functools.partial(_more, stack.tg, other, before), timeout=30)
                latencies.append(time.monotonic() - started)
                await asyncio.sleep(0.05)

        flooding = asyncio.create_task(flood())
        await asyncio.sleep(0.05)  # the flood is under way
        await converse()
        await flooding
        await stack.settle(timeout=60)
        assert len(latencies) == 4 and max(latencies) < 2.0, latencies  # the other resident: fast

        notice = stack.kz.catalogs.get("de").gettext(M.FLOOD_NOTICE)
        to_flooder = [m["text"] for m in stack.tg.sent_messages(flooder)]
        assert to_flooder.count(notice) == 1
        async with stack.kz.db.read() as conn:
            answered = (
                await conn.execute(
                    select(func.count(func.distinct(OutboundMessage.inbound_id))).where(
                        OutboundMessage.channel == "telegram", OutboundMessage.text != notice
                    )
                )
            ).scalar_one()
        # every message of the other resident was answered; of the flooder's, at most the limit
        assert answered - len(latencies) <= limit
        assert len(to_flooder) <= 3 * limit + 1
        done = await inbox_marks(stack)
        assert done.get(marks.FLOOD_NOTICE) == 1
        assert done.get(marks.FLOOD_SKIPPED) == 200 - limit - 1
        assert metric(stack, "kiezstimme_flood_notices_total", channel="telegram") == 1
        assert metric(stack, "kiezstimme_flood_skipped_total", channel="telegram") == 200 - limit - 1
        assert await stack.count(InboundMessage, InboundMessage.status == "pending") == 0


async def _more(tg: FakeTelegram, chat: int, before: int) -> bool:
    return len(tg.sent_messages(chat)) > before


async def test_after_the_cooling_off_the_resident_is_answered_again(
    fakes: tuple[FakeTelegram, FakeTwilio], db: Database, database_url: str, tmp_path: Path, clock: Clock
) -> None:
    async with running(
        fakes, db, database_url, tmp_path, clock, FLOOD_MESSAGES_PER_MINUTE="5", FLOOD_COOLDOWN_MINUTES="5"
    ) as stack:
        number, neighbour = "+4915119990001", "+4915119990002"
        for i in range(5):  # within the limit: every message answered
            await stack.sms(number, "Hallo" if i == 0 else "vielleicht")
        answered = len(stack.tw.sent_to(number))
        assert answered >= 5
        await stack.sms(number, "noch eine")  # the sixth within a minute: the notice, once
        notice = stack.kz.catalogs.get("de").gettext(M.FLOOD_NOTICE)
        assert [m["Body"] for m in stack.tw.sent_to(number)][answered:] == [notice]
        for _ in range(3):  # slower now, but within the cooling-off: no answer, no step
            clock.advance(seconds=70)
            await stack.sms(number, "1")
        assert len(stack.tw.sent_to(number)) == answered + 1
        await stack.sms(neighbour, "Hallo")  # someone else meanwhile: answered as always
        assert stack.tw.sent_to(neighbour)
        clock.advance(seconds=95)  # the cooling-off is over (5 minutes after the notice)
        await stack.sms(number, "1")
        after = [m["Body"] for m in stack.tw.sent_to(number)][answered + 1 :]
        assert after and notice not in after and "Was möchten Sie tun?" in after[-1]  # "1": yes, consent
        assert metric(stack, "kiezstimme_flood_skipped_total", channel="sms") == 3
        assert metric(stack, "kiezstimme_flood_notices_total", channel="sms") == 1


async def test_stop_is_heard_even_in_the_cooling_off(
    fakes: tuple[FakeTelegram, FakeTwilio], db: Database, database_url: str, tmp_path: Path, clock: Clock
) -> None:
    async with running(fakes, db, database_url, tmp_path, clock, FLOOD_MESSAGES_PER_MINUTE="3") as stack:
        number = "+4915119990004"
        for body in ["Hallo", "a", "b", "c", "d"]:  # c: the notice; d: not answered
            await stack.sms(number, body)
        before = len(stack.tw.sent_to(number))
        await stack.sms(number, "STOPP")
        assert "keine Nachrichten mehr" in stack.tw.sent_to(number)[-1]["Body"]
        assert len(stack.tw.sent_to(number)) == before + 1
        async with stack.kz.db.read() as conn:
            assert (await conn.execute(select(Resident.stopped_at))).scalar_one() is not None
        # many at once, a STOP among them: those before it go unanswered, the STOP is heard
        other = "+4915119990005"
        for body in ["Hallo", "a", "b", "c"]:
            await stack.sms(other, body)
        before = len(stack.tw.sent_to(other))
        assert "Sie senden" in stack.tw.sent_to(other)[-1]["Body"]  # the notice
        for body in ["d", "e", "STOPP", "f"]:
            form = inbound_sms_params(other, SMS_FROM, body)
            headers = {"X-Twilio-Signature": sign(stack.tw.auth_token, PUBLIC + "/webhooks/twilio/sms", form)}
            assert (await stack.http.post("/webhooks/twilio/sms", data=form, headers=headers)).status == 200
        await stack.settle()
        bodies = [m["Body"] for m in stack.tw.sent_to(other)][before:]
        assert len(bodies) == 1 and "keine Nachrichten mehr" in bodies[0]
        async with stack.kz.db.read() as conn:
            stopped = (await conn.execute(select(func.count()).where(Resident.stopped_at.is_not(None)))).scalar_one()
        assert stopped == 2


async def test_flood_control_can_be_switched_off(
    fakes: tuple[FakeTelegram, FakeTwilio], db: Database, database_url: str, tmp_path: Path, clock: Clock
) -> None:
    async with running(fakes, db, database_url, tmp_path, clock, FLOOD_MESSAGES_PER_MINUTE="0") as stack:
        assert stack.kz.service.flood is None
        number = "+4915119990003"
        for i in range(25):
            await stack.sms(number, "Hallo" if i == 0 else f"was {i}")
        assert await inbox_marks(stack) == {None: 25}


# --- the loop guard -------------------------------------------------------------------------------


async def test_the_loop_guard_stops_a_reply_loop_with_an_echo_bot(
    fakes: tuple[FakeTelegram, FakeTwilio],
    db: Database,
    database_url: str,
    tmp_path: Path,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running(
        fakes, db, database_url, tmp_path, clock, FLOOD_MESSAGES_PER_MINUTE="0", LOOP_GUARD_PAUSE_MINUTES="30"
    ) as stack:
        bot = "+4915119990010"  # an auto-responder that answers every message with that message
        caplog.set_level(logging.INFO)
        await stack.sms(bot, "Hallo")
        rounds = 0
        while rounds < 80:
            sent = stack.tw.sent_to(bot)
            before = len(sent)
            await stack.sms(bot, sent[-1]["Body"])
            rounds += 1
            if len(stack.tw.sent_to(bot)) == before:
                break
        assert rounds < 80, "the loop never stopped"
        sent_texts = [m["Body"] for m in stack.tw.sent_to(bot)]
        assert max(sent_texts.count(t) for t in set(sent_texts)) <= 5  # LOOP_GUARD_REPEATS
        for _ in range(3):  # while paused: nothing at all, whatever they send
            await stack.sms(bot, "Hallo?")
        assert len(stack.tw.sent_to(bot)) == len(sent_texts)
        async with stack.kz.db.read() as conn:
            pseudonym = (await conn.execute(select(Resident.pseudonym))).scalar_one()
            held = (
                await conn.execute(
                    select(OutboundMessage.error, func.count())
                    .where(OutboundMessage.status == "skipped")
                    .group_by(OutboundMessage.error)
                )
            ).all()
        assert dict(held)[marks.LOOP_TRIPPED] == 1 and dict(held)[marks.LOOP_SKIPPED] >= 3
        flagged = [r.getMessage() for r in caplog.records if "reply loop" in r.getMessage()]
        assert len(flagged) == 1 and pseudonym in flagged[0] and bot not in flagged[0]
        assert metric(stack, "kiezstimme_reply_loops_total", channel="sms") == 1
        assert metric(stack, "kiezstimme_loop_guard_suppressed_total", channel="sms") >= 4
        clock.advance(minutes=31)  # the pause is over: a person gets answers again
        await stack.sms(bot, "MENU")
        assert len(stack.tw.sent_to(bot)) > len(sent_texts)


async def test_a_resident_who_repeats_themselves_a_little_is_not_paused(
    fakes: tuple[FakeTelegram, FakeTwilio], db: Database, database_url: str, tmp_path: Path, clock: Clock
) -> None:
    async with running(fakes, db, database_url, tmp_path, clock) as stack:
        number = "+4915119990011"
        await stack.sms(number, "Hallo")
        await stack.sms(number, "1")
        for _ in range(4):
            await stack.sms(number, "MENU")
        bodies = [m["Body"] for m in stack.tw.sent_to(number)]
        assert sum("Was möchten Sie tun?" in b for b in bodies) == 5  # the menu each time
        assert metric(stack, "kiezstimme_reply_loops_total", channel="sms") == 0


# --- body sizes -----------------------------------------------------------------------------------

ROUTES = ["/webhooks/telegram", "/webhooks/twilio/sms", "/webhooks/twilio/whatsapp", "/webhooks/twilio/status"]


async def test_oversized_bodies_get_413_on_every_route_and_store_nothing(
    fakes: tuple[FakeTelegram, FakeTwilio], db: Database, database_url: str, tmp_path: Path, clock: Clock
) -> None:
    async with running(fakes, db, database_url, tmp_path, clock) as stack:
        big_text = "x" * (guards.MAX_BODY + 1)

        async def chunks(data: bytes) -> AsyncIterator[bytes]:
            for i in range(0, len(data), 16 * 1024):
                yield data[i : i + 16 * 1024]

        for path in ROUTES:
            form = inbound_sms_params("+4915119990020", SMS_FROM, big_text)
            for body, headers in [
                (
                    json.dumps(make_text_update(1, 630003, big_text)).encode(),
                    {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET},
                ),
                (
                    "&".join(f"{k}={v}" for k, v in form.items()).encode(),
                    {
                        "Content-Type": "application/x-www-form-urlencoded",
                        "X-Twilio-Signature": sign(stack.tw.auth_token, PUBLIC + path, form),
                    },
                ),
            ]:
                resp = await stack.http.post(path, data=body, headers=headers)
                assert resp.status == 413, path
                assert "too large" in (await resp.json())["error"]
                resp = await stack.http.post(path, data=chunks(body), headers=headers)  # no Content-Length
                assert resp.status == 413, path
        api = json.dumps({"client_id": "browser-big-0001", "text": big_text}).encode()
        for data in (api, chunks(api)):
            resp = await stack.http.post(
                "/webchat/api/messages", data=data, headers={"Content-Type": "application/json"}
            )
            assert resp.status == 413
        assert await stack.count(InboundMessage) == 0 and await stack.count(Resident) == 0
        # just below the limits: read as usual (and refused for what they say, not for their size)
        resp = await stack.http.post(
            "/webchat/api/messages",
            json={"client_id": "browser-big-0001", "text": "x" * (guards.body_limit("/webchat/api/") // 2)},
        )
        assert resp.status == 400
        params = status_callback_params("SM" + "0" * 32, "delivered")
        assert await stack.twilio("/webhooks/twilio/status", params) == 200


# --- new web chat conversations per source -----------------------------------------------------


async def webchat(http: TestClient, client_id: str, text: str = "Hallo", **headers: str) -> Any:
    return await http.post(
        "/webchat/api/messages", json={"client_id": client_id, "text": text, "lang": "de"}, headers=headers
    )


async def test_new_webchat_conversations_per_source_are_budgeted(
    fakes: tuple[FakeTelegram, FakeTwilio], db: Database, database_url: str, tmp_path: Path, clock: Clock
) -> None:
    async with running(fakes, db, database_url, tmp_path, clock, WEBCHAT_NEW_CLIENTS_PER_HOUR="5") as stack:
        for i in range(5):
            assert (await webchat(stack.http, f"browser-budget-{i:04d}")).status == 200
        resp = await webchat(stack.http, "browser-budget-0005")
        assert resp.status == 429
        assert "too many new conversations" in (await resp.json())["error"]
        assert int(resp.headers["Retry-After"]) > 0
        # a forwarded header is not believed unless the operator names it
        resp = await webchat(stack.http, "browser-budget-0006", **{"X-Forwarded-For": "203.0.113.9"})
        assert resp.status == 429
        # conversations already started go on
        assert (await webchat(stack.http, "browser-budget-0001", "ja")).status == 200
        assert await stack.count(Resident) == 5
        assert await stack.count(InboundMessage) == 6
        assert stack.kz.metrics.registry.get_sample_value("kiezstimme_webchat_new_clients_refused_total") == 2


async def test_behind_a_proxy_its_header_names_the_source(
    fakes: tuple[FakeTelegram, FakeTwilio], db: Database, database_url: str, tmp_path: Path, clock: Clock
) -> None:
    async with running(
        fakes,
        db,
        database_url,
        tmp_path,
        clock,
        WEBCHAT_NEW_CLIENTS_PER_HOUR="2",
        CLIENT_IP_HEADER="X-Forwarded-For",
    ) as stack:
        one = {"X-Forwarded-For": "198.51.100.7, 203.0.113.1"}  # the right-most: what our proxy saw
        other = {"X-Forwarded-For": "198.51.100.7, 203.0.113.2"}
        assert (await webchat(stack.http, "browser-proxy-0001", **one)).status == 200
        assert (await webchat(stack.http, "browser-proxy-0002", **one)).status == 200
        assert (await webchat(stack.http, "browser-proxy-0003", **one)).status == 429
        assert (await webchat(stack.http, "browser-proxy-0004", **other)).status == 200
        assert await stack.count(Resident) == 3


def test_sources_and_the_budget_window() -> None:
    def request(peer: str, **headers: str) -> web.Request:
        req = make_mocked_request("POST", "/webchat/api/messages", headers=headers)
        return req.clone(remote=peer)

    assert guards.client_source(request("192.0.2.1"), None) == "192.0.2.1"
    assert guards.client_source(request("192.0.2.1", **{"X-Forwarded-For": "1.2.3.4"}), None) == "192.0.2.1"
    assert guards.client_source(request("192.0.2.1", **{"X-Forwarded-For": "1.2.3.4"}), "X-Forwarded-For") == "1.2.3.4"
    assert guards.client_source(request("192.0.2.1"), "X-Forwarded-For") == "192.0.2.1"  # header missing
    a = guards.client_source(request("2001:db8:1:2:aaaa::1"), None)
    b = guards.client_source(request("2001:db8:1:2:bbbb::9"), None)
    assert a == b == "2001:db8:1:2::/64"  # one host, one /64
    assert guards.client_source(request("::ffff:192.0.2.5"), None) == "192.0.2.5"

    now = [0.0]
    budget = guards.NewClientBudget(2, clock=lambda: now[0])
    assert budget.admit("s", "c1") is None and budget.admit("s", "c2") is None
    assert budget.admit("s", "c1") is None  # the same client again is no new conversation
    wait = budget.admit("s", "c3")
    assert wait is not None and 3500 < wait <= 3600
    assert budget.admit("t", "c3") is None  # another source
    now[0] = 3601.0
    assert budget.admit("s", "c3") is None  # an hour later
    assert guards.NewClientBudget(0).admit("s", "c9") is None  # 0: no limit


# --- /metrics ------------------------------------------------------------------------------------


async def test_metrics_need_the_token(
    fakes: tuple[FakeTelegram, FakeTwilio], db: Database, database_url: str, tmp_path: Path, clock: Clock
) -> None:
    async with running(fakes, db, database_url, tmp_path, clock) as stack:
        assert (await stack.http.get("/metrics")).status == 401
        wrong = await stack.http.get("/metrics", headers={"Authorization": "Bearer " + METRICS_TOKEN[:-1] + "X"})
        assert wrong.status == 401 and "kiezstimme_" not in await wrong.text()
        basic = await stack.http.get("/metrics", headers={"Authorization": "Basic " + METRICS_TOKEN})
        assert basic.status == 401
        right = await stack.http.get("/metrics", headers={"Authorization": "Bearer " + METRICS_TOKEN})
        assert right.status == 200 and "kiezstimme_flood_notices_total" in await right.text()
    settings = load_settings(_env(database_url, tmp_path, *fakes)).model_copy(update={"metrics_token": None})
    kz = build(settings, clock=clock, db=db)
    async with TestClient(TestServer(make_app(kz), host="127.0.0.1")) as http:
        assert (await http.get("/metrics")).status == 404
        resp = await http.get("/metrics", headers={"Authorization": "Bearer " + METRICS_TOKEN})
        assert resp.status == 404
    await kz.channels.close()


# --- security headers ------------------------------------------------------------------------------


def assert_secure(resp: Any, where: str) -> None:
    csp = resp.headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, where
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp, where
    assert resp.headers.get("X-Content-Type-Options") == "nosniff", where
    assert resp.headers.get("Referrer-Policy") == "no-referrer", where
    assert "camera=()" in resp.headers.get("Permissions-Policy", ""), where


async def test_every_response_carries_the_security_headers(
    fakes: tuple[FakeTelegram, FakeTwilio], db: Database, database_url: str, tmp_path: Path, clock: Clock
) -> None:
    async with running(fakes, db, database_url, tmp_path, clock) as stack:
        page = await stack.http.get("/")
        assert page.status == 200
        assert_secure(page, "/")
        html = await page.text()
        nonce = page.headers["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
        assert f'<script nonce="{nonce}">window.KIEZSTIMME' in html  # the one inline script may run
        assert '<script src="/static/chat.js">' in html
        assert nonce not in (await stack.http.get("/")).headers["Content-Security-Policy"]  # fresh every time
        for resp, where in [
            (await webchat(stack.http, "browser-head-0001"), "POST /webchat/api/messages"),
            (await stack.http.get("/webchat/api/messages", params={"client_id": "browser-head-0001"}), "GET api"),
            (await stack.http.post("/webchat/api/messages", data=b"{"), "a 4xx of the API"),
            (
                await stack.http.post(
                    "/webhooks/telegram",
                    json=make_text_update(1, 640004, "Hallo"),
                    headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                ),
                "a webhook",
            ),
            (await stack.http.post("/webhooks/telegram", json={}), "a refused webhook"),
            (await stack.http.post("/webhooks/nobody", data=b""), "an unknown webhook"),
            (await stack.http.get("/static/chat.js"), "a static file"),
            (await stack.http.get("/no-such-page"), "a 404"),
            (await stack.http.get("/healthz"), "/healthz"),
            (await stack.http.get("/metrics"), "/metrics refused"),
        ]:
            assert_secure(resp, where)
            if where == "a webhook":
                assert resp.status == 200


# --- no address or secret in any log line ------------------------------------------------------------


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name}: {text} {record.__dict__.get('exc_text') or ''}")


@pytest.fixture
def every_log_record() -> Any:
    root = logging.getLogger()
    capture, redacted = Capture(), Capture()
    before = root.level, {name: logging.getLogger(name).level for name in ("twilio", "telegram", "httpx", "httpcore")}
    root.setLevel(logging.DEBUG)
    root.addHandler(capture)
    yield root, capture, redacted
    root.removeHandler(capture)
    root.removeHandler(redacted)
    root.setLevel(before[0])
    for name, level in before[1].items():
        logging.getLogger(name).setLevel(level)


async def _dialogues_on_every_channel(stack: Stack) -> list[str]:
    """Whole dialogues on Telegram, SMS, WhatsApp and the web chat; the addresses used."""
    chat, sms, wa, client = 775533119, "+4915177553311", "+4917677553312", "browser-logs-7755331"
    await stack.tg_text(chat, "Hallo")
    for data in ["yes", "idea", "housing"]:
        await stack.tg_press(chat, data)
    await stack.tg_text(chat, "Mehr Bäume und Schatten auf dem Hermannplatz")
    for data in ["skip", "neukoelln", "yes", "send"]:
        await stack.tg_press(chat, data)
    for body in ["Hallo", "1", "1", "2", "Mehr Grün und weniger Beton im Kiez bitte", "3", "1", "1", "DELETE", "1"]:
        await stack.sms(sms, body)
    for body in ["Hallo", "1", "1", "1", "Sichere Radwege an der Sonnenallee für alle", "1", "3", "2", "1"]:
        await stack.whatsapp(wa, body)
    for text in ["Hallo", "yes", "idea", "mobility", "Nachtbusse in die Außenbezirke, bitte öfter", "none", "no"]:
        assert (await webchat(stack.http, client, text)).status == 200
    await stack.http.get("/webchat/api/messages", params={"client_id": client})
    await stack.telegram(make_text_update(stack.next_id(), chat, "Hallo"), secret="wrong-secret")  # refused
    await stack.twilio("/webhooks/twilio/sms", inbound_sms_params(sms, SMS_FROM, "Hallo"), signature="bogus")
    await stack.http.get("/metrics", headers={"Authorization": "Bearer " + METRICS_TOKEN})
    assert stack.tg.sent_messages(chat) and stack.tw.sent_to(sms) and stack.tw.sent_to("whatsapp:" + wa)
    return [str(chat), sms, sms.lstrip("+"), wa, wa.lstrip("+"), client]


async def test_no_address_token_or_secret_in_any_log_line_at_debug(
    fakes: tuple[FakeTelegram, FakeTwilio],
    db: Database,
    database_url: str,
    tmp_path: Path,
    clock: Clock,
    every_log_record: Any,
) -> None:
    root, capture, redacted = every_log_record
    quiet_providers("DEBUG")  # as `serve` configures it with LOG_LEVEL=DEBUG
    async with running(fakes, db, database_url, tmp_path, clock) as stack:
        addresses = await _dialogues_on_every_channel(stack)
    secrets = [TOKEN, TOKEN.split(":")[1], SECRET, stack.tw.auth_token, METRICS_TOKEN]
    assert len(capture.lines) > 0
    leaks = [(s, line) for line in capture.lines for s in addresses + secrets if s in line]
    assert leaks == []


async def test_the_safety_net_blanks_what_provider_sdks_log_at_debug(
    fakes: tuple[FakeTelegram, FakeTwilio],
    db: Database,
    database_url: str,
    tmp_path: Path,
    clock: Clock,
    every_log_record: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, capture, redacted = every_log_record
    for name in ("twilio", "telegram", "httpx", "httpcore"):  # even when someone turns them up
        logging.getLogger(name).setLevel(logging.DEBUG)
    tg, tw = fakes
    env = _env(database_url, tmp_path, tg, tw)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from bot.cli.logs import configured_secrets

    redacted.addFilter(Redact(configured_secrets()))
    root.removeHandler(capture)
    root.addHandler(redacted)  # the filter sits on our handler, as setup_logging puts it
    async with running(fakes, db, database_url, tmp_path, clock) as stack:
        phones = await _dialogues_on_every_channel(stack)
    assert any(line.startswith(("twilio", "httpx", "httpcore", "telegram")) for line in redacted.lines)
    secrets = [TOKEN, SECRET, tw.auth_token, METRICS_TOKEN]
    phone_numbers = [p for p in phones if p.startswith("+")] + [p.lstrip("+") for p in phones if p.startswith("+")]
    leaks = [(s, line[:200]) for line in redacted.lines for s in secrets + phone_numbers if s in line]
    assert leaks == []


def test_redact_blanks_tokens_phone_numbers_chat_ids_and_secrets() -> None:
    redact = Redact(["s3cr3t-value-123"])
    line = (
        "POST https://api.telegram.org/bot123456:TEST-token_abcdefghijklmnopqrstuv/sendMessage"
        ' {"chat_id": 775533119} To=%2B4915112345678 whatsapp:+4917612345678 +49 151 1234567'
        " postgresql://kiez:pa55word@db/kiez s3cr3t-value-123"
    )
    clean = redact.clean(line)
    for secret in ["TEST-token", "775533119", "4915112345678", "4917612345678", "1234567", "pa55word", "s3cr3t"]:
        assert secret not in clean, clean
    assert "api.telegram.org" in clean and "sendMessage" in clean


def test_the_variables_are_checked() -> None:
    assert load_settings({}).flood_messages_per_minute == 20
    assert load_settings({}).metrics_token is None
    for name, value in [
        ("FLOOD_MESSAGES_PER_MINUTE", "-1"),
        ("FLOOD_COOLDOWN_MINUTES", "soon"),
        ("LOOP_GUARD_REPEATS", "1.5"),
        ("LOOP_GUARD_PAUSE_MINUTES", "-3"),
        ("WEBCHAT_NEW_CLIENTS_PER_HOUR", "many"),
        ("CLIENT_IP_HEADER", "X-Forwarded-For: 1.2.3.4"),
    ]:
        with pytest.raises(ConfigError, match=name):
            load_settings({name: value})
    assert "0123" not in repr(load_settings({"METRICS_TOKEN": METRICS_TOKEN}))
