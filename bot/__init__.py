"""Kiezstimme — a phone-first, multilingual participation bot for cities."""

__version__ = "0.1.0"
