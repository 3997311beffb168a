"""Turn an engine :class:`Reply` into text for one channel and one language.

Choices become buttons where the channel has them, otherwise a numbered list
(Rasa's idea, driven by :class:`Capabilities` rather than subclassing).
"""

from __future__ import annotations

import logging
import string
from typing import Any, Mapping

from bot.engine import Msg, Reply
from bot.i18n import Catalogs, Translator
from channels.base import Capabilities, Outgoing, OutgoingChoice

log = logging.getLogger(__name__)


class _Params(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _format(template: str, params: Mapping[str, Any], fallback: str) -> str:
    try:
        return string.Formatter().vformat(template, (), _Params(params))
    except (ValueError, IndexError, KeyError, AttributeError):
        log.warning("broken placeholders in a translation of %r; using the source text", fallback[:40])
        return string.Formatter().vformat(fallback, (), _Params(params))


class Renderer:
    def __init__(self, catalogs: Catalogs) -> None:
        self.catalogs = catalogs

    def text(self, tr: Translator, reply: Reply) -> str:
        params = {
            k: tr.gettext(v.msgid) if isinstance(v, Msg) else v for k, v in reply.params.items()
        }
        return _format(tr.gettext(reply.msgid), params, reply.msgid)

    def render(self, reply: Reply, caps: Capabilities) -> Outgoing:
        if reply.language is None:  # before a language is chosen: every language, one per line
            texts: list[str] = []
            for tr in self.catalogs:
                t = self.text(tr, reply)
                if t not in texts:
                    texts.append(t)
            body = "\n".join(texts)
            tr = self.catalogs.get(None)
            direction = "ltr"
        else:
            tr = self.catalogs.get(reply.language)
            body = self.text(tr, reply)
            direction = tr.language.direction
        choices = tuple(
            OutgoingChoice(c.value, tr.gettext(c.label) if c.translate else c.label)
            for c in reply.choices
        )
        if choices and not caps.buttons:
            body = body + "\n" + "\n".join(f"{i} {c.label}" for i, c in enumerate(choices, 1))
        return Outgoing(text=body, language=reply.language, direction=direction, choices=choices)
