"""Babel extractor for flow files, so ``pybabel extract`` sees flow texts.

Registered as the ``kiezstimme_flows`` extraction method (see pyproject.toml
and ``i18n/babel.cfg``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

import yaml

from bot.conversation.flow_files import LineLoader

TEXT_KEYS = (
    "text",
    "label",
    "comment_text",
    "sms_text",
    "hours",
    "upcoming_text",
    "closed_text",
    "name",
    "description",
    "announcement",
)


def _walk(node: Any, parent_key: str | None = None) -> Iterator[tuple[int, str]]:
    if isinstance(node, dict):
        line = node.get("__line__", 0)
        for key, value in node.items():
            if key in ("__line__", "__keylines__"):
                continue
            if key in TEXT_KEYS and isinstance(value, str):
                yield line, value
            else:
                yield from _walk(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, parent_key)


def extract_flows(
    fileobj: BinaryIO, keywords: Any, comment_tags: Any, options: dict[str, Any]
) -> Iterator[tuple[int, str | None, str, list[str]]]:
    data = yaml.load(fileobj.read().decode("utf-8"), Loader=LineLoader)  # noqa: S506
    if isinstance(data, dict) and "languages" in data:
        return  # endonyms are never translated
    for line, text in _walk(data):
        yield line, None, text, []
