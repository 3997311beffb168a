"""residents' addresses at rest: ``address`` holds a keyed hash (look-ups), the new
``address_enc`` the address encrypted; addresses stored before are converted here,
and a provider id that carried an address (the web chat's ``client:message``)
carries the start of its hash instead

Revision ID: 0006
Revises: 0005
"""
import re

import sqlalchemy as sa
from alembic import context, op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = ("channel_identities", "inbound_messages", "outbound_messages")
MARK = 24  # how much of an address a provider id carries (bot.storage.inbox)
CARRIED = re.compile(r"^([A-Za-z0-9_-]{1,24}):")
CHUNK = 1000


def _keys():
    return context.config.attributes.get("address_keys")


def _chunks(rows):
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("address_enc", sa.Text(), nullable=True))
    bind = op.get_bind()
    plain = {
        table: bind.execute(sa.text(f"SELECT id, channel, address FROM {table} WHERE address IS NOT NULL")).all()
        for table in TABLES
    }
    inbound = bind.execute(sa.text("SELECT id, channel, provider_id FROM inbound_messages WHERE provider_id LIKE '%:%'"))
    carried = [r for r in inbound.all() if CARRIED.match(r.provider_id)]
    if not any(plain.values()) and not carried:
        return
    keys = _keys()
    if keys is None:
        raise RuntimeError("addresses are encrypted with DATA_KEY: run this migration with `python -m bot migrate`")
    marks = {}  # (channel, start of a plain address) -> start of its hash, for provider ids
    for table in TABLES:
        rows = []
        for r in plain[table]:
            index, sealed = keys.stored(r.channel, r.address)
            marks[(r.channel, r.address[:MARK])] = index[:MARK]
            rows.append({"i": r.id, "a": index, "e": sealed})
        for chunk in _chunks(rows):
            bind.execute(sa.text(f"UPDATE {table} SET address = :a, address_enc = :e WHERE id = :i"), chunk)
    changed = []
    for r in carried:
        match = CARRIED.match(r.provider_id)
        if match is None:
            continue
        start = match.group(1)  # as new messages get it (bot.storage.inbox): the start of the address's hash
        mark = marks.get((r.channel, start)) or keys.index(r.channel, start)[:MARK]
        provider_id = (mark + r.provider_id[len(start) :])[:64]
        if provider_id != r.provider_id:
            changed.append({"i": r.id, "p": provider_id})
    for chunk in _chunks(changed):
        bind.execute(sa.text("UPDATE inbound_messages SET provider_id = :p WHERE id = :i"), chunk)


def downgrade() -> None:
    bind = op.get_bind()
    keys = _keys()
    for table in TABLES:
        rows = bind.execute(sa.text(f"SELECT id, channel, address_enc FROM {table} WHERE address_enc IS NOT NULL")).all()
        if rows and keys is None:
            raise RuntimeError("the addresses can only be decrypted with DATA_KEY: use `python -m bot migrate`")
        values = [{"i": r.id, "a": keys.open(r.channel, r.address_enc)} for r in rows]
        for chunk in _chunks(values):
            bind.execute(sa.text(f"UPDATE {table} SET address = :a WHERE id = :i"), chunk)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("address_enc")
