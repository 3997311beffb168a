"""The node kinds of a flow, each a small handler.

Nodes that wait for the resident (``ask_choice``, ``ask_text``,
``ask_media``, ``rate_statements``) have a handler with ``prompt`` and
``answer``; nodes that pass through (``say``, ``branch``, ``gate``,
``action``) have a function that returns where the dialogue goes next.
``end`` is handled by the engine's walk.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Protocol

from bot.conversation import statements
from bot.conversation import texts as M
from bot.conversation.flows import IDEA_ANSWER as IDEA
from bot.conversation.flows import Choice, Node
from bot.conversation.matching import Match, fold, letters, looks_like_idea, media_problem, normalise, words
from bot.conversation.session import Conversation, Profile
from bot.conversation.step import EraseResident, Message, Msg, RecordConsent, ReplyChoice, StoreIdea, StoreProfile
from bot.values import Media

if TYPE_CHECKING:  # pragma: no cover
    from bot.conversation.engine import Run

SKIP = (Choice("skip", M.SKIP),)


class WaitingNode(Protocol):
    def prompt(self, run: Run, node: Node) -> None: ...

    def answer(self, run: Run, node: Node, message: Message) -> None: ...


class AskChoice:
    def prompt(self, run: Run, node: Node) -> None:
        run.ask(node)

    def answer(self, run: Run, node: Node, message: Message) -> None:
        idea_like = looks_like_idea(message.text) and message.choice is None
        choices = run.choice_list(node)
        skip = next((c for c in choices if c.means == "skip"), None) if node.optional else None
        if skip is not None and message.choice is None and run.match(choices, message, partial=False) is None:
            if skipped(run, message):  # an optional question: "nein", "no thanks", "-" skip it
                take(run, node, skip)
                return
        found = run.match(choices, message) or by_years(run, node, choices, message)
        if found is not None and idea_like and found.coverage < 0.5 and run.can_offer_idea():
            found = None  # "Mehr Radwege in der Stadt": an idea that names a topic, not just a topic
        if found is None and node.options == "languages" and run.guess_language(message.text):
            found = Match(Choice(run.p.language or "", "", node.next))
        if found is None and idea_like:
            if node.id == run.flows.offer_idea:
                pass  # already asking about an idea
            elif run.p.consented and run.can_offer_idea():
                run.offer_idea(message.text or "", back=node.id)
                return
            elif not run.p.consented and not run.d.vars.get("kept_idea"):
                run.d.vars["kept_idea"] = (message.text or "").strip()  # offered once they agreed
        if found is None:
            run.not_understood(node)
            return
        if not found.sure:
            ask_did_you_mean(run, node, found.choice)
            return
        take(run, node, found.choice)


_AGE = re.compile(r"(\d{1,3})(?:\s*\S+)?")  # "34", "34 Jahre", "70yo"


def by_years(run: Run, node: Node, choices: tuple[Choice, ...], message: Message) -> Match | None:
    """A typed age picks the age band that holds it ("34" -> 30–44); the numbers of the
    list come first (on SMS "3" is the third band), so only an age past them counts."""
    if message.choice is not None or not node.options:
        return None
    said = _AGE.fullmatch(normalise(message.text or ""))
    if said is None:
        return None
    age = int(said.group(1))
    spans = {o.id: o.years for o in run.flows.options.get(node.options, ()) if o.years is not None}
    picked = [c for c in choices if c.value in spans and spans[c.value][0] <= age <= spans[c.value][1]]
    return Match(picked[0]) if len(picked) == 1 else None


def take(run: Run, node: Node, picked: Choice) -> None:
    """The resident picked this choice at this node."""
    if node.save_as:
        run.d.vars[node.save_as] = picked.value
        if node.options == "languages":
            run.d.vars.pop("_language_candidates", None)
        else:
            run.d.vars[f"{node.save_as}__label"] = picked.label
    run.advance(picked.next or node.next, picked.returns_to)


def ask_did_you_mean(run: Run, node: Node, maybe: Choice) -> None:
    """A near miss ("Kreuzbreg"): ask before taking it."""
    from bot.conversation.engine import YES_NO

    run.d.pending = "did_you_mean"
    run.d.vars["_maybe"] = maybe.value
    label = Msg(maybe.label) if node.options != "languages" else maybe.label
    run.say(M.DID_YOU_MEAN, {"option": label}, tuple(ReplyChoice(c.value, c.label) for c in YES_NO))


def did_you_mean(run: Run, node: Node, message: Message) -> bool:
    """The answer to "Did you mean …?"; False when it is no yes/no (then it is a new answer to the node)."""
    from bot.conversation.engine import YES_NO

    maybe = run.d.vars.pop("_maybe", None)
    run.d.pending = None
    found = run.match(YES_NO, message, partial=False)
    if found is None:
        return False
    picked = next((c for c in run.choice_list(node) if c.value == maybe), None)
    if found.choice.value == "yes" and picked is not None:
        take(run, node, picked)
    else:
        run.not_understood(node)
    return True


class AskText:
    def prompt(self, run: Run, node: Node) -> None:
        run.ask(node)

    def answer(self, run: Run, node: Node, message: Message) -> None:
        assert node.save_as
        if message.media is not None:
            if message.media.kind in node.accept_media:
                run.d.vars[node.save_as] = (message.text or "").strip()  # the caption, if any
                run.d.vars[f"{node.save_as}__media"] = [asdict(message.media)]
                run.took_media(f"{node.save_as}__media", message)
                run.advance(node.next)
            else:
                run.not_understood(node, media_problem(message.media), reprompt=False)
            return
        if node.optional and skipped(run, message):
            run.d.vars[node.save_as] = ""
            run.advance(node.next)
            return
        if message.text is None and message.choice is not None:
            run.not_understood(node, M.TEXT_EMPTY)  # a button from an older message
            return
        text = (message.text or "").strip()
        problem = text_problem(text, node.min_length, node.max_length)
        if problem is not None:
            msgid, params, count = problem
            run.not_understood(node, msgid, params, reprompt=False, count=count)
            return
        run.d.vars[node.save_as] = text
        run.d.vars.pop(f"{node.save_as}__media", None)
        run.advance(node.next)


def skipped(run: Run, message: Message) -> bool:
    """ "Skip", or a no/skip word ("nein", "no thanks", "-", "👎") to an optional question."""
    if run.match(SKIP, message, partial=False) is not None:
        return True
    said = normalise(message.text or "") if message.choice is None else ""
    if not said:
        return False
    langs = [run.e.catalogs.get(code) for code in dict.fromkeys(c for c in (run.p.language, "en") if c)]
    for ctx, msgid in (M.NO_WORDS, M.SKIP_WORDS):
        found = words(msgid)
        for tr in langs:
            found |= words(tr.pgettext(ctx, msgid))
        if said in found or fold(said) in {fold(w) for w in found}:
            return True
    return False


def text_problem(text: str, min_length: int, max_length: int) -> tuple[Any, dict[str, Any], str | None] | None:
    """Why a typed answer is not taken: (msgid, params, plural count), or None."""
    if not text:
        return M.TEXT_EMPTY, {}, None
    if len(text) > max_length:
        return M.TEXT_TOO_LONG, {"length": len(text), "max": max_length}, "max"
    if len(text) < min_length:
        return M.TEXT_TOO_SHORT, {"min": min_length}, "min"
    if min_length > 1 and letters(text) < min(3, min_length):
        return M.TEXT_NO_WORDS, {}, None
    return None


class AskMedia:
    def prompt(self, run: Run, node: Node) -> None:
        run.ask(node)

    def answer(self, run: Run, node: Node, message: Message) -> None:
        key = f"{node.save_as or node.id}__media"
        if message.media is not None and message.media.kind in node.accept_media:
            run.d.vars[key] = [asdict(message.media)]
            run.took_media(key, message)
            run.advance(node.next)
            return
        if node.optional and skipped(run, message):
            run.d.vars.pop(key, None)
            run.advance(node.next)
            return
        if message.media is not None:
            run.not_understood(node, media_problem(message.media))
            return
        run.not_understood(node, M.MEDIA_EXPECTED)


class RateStatements:
    def prompt(self, run: Run, node: Node) -> None:
        statements.prompt(run, node)

    def answer(self, run: Run, node: Node, message: Message) -> None:
        statements.answer(run, node, message)


WAITING: dict[str, WaitingNode] = {
    "ask_choice": AskChoice(),
    "ask_text": AskText(),
    "ask_media": AskMedia(),
    "rate_statements": RateStatements(),
}


# --- nodes that pass through ----------------------------------------------------------


def say(run: Run, node: Node) -> str | None:
    run.say(node.text or "", run.params(node))
    return node.next


def branch(run: Run, node: Node) -> str | None:
    return node.cases.get(run.lookup(node.on or ""), node.default)


def gate(run: Run, node: Node) -> str | None:
    """Go on if the dialogue's phase is open; else say when it opens or that it closed."""
    process, now, zone = run.flows.process, run.ctx.now, run.ctx.zone
    if process.is_open(node.dialogue or "", now):
        return node.next
    phase = process.phase_for(node.dialogue or "", now)
    assert phase is not None
    if phase.state(now) == "upcoming":
        run.say(node.upcoming_text or "", {"date": phase.starts.astimezone(zone).date()})
    else:
        run.say(node.closed_text or "", {"date": phase.ends.astimezone(zone).date()})
    return node.default


