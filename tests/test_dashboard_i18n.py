"""Every text of the dashboard (templates and code under bot/web/admin) is translated into
German, with the same {placeholders}; a missing one fails here (and so in CI)."""

from __future__ import annotations

import string
from pathlib import Path

from babel.messages.extract import extract_from_dir

from bot.config import SHIPPED_I18N_DIR
from bot.web.admin.core import load_translations

ADMIN = Path(__file__).resolve().parent.parent / "bot" / "web" / "admin"
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
KEYWORDS = {"_": None, "N_": None, "gettext": (2,)}


def msgids() -> dict[str, str]:
    found: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ADMIN), method_map=METHODS, keywords=KEYWORDS, options_map={"**/templates/**.html": {}}
    ):
        text = message if isinstance(message, str) else message[0]
        if text:
            found.setdefault(text, f"{filename}:{lineno}")
    return found


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_the_extraction_sees_the_dashboard() -> None:
    found = msgids()
    assert "Sign in" in found and "You are not allowed to do that." in found and "organiser" in found


def test_every_dashboard_text_has_a_german_translation() -> None:
    german = load_translations(SHIPPED_I18N_DIR)["de"]
    missing = [f"{where}: {msgid!r}" for msgid, where in msgids().items() if german.gettext(msgid) == msgid]
    assert not missing, "untranslated (add them to i18n/de/LC_MESSAGES/dashboard*.po):\n" + "\n".join(missing)
    wrong = [
        f"{where}: {msgid!r}"
        for msgid, where in msgids().items()
        if placeholders(german.gettext(msgid)) != placeholders(msgid)
    ]
    assert not wrong, "placeholders differ:\n" + "\n".join(wrong)
