"""Who speaks: the actor group and age band a resident chose to tell us, one row per
resident in ``profiles`` — apart from their ideas (no idea id), so an idea never
carries who wrote it, and shown to organisers only in aggregate. The row goes with
the resident (``ON DELETE CASCADE``, and :meth:`ProfileRepository.erase`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from bot.conversation.personal_data import WhoSpeaks
from bot.storage.models import Profile, Resident


def described() -> ColumnElement[bool]:
    """A column for queries over residents: whether they have told us who speaks."""
    return exists().where(Profile.resident_id == Resident.id)


class ProfileRepository:
    def save(
        self, conn: Connection, resident_id: int, actor_group: str | None, age_band: str | None, now: datetime
    ) -> None:
        """Insert or replace the resident's answers (a later answer replaces an earlier one)."""
        values: dict[str, Any] = {"actor_group": actor_group, "age_band": age_band, "updated_at": now}
        changed = conn.execute(update(Profile).where(Profile.resident_id == resident_id).values(values)).rowcount
        if not changed:  # one step at a time per resident (the service's locks): no insert races this one
            conn.execute(insert(Profile).values(resident_id=resident_id, **values))

    def find(self, conn: Connection, resident_id: int) -> WhoSpeaks | None:
        row = conn.execute(
            select(Profile.actor_group, Profile.age_band).where(Profile.resident_id == resident_id)
        ).first()
        return None if row is None else WhoSpeaks(row.actor_group, row.age_band)

    def erase(self, conn: Connection, resident_id: int) -> None:
        conn.execute(delete(Profile).where(Profile.resident_id == resident_id))
