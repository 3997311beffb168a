"""A resident's conversation as stored: the profile and the dialogue state.

This module is the one place that knows the stored format of a session
(:meth:`Dialogue.to_json` / :meth:`Dialogue.from_json`); storage keeps the
JSON, everyone else asks these classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Profile:
    language: str | None = None
    consented: bool = False
    stopped: bool = False
    updates: bool = False


@dataclass
class Dialogue:
    node: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    misses: int = 0
    return_to: str | None = None
    pending: str | None = None  # "confirm_delete" or "resume"
    updated_at: str | None = None  # ISO 8601, UTC

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Dialogue:
        if not data:
            return cls()
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass
class Conversation:
    profile: Profile = field(default_factory=Profile)
    dialogue: Dialogue = field(default_factory=Dialogue)
