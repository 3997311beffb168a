"""The README's promises: the test command is exactly what CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _last_command(text: str) -> str:
    return [line for line in text.splitlines() if line.startswith(("python3 -m venv", "npm ci "))][-1]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = _last_command(ci)
    assert f"```sh\n{command}\n```" in readme


def test_readme_first_command_serves() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = _last_command(readme.split("## Run the tests")[0])
    assert first.endswith("python -m bot serve") and "pip install -e ." in first
