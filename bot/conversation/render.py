"""Turn an engine :class:`Reply` into text for one channel and one language.

- Choices become buttons where the channel has them, otherwise a numbered
  list (Rasa's idea, driven by :class:`Capabilities` rather than subclassing).
- A long text is split the channel's way (its ``split``, e.g. SMS segments)
  and never left longer than its ``max_text``; choices go with the last part.
- Numbers and dates are formatted with Babel for the resident's locale;
  plural forms follow the language's rules (``ngettext``).
- In right-to-left languages every value placed into a sentence (reference
  codes, numbers, dates, URLs, the resident's own words) is wrapped in Unicode
  first-strong isolates, so a left-to-right value cannot scramble the line.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from babel.dates import format_date, format_time, get_datetime_format
from babel.lists import format_list
from babel.numbers import format_decimal

from bot.conversation.i18n import Catalogs, Translator
from bot.conversation.step import Msg, Reply
from bot.values import Capabilities, Outgoing, OutgoingChoice

log = logging.getLogger(__name__)
FSI, PDI = "\u2068", "\u2069"  # first strong isolate, pop directional isolate


def isolate(value: str) -> str:
    return f"{FSI}{value}{PDI}"


class _Params(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _format(template: str, params: Mapping[str, Any], fallback: str) -> str:
    try:
        return string.Formatter().vformat(template, (), _Params(params))
    except (ValueError, IndexError, KeyError, AttributeError):
        log.warning("broken placeholders in a translation of %r; using the source text", fallback[:40])
        return string.Formatter().vformat(fallback, (), _Params(params))


def format_value(tr: Translator, value: Any) -> str:
    """One parameter, formatted for the translator's locale (a :class:`Msg` with its own parameters)."""
    locale = tr.language.locale
    if isinstance(value, Msg):
        template = tr.gettext(value.msgid)
        if not value.params:
            return template
        return _fill(tr, template, value.msgid, dict(value.params))
    if isinstance(value, tuple):  # a list, joined as the language joins lists ("A, B und C")
        return format_list([format_value(tr, v) for v in value], locale=locale)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return format_decimal(value, locale=locale)
    if isinstance(value, datetime):  # the locale's own "date, time" pattern, e.g. "2. Januar 2022, 18:00"
        pattern = str(get_datetime_format("medium", locale=locale))
        day = format_date(value, format="long", locale=locale)
        return pattern.replace("{1}", day).replace("{0}", format_time(value, format="short", locale=locale))
    if isinstance(value, date):
        return format_date(value, format="long", locale=locale)
    return str(value)


def _fill(tr: Translator, template: str, fallback: str, values: Mapping[str, Any]) -> str:
    """The template with its values formatted (isolated in right-to-left languages).

    A value that ends with a full stop right before the template's own
    (Russian "2 января 2022 г." + ".") loses its own, so no line ends in "г..".
    """
    rtl = tr.language.direction == "rtl"
    params = {}
    for key, value in values.items():
        shown = format_value(tr, value)
        if shown.endswith(".") and ("{" + key + "}.") in template:
            shown = shown[:-1]
        params[key] = isolate(shown) if rtl and not isinstance(value, Msg) else shown
    return _format(template, params, fallback)


class Renderer:
    def __init__(self, catalogs: Catalogs) -> None:
        self.catalogs = catalogs

    def text(self, tr: Translator, reply: Reply, compact: bool = False) -> str:
        if reply.plural is not None:
            n = int(reply.params.get(reply.count or "", 0))
            template = tr.ngettext(reply.msgid, reply.plural, n)
            fallback = reply.msgid if n == 1 else reply.plural
        elif compact and reply.short:
            template, fallback = tr.gettext(reply.short), reply.short
        else:
            template = fallback = tr.gettext(reply.msgid)
        return _fill(tr, template, fallback, reply.params)

    def _multilingual(self, reply: Reply) -> list[Translator]:
        codes = list(reply.languages) or [self.catalogs.default_code, "en"]
        return [self.catalogs.get(code) for code in dict.fromkeys(codes) if code in self.catalogs.translators]

    def render(self, reply: Reply, caps: Capabilities) -> Outgoing:
        if reply.language is None:  # before a language is chosen: a few languages, one per line
            translators = self._multilingual(reply)
            texts: list[str] = []
            for tr in translators:
                t = self.text(tr, reply, caps.compact)
                if t not in texts:
                    texts.append(t)
            body = "\n".join(texts)
            tr = translators[0]
            direction = (
                tr.language.direction
                if all(t.language.direction == tr.language.direction for t in translators)
                else "auto"
            )
        else:
            tr = self.catalogs.get(reply.language)
            body = self.text(tr, reply, caps.compact)
            direction = tr.language.direction
        choices = tuple(OutgoingChoice(c.value, tr.gettext(c.label) if c.translate else c.label) for c in reply.choices)
        if choices and not caps.buttons and not (caps.compact and reply.short and reply.short_without_choices):
            number = (lambda i: isolate(str(i))) if direction == "rtl" else str
            lines = [f"{number(i)} {c.label}" for i, c in enumerate(choices, 1)]
            body = body + ("\n" + " · ".join(lines) if reply.compact else "\n" + "\n".join(lines))
        return Outgoing(text=body, language=reply.language, direction=direction, choices=choices)

    def render_parts(self, reply: Reply, caps: Capabilities) -> list[Outgoing]:
        """The reply as the channel sends it: one or more parts, each within ``caps.max_text``."""
        out = self.render(reply, caps)
        parts = caps.fit(out.text)
        last = len(parts) - 1
        return [
            replace(out, text=text, segments=units, choices=out.choices if i == last else ())
            for i, (text, units) in enumerate(parts)
        ]
