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
from dataclasses import asdict
from datetime import datetime
from typing import Any

from bot.conversation import keywords, nodes
from bot.conversation import texts as M
from bot.conversation.flows import IDEA_ANSWER as IDEA_VAR
from bot.conversation.flows import Choice, FlowSet, Node
from bot.conversation.i18n import Catalogs
from bot.conversation.language import Identifier, detect
from bot.conversation.matching import Match, looks_like_idea, match, normalise
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

__all__ = ["Engine", "Run", "contact_of", "normalise"]

MAX_HOPS = 64
ECHO = 200  # at most this much of a resident's own text is repeated back to them
PROFILE_FIELDS = ("language", "consented", "updates", "described")
MAX_ALBUM = 10  # photos of one album kept for one answer (Telegram and MMS albums hold at most 10)
UNSUPPORTED = {
    "location": M.UNSUPPORTED_LOCATION,
    "contact": M.UNSUPPORTED_CONTACT,
    "poll": M.UNSUPPORTED_POLL,
    "sticker": M.UNSUPPORTED_STICKER,
}
YES_NO = (Choice("yes", M.YES, means="yes"), Choice("no", M.NO, means="no"))


def contact_of(flows: FlowSet) -> Msg:
    """The person residents can reach, as a translatable sentence part."""
    c = flows.contact
    if c is None:
        return Msg(M.NONE_GIVEN)
    return Msg(M.CONTACT, (("phone", c.phone), ("email", c.email), ("hours", Msg(c.hours))))


