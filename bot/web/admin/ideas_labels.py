"""How the moderation pages name things: topics, districts, statements and phases as the
flows label them (translated through the bot's own catalogs into the dashboard's language),
languages by their own names, statuses and ratings in the dashboard's words; and the filter
choices built from the same data."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from bot.app import Kiezstimme
from bot.conversation.i18n import Translator
from bot.storage.moderation import NO_DISTRICT, STATUSES
from bot.web.admin.core import DASHBOARD, N_, channel_label, gettext, ui_language
from channels import registry

STATUS_LABELS = {"new": N_("new"), "approved": N_("approved"), "hidden": N_("hidden"), "spam": N_("spam")}
RATING_LABELS = {"agree": N_("agrees"), "disagree": N_("disagrees"), "unsure": N_("not sure")}


@dataclass
class Labels:
    """Labels in the UI language of one request."""

    request: web.Request

    @property
    def kz(self) -> Kiezstimme:
        return self.request.app[DASHBOARD].kz

    @property
    def flows_tr(self) -> Translator:
        return self.kz.catalogs.get(ui_language(self.request))  # the flows' labels in de or en

    def _option(self, kind: str, value: str | None) -> str:
        for option in self.kz.flows.options.get(kind, ()):
            if option.id == value:
                return self.flows_tr.gettext(option.label)
        return value or ""

    def topic(self, value: str) -> str:
        return self._option("topics", value)

    def district(self, value: str | None) -> str:
        return self._option("districts", value) if value else gettext(self.request, "not given")

    def statement(self, value: str) -> str:
        return self._option("statements", value)

    def language(self, code: str) -> str:
        lang = self.kz.flows.language(code)
        return f"{lang.name} ({code})" if lang else code

    def channel(self, value: str) -> str:
        return channel_label(self.request, value)

    def status(self, value: str) -> str:
        return gettext(self.request, STATUS_LABELS[value]) if value in STATUS_LABELS else value

    def rating(self, value: str) -> str:
        return gettext(self.request, RATING_LABELS[value]) if value in RATING_LABELS else value

    # --- filter choices: (value, label) ------------------------------------------------------

    def topics(self) -> list[tuple[str, str]]:
        return [(o.id, self.flows_tr.gettext(o.label)) for o in self.kz.flows.options.get("topics", ())]

    def districts(self) -> list[tuple[str, str]]:
        out = [(o.id, self.flows_tr.gettext(o.label)) for o in self.kz.flows.options.get("districts", ())]
        if not any(value == NO_DISTRICT for value, _ in out):
            out.append((NO_DISTRICT, gettext(self.request, "not given")))
        return out

    def statements(self) -> list[tuple[str, str]]:
        return [(o.id, self.flows_tr.gettext(o.label)) for o in self.kz.flows.options.get("statements", ())]

    def languages(self) -> list[tuple[str, str]]:
        return [(lang.code, f"{lang.name} ({lang.code})") for lang in self.kz.flows.languages]

    def channels(self) -> list[tuple[str, str]]:
        return [(spec.name, self.channel(spec.name)) for spec in registry.specs()]

    def statuses(self) -> list[tuple[str, str]]:
        return [(s, self.status(s)) for s in STATUSES]

    def ratings(self) -> list[tuple[str, str]]:
        return [(r, self.rating(r)) for r in RATING_LABELS]

    def phases(self) -> list[tuple[str, str]]:
        return [(p.id, self.flows_tr.gettext(p.name)) for p in self.kz.flows.process.phases]
