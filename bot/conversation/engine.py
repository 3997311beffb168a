"""The conversation engine: one pure step.

``Engine.step(conversation, message, context)`` returns the new conversation,
the replies (message ids + parameters + choices, in a language) and effects
(store this idea, erase this resident, ...). It does no I/O, reads no clock
(``context.now``) and keeps no globals; the service wires it to storage and
channels. Keywords (STOP, START, HELP, LANGUAGE, MENU, DELETE) are handled
before any flow routing.
"""

from __future__ import annotations

import copy
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo
from typing import Any, Mapping

from bot.conversation import texts as M
from bot.values import Media
from bot.conversation.session import Conversation, Dialogue, Profile
from bot.conversation.step import (
    Context, EraseResident, Message, Msg, Outcome, RecordConsent, Reply, ReplyChoice, StoreFeedback, StoreIdea, Effect,
)
from bot.conversation.flows import Choice, FlowSet, Node
from bot.conversation.language import detect
from bot.conversation.i18n import Catalogs

MAX_HOPS = 64
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
# Arabic and Persian keyboards type yeh and kaf differently; compare them as one
_LETTERS = str.maketrans({"ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه"})
_QUOTES = "\"'«»“”„‘’‚‹›"
PROFILE_FIELDS = ("language", "consented", "updates")


# --- text helpers -------------------------------------------------------------


def normalise(text: str) -> str:
    """Casefold, native digits to ASCII, trim spaces and closing punctuation."""
    text = unicodedata.normalize("NFKC", text).translate(_DIGITS).translate(_LETTERS).strip()
    text = text.strip(_QUOTES + " ").lstrip("/").rstrip(" .!?؟。،,").strip(_QUOTES + " ")
    # casefold, then drop the combining dot that Turkish İ leaves behind ("DİL" -> "dil")
    return " ".join(text.split()).casefold().replace("\u0307", "")


def _words(raw: str) -> set[str]:
    return {normalise(w) for w in raw.split("|") if w.strip()}


def media_problem(media: Media) -> str:
    return M.MEDIA_TOO_LARGE if media.kind == "too_large" else M.MEDIA_NOT_ACCEPTED


def _letters(text: str) -> int:
    return sum(1 for ch in text if unicodedata.category(ch).startswith("L"))


# --- the engine -------------------------------------------------------------------


class Engine:
    def __init__(self, flows: FlowSet, catalogs: Catalogs) -> None:
        self.flows = flows
        self.catalogs = catalogs
        self.language_node = next(
            (n.id for n in flows.nodes.values() if n.options == "languages"), flows.entry
        )
        self._keywords = self._build_keyword_index()

    def _build_keyword_index(self) -> dict[str, tuple[str, str | None]]:
        """normalised word -> (keyword, language it belongs to or None if shared)."""
        index: dict[str, tuple[str, str | None]] = {}
        owners: dict[str, set[str]] = {}
        for keyword, (ctx, msgid) in M.KEYWORDS.items():
            for tr in self.catalogs:
                for word in _words(tr.pgettext(ctx, msgid)):
                    owners.setdefault(word, set()).add(tr.language.code)
                    index[word] = (keyword, None)
            for word in _words(msgid):
                owners.setdefault(word, set()).add("en")
                index[word] = (keyword, None)
            for word in _words(M.GERMAN_KEYWORDS[keyword]):
                owners.setdefault(word, set()).add("de")
                index[word] = (keyword, None)
        for word, (keyword, _) in index.items():
            langs = owners[word]
            index[word] = (keyword, next(iter(langs)) if len(langs) == 1 else ("en" if "en" in langs else None))
        return index

    def keyword(self, message: Message) -> tuple[str, str | None] | None:
        if message.text is None or message.choice is not None:
            return None
        return self._keywords.get(normalise(message.text))

    # -- public step --------------------------------------------------------

    def step(self, conversation: Conversation, message: Message, ctx: Context) -> Outcome:
        run = _Run(self, copy.deepcopy(conversation), ctx)
        run.handle(message)
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


