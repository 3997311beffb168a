"""Organisers' accounts, their signed-in sessions, sign-in failures and the audit log."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from bot.storage.db import Database
from bot.storage.models import AdminSession, AdminUser, AuditEntry, LoginFailure

ROLES = ("viewer", "moderator", "organiser")
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,60}")  # what an account's e-mail must look like
MIN_PASSWORD = 12  # characters


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    role: str
    password_hash: str
    created_at: datetime
    last_login_at: datetime | None

    def can(self, role: str) -> bool:
        """True if this account's role includes ``role`` (organiser ⊃ moderator ⊃ viewer)."""
        return ROLES.index(self.role) >= ROLES.index(role)


def _account(row: Any) -> Account:
    return Account(row.id, row.email, row.role, row.password_hash, row.created_at, row.last_login_at)


class AccountRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- accounts ----------------------------------------------------------------------

    async def save_user(self, email: str, password_hash: str, role: str, now: datetime) -> bool:
        """Create the account, or set its password and role; True if it is new."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        email = email.strip().lower()

        def work(conn: Connection) -> bool:
            found = conn.execute(select(AdminUser.id).where(AdminUser.email == email)).scalar()
            if found is None:
                conn.execute(
                    insert(AdminUser).values(email=email, password_hash=password_hash, role=role, created_at=now)
                )
                return True
            conn.execute(
                update(AdminUser)
                .where(AdminUser.id == found)
                .values(password_hash=password_hash, role=role, disabled_at=None)
            )
            conn.execute(delete(AdminSession).where(AdminSession.user_id == found))  # a new password signs out
            return False

        return await self.db.run(work)

    async def users(self) -> list[Account]:
        def work(conn: Connection) -> list[Account]:
            rows = conn.execute(select(AdminUser).where(AdminUser.disabled_at.is_(None)).order_by(AdminUser.email))
            return [_account(r) for r in rows]

        return await self.db.run(work, write=False)

    async def by_email(self, email: str) -> Account | None:
        email = email.strip().lower()

        def work(conn: Connection) -> Account | None:
            row = conn.execute(
                select(AdminUser).where(AdminUser.email == email, AdminUser.disabled_at.is_(None))
            ).first()
            return _account(row) if row is not None else None

        return await self.db.run(work, write=False)

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        """After a parameter upgrade of the hasher (argon2's ``check_needs_rehash``)."""
        await self.db.run(
            lambda conn: conn.execute(
                update(AdminUser).where(AdminUser.id == user_id).values(password_hash=password_hash)
            )
        )

    # -- sessions ----------------------------------------------------------------------

    async def open_session(self, session_id: str, user_id: int, now: datetime, lifetime: timedelta) -> None:
        def work(conn: Connection) -> None:
            conn.execute(delete(AdminSession).where(AdminSession.expires_at < now))
            conn.execute(
                insert(AdminSession).values(
                    id=session_id, user_id=user_id, created_at=now, last_seen_at=now, expires_at=now + lifetime
                )
            )
            conn.execute(update(AdminUser).where(AdminUser.id == user_id).values(last_login_at=now))

        await self.db.run(work)

    async def session_user(self, session_id: str, now: datetime) -> Account | None:
        def work(conn: Connection) -> Account | None:
            row = conn.execute(
                select(AdminUser)
                .join(AdminSession, AdminSession.user_id == AdminUser.id)
                .where(
                    AdminSession.id == session_id,
                    AdminSession.expires_at > now,
                    AdminUser.disabled_at.is_(None),
                )
            ).first()
            return _account(row) if row is not None else None

        return await self.db.run(work, write=False)

    async def close_session(self, session_id: str) -> None:
        await self.db.run(lambda conn: conn.execute(delete(AdminSession).where(AdminSession.id == session_id)))

    # -- throttling ----------------------------------------------------------------------

    async def failures(self, keys: list[str], since: datetime) -> int:
        """The most failures any of ``keys`` had since ``since``."""

        def work(conn: Connection) -> int:
            rows = conn.execute(
                select(LoginFailure.key, func.count())
                .where(LoginFailure.key.in_(keys), LoginFailure.at >= since)
                .group_by(LoginFailure.key)
            ).all()
            return max((n for _, n in rows), default=0)

        return await self.db.run(work, write=False)

    async def record_failure(self, keys: list[str], now: datetime, forget_before: datetime) -> None:
        def work(conn: Connection) -> None:
            conn.execute(delete(LoginFailure).where(LoginFailure.at < forget_before))
            conn.execute(insert(LoginFailure), [{"key": k, "at": now} for k in keys])

        await self.db.run(work)

    async def clear_failures(self, key: str) -> None:
        await self.db.run(lambda conn: conn.execute(delete(LoginFailure).where(LoginFailure.key == key)))

    # -- audit -----------------------------------------------------------------------------

    async def audit(
        self, actor: str, action: str, target: str | None, detail: dict[str, Any] | None, now: datetime
    ) -> None:
        await self.db.run(lambda conn: record(conn, actor, action, target, detail, now))

    async def audit_log(self, limit: int = 200, offset: int = 0) -> list[Any]:
        def work(conn: Connection) -> list[Any]:
            return list(
                conn.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)).all()
            )

        return await self.db.run(work, write=False)


def record(
    conn: Connection, actor: str, action: str, target: str | None, detail: dict[str, Any] | None, now: datetime
) -> None:
    """One audit entry, inside the transaction that makes the change it records."""
    conn.execute(insert(AuditEntry).values(at=now, actor=actor, action=action, target=target, detail=detail or {}))
