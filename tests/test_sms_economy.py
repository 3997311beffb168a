"""Every question fits in three SMS segments in every language (the consent above all),
counted with our counter and with an independent codec, and ``flows check`` fails when not."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest
import smsutil

from bot.cli.organisers import flows_check
from bot.cli.sms_report import MAX_SEGMENTS, Prompt, measure, prompts, sms_texts
from bot.config import SHIPPED_FLOWS_DIR, load_settings
from bot.conversation.render import Renderer
from channels import sms_text
from channels.twilio_sms import CAPABILITIES as SMS
from tests.helpers import Talk, shipped

FLOWS, CATALOGS = shipped()
RENDERER = Renderer(CATALOGS)
PROMPTS = [p for p in prompts(FLOWS) if not p.node.multilingual]
CONSENT = [p for p in PROMPTS if p.consent]
CODES = [lang.code for lang in FLOWS.languages]


def ours(parts: list[str]) -> int:
    return sum(sms_text.segments(part)[1] for part in parts)


def independent(parts: list[str]) -> int:
    return sum(len(smsutil.split(part).parts) for part in parts)


def parts_of(prompt: Prompt, code: str) -> list[str]:
    return sms_texts(RENDERER, prompt.reply(CATALOGS.get(code)), SMS)


def test_there_is_one_consent_question() -> None:
    assert [p.name for p in CONSENT] == ["main.consent"]
    assert CONSENT[0].node.sms_text, "the consent has a short wording for SMS"


@pytest.mark.parametrize("code", CODES)
def test_consent_fits_three_segments(code: str) -> None:
    parts = parts_of(CONSENT[0], code)
    assert "\n" in parts[-1] and re.search(r"2\u200e? ", parts[-1]), "the numbered answers are counted too"
    assert ours(parts) <= MAX_SEGMENTS, parts
    assert independent(parts) <= MAX_SEGMENTS, parts


# The district question included: on SMS it asks for a name (no numbered list), so it
# fits in the UCS-2 languages (Arabic and Farsi script, Cyrillic, Vietnamese) too.
@pytest.mark.parametrize(("name", "code"), [(p.name, code) for p in PROMPTS for code in CODES])
def test_every_question_fits_three_segments(name: str, code: str) -> None:
    prompt = next(p for p in PROMPTS if p.name == name)
    parts = parts_of(prompt, code)
    assert ours(parts) <= MAX_SEGMENTS, parts
    assert independent(parts) <= MAX_SEGMENTS, parts


@pytest.mark.parametrize("code", CODES)
def test_our_counter_agrees_with_an_independent_codec(code: str) -> None:
    for prompt in PROMPTS:
        parts = parts_of(prompt, code)
        assert ours(parts) == independent(parts), (prompt.name, parts)


def test_language_choice_fits_three_segments() -> None:
    rows = [r for r in measure(FLOWS, CATALOGS, SMS) if r.prompt.node.multilingual]
    assert rows and all(n <= MAX_SEGMENTS for r in rows for n in r.counts.values()), [r.counts for r in rows]


def test_the_report_renders_what_the_engine_asks() -> None:
    """The report builds each question itself; it must be the text the engine really sends."""
    by_name = {p.name: p for p in PROMPTS}
    talk = Talk.shipped(caps=SMS)
    compared = []
    for line in ["Hallo", "1", "1", "1", "Mehr Bänke und Schatten auf dem Spielplatz", "1", "1", "1"]:
        sent = talk.send(line)
        prompt = by_name.get(talk.node or "")
        if prompt is not None and not prompt.node.params:  # the summary's values are samples
            assert sent[-1] == RENDERER.render(prompt.reply(CATALOGS.get("de")), SMS).text
            compared.append(prompt.name)
    assert {"main.consent", "main.menu", "idea.topic", "idea.idea_text", "idea.district"} <= set(compared)


def test_table_and_failures_name_the_language(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(SHIPPED_FLOWS_DIR, flows)
    main = flows / "main.yaml"
    text = main.read_text(encoding="utf-8")
    short = re.search(r'^\s*sms_text: "(.*)"$', text, re.M)
    assert short is not None
    long = short.group(1) + " " + "We explain everything about your data in the full notice. " * 6
    main.write_text(text.replace(short.group(1), long, 1), encoding="utf-8")
    out = io.StringIO()
    code = flows_check(load_settings({"FLOWS_DIR": str(flows)}), out)
    report = out.getvalue()
    assert code == 1
    assert "sms: segments per question" in report and "main.consent *" in report
    line = FLOWS.nodes["main.consent"].line
    for lang in CODES:
        assert re.search(
            rf"main\.yaml:{line}: \[{re.escape(lang)}\] sms: the consent question takes \d+ segments", report
        ), report
