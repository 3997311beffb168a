"""Telling a message that can never be stored or processed from a database that is away.

A data error (PostgreSQL SQLSTATE class 22: a NUL byte, a value too long, text the
driver cannot encode; SQLAlchemy's ``DataError``; a ``UnicodeError`` or a value the
driver refused to bind) fails the same way every time: retrying it would jam the
sender for good, so such a message is set aside with a reason. Everything else a
database call raises (a lost connection, a timeout, a lock, a serialization failure)
may pass: it is retried.
"""

from __future__ import annotations

from sqlalchemy.exc import DataError, DBAPIError, StatementError

DATA_SQLSTATE_CLASSES = frozenset({"22"})  # data exception


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error (asyncpg: ``sqlstate``, psycopg: ``pgcode``), if it has one."""
    orig = getattr(exc, "orig", None)
    for source in (orig, exc):
        code = getattr(source, "sqlstate", None) or getattr(source, "pgcode", None)
        if isinstance(code, str) and code:
            return code
    return None


def is_data_error(exc: BaseException) -> bool:
    """The data, not the database, is at fault: the same statement will fail again."""
    if isinstance(exc, (UnicodeError, DataError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return False
        code = sqlstate(exc)
        return (code is not None and code[:2] in DATA_SQLSTATE_CLASSES) or isinstance(exc.orig, UnicodeError)
    if isinstance(exc, StatementError):  # failed while binding parameters, before the database saw it
        return isinstance(exc.orig, (UnicodeError, ValueError, TypeError))
    return False


def describe(exc: BaseException) -> str:
    """A short reason for the dead letter (no data of the message: only the error's kind)."""
    code = sqlstate(exc)
    return f"data error: {type(exc).__name__}" + (f" (SQLSTATE {code})" if code else "")


def is_unavailable(exc: BaseException) -> bool:
    """The database (or the way to it) is away or busy: worth retrying later."""
    if isinstance(exc, (TimeoutError, OSError, ConnectionError)):
        return True
    return isinstance(exc, DBAPIError) and not is_data_error(exc)
