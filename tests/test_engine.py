"""The pure engine: golden transcripts, keywords at every step, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.conversation.engine import normalise
from bot.conversation.step import EraseResident, RecordConsent, StoreIdea
from bot.values import Media
from tests.golden_tool import inputs, transcript
from tests.helpers import Talk

GOLDEN = Path(__file__).parent / "golden"
IDEA = "Mehr Bäume und Schatten auf dem Hermannplatz"

# the inputs that bring a new English-speaking resident to each step of the idea dialogue
STEPS = {
    "new": [],
    "language": ["👋"],
    "consent": ["👋", "2"],
    "menu": ["👋", "2", "1"],
    "topic": ["👋", "2", "1", "1"],
    "idea_text": ["👋", "2", "1", "1", "1"],
    "district": ["👋", "2", "1", "1", "1", IDEA],
    "updates": ["👋", "2", "1", "1", "1", IDEA, "1"],
    "summary": ["👋", "2", "1", "1", "1", IDEA, "1", "1"],
}
NODE_AT = {
    "language": "main.choose_language",
    "consent": "main.consent",
    "menu": "main.menu",
    "topic": "idea.topic",
    "idea_text": "idea.idea_text",
    "district": "idea.district",
    "updates": "idea.ask_updates",
    "summary": "idea.summary",
}


def at(step: str) -> Talk:
    talk = Talk.shipped()
    for line in STEPS[step]:
        talk.send(line)
    assert talk.node == NODE_AT.get(step)
    return talk


@pytest.mark.parametrize("name", ["idea_de", "idea_en"])
def test_golden_transcript(name: str) -> None:
    path = GOLDEN / f"{name}.txt"
    assert transcript(inputs(path)) == path.read_text(encoding="utf-8")


def test_complete_dialogue_stores_idea_with_all_fields() -> None:
    talk = at("summary")
    talk.say("1")
    ideas = [e for e in talk.effects if isinstance(e, StoreIdea)]
    assert ideas == [StoreIdea("K7Q-3MX", IDEA, "mobility", "mitte", "en", ())]
    assert [e for e in talk.effects if isinstance(e, RecordConsent)] == [RecordConsent("2026-11")]
    assert talk.conv.profile.updates is True
    assert talk.node == "idea.actor_group"  # who speaks: voluntary (tests/test_who_speaks.py)
    talk.send("skip")
    talk.send("skip")
    assert talk.node == "idea.offer_feedback"
    assert "Thank you for taking part" in talk.say("Not now")
    assert talk.node is None  # dialogue over, the next message brings the menu
    assert "What would you like to do?" in talk.say("hi")


def test_locale_hint_skips_the_language_question() -> None:
    talk = Talk.shipped()
    reply = talk.say("Hallo", hint="de-DE")
    assert talk.conv.profile.language == "de"
    assert reply.startswith("Kiezstimme sammelt Ideen")


def test_unknown_locale_hint_asks_for_the_language() -> None:
    talk = Talk.shipped()
    assert "1 Deutsch\n2 English" in talk.say("👋", hint="xx")


# --- keywords at every step -------------------------------------------------------------


@pytest.mark.parametrize("step", list(STEPS))
def test_stop_at_every_step_silences_until_start(step: str) -> None:
    talk = at(step)
    node = talk.node
    reply = talk.say("STOP")
    assert "no more messages" in reply
    assert talk.conv.profile.stopped
    for line in ["1", "hello", "MENU", "HELP", "LANGUAGE", IDEA]:
        assert talk.send(line) == [], line
    assert talk.conv.profile.stopped
    reply = talk.say("start")
    assert "Welcome back" in reply
    assert not talk.conv.profile.stopped
    assert talk.node == (node or "main.choose_language")


@pytest.mark.parametrize("step", list(STEPS))
def test_help_at_every_step_explains_and_asks_again(step: str) -> None:
    talk = at(step)
    node = talk.node
    replies = talk.send("Help")
    assert replies[0].startswith("This is Kiezstimme")
    assert len(replies) == 2  # help, then the question again
    assert talk.node == (node or "main.choose_language")


@pytest.mark.parametrize("step", list(STEPS))
def test_language_at_every_step_keeps_progress(step: str) -> None:
    talk = at(step)
    node = talk.node
    before = dict(talk.conv.dialogue.vars)
    reply = talk.say("LANGUAGE")
    assert "1 Deutsch\n2 English" in reply
    talk.send("1")
    assert talk.conv.profile.language == "de"
    if node in (None, "main.choose_language"):
        assert talk.node == "main.consent"
    else:
        assert talk.node == node  # back where they were, now in German
        for key in ("topic", "idea", "district"):
            assert talk.conv.dialogue.vars.get(key) == before.get(key)


@pytest.mark.parametrize("step", list(STEPS))
def test_menu_at_every_step(step: str) -> None:
    talk = at(step)
    profile = talk.conv.profile
    talk.send("menu")
    expected = "main.menu" if profile.consented else "main.consent" if profile.language else "main.choose_language"
    assert talk.node == expected
    assert "idea" not in talk.conv.dialogue.vars


@pytest.mark.parametrize("step", list(STEPS))
def test_delete_at_every_step_needs_confirmation(step: str) -> None:
    talk = at(step)
    node = talk.node
    reply = talk.say("DELETE")
    assert "delete all your data" in reply
    assert not any(isinstance(e, EraseResident) for e in talk.effects)
    talk.send("3")  # no, keep my data
    assert talk.node == (node or "main.choose_language")
    assert not any(isinstance(e, EraseResident) for e in talk.effects)
    talk.send("löschen")
    reply = talk.say("1")
    assert any(isinstance(e, EraseResident) for e in talk.effects)
    # a resident without a language yet is answered in the keyword's language
    assert ("gelöscht" if step in ("new", "language") else "deleted") in reply
    assert talk.conv.profile.language is None and talk.node is None


def test_keywords_in_german_work_for_english_residents() -> None:
    talk = at("topic")
    assert "no more messages" in talk.say("Stopp!")  # answered in the resident's language
    assert "Welcome back" in talk.say("START")


def test_stop_before_anything_replies_in_the_keywords_language() -> None:
    talk = Talk.shipped()
    assert talk.say("STOPP").startswith("Sie bekommen keine Nachrichten")
    talk2 = Talk.shipped()
    assert talk2.say("stop").startswith("You will get no more messages")


def test_stop_is_only_undone_by_start() -> None:
    talk = at("menu")
    talk.send("STOP")
    talk.wait(days=3)
    talk.send("DELETE")  # a resident may still erase their data while stopped
    talk.send("2")
    assert talk.conv.profile.stopped
    assert talk.send("Hallo") == []


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["language", "consent", "menu", "topic", "district", "updates", "summary"])
@pytest.mark.parametrize("bad", ["", "   ", "x" * 10_000, "😀😀😀", "<script>alert(1)</script>", "99", "0", "-1"])
def test_unexpected_answer_to_a_choice_is_asked_again(step: str, bad: str) -> None:
    talk = at(step)
    node = talk.node
    replies = talk.send(bad)
    assert talk.node == node
    assert len(replies) >= 2
    assert "1 " in replies[1]  # the options are shown again


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("", "as a text message"),
        ("   ", "as a text message"),
        ("short", "at least 10 characters"),
        ("x" * 10_000, "too long (10,000). Please shorten it to at most 1,000 characters"),
        ("😀" * 12, "describe it in words"),
        ("1234567890123", "describe it in words"),
    ],
)
def test_idea_text_bounds_are_explained(bad: str, expected: str) -> None:
    talk = at("idea_text")
    assert expected in talk.say(bad)
    assert talk.node == "idea.idea_text"


def test_html_is_kept_as_plain_text() -> None:
    talk = at("idea_text")
    talk.send("<b>Mehr</b> Bänke & <i>Schatten</i>")
    assert talk.conv.dialogue.vars["idea"] == "<b>Mehr</b> Bänke & <i>Schatten</i>"


def test_third_miss_offers_help() -> None:
    talk = at("topic")
    assert "Send HELP" not in talk.say("a")
    assert "Send HELP" not in talk.say("b")
    assert "Stuck? Send HELP" in talk.say("c")


def test_options_by_words_and_native_digits() -> None:
    talk = at("topic")
    talk.send("health")
    assert talk.conv.dialogue.vars["topic"] == "health"
    talk = at("topic")
    talk.send("٣")  # Arabic-Indic three
    assert talk.conv.dialogue.vars["topic"] == "administration"
    talk = at("topic")
    talk.send("۴")  # Persian four
    assert talk.conv.dialogue.vars["topic"] == "education"


def test_yes_no_words_and_emoji() -> None:
    talk = at("updates")
    talk.send("👍")
    assert talk.conv.profile.updates is True
    talk = at("updates")
    talk.send("❌")
    assert talk.conv.profile.updates is False


def test_button_press_uses_the_value() -> None:
    talk = at("topic")
    talk.send(choice="culture")
    assert talk.conv.dialogue.vars["topic"] == "culture"
    reply = talk.say(choice="a-stale-button")  # pressed on an older message
    assert talk.node == "idea.idea_text"
    assert "idea" not in talk.conv.dialogue.vars
    assert "as a text message" in reply


# --- expiry, consent, media ------------------------------------------------------------


def test_returning_after_the_session_expired_is_asked_to_continue() -> None:
    talk = at("district")
    talk.wait(hours=25)
    reply = talk.say("hello again")
    assert "continue where you left off" in reply
    talk.send("1")  # continue
    assert talk.node == "idea.district"
    assert talk.conv.dialogue.vars["idea"] == IDEA


def test_returning_after_expiry_can_start_over() -> None:
    talk = at("district")
    talk.wait(hours=25)
    talk.send("Hi")
    talk.send("start over")
    assert talk.node == "main.menu"
    assert "idea" not in talk.conv.dialogue.vars


def test_within_the_timeout_there_is_no_resume_question() -> None:
    talk = at("district")
    talk.wait(hours=23)
    talk.send("2")
    assert talk.node == "idea.ask_updates"


def test_declining_consent_erases_and_says_goodbye() -> None:
    talk = at("consent")
    reply = talk.say("No")
    assert "stored nothing" in reply
    assert talk.effects == [EraseResident()]
    assert talk.node is None and not talk.conv.profile.consented


def test_voice_note_as_idea_when_the_channel_takes_media() -> None:
    talk = Talk.shipped(accepts_media=True)
    for line in STEPS["idea_text"]:
        talk.send(line)
    voice = Media(kind="voice", ref="ab/cd.ogg", mime="audio/ogg", size=12000)
    reply = talk.say(media=voice)
    assert "add a photo" in reply
    photo = Media(kind="photo", ref="ab/ef.jpg", mime="image/jpeg", size=90000)
    talk.send(media=photo)
    talk.send("1")
    reply = talk.say("1")
    assert "Your idea: (voice message)" in reply
    talk.send("1")
    stored = [e for e in talk.effects if isinstance(e, StoreIdea)][0]
    assert stored.media == (voice, photo) and stored.text == ""


def test_photo_question_is_skipped_without_media() -> None:
    talk = at("idea_text")
    talk.send(IDEA)
    assert talk.node == "idea.district"


def test_normalise() -> None:
    assert normalise("  Ja! ") == "ja"
    assert normalise("/start") == "start"
    assert normalise("١٢") == "12"


# --- typed inputs besides a message: a reminder that fell due, a session expiry ------------


def _due(talk: Talk, **idle: float):  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from bot.conversation.step import Context, ReminderDue

    ctx = Context(now=talk.now, new_reference="X")
    return talk.engine.step(talk.conv, ReminderDue(("idea",), idle_after=timedelta(**(idle or {"minutes": 15}))), ctx)


def test_reminder_due_tells_personal_general_and_busy_apart() -> None:
    from bot.conversation.step import Remind

    talk = Talk.shipped()
    for line in STEPS["district"]:  # in the middle of an idea
        talk.send(line)
    outcome = _due(talk)
    assert outcome.effects == [Remind("later")] and outcome.replies == []  # busy: not interrupted
    assert outcome.conversation == talk.conv  # a reminder changes nothing of the session
    talk.wait(hours=1)
    assert _due(talk).effects == [Remind("personal")]  # left the idea unfinished
    talk.send("MENU")
    talk.wait(hours=1)
    assert _due(talk).effects == [Remind("general")]  # at the menu: the general reminder


def test_session_expired_input_asks_to_continue_or_restart() -> None:
    from bot.conversation.step import Context, SessionExpired

    talk = Talk.shipped()
    for line in STEPS["district"]:
        talk.send(line)
    outcome = talk.engine.step(talk.conv, SessionExpired(), Context(now=talk.now, new_reference="X"))
    assert outcome.conversation.dialogue.pending == "resume"
    from bot.conversation import texts as M

    assert [r.msgid for r in outcome.replies] == [M.RESUME_PROMPT]
    talk.send("MENU")  # at the menu there is nothing to resume
    assert talk.engine.step(talk.conv, SessionExpired(), Context(now=talk.now, new_reference="X")).replies == []
