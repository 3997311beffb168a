"""Residents' addresses at rest: no phone number, WhatsApp number, Telegram chat id
or web chat client id is stored in plain text — not in any column of any table
(SQLite and PostgreSQL), not in the bytes of the SQLite file and its write-ahead
log — after whole dialogues through the real webhook routes, the inbox, the
engine and the sender against the fake providers; yet replies, STOP, the web
chat's pending messages and broadcasts reach them, a database of before is
converted by its migration, and after a key rotation and a restart the same
resident is found again and reached. Also: DATA_KEY's checks at start-up, and
files readable by their owner only (the database, the key file, media)."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from bot.cli.privacy_keys import rotate_key
from bot.config import ConfigError, Settings, load_settings
from bot.participation import broadcasts
from bot.storage.audience import Audience
from bot.storage.crypto import KEY_FILE, AddressKeys, WrongKey, new_data_key
from bot.storage.db import Database
from bot.storage.inbox import InboxRepository
from bot.storage.media import MediaStore
from bot.storage.models import ChannelIdentity, InboundMessage, OutboundMessage, Resident
from bot.storage.outbox import OutboxRepository
from bot.storage.residents import ResidentRepository
from tests import test_channels as live
from tests.conftest import OPEN_FLOWS, PG_ADMIN_URL, TEST_DATA_KEY, Clock, _truncate
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio
from tests.test_privacy import _drop, _fresh_database, _upgrade, find_anywhere

fakes = live.fakes
stack = live.stack
Stack = live.Stack

ROOT = Path(__file__).resolve().parent.parent
IDEA = "Ein Trinkbrunnen vor der Bibliothek am Wasserturm"
CHAT = 7301946285  # Telegram
SMS = "+4915771234567"
WHATSAPP = "+4917298765432"
CLIENT = "atRest-client_Q7v2mWp4Zr9K-x1"  # web chat, longer than the 24 characters a message id carries
ALMOST = ["👋", "1", "1", "1", "1", IDEA, "1", "1"]  # web chat: at the summary, opted in
NEWS = "Neuigkeiten aus dem Kiez: die Ideen sind gezählt"


def needles() -> list[str]:
    """Every form the addresses take at a provider (E.164, WhatsApp's WaId without +, …)."""
    found = [str(CHAT), CLIENT, CLIENT[:24], CLIENT[:12]]
    for number in (SMS, WHATSAPP):
        found += [number, number.lstrip("+"), number[3:]]  # +49…, 49… (WaId), the national part
    return found


def raw_hits(database_url: str) -> list[str]:
    """The needles found in the bytes of the SQLite database, its write-ahead log and shared memory."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite"):
        return []
    path = Path(str(url.database))
    hits = []
    for own in ("", "-wal", "-shm", "-journal"):
        file = Path(str(path) + own)
        if file.exists():
            data = file.read_bytes()
            hits += [f"{file.name}: {n}" for n in needles() if n.encode() in data]
    return hits


async def web(http: TestClient, client: str, line: str) -> list[str]:
    body = {"client_id": client, "text": line, "message_id": secrets.token_hex(8)}  # as the page sends it
    resp = await http.post("/webchat/api/messages", json=body)
    assert resp.status == 200, await resp.text()
    return [m["text"] for m in (await resp.json())["messages"]]


async def poll(http: TestClient, client: str) -> list[str]:
    resp = await http.get("/webchat/api/messages", params={"client_id": client})
    assert resp.status == 200, await resp.text()
    return [m["text"] for m in (await resp.json())["messages"]]


async def dialogues(s: Stack) -> None:
    """An idea on each channel, every resident opted in to updates."""
    await s.tg_text(CHAT, "/start plakat-neukoelln")
    for data in ["yes", "idea", "housing"]:
        await s.tg_press(CHAT, data)
    await s.tg_text(CHAT, IDEA)
    for data in ["skip", "neukoelln", "yes", "send"]:
        await s.tg_press(CHAT, data)
    for body in ["Hallo", "1", "1", "2", IDEA, "3", "1", "1"]:
        assert await s.sms(SMS, body) == 200
    for body in ["Hallo", "1", "1", "1", IDEA, "1", "3", "1", "1"]:
        assert await s.whatsapp(WHATSAPP, body) == 200
    replies = []
    for line in [*ALMOST, "1"]:
        replies += await web(s.http, CLIENT, line)
    assert any("Ihre Nummer ist" in t for t in live.texts(s.tg, CHAT))
    assert any("Ihre Nummer ist" in m["Body"] for m in s.tw.sent_to(SMS))
    assert any("Ihre Nummer ist" in m.get("Body", "") for m in s.tw.sent_to("whatsapp:" + WHATSAPP))
    assert any("Ihre Nummer ist" in r for r in replies)


async def count(db: Database, model: Any) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(model))).scalar_one()


async def resident_of(db: Database, channel: str, address: str) -> Any:
    return await db.run(lambda conn: ResidentRepository(db).find(conn, channel, address), write=False)


# --- whole dialogues on every channel ------------------------------------------------------------


async def test_no_address_is_stored_in_plain_text_yet_everyone_is_reached(stack: Stack, database_url: str) -> None:
    await dialogues(stack)
    db = stack.kz.db

    # a broadcast reaches everyone who opted in, the web chat when its page asks
    assert await broadcasts.send(stack.kz, "at-rest-news", {"de": NEWS}, "de", Audience()) == 4
    await stack.settle()
    assert NEWS in live.texts(stack.tg, CHAT)
    assert NEWS in [m["Body"] for m in stack.tw.sent_to(SMS)]
    assert NEWS in [m.get("Body") for m in stack.tw.sent_to("whatsapp:" + WHATSAPP)]
    assert NEWS in await poll(stack.http, CLIENT)
    assert await poll(stack.http, CLIENT) == []  # handed over once

    # STOP still finds the resident behind the number
    assert await stack.sms(SMS, "STOP") == 200
    assert "keine Nachrichten mehr" in stack.tw.sent_to(SMS)[-1]["Body"]
    assert (await resident_of(db, "sms", SMS)).stopped_at is not None
    assert (await resident_of(db, "telegram", str(CHAT))).stopped_at is None

    # four residents, one identity each, and not one plain address anywhere
    assert await count(db, Resident) == 4 and await count(db, ChannelIdentity) == 4
    assert await find_anywhere(db, needles()) == []
    assert raw_hits(database_url) == []
    async with db.read() as conn:
        stored = (await conn.execute(select(ChannelIdentity.channel, ChannelIdentity.address_enc))).all()
        outbox = (await conn.execute(select(OutboundMessage.address, OutboundMessage.address_enc))).all()
    assert sorted(db.keys.open(c, sealed) for c, sealed in stored) == sorted([str(CHAT), SMS, WHATSAPP, CLIENT])
    assert all(r.address is None or len(r.address) == 64 for r in outbox)  # keyed hashes (or emptied)


async def test_a_resident_who_writes_again_is_the_same_resident(stack: Stack) -> None:
    """The keyed hash finds them: one resident, however often they write, on every channel."""
    await stack.tg_text(CHAT, "Hallo")
    await stack.tg_text(CHAT, "Hallo")
    await web(stack.http, CLIENT, "👋")
    await web(stack.http, CLIENT, "1")
    assert await count(stack.kz.db, Resident) == 2
    # the same number on SMS and WhatsApp is two identities (the hash covers the channel)
    await stack.sms(SMS, "Hallo")
    await stack.whatsapp(SMS, "Hallo")
    assert await count(stack.kz.db, ChannelIdentity) == 4
    async with stack.kz.db.read() as conn:
        keys = (await conn.execute(select(ChannelIdentity.address))).scalars().all()
    assert len(set(keys)) == 4


# --- key rotation, then a restart -------------------------------------------------------------------


def _settings(database_url: str, tmp_path: Path, tg: FakeTelegram, tw: FakeTwilio, key: str | None) -> Settings:
    flows = tmp_path / "flows"
    if not flows.exists():
        shutil.copytree(OPEN_FLOWS, flows)
    env = {
        "DATABASE_URL": database_url,
        "PUBLIC_URL": live.PUBLIC,
        "FLOWS_DIR": str(flows),
        "MEDIA_DIR": str(tmp_path / "media"),
        "TELEGRAM_BOT_TOKEN": live.TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": live.SECRET,
        "TELEGRAM_API_BASE_URL": tg.root,
        "TWILIO_ACCOUNT_SID": tw.account_sid,
        "TWILIO_AUTH_TOKEN": tw.auth_token,
        "TWILIO_SMS_FROM": live.SMS_FROM,
        "TWILIO_API_BASE_URL": tw.root,
        "TELEGRAM_RATE_PER_S": "0",
        "SMS_SEGMENTS_PER_S": "0",
    }
    return load_settings(env | ({"DATA_KEY": key} if key else {}))


@contextlib.asynccontextmanager
async def running(settings: Settings, tg: FakeTelegram, tw: FakeTwilio, clock: Clock) -> AsyncIterator[Stack]:
    """The whole bot as ``serve`` runs it (a process of its own: its own Database)."""
    async with live.running(settings, None, clock, tg, tw) as stack:
        yield stack


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DATA_KEY anywhere: the embedded default (a key file next to the SQLite database)."""
    monkeypatch.delenv("DATA_KEY", raising=False)


@pytest.mark.parametrize("new_key", [None, "given"])
async def test_rotation_then_restart_finds_and_reaches_the_same_residents(
    database_url: str,
    tmp_path: Path,
    fakes: tuple[FakeTelegram, FakeTwilio],
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    new_key: str | None,
) -> None:
    tg, tw = fakes
    sqlite = database_url.startswith("sqlite")
    if sqlite:
        monkeypatch.delenv("DATA_KEY", raising=False)  # the embedded default: the key lives in a file
        database_url = f"sqlite:///{tmp_path / 'data' / 'kiezstimme.db'}"
        old_key = None
    else:
        old_key = TEST_DATA_KEY
        cleaner = Database(database_url, data_key=old_key)
        await _truncate(cleaner)
        await cleaner.dispose()
    settings = _settings(database_url, tmp_path, tg, tw, old_key)
    async with running(settings, tg, tw, clock) as s:
        await s.tg_text(CHAT, "Hallo")
        await s.tg_press(CHAT, "yes")
        for line in [*ALMOST, "1"]:
            await web(s.http, CLIENT, line)
        before = {
            "telegram": (await resident_of(s.kz.db, "telegram", str(CHAT))).pseudonym,
            "webchat": (await resident_of(s.kz.db, "webchat", CLIENT)).pseudonym,
        }
        key_file = s.kz.db.key_source.file
        first_key = s.kz.db.key_source.key
        await s.kz.sender.stop()  # what is queued now goes out after the rotation
        queued = await broadcasts.send(s.kz, "before-rotation", {"de": NEWS}, "de", Audience())
    assert queued == 1  # the web chat resident opted in; the Telegram one has not answered yet
    if sqlite:
        assert key_file == tmp_path / "data" / KEY_FILE and stat.S_IMODE(key_file.stat().st_mode) == 0o600

    out, err = io.StringIO(), io.StringIO()
    given = new_data_key() if new_key else None
    assert await rotate_key(settings, given, out=out, err=err) == 0, err.getvalue()
    if sqlite and given is None:  # the embedded default: the key file has the new key, 0600, nothing printed
        assert key_file is not None and key_file.read_text().strip() != first_key
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and out.getvalue() == ""
        latest = key_file.read_text().strip()
    elif sqlite:
        assert key_file is not None and key_file.read_text().strip() == given
        latest = given
    else:  # printed once, for the operator to set
        latest = out.getvalue().strip()
        assert latest == (given or latest) and len(latest) == 44 and latest != first_key
        assert latest not in err.getvalue()
    assert "re-encrypted" in err.getvalue()
    check = Database(database_url, data_key=None if sqlite else latest)
    async with check.read() as conn:
        sealed = (await conn.execute(select(ChannelIdentity.channel, ChannelIdentity.address_enc))).all()
    await check.dispose()
    assert sorted(check.keys.open(c, e) for c, e in sealed) == sorted([str(CHAT), CLIENT])
    for channel, enc in sealed:
        with pytest.raises(WrongKey):  # the old key opens nothing any more
            AddressKeys(first_key).open(channel, enc)

    # a restart with the new key (the embedded default reads its file): found again, reached again
    restarted = _settings(database_url, tmp_path, tg, tw, None if sqlite else latest)
    async with running(restarted, tg, tw, clock) as s:
        await s.settle()
        assert NEWS in await poll(s.http, CLIENT)  # queued before the rotation, matched after it
        sent_before = len(live.texts(tg, CHAT))
        s.update_id = 2000  # Telegram's update ids go on (the ones before are known: redeliveries)
        assert await s.tg_press(CHAT, "idea") == 200  # the dialogue goes on where it was
        assert len(live.texts(tg, CHAT)) > sent_before  # the reply reached them
        assert await web(s.http, CLIENT, "MENÜ")
        assert (await resident_of(s.kz.db, "telegram", str(CHAT))).pseudonym == before["telegram"]
        assert (await resident_of(s.kz.db, "webchat", CLIENT)).pseudonym == before["webchat"]
        assert await count(s.kz.db, Resident) == 2 and await count(s.kz.db, ChannelIdentity) == 2
        assert await find_anywhere(s.kz.db, needles()) == []
    assert raw_hits(database_url) == []


async def test_a_wrong_key_for_stored_addresses_stops_start_up(db: Database, clock: Clock) -> None:
    await db.run(lambda conn: ResidentRepository(db).create(conn, "sms", SMS, clock.now))
    other = Database(db.url, data_key=new_data_key())
    try:
        with pytest.raises(ConfigError, match="DATA_KEY does not open the stored addresses"):
            await other.migrate()
    finally:
        await other.dispose()


async def test_rotation_with_a_key_that_does_not_open_the_addresses_changes_nothing(
    db: Database, database_url: str, tmp_path: Path, clock: Clock
) -> None:
    await db.run(lambda conn: ResidentRepository(db).create(conn, "sms", SMS, clock.now))
    wrong = new_data_key()
    settings = load_settings({"DATABASE_URL": database_url, "DATA_KEY": wrong, "FLOWS_DIR": str(OPEN_FLOWS)})
    out, err = io.StringIO(), io.StringIO()
    assert await rotate_key(settings, new_data_key(), out=out, err=err) == 1
    assert "DATA_KEY does not open the stored addresses" in err.getvalue() and out.getvalue() == ""
    assert len(err.getvalue().strip().splitlines()) == 1
    assert (await resident_of(db, "sms", SMS)) is not None  # nothing changed


# --- a database of before ------------------------------------------------------------------------


async def test_the_migration_encrypts_the_addresses_stored_before(database_url: str, tmp_path: Path) -> None:
    db, name = await _fresh_database(database_url, tmp_path)
    url = str(db.engine.url.render_as_string(hide_password=False))
    at = datetime(2026, 11, 2, 10, 0)
    message = f"{CLIENT[:24]}:m-0001"  # the web chat's provider id carried the client id
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_upgrade, "0005")
            await conn.execute(
                text(
                    "INSERT INTO residents (id, pseudonym, updates_opt_in, created_at, consented_at, language)"
                    " VALUES (1, 'r-old', true, :at, :at, 'de'), (2, 'r-web', true, :at, :at, 'de')"
                ),
                {"at": at},
            )
            await conn.execute(
                text(
                    "INSERT INTO channel_identities (resident_id, channel, address, created_at)"
                    " VALUES (1, 'sms', :sms, :at), (2, 'webchat', :client, :at)"
                ),
                {"sms": SMS, "client": CLIENT, "at": at},
            )
            await conn.execute(
                text(
                    "INSERT INTO inbound_messages"
                    " (channel, provider_id, address, payload, status, received_at, resident_id)"
                    " VALUES ('webchat', :message, NULL, NULL, 'done', :at, 2),"
                    " ('sms', 'SM0000000000000000000000000000old', :sms, '{\"text\": \"Hallo\"}', 'pending', :at, NULL)"
                ),
                {"message": message, "sms": SMS, "at": at},
            )
            await conn.execute(
                text(
                    "INSERT INTO outbound_messages (resident_id, channel, address, text, payload, priority, status,"
                    " attempts, created_at) VALUES (1, 'sms', :sms, 'Hallo zurück', '{}', 0, 'pending', 0, :at)"
                ),
                {"sms": SMS, "at": at},
            )
        assert raw_hits(url) or not url.startswith("sqlite")  # the scan sees plain addresses where there are some
        await db.migrate()

        assert await find_anywhere(db, needles()) == []
        assert raw_hits(url) == []
        assert (await resident_of(db, "sms", SMS)).pseudonym == "r-old"  # found by the keyed hash
        assert (await resident_of(db, "webchat", CLIENT)).pseudonym == "r-web"
        claimed = await OutboxRepository(db).claim("sms", datetime.now(UTC), 10)
        assert [r.address for r in claimed] == [SMS]  # opened to send
        inbox = InboxRepository(db)
        assert [k for k in await inbox.pending_senders()] == [("sms", db.keys.index("sms", SMS))]
        async with db.read() as conn:
            provider_id = (
                await conn.execute(select(InboundMessage.provider_id).where(InboundMessage.channel == "webchat"))
            ).scalar_one()
        assert provider_id == db.keys.index("webchat", CLIENT)[:24] + ":m-0001"  # as new messages get it
        # erasing the web chat resident still finds (and replaces) that provider id
        await db.run(lambda conn: ResidentRepository(db).erase(conn, 2, datetime.now(UTC), inbound_id=None))
        async with db.read() as conn:
            ids = (await conn.execute(select(InboundMessage.provider_id))).scalars().all()
        assert not any(i.startswith(db.keys.index("webchat", CLIENT)[:24]) for i in ids)
    finally:
        await db.dispose()
        await _drop(name)


