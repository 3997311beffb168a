"""A fourth channel, defined only in tests/, registered through the registry's
API: a whole idea dialogue over HTTP through the generic webhook route, the
inbox, the engine and the rate-paced sender, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.app import build
from bot.storage.db import Database
from bot.storage.models import Idea, InboundMessage, OutboundMessage
from bot.web.app import make_app
from channels import registry
from tests.conftest import Clock, make_settings
from tests.fakes.jsonchat import CAPABILITIES, NAME, TOKEN_HEADER, FakeJsonChat, spec
from tests.test_channels import wait_until

TOKEN = "jsonchat-token-0123"
IDEA = "More trees and shade on Hermannplatz, and benches for older neighbours"
REFERENCE = re.compile(r"\b[A-Z0-9]{3}-[A-Z0-9]{3}\b")


class JsonStack:
    def __init__(self, kz: Any, http: TestClient, fake: FakeJsonChat) -> None:
        self.kz, self.http, self.fake = kz, http, fake
        self.n = 0

    async def post(self, user: str, token: str = TOKEN, **event: str) -> int:
        self.n += 1
        resp = await self.http.post(
            "/webhooks/jsonchat/inbound",
            json={"id": f"ev-{self.n}", "user": user, **event},
            headers={TOKEN_HEADER: token},
        )
        await self.settle()
        return resp.status

    async def settle(self) -> None:
        await self.kz.inbox.idle()
        await wait_until(self._outbox_idle)

    async def _outbox_idle(self) -> bool:
        async with self.kz.db.read() as conn:
            busy = (
                await conn.execute(
                    select(func.count())
                    .select_from(OutboundMessage)
                    .where(OutboundMessage.channel == NAME, OutboundMessage.status.in_(("pending", "sending")))
                )
            ).scalar_one()
        return busy == 0

    def last_buttons(self, user: str) -> list[str]:
        return [b["value"] for b in [m for m in self.fake.sent if m["to"] == user][-1]["buttons"]]


@pytest_asyncio.fixture
async def jstack(db: Database, database_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[JsonStack]:
    async with FakeJsonChat() as fake:
        registry.register(spec(fake.root, TOKEN))
        try:
            kz = build(make_settings(database_url, tmp_path), clock=clock, db=db)
            client = TestClient(TestServer(make_app(kz, background=True), host="127.0.0.1"))
            await client.start_server()
            try:
                yield JsonStack(kz, client, fake)
            finally:
                await client.close()
                await kz.channels.close()
        finally:
            registry.unregister(NAME)


async def test_a_registered_channel_runs_a_whole_idea_dialogue(jstack: JsonStack) -> None:
    user = "jc-user-1"
    assert await jstack.post(user, text="/start") == 200
    assert "de" in jstack.last_buttons(user) and "en" in jstack.last_buttons(user)  # language first, as buttons
    for choice in ["en", "yes", "idea", "housing"]:
        assert choice in jstack.last_buttons(user), (choice, jstack.last_buttons(user))
        assert await jstack.post(user, choice=choice) == 200
    assert await jstack.post(user, text=IDEA) == 200
    while (buttons := jstack.last_buttons(user)) and "send" not in buttons:  # district, updates: the first offered
        assert await jstack.post(user, choice=buttons[0]) == 200
    assert await jstack.post(user, choice="send") == 200
    async with jstack.kz.db.read() as conn:
        idea = (await conn.execute(select(Idea.channel, Idea.language, Idea.text, Idea.reference))).one()
    assert tuple(idea)[:3] == (NAME, "en", IDEA)
    assert idea.reference in jstack.fake.texts(user)[-1] or idea.reference in "\n".join(jstack.fake.texts(user)[-2:])
    texts = jstack.fake.texts(user)
    assert all(len(t) <= CAPABILITIES.max_text for t in texts)  # max_text enforced ...
    async with jstack.kz.db.read() as conn:
        replies = (
            await conn.execute(select(func.count()).select_from(OutboundMessage).where(OutboundMessage.channel == NAME))
        ).scalar_one()
        longest = (await conn.execute(select(func.max(func.length(OutboundMessage.text))))).scalar_one()
    assert replies == len(texts) and longest <= CAPABILITIES.max_text  # ... by splitting, every part delivered
    # pacing at the channel's own rate: test_a_burst_of_new_residents_is_answered_at_the_channel_s_own_rate


async def test_a_registered_channel_splits_long_texts_and_keeps_choices_on_the_last_part(jstack: JsonStack) -> None:
    user = "jc-user-2"
    await jstack.post(user, text="Hallo")  # German: the consent text is longer than 300 characters
    sent = [m for m in jstack.fake.sent if m["to"] == user]
    assert len(sent) >= 2 and all(len(m["text"]) <= CAPABILITIES.max_text for m in sent)
    assert [b["value"] for b in sent[-1]["buttons"]] == ["yes", "no"] and all(not m["buttons"] for m in sent[:-1])
    assert " ".join(m["text"] for m in sent).endswith("Sind Sie einverstanden?")  # cut at spaces, nothing lost


async def test_a_registered_channel_verifies_its_own_webhook(jstack: JsonStack) -> None:
    assert await jstack.post("jc-user-3", token="wrong", text="Hallo") == 403
    resp = await jstack.http.post(
        "/webhooks/jsonchat/inbound",
        data=b"\xff\xfe{",
        headers={TOKEN_HEADER: TOKEN, "Content-Type": "application/json"},
    )
    assert resp.status == 400
    resp = await jstack.http.post("/webhooks/nobody/owns-this", json={})
    assert resp.status == 404
    async with jstack.kz.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(InboundMessage))).scalar_one() == 0
    assert jstack.fake.sent == []
    assert NAME in jstack.kz.channels.bulk_targets() and jstack.kz.sender.senders[NAME].rate == CAPABILITIES.rate


async def test_a_burst_of_new_residents_is_answered_at_the_channel_s_own_rate(jstack: JsonStack) -> None:
    """40 residents write at once; their replies leave as fast as the channel's
    capabilities allow (20 per second), never more in any second."""
    users = [f"jc-burst-{i}" for i in range(40)]
    statuses = await asyncio.gather(
        *(
            jstack.http.post(
                "/webhooks/jsonchat/inbound",
                json={"id": f"burst-{i}", "user": user, "text": "Hello"},
                headers={TOKEN_HEADER: TOKEN},
            )
            for i, user in enumerate(users)
        )
    )
    assert [s.status for s in statuses] == [200] * len(users)
    await jstack.settle()
    arrived = sorted(m["at"] for m in jstack.fake.sent if m["to"] in users)
    assert len(arrived) >= len(users)  # everyone was answered
    most = max(sum(1 for t in arrived if a <= t < a + 1.0) for a in arrived)
    assert most <= CAPABILITIES.rate  # never more than the channel allows in a second
    assert most >= CAPABILITIES.rate * 0.75  # and the allowance is used, not trickled
    assert arrived[-1] - arrived[0] >= (len(arrived) - CAPABILITIES.rate) / CAPABILITIES.rate * 0.95