class _Run:
    """The mutable state of one step."""

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
    ) -> None:
        lang = self.p.language if language is ... else language
        singular, plural = (msgid, None) if isinstance(msgid, str) else msgid
        self.replies.append(
            Reply(singular, lang, dict(params or {}), choices, plural=plural, count=count, languages=languages)
        )

    # -- routing ---------------------------------------------------------------

    def handle(self, message: Message) -> None:
        kw = self.e.keyword(message)
        if self.p.stopped:
            if kw and kw[0] in ("start", "delete"):
                self.keyword(kw, message)
            return  # honour STOP: nothing is sent until START
        if self.p.language is None and self.d.node is None:
            self.p.language = self.e.supported_language(message.locale_hint)
            if self.p.language is None and not kw:
                self.guess_language(message.text)
        if kw:
            self.keyword(kw, message)
            return
        if self.d.pending == "confirm_delete":
            self.confirm_delete(message)
            return
        if self.d.pending == "resume":
            self.resume(message)
            return
        node = self.current()
        if node is None:
            self.enter(self.home())
            return
        if self.expired() and node.id != self.flows.menu:
            self.d.pending = "resume"
            self.say(M.RESUME_PROMPT, choices=self.resume_choices())
            return
        self.answer(node, message)

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

    # -- keywords --------------------------------------------------------------

    def keyword(self, kw: tuple[str, str | None], message: Message) -> None:
        name, kw_lang = kw
        if self.p.language is None and kw_lang:
            lang = kw_lang if self.e.supported_language(kw_lang) else None
        else:
            lang = self.p.language
        if name == "stop":
            self.p.stopped = True
            self.say(M.STOPPED, language=lang or self.flows.default_language.code)
        elif name == "start":
            if self.p.stopped:
                self.p.stopped = False
                self.say(M.STARTED, language=lang or self.flows.default_language.code)
            self.reprompt_or_home()
        elif name == "help":
            self.say(M.HELP, {"operator": self.flows.operator}, language=lang or self.flows.default_language.code)
            self.reprompt_or_home()
        elif name == "menu":
            self.reset()
            self.enter(self.home())
        elif name == "language":
            current = self.current()
            self.d.pending = None
            self.d.misses = 0
            self.d.return_to = current.id if current and current.id != self.e.language_node else None
            self.enter(self.e.language_node, allow_return=False)
        elif name == "delete":
            self.d.pending = "confirm_delete"
            if self.p.language is None and lang:
                self.d.vars["_reply_language"] = lang  # answer in the keyword's language
            self.say(M.CONFIRM_DELETE, choices=self.delete_choices(), language=self.reply_language())

    def reply_language(self) -> str:
        """The resident's language, or before they chose one the best guess."""
        return self.p.language or self.d.vars.get("_reply_language") or self.flows.default_language.code

    def reprompt_or_home(self) -> None:
        if self.d.pending == "confirm_delete":
            self.say(M.CONFIRM_DELETE, choices=self.delete_choices(), language=self.reply_language())
            return
        node = self.current()
        if node is None:
            self.enter(self.home())
        else:
            self.prompt(node)

    def delete_choices(self) -> tuple[ReplyChoice, ...]:
        return (ReplyChoice("yes", M.DELETE_YES), ReplyChoice("no", M.DELETE_NO))

    def resume_choices(self) -> tuple[ReplyChoice, ...]:
        return (ReplyChoice("continue", M.RESUME_CONTINUE), ReplyChoice("restart", M.RESUME_RESTART))

    def confirm_delete(self, message: Message) -> None:
        choices = (Choice("yes", M.DELETE_YES), Choice("no", M.DELETE_NO))
        picked = self.match(choices, message)
        lang = self.reply_language()
        if picked is None:
            self.miss()
            self.say(M.CONFIRM_DELETE, choices=self.delete_choices(), language=lang)
            return
        self.d.vars.pop("_reply_language", None)
        if picked.value == "yes":
            self.effects.append(EraseResident())
            self.conv = Conversation()
            self.say(M.DELETED, language=lang)
        else:
            self.d.pending = None
            self.say(M.NOT_DELETED, language=lang)
            self.reprompt_or_home()

    def resume(self, message: Message) -> None:
        choices = (
            Choice("continue", M.RESUME_CONTINUE),
            Choice("restart", M.RESUME_RESTART),
        )
        extra = {"continue": M.CONTINUE_WORDS, "restart": M.RESTART_WORDS}
        picked = self.match(choices, message, extra_words=extra)
        if picked is None:
            self.miss()
            self.say(M.RESUME_PROMPT, choices=self.resume_choices())
            return
        self.d.pending = None
        self.d.misses = 0
        if picked.value == "continue":
            self.reprompt_or_home()
        else:
            self.reset()
            self.enter(self.home())

    # -- nodes ------------------------------------------------------------------

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
            if node.kind == "say":
                self.say(node.text or "", self.params(node))
                target = node.next
            elif node.kind == "end":
                if node.text:
                    self.say(node.text, self.params(node))
                self.reset()
                return
            elif node.kind == "branch":
                value = self.lookup(node.on or "")
                target = node.cases.get(value, node.default)
            elif node.kind == "gate":
                target = self.gate(node)
            elif node.kind == "action":
                target = self.act(node)
        raise RuntimeError(f"flow loops without waiting for input near {target!r}")

    def gate(self, node: Node) -> str | None:
        """Go on if the dialogue's phase is open; else say when it opens or that it closed."""
        if self.flows.process.is_open(node.dialogue or "", self.ctx.now):
            return node.next
        phase = self.flows.process.phase_for(node.dialogue or "", self.ctx.now)
        assert phase is not None
        if phase.state(self.ctx.now) == "upcoming":
            self.say(node.upcoming_text or "", {"date": phase.starts.astimezone(self.ctx.zone).date()})
        else:
            self.say(node.closed_text or "", {"date": phase.ends.astimezone(self.ctx.zone).date()})
        return node.default

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
        if name in PROFILE_FIELDS:
            value = getattr(self.p, name)
        else:
            value = self.d.vars.get(name)
        if value is None or value is False:
            return "none" if value is None else "no"
        if value is True:
            return "yes"
        return str(value)

    def act(self, node: Node) -> str | None:
        v = self.d.vars
        if node.do == "set_language":
            code = v.get("language")
            if code and self.flows.language(code):
                self.p.language = code
        elif node.do == "record_consent":
            self.p.consented = True
            self.effects.append(RecordConsent(self.flows.consent_version))
        elif node.do == "decline_consent":
            lang = self.p.language
            self.effects.append(EraseResident())
            self.conv = Conversation(profile=Profile(language=lang))
        elif node.do == "set_updates":
            self.p.updates = v.get("updates") == "yes"
        elif node.do == "store_idea":
            if self.too_late(node.flow):
                self.reset()
                return self.flows.menu if self.p.consented else None
            district = v.get("district")
            self.effects.append(
                StoreIdea(
                    reference=self.ctx.new_reference,
                    text=v.get("idea") or "",
                    topic=v.get("topic") or "",
                    district=None if district in (None, "none") else district,
                    language=self.p.language or self.flows.default_language.code,
                    media=tuple(Media(**m) for m in v.get("idea__media", []) + v.get("photo__media", [])),
                )
            )
            v["reference"] = self.ctx.new_reference
        return node.next

    def params(self, node: Node) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, ref in node.params.items():
            name = ref.lstrip("$")
            v = self.d.vars
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

    def choice_list(self, node: Node) -> tuple[Choice, ...]:
        choices = tuple(
            c for c in self.flows.choices_of(node)
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
        if node.kind == "rate_statements":
            self.prompt_statement(node)
        elif node.multilingual and self.p.language is None:
            candidates = tuple(self.d.vars.get("_language_candidates") or ())
            self.say(node.text or "", self.params(node), self.choices(node), language=None, languages=candidates)
        else:
            self.say(node.text or "", self.params(node), self.choices(node))

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

    # -- answers ---------------------------------------------------------------

    def answer(self, node: Node, message: Message) -> None:
        if node.kind == "ask_choice":
            picked = self.match(self.choice_list(node), message)
            if picked is None and node.options == "languages" and self.guess_language(message.text):
                picked = Choice(self.p.language or "", "", node.next)
            if picked is None:
                self.not_understood(node)
                return
            if node.save_as:
                self.d.vars[node.save_as] = picked.value
                if node.options == "languages":
                    self.d.vars.pop("_language_candidates", None)
                else:
                    self.d.vars[f"{node.save_as}__label"] = picked.label
            self.advance(picked.next or node.next, picked.returns_to)
        elif node.kind == "ask_text":
            self.answer_text(node, message)
        elif node.kind == "ask_media":
            self.answer_media(node, message)
        elif node.kind == "rate_statements":
            self.answer_statement(node, message)

    def advance(self, target: str | None, returns_to: str | None = None) -> None:
        self.d.misses = 0
        if returns_to:
            self.d.return_to = returns_to
            self.enter(target, allow_return=False)
        else:
            self.enter(target)

    def answer_text(self, node: Node, message: Message) -> None:
        assert node.save_as
        if message.media is not None:
            if message.media.kind in node.accept_media:
                self.d.vars[node.save_as] = (message.text or "").strip()
                self.d.vars[f"{node.save_as}__media"] = [asdict(message.media)]
                self.advance(node.next)
            else:
                self.not_understood(node, media_problem(message.media), reprompt=False)
            return
        if node.optional and self.match((Choice("skip", M.SKIP),), message) is not None:
            self.d.vars[node.save_as] = ""
            self.advance(node.next)
            return
        if message.text is None and message.choice is not None:
            self.not_understood(node, M.TEXT_EMPTY)  # a button from an older message
            return
        text = (message.text or "").strip()
        if not text:
            self.not_understood(node, M.TEXT_EMPTY, reprompt=False)
        elif len(text) > node.max_length:
            self.not_understood(node, M.TEXT_TOO_LONG, {"length": len(text), "max": node.max_length}, reprompt=False, count="max")
        elif len(text) < node.min_length:
            self.not_understood(node, M.TEXT_TOO_SHORT, {"min": node.min_length}, reprompt=False, count="min")
        elif node.min_length > 1 and _letters(text) < min(3, node.min_length):
            self.not_understood(node, M.TEXT_NO_WORDS, reprompt=False)
        else:
            self.d.vars[node.save_as] = text
            self.d.vars.pop(f"{node.save_as}__media", None)
            self.advance(node.next)

    def answer_media(self, node: Node, message: Message) -> None:
        if message.media is not None and message.media.kind in node.accept_media:
            self.d.vars[f"{node.save_as or node.id}__media"] = [asdict(message.media)]
            self.advance(node.next)
            return
        if node.optional and self.match((Choice("skip", M.SKIP),), message) is not None:
            self.d.vars.pop(f"{node.save_as or node.id}__media", None)
            self.advance(node.next)
            return
        if message.media is not None:
            self.not_understood(node, media_problem(message.media))
            return
        self.not_understood(node, M.MEDIA_EXPECTED)

    def match(self, choices: tuple[Choice, ...], message: Message, extra_words: Mapping[str, tuple[str, str]] | None = None) -> Choice | None:
        if message.choice is not None:
            return next((c for c in choices if c.value == message.choice), None)
        if not message.text:
            return None
        said = normalise(message.text)
        if said.isdigit():
            index = int(said) - 1
            return choices[index] if 0 <= index < len(choices) else None
        langs = [self.e.catalogs.get(code) for code in {self.p.language, "en"} if code]
        extra = dict(extra_words or {})
        extra.setdefault("yes", M.YES_WORDS)
        extra.setdefault("no", M.NO_WORDS)
        for c in choices:
            candidates = {normalise(c.value), normalise(c.label)}
            for tr in langs:
                candidates.add(normalise(tr.gettext(c.label)))
                if c.value in extra:
                    candidates |= _words(tr.pgettext(*extra[c.value]))
            if c.value in extra:
                candidates |= _words(extra[c.value][1])
            if said in candidates:
                return c
        return None

    # -- rating statements (the feedback dialogue) -------------------------------------

    def statement_state(self, node: Node) -> dict[str, Any]:
        state = self.d.vars.get("_rs")
        if not state or state.get("node") != node.id:
            state = {"node": node.id, "i": 0, "phase": "rate"}
            self.d.vars["_rs"] = state
        return state

    def prompt_statement(self, node: Node) -> None:
        state = self.statement_state(node)
        statements = self.flows.options["statements"]
        statement = statements[min(state["i"], len(statements) - 1)]
        if state["phase"] == "rate":
            params = {"statement": Msg(statement.label), "number": state["i"] + 1, "total": len(statements)}
            ratings = tuple(ReplyChoice(c.value, c.label) for c in node.choices)
            self.say(node.text or "", params, ratings)
        else:
            self.say(node.comment_text or "", {}, (ReplyChoice("skip", M.SKIP),))

    def answer_statement(self, node: Node, message: Message) -> None:
        state = self.statement_state(node)
        statements = self.flows.options["statements"]
        if state["phase"] == "rate":
            picked = self.match(node.choices, message)
            if picked is None:
                self.not_understood(node)
                return
            state.update(phase="comment", rating=picked.value)
            self.d.misses = 0
            self.prompt(node)
            return
        if self.too_late(node.flow):
            self.d.vars.pop("_rs", None)
            self.reset()
            self.enter(self.flows.menu)
            return
        comment, media = "", ()
        accepted = node.accept_media or ("voice",)
        if message.media is not None:
            if message.media.kind not in accepted:
                self.not_understood(node, media_problem(message.media))
                return
            comment, media = (message.text or "").strip(), (message.media,)
        elif self.match((Choice("skip", M.SKIP),), message) is None:
            comment = (message.text or "").strip()
            if not comment:
                self.not_understood(node, M.TEXT_EMPTY)
                return
            if len(comment) > node.max_length:
                params = {"length": len(comment), "max": node.max_length}
                self.not_understood(node, M.TEXT_TOO_LONG, params, reprompt=False, count="max")
                return
        self.effects.append(
            StoreFeedback(
                statement=statements[state["i"]].id,
                rating=state["rating"],
                comment=comment,
                language=self.p.language or self.flows.default_language.code,
                media=media,
            )
        )
        state.update(i=state["i"] + 1, phase="rate")
        state.pop("rating", None)
        if state["i"] >= len(statements):
            self.d.vars.pop("_rs", None)
            self.advance(node.next)
        else:
            self.d.misses = 0
            self.prompt(node)