# --- DATA_KEY and the files -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["geheim", "x" * 45, TEST_DATA_KEY[:40], TEST_DATA_KEY + "AA", "a+b/" * 11])
def test_a_wrong_data_key_stops_start_up_with_one_line(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"DATA_KEY": value})
    message = str(caught.value)
    assert "DATA_KEY" in message and "\n" not in message and value not in message


def test_the_command_line_names_the_variable_and_never_the_value(tmp_path: Path) -> None:
    secret = "not-a-key-but-a-secret-" + secrets.token_hex(4)
    env = {**os.environ, "DATA_KEY": secret, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "DATA_KEY" in lines[0] and secret not in proc.stderr + proc.stdout
    assert not (tmp_path / "x.db").exists()


def test_postgresql_without_data_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATA_KEY", raising=False)
    with pytest.raises(ConfigError, match="DATA_KEY is required with PostgreSQL"):
        load_settings({"DATABASE_URL": PG_ADMIN_URL})
    with pytest.raises(ConfigError, match="DATA_KEY is required with PostgreSQL"):
        Database(PG_ADMIN_URL)
    assert load_settings({"DATABASE_URL": PG_ADMIN_URL, "DATA_KEY": new_data_key()}).data_key is not None


async def test_the_embedded_key_is_generated_once_and_files_are_0600(
    tmp_path: Path, embedded: None, clock: Clock
) -> None:
    old_umask = os.umask(0o002)  # a lax umask: the modes are set, not left to it
    try:
        url = f"sqlite:///{tmp_path / 'data' / 'kiezstimme.db'}"
        db = Database(url)
        await db.migrate()
        await db.run(lambda conn: ResidentRepository(db).create(conn, "sms", SMS, clock.now))
        key_file = tmp_path / "data" / KEY_FILE
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "data").iterdir()}
        assert modes[KEY_FILE] == 0o600 and modes["kiezstimme.db"] == 0o600, modes
        assert all(mode == 0o600 for mode in modes.values()), modes  # -wal and -shm as well
        assert {"kiezstimme.db-wal", "kiezstimme.db-shm"} <= set(modes)
        await db.dispose()
        again = Database(url)  # the next start reads the same key: the resident is found
        assert again.key_source.file == key_file and again.key_source.key == key_file.read_text().strip()
        assert (await resident_of(again, "sms", SMS)) is not None
        await again.dispose()

        media = MediaStore(tmp_path / "media").save("photo", "image/jpeg", b"\xff\xd8\xff\xe0" + b"\x10" * 100)
        photo = tmp_path / "media" / media.ref
        assert stat.S_IMODE(photo.stat().st_mode) == 0o600 and len(Path(media.ref).stem) == 24  # random name
    finally:
        os.umask(old_umask)
