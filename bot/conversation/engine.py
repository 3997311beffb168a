"""The conversation engine: one pure step.

``Engine.step(conversation, input, context)`` takes a typed input — a
resident's :class:`Message`, a :class:`ReminderDue`, a
:class:`SessionExpired` — and returns the new conversation, the replies
(message ids + parameters + choices, in a language) and effects (store this
idea, erase this resident, remind them, ...). It does no I/O, reads no clock
(``context.now``) and keeps no globals; the service wires it to storage and
channels. Keywords are handled before any flow routing (``keywords.py``),
each node kind by its own small handler (``nodes.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.conversation import keywords, nodes
from bot.conversation import texts as M
from bot.conversation.flows import Choice, FlowSet, Node
from bot.conversation.i18n import Catalogs
from bot.conversation.language import detect
from bot.conversation.matching import match, normalise
from bot.conversation.session import Conversation, Dialogue, Profile
from bot.conversation.step import (
    Context,
    Effect,
    Input,
    Message,
    Msg,
    Outcome,
    Remind,
    ReminderDue,
    Reply,
    ReplyChoice,
    SessionExpired,
)

__all__ = ["Engine", "Run", "normalise"]

MAX_HOPS = 64
PROFILE_FIELDS = ("language", "consented", "updates")


class Engine:
    def __init__(self, flows: FlowSet, catalogs: Catalogs) -> None:
        self.flows = flows
        self.catalogs = catalogs
        self.language_node = next((n.id for n in flows.nodes.values() if n.options == "languages"), flows.entry)
        self._keywords = keywords.keyword_index(catalogs)

    def keyword(self, message: Message) -> keywords.Keyword | None:
        return keywords.find(self._keywords, message)

    def step(self, conversation: Conversation, given: Input, ctx: Context) -> Outcome:
        """One step for one typed input; the conversation passed in is not changed."""
        if isinstance(given, ReminderDue):  # reads the conversation, changes nothing: no copy, no timestamp
            run = Run(self, conversation, ctx)
            run.reminder_due(given)
            return Outcome(run.conv, run.replies, run.effects)
        run = Run(self, conversation.copy(), ctx)
        if isinstance(given, SessionExpired):
            run.expire()
        else:
            run.handle(given)
        run.conv.dialogue.updated_at = ctx.now.isoformat()
        return Outcome(run.conv, run.replies, run.effects)

    def supported_language(self, hint: str | None) -> str | None:
        if not hint:
            return None
        hint = hint.replace("_", "-").lower()
        codes = [lang.code for lang in self.flows.languages]
        if hint in codes:
            return hint
        base = hint.split("-")[0]
        return base if base in codes else None


class Run:
    """The mutable state of one step, and what node handlers may do with it."""

    def __init__(self, engine: Engine, conv: Conversation, ctx: Context) -> None:
        self.e = engine
        self.flows = engine.flows
        self.conv = conv
        self.ctx = ctx
        self.replies: list[Reply] = []
        self.effects: list[Effect] = []

    @property
    def p(self) -> Profile:
        return self.conv.profile

    @property
    def d(self) -> Dialogue:
        return self.conv.dialogue

    def say(
        self,
        msgid: str | tuple[str, str],
        params: Mapping[str, Any] | None = None,
        choices: tuple[ReplyChoice, ...] = (),
        language: Any = ...,
        count: str | None = None,
        languages: tuple[str, ...] = (),
        short: str | None = None,
    ) -> None:
        lang = self.p.language if language is ... else language
        singular, plural = (msgid, None) if isinstance(msgid, str) else msgid
        self.replies.append(
            Reply(
                singular, lang, dict(params or {}), choices, plural=plural, count=count, languages=languages, short=short
            )
        )

    # -- inputs ----------------------------------------------------------------

    def handle(self, message: Message) -> None:
        kw = self.e.keyword(message)
        if self.p.stopped:
            if kw and kw[0] in ("start", "delete"):
                keywords.handle(self, kw, message)
            return  # honour STOP: nothing is sent until START
        if self.p.language is None and self.d.node is None:
            self.p.language = self.e.supported_language(message.locale_hint)
            if self.p.language is None and not kw:
                self.guess_language(message.text)
        if kw:
            keywords.handle(self, kw, message)
            return
        if self.d.pending == "confirm_delete":
            keywords.confirm_delete(self, message)
            return
        if self.d.pending == "resume":
            keywords.resume(self, message)
            return
        node = self.current()
        if node is None:
            self.enter(self.home())
            return
        if self.expired() and node.id != self.flows.menu:
            self.expire()
            return
        nodes.WAITING[node.kind].answer(self, node, message)

    def expire(self) -> None:
        """Back after a long time in the middle of a dialogue: continue or start over?"""
        node = self.current()
        if node is None or node.id == self.flows.menu or self.p.stopped:
            return
        keywords.ask_resume(self)

    def reminder_due(self, due: ReminderDue) -> None:
        """Which reminder fits: personal if they left this phase's dialogue
        unfinished, none for now if they are in the middle of one."""
        node = self.current()
        last = datetime.fromisoformat(self.d.updated_at) if self.d.updated_at else None
        if node is not None and last is not None and last > self.ctx.now - due.idle_after:
            self.effects.append(Remind("later"))  # busy: do not interrupt
        elif node is not None and node.flow in due.dialogues and node.id != f"{node.flow}.start":
            self.effects.append(Remind("personal"))
        else:
            self.effects.append(Remind("general"))

    def guess_language(self, text: str | None) -> bool:
        """Pick the language from a free-text message, or narrow the choice. True if picked."""
        candidates = detect(text, self.flows.languages)
        if len(candidates) == 1:
            self.p.language = candidates[0]
            self.d.vars.pop("_language_candidates", None)
            return True
        if candidates:
            self.d.vars["_language_candidates"] = candidates
        return False

    def current(self) -> Node | None:
        if self.d.node and self.d.node in self.flows.nodes:
            return self.flows.nodes[self.d.node]
        self.d.node = None  # a stored session that points nowhere starts afresh
        return None

    def home(self) -> str:
        return self.flows.menu if self.p.consented else self.flows.entry

    def expired(self) -> bool:
        if not self.d.updated_at:
            return False
        last = datetime.fromisoformat(self.d.updated_at)
        return self.ctx.now - last > self.ctx.session_timeout

    def reset(self) -> None:
        self.conv.dialogue = type(self.d)()

    # -- walking the flow ----------------------------------------------------------------

    def enter(self, target: str | None, allow_return: bool = True) -> None:
        for _ in range(MAX_HOPS):
            if target is None:
                self.reset()
                return
            node = self.flows.nodes[target]
            if (node.waits_for_input or node.kind == "end") and allow_return and self.d.return_to:
                target, self.d.return_to = self.d.return_to, None
                allow_return = False
                continue
            if node.kind == "ask_media" and not self.ctx.accepts_media:
                target = node.next
                continue
            if node.waits_for_input:
                self.d.node = node.id
                self.d.misses = 0
                self.prompt(node)
                return
            if node.kind == "end":
                if node.text:
                    self.say(node.text, self.params(node))
                self.reset()
                return
            target = nodes.PASSING[node.kind](self, node)
        raise RuntimeError(f"flow loops without waiting for input near {target!r}")

    def advance(self, target: str | None, returns_to: str | None = None) -> None:
        self.d.misses = 0
        if returns_to:
            self.d.return_to = returns_to
            self.enter(target, allow_return=False)
        else:
            self.enter(target)

    def too_late(self, dialogue: str) -> bool:
        """Past the phase's end and its grace: an answer can no longer be taken."""
        if self.flows.process.is_open(dialogue, self.ctx.now):
            return False
        phase = self.flows.process.phase_for(dialogue, self.ctx.now)
        if phase is None or self.ctx.now <= phase.ends + self.flows.process.grace:
            return False
        self.say(M.TOO_LATE, {"date": phase.ends.astimezone(self.ctx.zone).date()})
        return True

    def lookup(self, name: str) -> str:
        value = getattr(self.p, name) if name in PROFILE_FIELDS else self.d.vars.get(name)
        if value is None or value is False:
            return "none" if value is None else "no"
        if value is True:
            return "yes"
        return str(value)

    def params(self, node: Node) -> dict[str, Any]:
        out: dict[str, Any] = {}
        v = self.d.vars
        for key, ref in node.params.items():
            name = ref.lstrip("$")
            if f"{name}__label" in v:
                out[key] = Msg(v[f"{name}__label"])
            elif v.get(name):
                out[key] = v[name]
            elif v.get(f"{name}__media"):
                kind = v[f"{name}__media"][0]["kind"]
                out[key] = Msg(M.VOICE_PLACEHOLDER if kind == "voice" else M.PHOTO_PLACEHOLDER)
            else:
                out[key] = Msg(M.NONE_GIVEN)
        return out

    # -- asking --------------------------------------------------------------------

    def choice_list(self, node: Node) -> tuple[Choice, ...]:
        choices = tuple(
            c
            for c in self.flows.choices_of(node)
            if not c.dialogue or self.flows.process.is_open(c.dialogue, self.ctx.now)
        )
        candidates = self.d.vars.get("_language_candidates")
        if node.options == "languages" and candidates:
            choices = tuple(c for c in choices if c.value in candidates)
        return choices

    def choices(self, node: Node) -> tuple[ReplyChoice, ...]:
        if node.kind in ("ask_media", "ask_text"):
            return (ReplyChoice("skip", M.SKIP),) if node.optional else ()
        translate = node.options != "languages"
        return tuple(ReplyChoice(c.value, c.label, translate) for c in self.choice_list(node))

    def prompt(self, node: Node) -> None:
        nodes.WAITING[node.kind].prompt(self, node)

    def ask(self, node: Node) -> None:
        """The node's question with its choices (in every candidate language before one is chosen)."""
        if node.multilingual and self.p.language is None:
            candidates = tuple(self.d.vars.get("_language_candidates") or ())
            self.say(
                node.text or "",
                self.params(node),
                self.choices(node),
                language=None,
                languages=candidates,
                short=node.sms_text,
            )
        else:
            self.say(node.text or "", self.params(node), self.choices(node), short=node.sms_text)

    def match(
        self, choices: tuple[Choice, ...], message: Message, extra_words: Mapping[str, tuple[str, str]] | None = None
    ) -> Choice | None:
        langs = [self.e.catalogs.get(code) for code in {self.p.language, "en"} if code]
        return match(choices, message, langs, extra_words)

    def miss(self) -> None:
        self.d.misses += 1

    def not_understood(
        self,
        node: Node,
        msgid: str | tuple[str, str] = M.NOT_UNDERSTOOD,
        params: Mapping[str, Any] | None = None,
        reprompt: bool = True,
        count: str | None = None,
    ) -> None:
        self.miss()
        lang = self.p.language  # None before a language is chosen: say it in all
        candidates = tuple(self.d.vars.get("_language_candidates") or ())
        self.say(msgid, params, language=lang, count=count, languages=candidates)
        if reprompt:
            self.prompt(node)
        if self.d.misses % 3 == 0:
            self.say(M.STUCK, language=lang, languages=candidates)
