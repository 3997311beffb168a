"""``python -m bot admin create-user EMAIL --role …`` and ``admin list-users``."""

from __future__ import annotations

import getpass
import sys
from typing import TextIO

from bot.config import Settings
from bot.storage.accounts import EMAIL, MIN_PASSWORD


def read_password(stdin: TextIO) -> str | None:
    """The first line of stdin; on a terminal asked twice. None if the two differ."""
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != first:
            return None
        return first
    return stdin.readline().rstrip("\r\n")


async def create_user(settings: Settings, email: str, role: str, stdin: TextIO = sys.stdin) -> int:
    from argon2 import PasswordHasher

    from bot.service import utcnow
    from bot.storage.accounts import AccountRepository, record
    from bot.storage.db import Database

    email = email.strip().lower()
    if not EMAIL.fullmatch(email):
        print(f"not an e-mail address: {email!r}", file=sys.stderr)
        return 2
    password = read_password(stdin)
    if password is None:
        print("the two passwords differ; nothing changed", file=sys.stderr)
        return 2
    if len(password) < MIN_PASSWORD:
        print(f"the password needs at least {MIN_PASSWORD} characters; nothing changed", file=sys.stderr)
        return 2
    db = Database(settings.database_url, data_key=settings.data_key.get_secret_value() if settings.data_key else None)
    try:
        await db.migrate()
        now = utcnow()
        repo = AccountRepository(db)
        new = await repo.save_user(email, PasswordHasher().hash(password), role, now)
        await db.run(
            lambda conn: record(
                conn, "cli", "account-created" if new else "account-updated", email, {"role": role}, now
            )
        )
    finally:
        await db.dispose()
    print(f"{email}: {'created' if new else 'updated'} as {role}", file=sys.stderr)
    return 0


async def list_users(settings: Settings, out: TextIO = sys.stdout) -> int:
    from rich.console import Console
    from rich.table import Table

    from bot.storage.accounts import AccountRepository
    from bot.storage.db import Database

    db = Database(settings.database_url, data_key=settings.data_key.get_secret_value() if settings.data_key else None)
    try:
        await db.migrate()
        users = await AccountRepository(db).users()
    finally:
        await db.dispose()
    table = Table(title="Dashboard accounts")
    for column in ("e-mail", "role", "last sign-in"):
        table.add_column(column)
    zone = settings.zone
    for u in users:
        last = f"{u.last_login_at.astimezone(zone):%Y-%m-%d %H:%M}" if u.last_login_at else "never"
        table.add_row(u.email, u.role, last)
    Console(file=out, width=120).print(table)
    return 0
