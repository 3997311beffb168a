"""Rating the draft strategy's statements (the feedback dialogue): one
statement after another, a rating, then an optional comment (text or a
voice note). The progress is kept in the dialogue's ``_rs`` variable."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.conversation import texts as M
from bot.conversation.flows import Choice, Node
from bot.conversation.matching import letters, media_problem
from bot.conversation.step import Message, Msg, ReplyChoice, StoreFeedback

if TYPE_CHECKING:  # pragma: no cover
    from bot.conversation.engine import Run


def skipped(run: Run, message: Message) -> bool:
    from bot.conversation.nodes import skipped as said_skip

    return said_skip(run, message)


SKIP = (Choice("skip", M.SKIP),)


def state_of(run: Run, node: Node) -> dict[str, Any]:
    state = run.d.vars.get("_rs")
    if not state or state.get("node") != node.id:
        state = {"node": node.id, "i": 0, "phase": "rate"}
        run.d.vars["_rs"] = state
    return state


def prompt(run: Run, node: Node) -> None:
    state = state_of(run, node)
    items = run.flows.options["statements"]
    statement = items[min(state["i"], len(items) - 1)]
    if state["phase"] == "rate":
        params = {"statement": Msg(statement.label), "number": state["i"] + 1, "total": len(items)}
        ratings = tuple(ReplyChoice(c.value, c.label) for c in node.choices)
        run.say(node.text or "", params, ratings)
    else:
        run.say(node.comment_text or "", {}, (ReplyChoice("skip", M.SKIP),))


def answer(run: Run, node: Node, message: Message) -> None:
    state = state_of(run, node)
    if run.too_late(node.flow):
        run.d.vars.pop("_rs", None)
        run.reset()
        run.enter(run.flows.menu)
        return
    items = run.flows.options["statements"]
    if state["phase"] == "rate":
        picked = run.picked(node.choices, message)
        if picked is None:
            run.not_understood(node)
            return
        # stored now: a resident who leaves at the comment question keeps their rating
        _store(run, items[state["i"]].id, picked.value, "", ())
        state.update(phase="comment", rating=picked.value)
        run.d.misses = 0
        run.prompt(node)
        return
    taken = _comment(run, node, message)
    if taken is None:
        return
    comment, media = taken
    if comment or media:
        _store(run, items[state["i"]].id, state["rating"], comment, media)
    state.update(i=state["i"] + 1, phase="rate")
    state.pop("rating", None)
    if state["i"] >= len(items):
        run.d.vars.pop("_rs", None)
        run.advance(node.next)
    else:
        run.d.misses = 0
        run.prompt(node)


def _store(run: Run, statement: str, rating: str, comment: str, media: tuple[Any, ...]) -> None:
    """One current rating per resident and statement: storage updates the earlier one."""
    run.effects.append(
        StoreFeedback(
            statement=statement,
            rating=rating,
            comment=comment,
            language=run.p.language or run.flows.default_language.code,
            media=media,
        )
    )


def _comment(run: Run, node: Node, message: Message) -> tuple[str, tuple[Any, ...]] | None:
    """(comment, media) from the answer to "add a comment?", or None when it was not taken."""
    accepted = node.accept_media or ("voice",)
    if message.media is not None:
        if message.media.kind not in accepted:
            run.not_understood(node, media_problem(message.media))
            return None
        return (message.text or "").strip(), (message.media,)
    if skipped(run, message):
        return "", ()
    comment = (message.text or "").strip()
    if not comment:
        run.not_understood(node, M.TEXT_EMPTY)
        return None
    if not letters(comment):  # "2": a number meant for the question before, not a comment
        run.not_understood(node, M.TEXT_NO_WORDS)
        return None
    if len(comment) > node.max_length:
        params = {"length": len(comment), "max": node.max_length}
        run.not_understood(node, M.TEXT_TOO_LONG, params, reprompt=False, count="max")
        return None
    return comment, ()