def action(run: Run, node: Node) -> str | None:
    do = ACTIONS.get(node.do or "")
    if do is not None:
        return do(run, node)
    return node.next


def _set_language(run: Run, node: Node) -> str | None:
    code = run.d.vars.get("language")
    if code and run.flows.language(code):
        run.p.language = code
    return node.next


def _record_consent(run: Run, node: Node) -> str | None:
    run.p.consented = True
    run.p.consent_outdated = False
    run.effects.append(RecordConsent(run.flows.consent_version))
    return node.next


def _decline_consent(run: Run, node: Node) -> str | None:
    run.effects.append(EraseResident())
    run.conv = Conversation(profile=Profile(language=run.p.language))
    return node.next


def _set_updates(run: Run, node: Node) -> str | None:
    run.p.updates = run.d.vars.get("updates") == "yes"
    return node.next


def _store_idea(run: Run, node: Node) -> str | None:
    if run.too_late(node.flow):
        run.reset()
        return run.flows.menu if run.p.consented else None
    v = run.d.vars
    district = v.get("district")
    run.effects.append(
        StoreIdea(
            reference=run.ctx.new_reference,
            text=v.get("idea") or "",
            topic=v.get("topic") or "",
            district=None if district in (None, "none") else district,
            language=run.p.language or run.flows.default_language.code,
            media=tuple(Media(**m) for m in v.get("idea__media", []) + v.get("photo__media", [])),
        )
    )
    v["reference"] = run.ctx.new_reference
    return node.next


def _store_profile(run: Run, node: Node) -> str | None:
    """Who speaks, if the resident told us anything (a skip stores nothing); asked once."""
    v = run.d.vars
    group, age = (None if v.get(key) in (None, "none") else v.get(key) for key in ("actor_group", "age_band"))
    if group is not None or age is not None:
        run.effects.append(StoreProfile(actor_group=group, age_band=age))
        run.p.described = True
    return node.next


def _nothing_open(run: Run, node: Node) -> str | None:
    """Between phases: what is open now (nothing) and when the next phase opens; after the last, the end."""
    told = run.phase_now()
    if told.msgid == M.PHASES_OVER:
        run.say(M.PHASES_OVER)
        return None
    run.say(M.NOTHING_OPEN, {"next": told})
    return node.next


def _take_kept_idea(run: Run, node: Node) -> str | None:
    """The text the resident typed earlier becomes their idea; its question is skipped."""
    text = run.d.vars.pop("kept_idea", None)
    run.d.vars.pop("_back", None)
    if text:
        run.d.vars[IDEA] = text
        run.d.vars.setdefault("_prefilled", []).append(IDEA)
    return node.next


def _drop_kept_idea(run: Run, node: Node) -> str | None:
    """Not an idea after all: back to the question the resident was at (else the node's next)."""
    run.d.vars.pop("kept_idea", None)
    back = run.d.vars.pop("_back", None)
    return back if back in run.flows.nodes else node.next


ACTIONS: dict[str, Callable[[Run, Node], str | None]] = {
    "nothing_open": _nothing_open,
    "take_kept_idea": _take_kept_idea,
    "drop_kept_idea": _drop_kept_idea,
    "set_language": _set_language,
    "record_consent": _record_consent,
    "decline_consent": _decline_consent,
    "set_updates": _set_updates,
    "store_idea": _store_idea,
    "store_profile": _store_profile,
}
PASSING: dict[str, Callable[[Run, Node], str | None]] = {
    "say": say,
    "branch": branch,
    "gate": gate,
    "action": action,
}
