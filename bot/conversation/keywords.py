"""The residents' keywords — STOP, START, HELP, LANGUAGE, MENU, DELETE — and the
two questions they can leave open (confirm the erasure, continue or start over).

Keywords are understood at any point of any dialogue, before any flow
routing, in every shipped language as well as English and German.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.conversation import texts as M
from bot.conversation.flows import Choice
from bot.conversation.i18n import Catalogs
from bot.conversation.matching import normalise, words
from bot.conversation.session import Conversation
from bot.conversation.step import EraseResident, Message, ReplyChoice, SendData

if TYPE_CHECKING:  # pragma: no cover
    from bot.conversation.engine import Run

Keyword = tuple[str, "str | None"]  # (keyword, the language its word belongs to, if only one)


def keyword_index(catalogs: Catalogs) -> dict[str, Keyword]:
    """normalised word -> (keyword, language it belongs to or None if shared)."""
    index: dict[str, Keyword] = {}
    owners: dict[str, set[str]] = {}

    def add(word: str, keyword: str, language: str) -> None:
        owners.setdefault(word, set()).add(language)
        index[word] = (keyword, None)

    for keyword, (ctx, msgid) in M.KEYWORDS.items():
        for tr in catalogs:
            for word in words(tr.pgettext(ctx, msgid)):
                add(word, keyword, tr.language.code)
        for word in words(msgid):
            add(word, keyword, "en")
        for word in words(M.GERMAN_KEYWORDS[keyword]):
            add(word, keyword, "de")
    for word, (keyword, _) in index.items():
        langs = owners[word]
        index[word] = (keyword, next(iter(langs)) if len(langs) == 1 else ("en" if "en" in langs else None))
    return index


def find(index: dict[str, Keyword], message: Message) -> Keyword | None:
    if message.text is None or message.choice is not None:
        return None
    return index.get(normalise(message.text))


DELETE_CHOICES = (
    Choice("yes", M.DELETE_YES, means="yes"),
    Choice("keep_ideas", M.DELETE_KEEP_IDEAS),
    Choice("no", M.DELETE_NO, means="no"),
)
RESUME_CHOICES = (
    Choice("continue", M.RESUME_CONTINUE, means="yes"),
    Choice("restart", M.RESUME_RESTART, means="no"),
)
RESUME_WORDS = {"continue": M.CONTINUE_WORDS, "restart": M.RESTART_WORDS}


def reply_choices(choices: tuple[Choice, ...]) -> tuple[ReplyChoice, ...]:
    return tuple(ReplyChoice(c.value, c.label) for c in choices)


def handle(run: Run, kw: Keyword, message: Message) -> None:
    """Carry out one keyword."""
    name, kw_lang = kw
    if run.p.language is None and kw_lang:
        lang = kw_lang if run.e.supported_language(kw_lang) else None
    else:
        lang = run.p.language
    fallback = lang or run.flows.default_language.code
    if name == "stop":
        run.p.stopped = True
        run.say(M.STOPPED, language=fallback)
    elif name == "start":
        if run.p.stopped:
            run.p.stopped = False
            run.say(M.STARTED, language=fallback)
        reprompt_or_home(run)
    elif name == "help":
        params = {"operator": run.flows.operator, "phase": run.phase_now(), "contact": run.contact()}
        run.say(M.HELP, params, language=fallback)
        reprompt_or_home(run)
    elif name == "data":
        run.effects.append(SendData())  # the service puts what it stores before the question again
        reprompt_or_home(run)
    elif name == "info":
        run.say(M.PRIVACY_NOTICE, {"operator": run.flows.operator, "contact": run.contact()}, language=fallback)
        reprompt_or_home(run)
    elif name == "menu":
        run.reset()
        run.enter(run.home())
    elif name == "language":
        current = run.current()
        run.d.pending = None
        run.d.misses = 0
        run.d.return_to = current.id if current and current.id != run.e.language_node else None
        run.enter(run.e.language_node, allow_return=False)
    elif name == "delete":
        run.d.pending = "confirm_delete"
        if run.p.language is None and lang:
            run.d.vars["_reply_language"] = lang  # answer in the keyword's language
        ask_delete(run)


def reply_language(run: Run) -> str:
    """The resident's language, or before they chose one the best guess."""
    return run.p.language or run.d.vars.get("_reply_language") or run.flows.default_language.code


def ask_delete(run: Run) -> None:
    run.say(M.CONFIRM_DELETE, choices=reply_choices(DELETE_CHOICES), language=reply_language(run))


def reprompt_or_home(run: Run) -> None:
    if run.d.pending == "confirm_delete":
        ask_delete(run)
        return
    node = run.current()
    if node is None:
        run.enter(run.home())
    else:
        run.prompt(node)


def confirm_delete(run: Run, message: Message) -> None:
    """Only a clear yes erases. Anything else once more asks again; a second time it
    means no, and the message is taken as an answer to where they were (no loop)."""
    found = run.match(DELETE_CHOICES, message, partial=False)
    picked = found.choice if found is not None else None
    if picked is None and not run.d.vars.get("_delete_asked_again"):
        run.d.vars["_delete_asked_again"] = True
        ask_delete(run)
        return
    run.d.vars.pop("_delete_asked_again", None)
    lang = reply_language(run)
    run.d.vars.pop("_reply_language", None)
    if picked is not None and picked.value in ("yes", "keep_ideas"):
        keep = picked.value == "keep_ideas"
        run.effects.append(EraseResident(keep_ideas=keep))
        run.conv = Conversation()
        run.say(M.DELETED_KEPT_IDEAS if keep else M.DELETED, language=lang)
        return
    run.d.pending = None
    run.say(M.NOT_DELETED, language=lang)
    node = run.current()
    if picked is None and node is not None:
        run.answer(node, message)
    else:
        reprompt_or_home(run)


def ask_resume(run: Run) -> None:
    run.d.pending = "resume"
    run.say(M.RESUME_PROMPT, choices=reply_choices(RESUME_CHOICES))


def resume(run: Run, message: Message) -> None:
    """Continue (yes) or start over (no). Any other answer is taken as an answer to the
    question they left open — they are continuing — so nobody is asked this twice."""
    found = run.match(RESUME_CHOICES, message, extra_words=RESUME_WORDS, partial=False)
    run.d.pending = None
    run.d.misses = 0
    node = run.current()
    if found is None:
        if node is None:
            run.enter(run.home())
        else:
            run.answer(node, message)
        return
    if found.choice.value == "continue":
        reprompt_or_home(run)
    else:
        run.reset()
        run.enter(run.home())
