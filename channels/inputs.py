"""The shapes inbound fields must have before anything of them is stored.

Every adapter checks what a provider or a page sends against these before it
hands the core an :class:`~bot.values.Inbound`: identifiers by a strict shape
(anything else is a malformed request, refused with 400 and nothing stored),
free text bounded in length and made storable.

Free text is *cleaned*, not refused: a NUL byte is removed and a lone UTF-16
surrogate (half of an emoji, as a broken client may send it in JSON) becomes
U+FFFD. Neither can be stored in PostgreSQL text (and a lone surrogate not even
encoded), neither is anything a resident meant to say, and refusing would lose
the whole of what they wrote for one stray character.
"""

from __future__ import annotations

import re
from typing import Any

from bot.values import Rejected

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_TEXT = 10_000  # the longest text taken from anyone (Telegram 4096, Twilio 1600)
LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8}){0,6}")  # BCP 47-ish, at most 35 characters
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


class BadInput(Rejected):
    """A field of the wrong shape: 400, nothing stored."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


def clean_text(value: str) -> str:
    """``value`` without NUL bytes and with lone surrogates replaced (surrogate pairs joined)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return value


def text(value: Any, name: str, limit: int = MAX_TEXT) -> str | None:
    """Free text: a string of at most ``limit`` characters (cleaned), or None if absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadInput(f"{name} must be a string")
    if len(value) > limit:
        raise BadInput(f"{name} must be at most {limit} characters")
    return clean_text(value)


def token(value: Any, pattern: re.Pattern[str], name: str, rule: str) -> str:
    """An identifier that must match ``pattern`` entirely (no trailing newline slips through)."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadInput(f"{name} must be {rule}")
    return value


def language_tag(value: Any) -> str | None:
    """A language hint if it looks like a tag, else None (a hint is never worth a refusal)."""
    if isinstance(value, str) and len(value) <= 35 and LANGUAGE_TAG.fullmatch(value):
        return value
    return None


def int64(value: Any) -> bool:
    """A JSON integer (not a boolean) that fits a signed 64-bit column."""
    return isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX
