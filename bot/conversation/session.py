"""A resident's conversation as stored: the profile and the dialogue state.

This module is the one place that knows the stored format of a session
(:meth:`Dialogue.to_json` / :meth:`Dialogue.from_json`); storage keeps the
JSON, everyone else asks these classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass
class Profile:
    language: str | None = None
    consented: bool = False
    stopped: bool = False
    updates: bool = False
    consent_outdated: bool = False  # agreed to an earlier version of the privacy notice: asked again
    described: bool = False  # told us who speaks (group or age band): not asked again


@dataclass
class Dialogue:
    node: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    misses: int = 0
    return_to: str | None = None
    pending: str | None = None  # "confirm_delete" or "resume"
    updated_at: str | None = None  # ISO 8601, UTC

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "vars": _copy(self.vars),
            "misses": self.misses,
            "return_to": self.return_to,
            "pending": self.pending,
            "updated_at": self.updated_at,
        }

    def copy(self) -> Dialogue:
        return Dialogue(self.node, _copy(self.vars), self.misses, self.return_to, self.pending, self.updated_at)

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

    def copy(self) -> Conversation:
        """A copy the engine may change (the session's values are JSON-like: dicts, lists, scalars)."""
        return Conversation(replace(self.profile), self.dialogue.copy())


def _copy(value: Any) -> Any:
    """A deep copy of JSON-like data, several times faster than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
