"""Configuration from the environment (12-factor), see INTERFACES.md.

pydantic-settings reads and checks the variables; a misconfiguration stops
start-up with one line naming the variable (:class:`ConfigError`); secrets
are kept in ``SecretStr`` so they never show up in logs or reprs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_FLOWS_DIR = PACKAGE_ROOT / "flows"
SHIPPED_I18N_DIR = PACKAGE_ROOT / "i18n"
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
_WHATSAPP_FROM = re.compile(r"(whatsapp:)?\+[1-9]\d{6,14}")


class ConfigError(Exception):
    """A setting is wrong; the message names the variable."""


# DATA_KEY: residents' addresses at rest (bot/storage/crypto.py) — 32 random bytes, urlsafe base64
_DATA_KEY = re.compile(r"[A-Za-z0-9_-]{43}=?")
NEW_DATA_KEY_HINT = 'python -c "import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())"'


def data_key_problem(value: str) -> str | None:
    """Why ``value`` is no DATA_KEY (never repeating it), or None if it is one."""
    if _DATA_KEY.fullmatch(value.strip()):
        return None
    return f"must be a urlsafe base64 encoded 32-byte key (44 characters; make one with {NEW_DATA_KEY_HINT})"


def database_url_for_driver(url: str) -> str:
    """Map operator-facing URLs to the async drivers we ship."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise ConfigError("DATABASE_URL must start with sqlite:///, postgresql:// or postgres://")


def _http_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


