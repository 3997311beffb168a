"""Everything stored about one resident, read for the DATA keyword (never an
address: channels are named, the numbers and accounts themselves are not)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from bot.conversation.personal_data import IdeaRecord, PersonalData, RatingRecord
from bot.storage.models import ChannelIdentity, Feedback, Idea, Resident
from bot.storage.profiles import ProfileRepository


def personal_data(conn: Connection, resident_id: int) -> PersonalData | None:
    resident = conn.execute(select(Resident).where(Resident.id == resident_id)).first()
    if resident is None:
        return None
    r = resident
    channels = conn.execute(
        select(ChannelIdentity.channel).where(ChannelIdentity.resident_id == resident_id).order_by(ChannelIdentity.id)
    ).scalars()
    ideas = conn.execute(
        select(Idea.reference, Idea.text, Idea.status, Idea.created_at, Idea.media)
        .where(Idea.resident_id == resident_id)
        .order_by(Idea.created_at)
    ).all()
    ratings = conn.execute(
        select(Feedback.statement, Feedback.rating, Feedback.comment, Feedback.created_at, Feedback.updated_at)
        .where(Feedback.resident_id == resident_id)
        .order_by(Feedback.created_at)
    ).all()
    return PersonalData(
        language=r.language,
        consent_version=r.consent_version,
        consented_at=r.consented_at,
        updates=bool(r.updates_opt_in),
        stopped=r.stopped_at is not None,
        source=r.source,
        channels=tuple(dict.fromkeys(channels)),
        ideas=tuple(IdeaRecord(i.reference, i.text, i.status, i.created_at, bool(i.media)) for i in ideas),
        ratings=tuple(
            RatingRecord(f.statement, f.rating, f.comment or "", f.updated_at or f.created_at) for f in ratings
        ),
        who=ProfileRepository().find(conn, resident_id),
    )