class Engine:
    def __init__(self, flows: FlowSet, catalogs: Catalogs) -> None:
        self.flows = flows
        self.catalogs = catalogs
        self.language_node = next((n.id for n in flows.nodes.values() if n.options == "languages"), flows.entry)
        self.idea_node = next((n for n in flows.nodes.values() if n.kind == "ask_text" and n.save_as == IDEA_VAR), None)
        self._keywords = keywords.keyword_index(catalogs)
        self.identifier = Identifier(flows.languages)
        self.consent_node = next(
            (
                n.id
                for n in flows.nodes.values()
                if any(
                    c.next and flows.nodes.get(c.next) and flows.nodes[c.next].do == "record_consent" for c in n.choices
                )
            ),
            None,
        )

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
        compact: bool = False,
        short_without_choices: bool = False,
    ) -> None:
        lang = self.p.language if language is ... else language
        singular, plural = (msgid, None) if isinstance(msgid, str) else msgid
        self.replies.append(
            Reply(
                singular,
                lang,
                dict(params or {}),
                choices,
                plural=plural,
                count=count,
                languages=languages,
                short=short,
                compact=compact,
                short_without_choices=short_without_choices,
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
        if self.p.consent_outdated and self.d.pending is None and not self.at_consent():
            self.ask_consent_again()
            return
        if message.unsupported and not message.text and message.media is None:
            self.unsupported(message.unsupported)
            return
        if self.album_continues(message):
            return
        if self.d.pending == "confirm_delete":
            keywords.confirm_delete(self, message)
            return
        if self.d.pending == "resume":
            keywords.resume(self, message)
            return
        node = self.current()
        if node is None:
            self.first_message(message)
            return
        if self.expired() and node.id != self.flows.menu and not self.fits(node, message):
            self.expire()  # back after a long time with something that is no answer: continue or start over?
            return
        self.answer(node, message)

    def fits(self, node: Node, message: Message) -> bool:
        """The message clearly answers the open question (then a returning resident is not asked to resume)."""
        if message.media is not None:
            return message.media.kind in node.accept_media
        if node.kind == "ask_choice":
            found = self.match(self.choice_list(node), message)
            return found is not None and found.sure and (found.coverage >= 0.5 or not looks_like_idea(message.text))
        if node.kind == "ask_text":
            return looks_like_idea(message.text)
        if node.kind == "rate_statements" and (self.d.vars.get("_rs") or {}).get("phase", "rate") == "rate":
            return self.picked(node.choices, message) is not None
        return False

    def at_consent(self) -> bool:
        node = self.current()
        return node is not None and node.id == self.e.consent_node

    def ask_consent_again(self) -> None:
        """The privacy notice changed since they agreed: nothing new is stored before they agree
        again; afterwards they are back where they were."""
        node = self.current()
        if self.e.consent_node is None:
            return
        self.say(M.NOTICE_CHANGED)
        self.d.return_to = node.id if node is not None and node.waits_for_input else None
        self.enter(self.e.consent_node, allow_return=False)

    def answer(self, node: Node, message: Message) -> None:
        if self.d.pending == "did_you_mean":
            if nodes.did_you_mean(self, node, message):
                return
        nodes.WAITING[node.kind].answer(self, node, message)

    def first_message(self, message: Message) -> None:
        """Someone writes with no dialogue open: an idea typed straight away is kept, never thrown away."""
        if not looks_like_idea(message.text):
            self.enter(self.home())
        elif self.p.consented:
            self.offer_idea(message.text or "", back=None)
        else:
            self.d.vars["kept_idea"] = (message.text or "").strip()  # offered once they agreed
            self.enter(self.home())

    def can_offer_idea(self) -> bool:
        """Free text may be taken as an idea: the idea dialogue is open and no idea is in this dialogue yet."""
        idea = self.e.idea_node
        return (
            idea is not None
            and self.flows.offer_idea is not None
            and self.p.consented
            and not self.d.vars.get(IDEA_VAR)
            and self.flows.process.is_open(idea.flow, self.ctx.now)
        )

    def offer_idea(self, text: str, back: str | None) -> None:
        """Ask whether free text is the resident's idea; ``back``: where a "no" returns to."""
        if not self.can_offer_idea():
            self.enter(self.home())
            return
        self.d.vars["kept_idea"] = text.strip()
        if back:
            self.d.vars["_back"] = back
        self.advance(self.flows.offer_idea)

    def unsupported(self, kind: str) -> None:
        """A location, contact, poll or sticker: say what we can use, ask again; not a miss."""
        candidates = tuple(self.d.vars.get("_language_candidates") or ())
        self.say(UNSUPPORTED.get(kind, M.UNSUPPORTED_OTHER), language=self.p.language, languages=candidates)
        node = self.current()
        if self.d.pending:
            keywords.reprompt_or_home(self)
        elif node is not None:
            self.prompt(node)
        else:
            self.enter(self.home())

    def album_continues(self, message: Message) -> bool:
        """The next photo of an album whose first photo was just taken: kept with it, no reply."""
        album = self.d.vars.get("_album")
        if not (album and message.album and message.album == album.get("id") and message.media is not None):
            return False
        if message.media.kind != "photo":
            return False
        kept = self.d.vars.setdefault(album["key"], [])
        if len(kept) < MAX_ALBUM:
            kept.append(asdict(message.media))
        elif not album.get("told"):
            album["told"] = True
            self.say(M.ALBUM_LIMIT, {"count": MAX_ALBUM}, count="count")
        return True

    def took_media(self, key: str, message: Message) -> None:
        """The other photos of the same message join the one just taken; remember the album,
        so its photos that come as messages of their own join it too."""
        kept = self.d.vars.setdefault(key, [])
        for media in message.more_media:
            if media.kind == "photo" and len(kept) < MAX_ALBUM:
                kept.append(asdict(media))
        if message.album:
            self.d.vars["_album"] = {"id": message.album, "key": key}
        else:
            self.d.vars.pop("_album", None)

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
        candidates = detect(text, self.flows.languages, self.e.identifier)
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
            if node.kind == "ask_media" and (not self.ctx.accepts_media or self.has_media(node.accept_media)):
                target = node.next  # no media here, or the answer before already brought a photo
                continue
            if node.kind == "ask_text" and node.save_as in self.d.vars.get("_prefilled", ()):
                self.d.vars["_prefilled"].remove(node.save_as)  # answered already (an idea typed earlier)
                target = node.next
                continue
            if node.nothing_open and not self.any_dialogue_open(node):
                target = node.nothing_open
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

    def has_media(self, kinds: tuple[str, ...]) -> bool:
        return any(
            m.get("kind") in kinds
            for key, value in self.d.vars.items()
            if key.endswith("__media") and isinstance(value, list)
            for m in value
        )

    def any_dialogue_open(self, node: Node) -> bool:
        return any(
            c.dialogue and self.flows.process.is_open(c.dialogue, self.ctx.now) for c in self.flows.choices_of(node)
        )

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
                value = v[name]
                # an echo of the resident's own long text is shortened (every SMS segment costs)
                out[key] = value[: ECHO - 1].rstrip() + "…" if isinstance(value, str) and len(value) > ECHO else value
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
                short_without_choices=not node.sms_choices,
            )
        else:
            self.say(
                node.text or "",
                self.params(node),
                self.choices(node),
                short=node.sms_text,
                short_without_choices=not node.sms_choices,
            )

    def match(
        self,
        choices: tuple[Choice, ...],
        message: Message,
        extra_words: Mapping[str, tuple[str, str]] | None = None,
        partial: bool = True,
    ) -> Match | None:
        codes = dict.fromkeys(c for c in (self.p.language, self.d.vars.get("_reply_language"), "en") if c)
        langs = [self.e.catalogs.get(code) for code in codes]
        return match(choices, message, langs, extra_words, partial)

    def picked(self, choices: tuple[Choice, ...], message: Message) -> Choice | None:
        """Only a sure match (for questions that do not ask "Did you mean …?")."""
        found = self.match(choices, message)
        return found.choice if found is not None and found.sure else None

    # -- what residents are told about the process and who to ask -------------------

    def contact(self) -> Msg:
        return contact_of(self.flows)

    def phase_now(self) -> Msg:
        """What is open now, else what opens next, else that it is over."""
        process, now, zone = self.flows.process, self.ctx.now, self.ctx.zone
        open_now = [p for p in process.phases if p.state(now) == "open"]
        if open_now:
            p = open_now[0]
            return Msg(M.PHASE_OPEN, (("phase", Msg(p.name)), ("date", p.ends.astimezone(zone).date())))
        upcoming = sorted((p for p in process.phases if p.state(now) == "upcoming"), key=lambda p: p.starts)
        if upcoming:
            p = upcoming[0]
            return Msg(M.PHASE_NEXT, (("phase", Msg(p.name)), ("date", p.starts.astimezone(zone).date())))
        return Msg(M.PHASES_OVER)

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
        """Say why the answer was not taken, in the channel's own way of answering; the
        second time the options again, compactly; the third time, HELP and a person."""
        self.miss()
        lang = self.p.language  # None before a language is chosen: say it in all
        candidates = tuple(self.d.vars.get("_language_candidates") or ())
        if msgid == M.NOT_UNDERSTOOD and self.ctx.buttons:
            msgid = M.NOT_UNDERSTOOD_BUTTONS
        choices = self.choices(node) if node.kind in ("ask_choice",) else ()
        if self.d.misses % 3 == 0:
            self.say(msgid, params, language=lang, count=count, languages=candidates)
            self.say(M.STUCK, {"contact": self.contact()}, choices, language=lang, languages=candidates, compact=True)
        elif self.d.misses % 3 == 2 and choices:
            self.say(msgid, params, language=lang, count=count, languages=candidates)
            self.say(M.CHOOSE_FROM, {}, choices, language=lang, languages=candidates, compact=True)
        else:
            self.say(msgid, params, language=lang, count=count, languages=candidates)
            if reprompt:
                self.prompt(node)
