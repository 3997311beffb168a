"""Re-encrypting every stored address with a new data key (key rotation, see
:mod:`bot.cli.privacy_keys`): each sealed address is opened with the old key,
sealed with the new one and its keyed hash recomputed — in the caller's one
transaction, so a failure (an address the old key does not open) changes
nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.engine import Connection

from bot.storage.crypto import AddressKeys
from bot.storage.inbox import MARK
from bot.storage.models import ChannelIdentity, InboundMessage, OutboundMessage

MODELS: tuple[Any, ...] = (ChannelIdentity, InboundMessage, OutboundMessage)


def reencrypt_addresses(conn: Connection, old: AddressKeys, new: AddressKeys) -> int:
    """Every address from ``old`` to ``new`` (raises :class:`bot.storage.crypto.WrongKey` if
    ``old`` does not open one); the number of addresses re-encrypted."""
    if conn.dialect.name == "postgresql":  # no process writes an address with the old key meanwhile
        conn.execute(
            text("LOCK TABLE channel_identities, inbound_messages, outbound_messages IN SHARE ROW EXCLUSIVE MODE")
        )
    marks: dict[tuple[str, str], str] = {}  # (channel, start of an old key) -> start of the new one
    count = 0
    for model in MODELS:
        rows = conn.execute(
            select(model.id, model.channel, model.address, model.address_enc).where(model.address_enc.is_not(None))
        ).all()
        values = []
        for r in rows:
            key, sealed = new.stored(r.channel, old.open(r.channel, r.address_enc))
            if r.address:
                marks[(r.channel, r.address[:MARK])] = key[:MARK]
            values.append({"b_id": r.id, "b_address": key, "b_sealed": sealed})
        if values:
            conn.execute(
                update(model)
                .where(model.id == bindparam("b_id"))
                .values(address=bindparam("b_address"), address_enc=bindparam("b_sealed")),
                values,
            )
        count += len(values)
    # provider ids that start with the start of an address's key (the web chat's client:message)
    carried = conn.execute(
        select(InboundMessage.id, InboundMessage.channel, InboundMessage.provider_id).where(
            InboundMessage.provider_id.contains(":")
        )
    ).all()
    changed = []
    for r in carried:
        start, _, rest = r.provider_id.partition(":")
        mark = marks.get((r.channel, start))
        if mark is not None:
            changed.append({"b_id": r.id, "b_provider": f"{mark}:{rest}"})
    if changed:
        conn.execute(
            update(InboundMessage)
            .where(InboundMessage.id == bindparam("b_id"))
            .values(provider_id=bindparam("b_provider")),
            changed,
        )
    return count
