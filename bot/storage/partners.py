"""Outreach partners (a shelter, a youth centre, a migrant association …) and the residents
they bring: each partner has a short code printed on its posters; a resident who arrives
through it is recorded with ``residents.source = "partner:CODE"``.

How a code arrives:

- Telegram: the deep link ``t.me/BOT?start=p_CODE`` (the adapter keeps the payload
  ``p_CODE`` as the message's source);
- SMS, WhatsApp (and any other channel): a resident's *first* message that is just the
  code, or ``START CODE`` (any case). The message still reaches the dialogue as it is — the
  engine answers it like ``START``, with the first question.

Only codes of existing partners count; anything else keeps the source it had (or none).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import distinct, func, insert, literal, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.storage.db import Database
from bot.storage.models import Idea, Partner, Resident

# no 0/O, 1/I: read aloud, copied from a poster or typed on a phone, none is mistaken for another
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_LENGTH = 6
KINDS = ("shelter", "youth_centre", "migrant_association", "school", "library", "social_service", "other")
SOURCE_PREFIX = "partner:"
LINK_PREFIX = "p_"  # Telegram deep-link payload: p_CODE
_CODE = re.compile(rf"[{CODE_ALPHABET}]{{{CODE_LENGTH}}}")
_TYPED = re.compile(rf"\s*(?:start\s+)?([{CODE_ALPHABET}]{{{CODE_LENGTH}}})\s*[.!]?\s*", re.IGNORECASE)


@dataclass(frozen=True)
class OutreachPartner:
    id: int
    code: str
    name: str
    kind: str
    district: str | None
    created_at: datetime

    @property
    def source(self) -> str:
        return SOURCE_PREFIX + self.code

    @property
    def telegram_payload(self) -> str:
        return LINK_PREFIX + self.code


@dataclass(frozen=True)
class PartnerReach:
    """A partner with what its code brought: residents, of them consented, of them with an
    idea, and their ideas (counts only — never who)."""

    partner: OutreachPartner
    arrived: int
    consented: int
    with_idea: int
    ideas: int


def new_code() -> str:
    """Six characters of CODE_ALPHABET with at least one digit and one letter, so that no word
    a resident types first (``GARTEN``) is ever a code."""
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if any(c.isdigit() for c in code) and any(c.isalpha() for c in code):
            return code


def is_code(text: str) -> bool:
    return _CODE.fullmatch(text) is not None


def typed_code(text: str | None) -> str | None:
    """The code in a message that is only a code, or ``START CODE`` (any case)."""
    found = _TYPED.fullmatch(text or "")
    return found.group(1).upper() if found else None


def linked_code(payload: str | None) -> str | None:
    """The code in a Telegram deep-link payload ``p_CODE``."""
    if not payload or not payload.lower().startswith(LINK_PREFIX):
        return None
    code = payload[len(LINK_PREFIX) :].upper()
    return code if is_code(code) else None


def attribution(conn: Connection, payload: dict[str, Any], *, first: bool) -> str | None:
    """``partner:CODE`` if the stored inbound message came through an existing partner's code
    (a ``p_CODE`` deep link, or — as the resident's ``first`` message — the code typed),
    else None. Runs inside the step's write transaction."""
    extra = payload.get("extra") or {}
    source = extra.get("source")
    code = linked_code(source if isinstance(source, str) else None)
    if code is None and first:
        text = payload.get("text")
        code = typed_code(text if isinstance(text, str) else None)
    if code is None:
        return None
    found = conn.execute(select(Partner.code).where(Partner.code == code)).scalar()
    return SOURCE_PREFIX + code if found is not None else None


PARTNER_COLUMNS = (Partner.id, Partner.code, Partner.name, Partner.kind, Partner.district, Partner.created_at)


def _partner(row: Any) -> OutreachPartner:
    return OutreachPartner(row.id, row.code, row.name, row.kind, row.district, row.created_at)


class PartnerRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, name: str, kind: str, district: str | None, now: datetime) -> OutreachPartner:
        """A new partner with a fresh unique code."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        for _ in range(20):
            code = new_code()

            def work(conn: Connection, code: str = code) -> int | None:
                if conn.execute(select(Partner.id).where(Partner.code == code)).first() is not None:
                    return None
                return int(
                    conn.execute(
                        insert(Partner)
                        .values(code=code, name=name, kind=kind, district=district, created_at=now)
                        .returning(Partner.id)
                    ).scalar_one()
                )

            try:
                new_id = await self.db.run(work)
            except IntegrityError:  # taken at the same moment by another process
                continue
            if new_id is not None:
                return OutreachPartner(new_id, code, name, kind, district, now)
        raise RuntimeError("no free partner code found")  # 32**6 codes: only when nearly all are taken

    async def update(self, partner_id: int, name: str, kind: str, district: str | None) -> bool:
        """Change name, kind and district (never the code: it is printed). False if not found."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")

        def work(conn: Connection) -> bool:
            done = conn.execute(
                update(Partner).where(Partner.id == partner_id).values(name=name, kind=kind, district=district)
            )
            return bool(done.rowcount)

        return await self.db.run(work)

    async def get(self, partner_id: int) -> OutreachPartner | None:
        def work(conn: Connection) -> OutreachPartner | None:
            row = conn.execute(select(*PARTNER_COLUMNS).where(Partner.id == partner_id)).first()
            return _partner(row) if row is not None else None

        return await self.db.run(work, write=False)

    async def reach(self) -> list[PartnerReach]:
        """Every partner (by name) with its counts: two grouped queries, whatever the numbers."""

        def work(conn: Connection) -> list[PartnerReach]:
            source = literal(SOURCE_PREFIX) + Partner.code
            arrived = conn.execute(
                select(
                    *PARTNER_COLUMNS,
                    func.count(Resident.id).label("arrived"),
                    func.count(Resident.consented_at).label("consented"),
                )
                .outerjoin(Resident, Resident.source == source)
                .group_by(*PARTNER_COLUMNS)
                .order_by(Partner.name, Partner.id)
            ).all()
            ideas = {
                row.source: (row.residents, row.ideas)
                for row in conn.execute(
                    select(
                        Resident.source,
                        func.count(distinct(Resident.id)).label("residents"),
                        func.count(Idea.id).label("ideas"),
                    )
                    .join(Idea, Idea.resident_id == Resident.id)
                    .where(Resident.source.like(SOURCE_PREFIX + "%"))
                    .group_by(Resident.source)
                )
            }
            out = []
            for row in arrived:
                partner = _partner(row)
                with_idea, count = ideas.get(partner.source, (0, 0))
                out.append(PartnerReach(partner, row.arrived, row.consented, with_idea, count))
            return out

        return await self.db.run(work, write=False)
