"""Golden transcripts: ``> `` lines are what the resident sends, the rest is
what the bot answered (rendered for a channel without buttons).

Regenerate after an intended change with
``python -m tests.golden_tool tests/golden/NAME.txt`` and review the diff.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.helpers import Talk


def inputs(path: Path) -> list[str]:
    return [line[2:] for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("> ")]


def transcript(lines: list[str], talk: Talk | None = None) -> str:
    talk = talk or Talk.shipped()
    out: list[str] = []
    for line in lines:
        out.append(f"> {line}")
        for reply in talk.send(line):
            out.append(reply)
            out.append("")
        talk.wait(minutes=1)
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":  # pragma: no cover
    target = Path(sys.argv[1])
    lines = inputs(target) if target.exists() else sys.argv[2:]
    target.write_text(transcript(lines), encoding="utf-8")
