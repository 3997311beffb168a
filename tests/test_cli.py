"""The commands as an operator runs them: real processes, real databases."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IDEA_DE = "Mehr Bäume und Schatten auf dem Hermannplatz"
IDEA_EN = "More night buses to the outer districts, please"


def run(args: list[str], env: dict[str, str], stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def env(database_url: str, tmp_path: Path, db: object) -> dict[str, str]:  # db: migrated / truncated
    return {"DATABASE_URL": database_url, "MEDIA_DIR": str(tmp_path / "media"), "LOG_LEVEL": "WARNING"}


def test_terminal_chat_in_german_and_english_then_export(env: dict[str, str]) -> None:
    de = run(["chat", "--resident", "ada"], env, "Guten Tag\nja\n1\n6\n" + IDEA_DE + "\n8\nja\n1\n")
    assert de.returncode == 0, de.stderr
    assert de.stdout.startswith("Kiezstimme sammelt Ideen")  # "Guten Tag" was German enough
    assert "Ihre Nummer ist" in de.stdout
    en = run(["chat", "--lang", "en", "--resident", "bo"], env, "hi\nyes\n1\n1\n" + IDEA_EN + "\n13\nno\n1\n")
    assert en.returncode == 0, en.stderr
    assert "Deutsch" not in en.stdout  # --lang chose English: never asked, never German
    assert "Your reference is" in en.stdout
    ref_de = de.stdout.split("Ihre Nummer ist ")[1][:7]
    ref_en = en.stdout.split("Your reference is ")[1][:7]

    out = run(["export", "ideas", "--format", "json"], env)
    assert out.returncode == 0, out.stderr
    records = {r["reference"]: r for r in json.loads(out.stdout)}
    assert records[ref_de]["language"] == "de" and records[ref_de]["topic"] == "housing"
    assert records[ref_de]["district"] == "neukoelln" and records[ref_de]["channel"] == "console"
    assert records[ref_en]["language"] == "en" and records[ref_en]["district"] is None
    assert "ada" not in out.stdout and '"bo"' not in out.stdout

    target = Path(env["MEDIA_DIR"]).parent / "ideas.csv"
    out = run(["export", "ideas", "--format", "csv", "--output", str(target)], env)
    assert out.returncode == 0 and "2 ideas records written" in out.stderr
    assert target.read_text(encoding="utf-8").startswith("\ufeffreference,")


def test_chat_continues_the_same_resident_across_runs(env: dict[str, str]) -> None:
    first = run(["chat", "--resident", "cy"], env, "...\n2\n")
    assert "1 Deutsch\n2 English\n3 Türkçe" in first.stdout
    second = run(["chat", "--resident", "cy"], env, "yes\n")
    assert "What would you like to do?" in second.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_creates_the_sqlite_database_and_answers(tmp_path: Path) -> None:
    port = _free_port()
    db_file = tmp_path / "fresh" / "kiezstimme.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db_file}", "PORT": str(port), "MEDIA_DIR": str(tmp_path / "m")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert f"http://127.0.0.1:{port}/" in line, proc.stderr.read() if proc.poll() is not None else line  # type: ignore[union-attr]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            assert json.load(resp) == {"status": "ok"}
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/webchat/api/messages",
            data=json.dumps({"client_id": "browser-0001", "text": "Hallo"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = json.load(resp)
        assert body["messages"][0]["text"].startswith("Kiezstimme sammelt")  # "Hallo": German
        assert db_file.exists()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"TELEGRAM_BOT_TOKEN": "123:abc"}, "TELEGRAM_WEBHOOK_SECRET"),
        ({"TELEGRAM_BOT_TOKEN": "123:abc", "TELEGRAM_WEBHOOK_SECRET": "has spaces"}, "TELEGRAM_WEBHOOK_SECRET"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"PUBLIC_URL": "bot.example.org"}, "PUBLIC_URL"),
        ({"PORT": "eighty"}, "PORT"),
        ({"TIMEZONE": "Mars/Olympus"}, "TIMEZONE"),
        ({"TWILIO_ACCOUNT_SID": "AC123"}, "TWILIO_AUTH_TOKEN"),
    ],
)
def test_misconfiguration_stops_with_one_clear_line(env: dict[str, str], variable: str) -> None:
    result = run(["migrate"], env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0]
    assert "123:abc" not in result.stderr
