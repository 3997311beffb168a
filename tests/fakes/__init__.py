"""Loopback fake servers (Telegram Bot API, Twilio) for tests; point the real clients at them."""

from .telegram import Call, FakeTelegram
from .twilio import FakeTwilio

__all__ = ["Call", "FakeTelegram", "FakeTwilio"]
