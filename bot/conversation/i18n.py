"""Gettext catalogs, loaded with Babel and passed around explicitly.

Catalogs live in ``i18n/<catalog>/LC_MESSAGES/kiezstimme.po``. They are
compiled in memory at start-up (no ``.mo`` files to commit or forget to
rebuild). There is no global ``_``: code asks a :class:`Catalogs` object for
the :class:`Translator` of one language.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from bot.conversation.flows import FlowSet, Language

DOMAIN = "kiezstimme"
SOURCE_CATALOG = "en"  # msgids are English; the English catalog may leave msgstr empty


def N_(message: str) -> str:
    """Mark a resident-facing string for extraction; translated later."""
    return message


class Contextual(NamedTuple):
    context: str
    msgid: str


class Plural(NamedTuple):
    singular: str
    plural: str


def pN_(context: str, message: str) -> Contextual:
    """Mark a string with a context (e.g. keywords) for extraction."""
    return Contextual(context, message)


def nN_(singular: str, plural: str) -> Plural:
    """Mark a string with plural forms for extraction."""
    return Plural(singular, plural)


class Translator:
    """Translations of one language."""

    def __init__(self, language: Language, translations: Translations | None) -> None:
        self.language = language
        self._t = translations

    def gettext(self, msgid: str) -> str:
        return self._t.gettext(msgid) if self._t else msgid

    def pgettext(self, context: str, msgid: str) -> str:
        return str(self._t.pgettext(context, msgid)) if self._t else msgid

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        if self._t:
            return self._t.ngettext(singular, plural, n)
        return singular if n == 1 else plural


def po_path(i18n_dir: Path, catalog: str) -> Path:
    return Path(i18n_dir) / catalog / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(path: Path, locale: str | None = None) -> Catalog:
    with open(path, "rb") as fh:
        return read_po(fh, locale=locale, domain=DOMAIN)


def _compile(catalog: Catalog) -> Translations:
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return Translations(fp=buf, domain=DOMAIN)


@dataclass
class Catalogs:
    """All languages' translators, keyed by BCP 47 code."""

    translators: dict[str, Translator]

    @classmethod
    def load(cls, flows: FlowSet, i18n_dir: Path) -> Catalogs:
        translators: dict[str, Translator] = {}
        for lang in flows.languages:
            path = po_path(i18n_dir, lang.catalog)
            translations = None
            if path.exists():
                translations = _compile(read_catalog(path, locale=lang.locale))
            translators[lang.code] = Translator(lang, translations)
        return cls(translators)

    @property
    def default_code(self) -> str:
        return next(iter(self.translators))

    def get(self, code: str | None) -> Translator:
        if code in self.translators:
            return self.translators[code]
        return next(iter(self.translators.values()))

    def __iter__(self):
        return iter(self.translators.values())


@dataclass(frozen=True)
class CatalogReport:
    code: str
    catalog: str
    total: int
    missing: list[tuple[str, str]]  # (msgid, where it is used)
    fuzzy: list[str]
    path: Path


def check_catalogs(flows: FlowSet, i18n_dir: Path, required: list[tuple[str, str]]) -> list[CatalogReport]:
    """Compare each language's catalog with the strings the product uses.

    ``required`` is a list of (msgid-or-context-key, where) pairs; a context key
    is written ``context\\x04msgid`` as gettext does.
    """
    reports = []
    for lang in flows.languages:
        path = po_path(i18n_dir, lang.catalog)
        missing: list[tuple[str, str]] = []
        fuzzy: list[str] = []
        if lang.catalog == SOURCE_CATALOG:
            reports.append(CatalogReport(lang.code, lang.catalog, len(required), [], [], path))
            continue
        if not path.exists():
            reports.append(CatalogReport(lang.code, lang.catalog, len(required), list(required), [], path))
            continue
        catalog = read_catalog(path, locale=lang.locale)
        for key, where in required:
            context, _, msgid = key.rpartition("\x04")
            message = catalog.get(msgid, context=context or None)
            if (
                message is None
                or not message.string
                or (isinstance(message.string, (tuple, list)) and not all(message.string))
            ):
                missing.append((key.replace("\x04", " | "), where))
            elif message.fuzzy:
                fuzzy.append(key.replace("\x04", " | "))
        reports.append(CatalogReport(lang.code, lang.catalog, len(required), missing, fuzzy, path))
    return reports
