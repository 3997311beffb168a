"""The data model.

Residents are people; a resident reaches us through one or more channel
identities (a Telegram chat, a phone number, a web chat client). Everything
personal hangs off the resident with ``ON DELETE CASCADE``; erasing a resident
(:meth:`bot.storage.residents.ResidentRepository.erase`) also empties the
delivery logs' (inbox, outbox) rows of them, which stay without address, text
or resident, and leaves ideas they agreed to keep as anonymous text (no
resident, no media).

All times are stored as naive UTC (SQLite drops offsets) and come back as
aware UTC datetimes through :class:`UTCDateTime`.

No address is stored in plain text: the ``address`` columns hold a keyed hash
of channel and address (equality look-ups and grouping), ``address_enc`` the
address encrypted, opened only to send (see :mod:`bot.storage.crypto`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BigInteger ids on PostgreSQL; SQLite needs INTEGER PRIMARY KEY for rowid aliasing.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; Kiezstimme only stores aware times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Resident(Base):
    __tablename__ = "residents"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    pseudonym: Mapped[str] = mapped_column(String(24), unique=True)
    language: Mapped[str | None] = mapped_column(String(35))
    consent_version: Mapped[str | None] = mapped_column(String(32))
    consented_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updates_opt_in: Mapped[bool] = mapped_column(Boolean, default=False)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unreachable_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source: Mapped[str | None] = mapped_column(String(64))  # campaign, e.g. a poster's deep link


class ChannelIdentity(Base):
    """How a resident is reached: (channel, address) — a chat id, a phone number, ...
    (``address`` its keyed hash, ``address_enc`` it encrypted)."""

    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("channel", "address"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(128))
    address_enc: Mapped[str | None] = mapped_column(Text)
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Session(Base):
    """Where a resident is in a dialogue; ``version`` guards concurrent updates."""

    __tablename__ = "sessions"
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Consent(Base):
    """Each consent a resident gave, with the version of the notice they saw."""

    __tablename__ = "consents"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(32))
    given_at: Mapped[datetime] = mapped_column(UTCDateTime)


class InboundMessage(Base):
    """The inbox: every message a channel delivered, unique per provider id."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("channel", "provider_id"),
        Index("ix_inbound_messages_pending", "status", "id"),
        Index("ix_inbound_messages_sender", "channel", "address", "status", "id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[str] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(128))  # cleared once processed
    address_enc: Mapped[str | None] = mapped_column(Text)  # cleared once processed
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # cleared once processed
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    error: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboundMessage(Base):
    """The outbox: every message to a resident, with its delivery state."""

    __tablename__ = "outbound_messages"
    __table_args__ = (
        Index("ix_outbound_messages_queue", "status", "priority", "id"),
        Index("ix_outbound_messages_recipient", "channel", "address", "status"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id", ondelete="SET NULL"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str | None] = mapped_column(String(128))
    address_enc: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(35))
    text: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # choices, direction, ...
    priority: Mapped[int] = mapped_column(SmallInteger, default=0)  # 0 reply, 1 bulk
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_id: Mapped[str | None] = mapped_column(String(64), index=True)
    error: Mapped[str | None] = mapped_column(String(200))
    segments: Mapped[int | None] = mapped_column(SmallInteger)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Idea(Base):
    __tablename__ = "ideas"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    # NULL once the resident was erased and agreed that the idea stays as anonymous text
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    topic: Mapped[str] = mapped_column(String(64))
    district: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(35))
    channel: Mapped[str] = mapped_column(String(16))
    media: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(12), default="new", index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    public_note: Mapped[str | None] = mapped_column(Text)  # told to the resident with the status
    internal_note: Mapped[str | None] = mapped_column(Text)  # for organisers only
    moderated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Feedback(Base):
    """A resident's current rating of one statement of the draft, with an optional comment:
    one row per resident and statement, updated when they rate it again."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("resident_id", "statement"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    statement: Mapped[str] = mapped_column(String(64), index=True)
    rating: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text, default="")
    media: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    language: Mapped[str] = mapped_column(String(35))
    channel: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # the first rating
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the last rating or comment
    # of the comment: new / approved / hidden / spam
    status: Mapped[str] = mapped_column(String(12), default="new", server_default="new")
    internal_note: Mapped[str | None] = mapped_column(Text)


class Purge(Base):
    """What the retention purge removed (:mod:`bot.participation.retention`): one row per run
    and kind, with the cut-off — counts only, never what the rows held."""

    __tablename__ = "purges"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(Integer)
    cutoff: Mapped[datetime] = mapped_column(UTCDateTime)  # what was older than this went


# --- the organisers' dashboard (issue 13) ---------------------------------------------


class AdminUser(Base):
    """An organiser's account: a viewer reads, a moderator also moderates, an organiser also
    broadcasts and manages accounts. Only an argon2 hash of the password is kept."""

    __tablename__ = "admin_users"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # lower case
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AdminSession(Base):
    """A signed-in browser. ``id`` is a hash of the cookie's token (a stolen table opens no session)."""

    __tablename__ = "admin_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class LoginFailure(Base):
    """A failed sign-in, by keyed hash of the e-mail or of the client's address: for throttling."""

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class AuditEntry(Base):
    """Who did what when: every moderation, broadcast and account change."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(254))  # the account's e-mail, or "cli"
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Partner(Base):
    """An outreach partner (a shelter, a youth centre, a migrant association): residents who
    arrive through its code count for it (``residents.source`` = ``partner:CODE``)."""

    __tablename__ = "partners"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    district: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Profile(Base):
    """ "Who speaks": the actor group and age band a resident chose to tell, kept apart from their
    ideas and shown only in aggregate (of at least 5). Erased with the resident."""

    __tablename__ = "profiles"
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), primary_key=True)
    actor_group: Mapped[str | None] = mapped_column(String(64))
    age_band: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Broadcast(Base):
    """A broadcast composed in the dashboard (or by the CLI): its texts, audience and schedule;
    its messages in the outbox carry ``key`` in their idempotency keys."""

    __tablename__ = "broadcasts"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    texts: Mapped[dict[str, str]] = mapped_column(JSON)
    fallback: Mapped[str | None] = mapped_column(String(35))
    audience: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)  # None: at once
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    total: Mapped[int] = mapped_column(Integer, default=0)
