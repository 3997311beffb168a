"""Residents who answer the way people do, on the pure engine (tests/helpers.Talk):
yes/no words and emoji, partial labels, Ortsteile, typos, ideas typed anywhere,
returning after a day, the channel's own way of answering, odd inputs, albums,
and what residents are told between phases. Channel-level walks of the same
answers are in tests/test_natural_answers.py."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.config import SHIPPED_FLOWS_DIR
from bot.conversation import texts as M
from bot.conversation.engine import Engine
from bot.conversation.flow_files import load_flows
from bot.conversation.flows import FlowError
from bot.conversation.matching import fold, match
from bot.conversation.render import Renderer
from bot.conversation.step import EraseResident, Message, Reply, StoreFeedback, StoreIdea
from bot.values import Capabilities, Media
from tests.helpers import Talk, shipped

IDEA = "In unserer Straße sollten mehr Bäume gepflanzt werden, damit es im Sommer kühler ist"
BUTTONS = Capabilities(buttons=True)


def real_dates(now: datetime) -> Talk:
    """The shipped process with its real phases (other tests have every phase open)."""
    flows, catalogs = shipped(SHIPPED_FLOWS_DIR)
    return Talk(Engine(flows, catalogs), now=now)


def at_menu(lang: str = "de", **kw: object) -> Talk:
    talk = Talk.shipped(**kw)  # type: ignore[arg-type]
    talk.send("Hallo" if lang == "de" else "Hello")
    talk.send("1")  # consent
    assert talk.node == "main.menu"
    return talk


def at(node: str, **kw: object) -> Talk:
    talk = at_menu(**kw)
    talk.send("1")  # share an idea
    if node == "idea.topic":
        return talk
    talk.send("1")
    if node == "idea.idea_text":
        return talk
    talk.send(IDEA)
    assert talk.node == node
    return talk


def stored_ideas(talk: Talk) -> list[StoreIdea]:
    return [e for e in talk.effects if isinstance(e, StoreIdea)]


# --- matching ----------------------------------------------------------------------------------


def test_fold_ignores_case_accents_and_punctuation() -> None:
    assert fold("Neukölln!") == fold("neukolln") == "neukolln"
    assert fold("  Friedrichshain-Kreuzberg ") == "friedrichshain kreuzberg"
    assert fold("👍🏽") == fold("👍")  # skin tones are the same thumbs
    assert fold("Ja.") == "ja"


@pytest.mark.parametrize(
    ("said", "district"),
    [
        ("Kreuzberg", "friedrichshain-kreuzberg"),  # a word of the label
        ("neukolln", "neukoelln"),  # without the umlaut
        ("NEUKÖLLN", "neukoelln"),
        ("Wedding", "mitte"),  # an Ortsteil
        ("prenzlauer berg", "pankow"),
        ("Moabit.", "mitte"),
        ("Köpenick", "treptow-koepenick"),
        ("ich wohne im Wedding", "mitte"),  # a name inside a sentence
        ("Charlotenburg", "charlottenburg-wilmersdorf"),  # one letter missing: sure enough
    ],
)
def test_districts_as_people_write_them(said: str, district: str) -> None:
    talk = at("idea.district")
    talk.send(said)
    assert talk.conv.dialogue.vars["district"] == district
    assert talk.node == "idea.ask_updates"


def test_a_less_certain_typo_is_confirmed_first() -> None:
    talk = at("idea.district")
    reply = talk.say("Kreuzbreg")
    assert "Friedrichshain-Kreuzberg" in reply and talk.conv.dialogue.pending == "did_you_mean"
    assert "district" not in talk.conv.dialogue.vars
    talk.send("ja")
    assert talk.conv.dialogue.vars["district"] == "friedrichshain-kreuzberg"


def test_a_no_to_did_you_mean_asks_again_and_another_answer_is_taken() -> None:
    talk = at("idea.district")
    talk.send("Kreuzbreg")
    reply = talk.say("nein")
    assert "Bezirk" in reply and talk.node == "idea.district" and talk.conv.dialogue.pending is None
    talk.send("Kreuzbreg")
    talk.send("Wedding")  # no yes/no: a new answer to the question
    assert talk.conv.dialogue.vars["district"] == "mitte"


def test_an_ambiguous_word_is_not_guessed() -> None:
    flows, catalogs = shipped()
    choices = flows.choices_of(flows.nodes["idea.district"])
    de = catalogs.get("de")
    assert match(choices, Message(text="berg"), [de]) is None  # too short and in no label alone
    topics = flows.choices_of(flows.nodes["idea.topic"])
    assert match(topics, Message(text="und"), [de]) is None  # in several labels


@pytest.mark.parametrize(("said", "topic"), [("verkehr", "mobility"), ("Radwege", "mobility"), ("Bänke", "housing")])
def test_topic_words(said: str, topic: str) -> None:
    talk = at("idea.topic")
    talk.send(said)
    assert talk.conv.dialogue.vars["topic"] == topic


def test_a_unique_word_of_a_menu_item() -> None:
    talk = at_menu()
    talk.send("Idee")
    assert talk.node == "idea.topic"


# --- yes and no --------------------------------------------------------------------------------


def answer_words(code: str, entry: tuple[str, str]) -> list[str]:
    _flows, catalogs = shipped()
    return [w for w in catalogs.get(code).pgettext(*entry).split("|") if w.strip()]


@pytest.mark.parametrize("code", ["de", "en", "tr", "ar", "fa", "uk", "ru", "pl", "vi", "de-x-ls"])
def test_every_yes_word_of_every_language_agrees_to_the_consent(code: str) -> None:
    for word in answer_words(code, M.YES_WORDS):
        talk = Talk.shipped()
        talk.send("LANGUAGE")
        talk.send(choice=code)
        assert talk.node == "main.consent"
        talk.send(word)
        assert talk.conv.profile.consented, (code, word)


@pytest.mark.parametrize("code", ["de", "tr", "ar", "uk"])
def test_yes_no_and_unsure_words_rate_a_statement(code: str) -> None:
    for entry, rating in ((M.YES_WORDS, "agree"), (M.NO_WORDS, "disagree"), (M.UNSURE_WORDS, "unsure")):
        word = answer_words(code, entry)[0]
        talk = Talk.shipped()
        talk.send("LANGUAGE")
        talk.send(choice=code)
        talk.send("1")
        talk.send("2")  # feedback
        talk.send(word.upper() if word.isascii() else word)
        stored = [e for e in talk.effects if isinstance(e, StoreFeedback)]
        assert [s.rating for s in stored] == [rating], (code, word)


@pytest.mark.parametrize("said", ["Ja", "ja!", "JA", "👍", "👍🏽", "✅", "ok"])
def test_consent_accepts_yes_as_people_write_it(said: str) -> None:
    talk = Talk.shipped()
    talk.send("Hallo")
    talk.send(said)
    assert talk.conv.profile.consented and talk.node == "main.menu"


def test_a_rating_is_stored_when_given_and_no_means_no_comment() -> None:
    talk = at_menu()
    talk.send("2")
    talk.send("Ja")
    stored = [e for e in talk.effects if isinstance(e, StoreFeedback)]
    assert [(s.statement, s.rating, s.comment) for s in stored] == [("services-online", "agree", "")]
    for i, skip in enumerate(("nein", "No thanks", "-", "👎")):
        talk.send(skip)  # no comment: on to the next statement
        if i < 3:
            talk.send("weiß nicht")
    stored = [e for e in talk.effects if isinstance(e, StoreFeedback)]
    assert [(s.rating, s.comment) for s in stored] == [("agree", "")] + [("unsure", "")] * 3
    assert talk.node is None  # all four rated: the dialogue is done


def test_a_comment_is_stored_with_its_rating() -> None:
    talk = at_menu()
    talk.send("2")
    talk.send("3")
    talk.send("Nur mit Datenschutz")
    stored = [e for e in talk.effects if isinstance(e, StoreFeedback)]
    assert [(s.rating, s.comment) for s in stored] == [("unsure", ""), ("unsure", "Nur mit Datenschutz")]


def test_a_number_at_the_comment_question_is_no_comment() -> None:
    talk = at_menu()
    talk.send("2")
    talk.send("1")
    reply = talk.say("2")
    assert "Worten" in reply
    assert [e.comment for e in talk.effects if isinstance(e, StoreFeedback)] == [""]


# --- nothing a resident typed is thrown away ----------------------------------------------------


def test_an_idea_typed_at_the_menu_is_offered_and_kept() -> None:
    talk = at_menu()
    reply = talk.say(IDEA)
    assert IDEA[:40] in reply and talk.node == "main.offer_kept_idea"
    talk.send("ja")
    assert talk.node == "idea.topic"
    talk.send("Klima")
    assert talk.node == "idea.district"  # the idea's own question is skipped
    for line in ("Wedding", "nein", "1"):
        talk.send(line)
    assert [i.text for i in stored_ideas(talk)] == [IDEA]


def test_a_no_to_the_offer_returns_to_where_the_resident_was() -> None:
    talk = at("idea.topic")
    talk.send(IDEA)
    assert talk.node == "main.offer_kept_idea"
    talk.send("nein")
    assert talk.node == "idea.topic" and "kept_idea" not in talk.conv.dialogue.vars


def test_a_first_message_that_is_an_idea_is_kept_through_language_and_consent() -> None:
    talk = Talk.shipped()
    first = "Die Parkplätze in unserer Straße sind immer zugeparkt, wir brauchen mehr Fahrradbügel"
    talk.send(first)
    assert talk.conv.profile.language == "de"  # from the sentence, not a greeting
    assert talk.node == "main.consent"
    reply = talk.say("ja")
    assert first[:30] in reply and talk.node == "main.offer_kept_idea"
    for line in ("ja", "Verkehr", "Neukölln", "nein", "Absenden"):
        talk.send(line)
    assert [i.text for i in stored_ideas(talk)] == [first]


def test_declining_consent_forgets_the_kept_idea() -> None:
    talk = Talk.shipped()
    talk.send("Die Parkplätze in unserer Straße sind immer zugeparkt, wir brauchen mehr Fahrradbügel")
    talk.send("nein")
    assert any(isinstance(e, EraseResident) for e in talk.effects)
    assert "kept_idea" not in talk.conv.dialogue.vars


@pytest.mark.parametrize(
    ("first", "code"),
    [
        ("Hi", "en"),
        ("We need more benches and shade in the parks of our district", "en"),
        ("Bizim mahallede daha fazla ağaç ve bank olmalı", "tr"),
        ("Potrzebujemy więcej ławek w parku", "pl"),
    ],
)
def test_first_message_language(first: str, code: str) -> None:
    talk = Talk.shipped()
    talk.send(first)
    assert talk.conv.profile.language == code


# --- coming back, deleting: no loops ------------------------------------------------------------


def test_coming_back_with_an_answer_takes_it_without_asking_to_resume() -> None:
    talk = at("idea.district")
    talk.wait(hours=30)
    talk.send("Kreuzberg")
    assert talk.conv.dialogue.vars["district"] == "friedrichshain-kreuzberg"


@pytest.mark.parametrize(("said", "node"), [("ja", "idea.district"), ("nein", "main.menu"), ("👍", "idea.district")])
def test_resume_understands_yes_and_no(said: str, node: str) -> None:
    talk = at("idea.district")
    talk.wait(hours=30)
    assert "Welcome back" in talk.say("hmm") or talk.conv.dialogue.pending == "resume"
    talk.send(said)
    assert talk.node == node and talk.conv.dialogue.pending is None


def test_resume_never_asks_twice() -> None:
    talk = at("idea.district")
    talk.wait(hours=30)
    talk.send("hmm")
    reply = talk.say("hmm")
    assert talk.conv.dialogue.pending is None and "Welcome back" not in reply and "Willkommen" not in reply


def test_delete_can_keep_ideas_anonymously() -> None:
    talk = at_menu()
    talk.send("LÖSCHEN")
    reply = talk.say("2")
    assert [e for e in talk.effects if isinstance(e, EraseResident)] == [EraseResident(keep_ideas=True)]
    assert "Ideen" in reply


def test_an_unclear_answer_to_delete_never_deletes_and_never_loops() -> None:
    talk = at("idea.district")
    talk.send("LÖSCHEN")
    talk.send("vielleicht")
    assert talk.conv.dialogue.pending == "confirm_delete"
    reply = talk.say("Wedding")  # the second time: nothing deleted, and the answer is taken
    assert "nichts gelöscht" in reply
    assert not any(isinstance(e, EraseResident) for e in talk.effects)
    assert talk.conv.dialogue.vars["district"] == "mitte"


# --- help fitted to the channel -------------------------------------------------------------------


def test_not_understood_says_tap_a_button_where_there_are_buttons() -> None:
    talk = at("idea.topic", caps=BUTTONS)
    first = talk.send("???")
    assert "buttons" in first[0] or "Buttons" in first[0] or "Knopf" in first[0] or "Schaltfläche" in first[0]
    assert "Zahlen" not in first[0]
    numbered = at("idea.topic")
    assert "Zahlen" in numbered.send("???")[0]


def test_second_miss_repeats_the_options_compactly_third_offers_a_person() -> None:
    talk = at("idea.topic")
    first = talk.send("???")
    assert first[1].count("\n") >= 8  # the question with one option per line
    second = talk.send("???")
    assert "1 Mobilität · 2 Klima und Umwelt" in second[1]
    third = talk.send("???")
    assert "HILFE" in third[1] and "115" in third[1]  # HELP and a human contact


# --- odd inputs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["location", "contact", "poll", "sticker", "other"])
def test_unusable_messages_get_a_fitting_answer_and_no_miss(kind: str) -> None:
    talk = at("idea.district")
    replies = talk.send(unsupported=kind)
    assert len(replies) == 2 and "Bezirk" in replies[1]
    assert talk.conv.dialogue.misses == 0 and talk.node == "idea.district"
    if kind == "location":
        assert "Standort" in replies[0] or "location" in replies[0].lower()


def test_photo_with_a_caption_skips_the_photo_question_and_an_album_joins_it() -> None:
    talk = at("idea.idea_text", accepts_media=True)
    photo = Media("photo", "a.jpg", "image/jpeg", 10)
    talk.send("Mehr Bänke am Kanal, bitte", media=photo, album="G1")
    assert talk.node == "idea.district"  # not asked for a photo again
    for ref in ("b.jpg", "c.jpg"):
        assert talk.send(media=Media("photo", ref, "image/jpeg", 10), album="G1") == []  # joins silently
    assert talk.node == "idea.district"
    for line in ("Wedding", "nein", "1"):
        talk.send(line)
    (idea,) = stored_ideas(talk)
    assert [m.ref for m in idea.media] == ["a.jpg", "b.jpg", "c.jpg"] and idea.text == "Mehr Bänke am Kanal, bitte"


# --- between phases -----------------------------------------------------------------------------------


def test_between_phases_no_one_item_menu_and_a_message_when_it_opens() -> None:
    talk = real_dates(datetime(2027, 2, 10, 10, 0, tzinfo=UTC))  # collection closed, feedback not yet open
    talk.send("Hallo")
    reply = talk.say("ja")
    assert "1. April 2027" in reply and "Was möchten Sie tun" not in reply
    assert talk.node == "main.ask_between_updates"
    help_text = talk.say("HILFE")
    assert "1. April 2027" in help_text and "115" in help_text and "Ideen teilen" not in help_text
    talk.send("ja")
    assert talk.conv.profile.updates and talk.node is None


def test_help_during_a_phase_names_it_and_after_the_last_says_it_ended() -> None:
    open_now = real_dates(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    open_now.send("Hello")
    assert "Collecting ideas, until January 2, 2027" in open_now.say("HELP")
    over = real_dates(datetime(2027, 6, 1, 10, 0, tzinfo=UTC))
    over.send("Hello")
    reply = over.say("yes")
    assert "ended" in reply and over.node is None


# --- flows check of the new data, and small things residents notice ------------------------------


def copy_flows(tmp_path: Path) -> Path:
    target = tmp_path / "flows"
    shutil.copytree(SHIPPED_FLOWS_DIR, target)
    return target


def test_flows_check_refuses_an_alias_given_to_two_districts(tmp_path: Path) -> None:
    flows = copy_flows(tmp_path)
    path = flows / "districts.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace('"Moabit"', '"Moabit", "Britz"'), encoding="utf-8")
    with pytest.raises(FlowError) as caught:
        load_flows(flows)
    assert any("'Britz'" in p and "'mitte'" in p and "'neukoelln'" in p for p in caught.value.problems)


def test_flows_check_needs_a_human_contact_and_a_known_meaning(tmp_path: Path) -> None:
    flows = copy_flows(tmp_path)
    process = flows / "process.yaml"
    process.write_text(process.read_text(encoding="utf-8").replace('  phone: "115"\n', ""), encoding="utf-8")
    main = flows / "main.yaml"
    main.write_text(main.read_text(encoding="utf-8").replace('means: "no"', 'means: "nope"', 1), encoding="utf-8")
    with pytest.raises(FlowError) as caught:
        load_flows(flows)
    assert any("contact needs phone, email and hours" in p for p in caught.value.problems)
    assert any("means must be one of yes, no, unsure" in p for p in caught.value.problems)


@pytest.mark.parametrize("code", ["ru", "uk"])
def test_a_date_at_the_end_of_a_sentence_has_one_full_stop(code: str) -> None:
    flows, catalogs = shipped()
    reply = Reply("Feedback on the draft strategy opens on {date}.", code, {"date": date(2027, 4, 1)})
    text = Renderer(catalogs).render(reply, Capabilities()).text
    assert "2027" in text and ".." not in text


def test_several_photos_in_one_message_are_kept_together() -> None:
    talk = at("idea.photo", accepts_media=True)
    first, *more = (Media("photo", f"{n}.jpg", "image/jpeg", 10) for n in "abc")
    talk.send(media=first, more_media=tuple(more), album="MM1")
    assert talk.node == "idea.district"
    for line in ("Wedding", "nein", "1"):
        talk.send(line)
    (idea,) = stored_ideas(talk)
    assert [m.ref for m in idea.media] == ["a.jpg", "b.jpg", "c.jpg"]
