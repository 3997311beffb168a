"""How the commands log: plain lines for a terminal, or one JSON object per
line for a log collector (``LOG_FORMAT=json``).

Residents appear in our log lines by pseudonym only. Providers' SDKs (twilio,
python-telegram-bot, httpx, httpcore) log every request — URLs with the bot
token, forms with phone numbers — so their loggers are kept at WARNING whatever
``LOG_LEVEL`` says; and as a safety net every line passes :class:`Redact`, which
blanks the configured secrets, phone numbers, chat ids and bot tokens.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable

# third-party loggers that would print URLs containing tokens, or forms with phone numbers
NOISY = ("twilio", "telegram", "httpx", "httpcore", "hpack", "aiohttp.access", "aiohttp.client")
# variables whose values never appear in a log line
SECRET_VARIABLES = (
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
    "TWILIO_AUTH_TOKEN",
    "METRICS_TOKEN",
    "DATA_KEY",
    "SECRET_KEY",
)
_PATTERNS = [
    (re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{30,}"), "[bot token]"),  # Telegram bot token (also inside URLs)
    (re.compile(r"(?i)(whatsapp:)?(\+|%2B)\d[\d ]{5,17}\d"), "[phone]"),  # E.164, also URL-encoded
    (re.compile(r"(?i)(chat_id\W{1,4})-?\d+"), r"\1[chat]"),  # a Telegram chat id named as such
    (re.compile(r"(?i)(://[^:/@\s]+:)[^@\s]+@"), r"\1[password]@"),  # a password in a URL
]


class Redact(logging.Filter):
    """Blanks secrets and addresses in a record's message and traceback (a safety net:
    our own lines name residents by pseudonym only)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[secret]")
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string: log what there is
            message = str(record.msg)
        record.msg, record.args = self.clean(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.clean(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors (LOG_FORMAT=json)."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_text or record.exc_info:
            entry["error"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(entry, ensure_ascii=False)


def configured_secrets(env: dict[str, str] | None = None) -> list[str]:
    env = dict(os.environ) if env is None else env
    return [env[name].strip() for name in SECRET_VARIABLES if env.get(name, "").strip()]


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if (os.environ.get("LOG_FORMAT") or "").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(Redact(configured_secrets()))
    logging.basicConfig(level=level, handlers=[handler])
    quiet_providers(level)


def quiet_providers(level: str | int) -> None:
    """The providers' SDK loggers at WARNING (or the configured level, if higher)."""
    number = level if isinstance(level, int) else logging.getLevelName(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, number))
