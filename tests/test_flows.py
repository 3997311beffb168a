"""Flow validation and the catalog check: broken fixtures give file:line errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import SHIPPED_FLOWS_DIR, SHIPPED_I18N_DIR, load_settings
from bot.conversation.catalog_check import check
from bot.conversation.flow_files import load_flows
from bot.conversation.flows import FlowError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def flows_copy(tmp_path: Path) -> Path:
    target = tmp_path / "flows"
    shutil.copytree(SHIPPED_FLOWS_DIR, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture edit does not apply: {old!r}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(needle)


def test_shipped_flows_are_valid() -> None:
    flows = load_flows(SHIPPED_FLOWS_DIR)
    assert flows.entry == "main.start" and "idea.summary" in flows.nodes


@pytest.mark.parametrize(
    ("file", "old", "new", "anchor", "message"),
    [
        ("idea.yaml", "next: idea_text\n", "next: idea_txt\n", "  topic:", "leads to unknown node 'idea.idea_txt'"),
        ("main.yaml", "        next: record_consent\n", "", "  consent:", "choice 'yes' has no target"),
        ("idea.yaml", "kind: say\n", "kind: shout\n", None, None),
        ("idea.yaml", "    kind: ask_text\n", "    kind: ask_sms\n", "  idea_text:", "unknown kind 'ask_sms'"),
        (
            "idea.yaml",
            "    min_length: 10\n",
            "    min_length: 2000\n",
            "  idea_text:",
            "min_length must be at least 1 and at most max_length",
        ),
        ("main.yaml", "        next: about\n", "        next: menu\n", "  about:", "node 'main.about' is unreachable"),
        ("idea.yaml", "    options: topics\n", "    options: hobbies\n", "  topic:", "unknown options list 'hobbies'"),
        (
            "main.yaml",
            "    do: record_consent\n",
            "    do: sell_data\n",
            "  record_consent:",
            "unknown action 'sell_data'",
        ),
        (
            "idea.yaml",
            "      reference: $reference\n",
            "      reference: reference\n",
            "  thanks:",
            "must name an answer like $topic",
        ),
        (
            "idea.yaml",
            "  summary:\n    kind: ask_choice\n    text:",
            "  summary:\n    kind: ask_choice\n    txt:",
            "  summary:",
            "ask_choice needs a text",
        ),
    ],
)
def test_broken_flow_is_reported_with_file_and_line(
    flows_copy: Path, file: str, old: str, new: str, anchor: str | None, message: str | None
) -> None:
    path = flows_copy / file
    if anchor is None:  # "say" appears in main.yaml only; use it there
        path = flows_copy / "main.yaml"
        anchor, message = "  about:", "unknown kind 'shout'"
    expected_line = line_of(path, anchor)
    edit(path, old, new)
    with pytest.raises(FlowError) as info:
        load_flows(flows_copy)
    wanted = f"{path}:{expected_line}: "
    assert any(p.startswith(wanted) and message in p for p in info.value.problems), info.value.problems


def test_invalid_yaml_names_the_line(flows_copy: Path) -> None:
    path = flows_copy / "idea.yaml"
    edit(path, "  district:\n", "  district: [\n")
    with pytest.raises(FlowError) as info:
        load_flows(flows_copy)
    assert re.match(rf"{re.escape(str(path))}:\d+: not valid YAML", info.value.problems[0])


def test_duplicate_topic_id(flows_copy: Path) -> None:
    edit(flows_copy / "topics.yaml", "  - id: health\n", "  - id: mobility\n")
    with pytest.raises(FlowError) as info:
        load_flows(flows_copy)
    assert any("duplicate id 'mobility'" in p for p in info.value.problems)


def _settings(flows: Path, i18n: Path):  # type: ignore[no-untyped-def]
    return load_settings({"FLOWS_DIR": str(flows), "KIEZSTIMME_I18N_DIR": str(i18n)})


def test_shipped_catalogs_are_complete() -> None:
    problems, summary = check(_settings(SHIPPED_FLOWS_DIR, SHIPPED_I18N_DIR))
    assert problems == []
    assert all(" 0 missing, 0 fuzzy" in line for line in summary)


def test_missing_translation_fails_the_check(tmp_path: Path) -> None:
    i18n = tmp_path / "i18n"
    shutil.copytree(SHIPPED_I18N_DIR, i18n)
    po = i18n / "de" / "LC_MESSAGES" / "kiezstimme.po"
    edit(po, 'msgstr "Für welchen Bezirk ist Ihre Idee?"', 'msgstr ""')
    problems, summary = check(_settings(SHIPPED_FLOWS_DIR, i18n))
    assert any(
        "[de] missing translation of 'Which district is your idea for?'" in p and "idea.yaml:" in p for p in problems
    )
    assert any(line.startswith("de:") and "1 missing" in line for line in summary)


def test_new_flow_text_without_translation_fails(flows_copy: Path) -> None:
    edit(flows_copy / "idea.yaml", '"Which district is your idea for?"', '"In which district?"')
    problems, _ = check(_settings(flows_copy, SHIPPED_I18N_DIR))
    assert any("[de] missing translation of 'In which district?'" in p for p in problems)


def test_fuzzy_and_broken_placeholders_are_reported(tmp_path: Path) -> None:
    i18n = tmp_path / "i18n"
    shutil.copytree(SHIPPED_I18N_DIR, i18n)
    po = i18n / "de" / "LC_MESSAGES" / "kiezstimme.po"
    edit(po, "Ihre Nummer ist {reference}", "Ihre Nummer ist {referenz}")
    problems, _ = check(_settings(SHIPPED_FLOWS_DIR, i18n))
    assert any("placeholders differ" in p and p.startswith(str(po)) for p in problems)


def test_flows_check_command_exit_codes(flows_copy: Path) -> None:
    env = {**os.environ, "FLOWS_DIR": str(flows_copy)}
    ok = subprocess.run(
        [sys.executable, "-m", "bot", "flows", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "de: " in ok.stdout
    edit(flows_copy / "idea.yaml", "next: idea_text\n", "next: nowhere\n")
    bad = subprocess.run(
        [sys.executable, "-m", "bot", "flows", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert re.search(
        r"idea\.yaml:\d+: node 'idea\.topic': next leads to unknown node 'idea\.nowhere'", bad.stdout + bad.stderr
    )