class Settings(BaseSettings):
    """Every variable of INTERFACES.md, with its default."""

    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", case_sensitive=False, str_strip_whitespace=True, env_ignore_empty=True
    )

    database_url: str = "sqlite:///data/kiezstimme.db"
    port: int = 8080
    public_url: str = ""
    flows_dir: Path = SHIPPED_FLOWS_DIR
    # the catalogs; not a variable of its own (a flows copy's translations live in $FLOWS_DIR/i18n)
    i18n_dir: Path = Field(SHIPPED_I18N_DIR, validation_alias="KIEZSTIMME_I18N_DIR")
    media_dir: Path = Path("data/media")
    timezone: str = "Europe/Berlin"
    log_level: str = "INFO"
    session_timeout_hours: float = 24
    media_max_bytes: int = 20 * 1024 * 1024
    reminder_grace_minutes: float = 60
    sms_price_per_segment: float = 0.08
    currency: str = "EUR"
    # abuse limits and operations (issue 12); 0 switches a limit off
    flood_messages_per_minute: int = 20  # more from one sender: one notice, then no answers for the cooling-off
    flood_cooldown_minutes: float = 5
    loop_guard_repeats: int = 5  # the same reply this often to one resident within 5 minutes: replies pause
    loop_guard_pause_minutes: float = 30
    webchat_new_clients_per_hour: int = 30  # new web chat conversations per source (IP address, IPv6 /64)
    client_ip_header: str | None = None  # e.g. X-Forwarded-For: only behind a proxy that sets it
    metrics_token: SecretStr | None = None  # GET /metrics needs "Authorization: Bearer <token>"; unset: 404
    # per channel, in total across workers; unset = the channel's own default, 0 = no limit
    telegram_rate_per_s: float | None = None
    sms_segments_per_s: float | None = None
    whatsapp_rate_per_s: float | None = None
    telegram_bot_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org"
    # the bot's @username without the @: the dashboard shows partners' t.me deep links with it
    telegram_bot_username: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_sms_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    # encrypts residents' addresses at rest; unset on SQLite: generated once next to the database
    data_key: SecretStr | None = None
    # signs the dashboard's sessions and CSRF tokens; unset on SQLite: generated once into data/,
    # on PostgreSQL: derived from DATA_KEY (every process has it)
    secret_key: SecretStr | None = None
    # retention (issue 12): how long personal data is kept, in days
    retention_delivery_days: int = 30  # texts, choices and addresses of the delivery log
    retention_inbox_days: int = 7  # contents of inbox rows that are still kept (failed, set aside)
    retention_contact_days_after_last_phase: int = 90  # channel identities and sessions

    # -- checks, each naming its variable ------------------------------------------

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> int:
        try:
            port = int(value)
            if not 0 < port < 65536:
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError(f"PORT must be a port number, got {value!r}") from None
        return port

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            database_url_for_driver(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"TIMEZONE is not a known time zone: {value!r}") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if not isinstance(logging.getLevelName(level), int):
            raise ValueError(f"LOG_LEVEL is not a logging level: {level!r}")
        return level

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return _http_url("PUBLIC_URL", value) if value else ""

    @field_validator("telegram_api_base_url")
    @classmethod
    def _telegram_api(cls, value: str) -> str:
        return _http_url("TELEGRAM_API_BASE_URL", value)

    @field_validator("twilio_api_base_url")
    @classmethod
    def _twilio_api(cls, value: str) -> str:
        return _http_url("TWILIO_API_BASE_URL", value)

    @field_validator("flows_dir")
    @classmethod
    def _flows_dir(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"FLOWS_DIR is not a folder: {str(value)!r}")
        return value

    @field_validator("session_timeout_hours", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float:
        return _number("SESSION_TIMEOUT_HOURS", value, "a number of hours")

    @field_validator("reminder_grace_minutes", mode="before")
    @classmethod
    def _grace(cls, value: Any) -> float:
        return _number("REMINDER_GRACE_MINUTES", value, "a number of minutes")

    @field_validator("sms_price_per_segment", mode="before")
    @classmethod
    def _price(cls, value: Any) -> float:
        return _number("SMS_PRICE_PER_SEGMENT", value, "a number, e.g. 0.08")

    @field_validator("flood_messages_per_minute", "loop_guard_repeats", "webchat_new_clients_per_hour", mode="before")
    @classmethod
    def _count_limit(cls, value: Any, info: Any) -> int:
        if isinstance(value, bool) or not re.fullmatch(r"[0-9]{1,9}", str(value).strip()):
            raise ValueError(f"{info.field_name.upper()} must be a whole number (0 = no limit), got {value!r}")
        return int(str(value).strip())

    @field_validator("flood_cooldown_minutes", "loop_guard_pause_minutes", mode="before")
    @classmethod
    def _limit_minutes(cls, value: Any, info: Any) -> float:
        return _number(info.field_name.upper(), value, "a number of minutes")

    @field_validator("client_ip_header")
    @classmethod
    def _client_ip_header(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"[A-Za-z0-9-]{1,64}", value):
            raise ValueError(f"CLIENT_IP_HEADER must be a header name such as X-Forwarded-For, got {value!r}")
        return value or None

    @field_validator("media_max_bytes", mode="before")
    @classmethod
    def _media_max(cls, value: Any) -> int:
        if not str(value).strip().isdigit() or int(value) < 1:
            raise ValueError(f"MEDIA_MAX_BYTES must be a positive number of bytes, got {value!r}")
        return int(value)

    @field_validator("telegram_rate_per_s", "sms_segments_per_s", "whatsapp_rate_per_s", mode="before")
    @classmethod
    def _rate(cls, value: Any, info: Any) -> float | None:
        if value is None:
            return None
        return _number(info.field_name.upper(), value, "a number of messages per second (0 = no limit)")

    @field_validator(
        "retention_delivery_days", "retention_inbox_days", "retention_contact_days_after_last_phase", mode="before"
    )
    @classmethod
    def _retention_days(cls, value: Any, info: Any) -> int:
        if not re.fullmatch(r"[0-9]{1,6}", str(value).strip()) or isinstance(value, bool):
            raise ValueError(f"{info.field_name.upper()} must be a whole number of days (0 or more), got {value!r}")
        return int(str(value).strip())

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("twilio_whatsapp_from")
    @classmethod
    def _whatsapp_from(cls, value: str | None) -> str | None:
        if value and not _WHATSAPP_FROM.fullmatch(value):
            raise ValueError(f"TWILIO_WHATSAPP_FROM must look like whatsapp:+4930…, got {value!r}")
        return value

    @field_validator("data_key")
    @classmethod
    def _data_key(cls, value: SecretStr | None) -> SecretStr | None:
        problem = None if value is None else data_key_problem(value.get_secret_value())
        if problem is not None:
            raise ValueError(f"DATA_KEY {problem}")  # never the value
        return value

    @model_validator(mode="after")
    def _data_key_shared(self) -> Settings:
        if self.data_key is None and not self.is_sqlite:
            raise ValueError(
                "DATA_KEY is required with PostgreSQL (every process must use the same key); make one with "
                + NEW_DATA_KEY_HINT
            )
        return self

    @model_validator(mode="after")
    def _together(self) -> Settings:
        if self.telegram_bot_token and not self.telegram_webhook_secret:
            raise ValueError("TELEGRAM_WEBHOOK_SECRET is required when TELEGRAM_BOT_TOKEN is set")
        if bool(self.twilio_account_sid) != bool(self.twilio_auth_token):
            missing = "TWILIO_AUTH_TOKEN" if self.twilio_account_sid else "TWILIO_ACCOUNT_SID"
            raise ValueError(f"{missing} is required when the other Twilio credential is set")
        if self.twilio_account_sid and not (
            self.twilio_sms_from or self.twilio_messaging_service_sid or self.twilio_whatsapp_from
        ):
            raise ValueError(
                "TWILIO_SMS_FROM, TWILIO_MESSAGING_SERVICE_SID or TWILIO_WHATSAPP_FROM is required"
                " with Twilio credentials"
            )
        return self

    # -- derived values ---------------------------------------------------------------

    @property
    def rates(self) -> dict[str, float | None]:
        """Send rates set by the operator, by channel (None = no limit); channels not named keep their default."""
        given = {
            "telegram": self.telegram_rate_per_s,
            "sms": self.sms_segments_per_s,
            "whatsapp": self.whatsapp_rate_per_s,
        }
        return {name: (value or None) for name, value in given.items() if value is not None}

    @property
    def session_timeout(self) -> timedelta:
        return timedelta(hours=self.session_timeout_hours)

    @property
    def reminder_grace(self) -> timedelta:
        return timedelta(minutes=self.reminder_grace_minutes)

    @property
    def sms_price(self) -> float:
        return self.sms_price_per_segment

    @property
    def driver_url(self) -> str:
        return database_url_for_driver(self.database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.driver_url.startswith("sqlite")

    @property
    def database_kind(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://127.0.0.1:{self.port}").rstrip("/")

    def __repr__(self) -> str:  # never show secrets or full database URLs
        return f"Settings(database={self.database_kind}, public_url={self.base_url!r})"

    __str__ = __repr__


def _number(name: str, value: Any, what: str) -> float:
    try:
        number = float(value)
        if number < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {what}, got {value!r}") from None
    return number


def _one_line(error: ValidationError) -> str:
    """The first problem as one line that names the variable."""
    first = error.errors()[0]
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    variable = str(first["loc"][0]).upper() if first.get("loc") else ""
    if variable and variable not in message:
        message = f"{variable}: {message}"
    return message.splitlines()[0]


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check the settings (from ``env`` instead of the process
    environment when given); raise ConfigError naming the variable."""
    try:
        if env is None:
            return Settings()
        known = {name.upper() for name in Settings.model_fields} | {"KIEZSTIMME_I18N_DIR"}
        values = {k.lower(): v for k, v in env.items() if k.upper() in known and str(v).strip()}
        if "kiezstimme_i18n_dir" in values:
            values["KIEZSTIMME_I18N_DIR"] = values.pop("kiezstimme_i18n_dir")
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None
