"""Configuration from the environment (12-factor), see INTERFACES.md.

A misconfiguration stops start-up with one line naming the variable; secrets
are kept in ``SecretStr`` so they never show up in logs or reprs.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_FLOWS_DIR = PACKAGE_ROOT / "flows"
SHIPPED_I18N_DIR = PACKAGE_ROOT / "i18n"


class ConfigError(Exception):
    """A setting is wrong; the message names the variable."""


def database_url_for_driver(url: str) -> str:
    """Map operator-facing URLs to the async drivers we ship."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://"):]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://"):]
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise ConfigError(
        "DATABASE_URL must start with sqlite:///, postgresql:// or postgres://"
    )


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///data/kiezstimme.db"
    port: int = 8080
    public_url: str = ""
    flows_dir: Path = SHIPPED_FLOWS_DIR
    i18n_dir: Path = SHIPPED_I18N_DIR
    media_dir: Path = Path("data/media")
    timezone: str = "Europe/Berlin"
    log_level: str = "INFO"
    session_timeout: timedelta = timedelta(hours=24)
    media_max_bytes: int = 20 * 1024 * 1024
    reminder_grace: timedelta = timedelta(minutes=60)
    sms_price: float = 0.08
    currency: str = "EUR"
    rates: dict[str, float | None] = field(default_factory=lambda: {"telegram": 30.0, "sms": 1.0, "whatsapp": 80.0})
    telegram_bot_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org"
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_sms_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"

    @property
    def driver_url(self) -> str:
        return database_url_for_driver(self.database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.driver_url.startswith("sqlite")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://127.0.0.1:{self.port}").rstrip("/")

    def __repr__(self) -> str:  # never show secrets or full database URLs
        return f"Settings(database={self.database_kind}, public_url={self.base_url!r})"

    @property
    def database_kind(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"


def _url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read and check the settings; raise ConfigError naming the variable."""
    env = dict(os.environ if env is None else env)
    get = lambda name: (env.get(name) or "").strip() or None  # noqa: E731

    port_raw = get("PORT") or "8080"
    try:
        port = int(port_raw)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        raise ConfigError(f"PORT must be a port number, got {port_raw!r}") from None

    database_url = get("DATABASE_URL") or "sqlite:///data/kiezstimme.db"
    try:
        database_url_for_driver(database_url)
    except ConfigError as exc:
        raise ConfigError(f"DATABASE_URL: {exc}") from None

    timezone = get("TIMEZONE") or "Europe/Berlin"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"TIMEZONE is not a known time zone: {timezone!r}") from None

    level = (get("LOG_LEVEL") or "INFO").upper()
    if not isinstance(logging.getLevelName(level), int):
        raise ConfigError(f"LOG_LEVEL is not a logging level: {level!r}")

    public_url = get("PUBLIC_URL")
    if public_url:
        public_url = _url("PUBLIC_URL", public_url)

    flows_dir = Path(get("FLOWS_DIR") or SHIPPED_FLOWS_DIR)
    if not flows_dir.is_dir():
        raise ConfigError(f"FLOWS_DIR is not a folder: {str(flows_dir)!r}")

    timeout_raw = get("SESSION_TIMEOUT_HOURS") or "24"
    try:
        session_timeout = timedelta(hours=float(timeout_raw))
    except ValueError:
        raise ConfigError(f"SESSION_TIMEOUT_HOURS must be a number, got {timeout_raw!r}") from None

    media_raw = get("MEDIA_MAX_BYTES") or str(20 * 1024 * 1024)
    if not media_raw.isdigit() or int(media_raw) < 1:
        raise ConfigError(f"MEDIA_MAX_BYTES must be a positive number of bytes, got {media_raw!r}")

    rates: dict[str, float | None] = {}
    for channel, name, default in (
        ("telegram", "TELEGRAM_RATE_PER_S", "30"),
        ("sms", "SMS_SEGMENTS_PER_S", "1"),
        ("whatsapp", "WHATSAPP_RATE_PER_S", "80"),
    ):
        raw = get(name) or default
        try:
            value = float(raw)
            if value < 0:
                raise ValueError
        except ValueError:
            raise ConfigError(f"{name} must be a number of messages per second (0 = no limit), got {raw!r}") from None
        rates[channel] = value or None

    try:
        reminder_grace = timedelta(minutes=float(get("REMINDER_GRACE_MINUTES") or 60))
    except ValueError:
        raise ConfigError("REMINDER_GRACE_MINUTES must be a number of minutes") from None
    try:
        sms_price = float(get("SMS_PRICE_PER_SEGMENT") or 0.08)
    except ValueError:
        raise ConfigError("SMS_PRICE_PER_SEGMENT must be a number, e.g. 0.08") from None

    token = get("TELEGRAM_BOT_TOKEN")
    secret = get("TELEGRAM_WEBHOOK_SECRET")
    if token and not secret:
        raise ConfigError("TELEGRAM_WEBHOOK_SECRET is required when TELEGRAM_BOT_TOKEN is set")
    if secret is not None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ConfigError(
                "TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -"
            )

    sid = get("TWILIO_ACCOUNT_SID")
    auth = get("TWILIO_AUTH_TOKEN")
    if bool(sid) != bool(auth):
        missing = "TWILIO_AUTH_TOKEN" if sid else "TWILIO_ACCOUNT_SID"
        raise ConfigError(f"{missing} is required when the other Twilio credential is set")
    wa_from = get("TWILIO_WHATSAPP_FROM")
    if wa_from and not re.fullmatch(r"(whatsapp:)?\+[1-9]\d{6,14}", wa_from):
        raise ConfigError(f"TWILIO_WHATSAPP_FROM must look like whatsapp:+4930…, got {wa_from!r}")
    if sid and not (get("TWILIO_SMS_FROM") or get("TWILIO_MESSAGING_SERVICE_SID") or wa_from):
        raise ConfigError("TWILIO_SMS_FROM, TWILIO_MESSAGING_SERVICE_SID or TWILIO_WHATSAPP_FROM is required with Twilio credentials")

    return Settings(
        database_url=database_url,
        port=port,
        public_url=public_url or "",
        flows_dir=flows_dir,
        media_dir=Path(get("MEDIA_DIR") or "data/media"),
        timezone=timezone,
        log_level=level,
        session_timeout=session_timeout,
        media_max_bytes=int(media_raw),
        rates=rates,
        reminder_grace=reminder_grace,
        sms_price=sms_price,
        currency=get("CURRENCY") or "EUR",
        telegram_bot_token=SecretStr(token) if token else None,
        telegram_webhook_secret=SecretStr(secret) if secret else None,
        telegram_api_base_url=_url(
            "TELEGRAM_API_BASE_URL", get("TELEGRAM_API_BASE_URL") or "https://api.telegram.org"
        ),
        twilio_account_sid=sid,
        twilio_auth_token=SecretStr(auth) if auth else None,
        twilio_sms_from=get("TWILIO_SMS_FROM"),
        twilio_messaging_service_sid=get("TWILIO_MESSAGING_SERVICE_SID"),
        twilio_whatsapp_from=get("TWILIO_WHATSAPP_FROM"),
        twilio_api_base_url=_url(
            "TWILIO_API_BASE_URL", get("TWILIO_API_BASE_URL") or "https://api.twilio.com"
        ),
    )
