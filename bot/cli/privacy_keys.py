"""``python -m bot privacy rotate-key [--new-key KEY]`` — a new DATA_KEY for the
residents' addresses at rest (:mod:`bot.storage.crypto`).

Every stored address is opened with the current key, sealed with the new one
and its keyed hash recomputed, in one transaction. On the embedded default
(SQLite, ``DATA_KEY`` unset) the new key replaces the key file next to the
database; otherwise it is printed once, on stdout and never to a log, for the
operator to set as ``DATA_KEY`` in every process. Stop the bot's processes
first: one still running with the old key could neither find nor reach anyone.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import TextIO

from bot.config import ConfigError, Settings, data_key_problem
from bot.storage.crypto import AddressKeys, WrongKey, new_data_key, write_key_file


async def rotate_key(
    settings: Settings, new_key: str | None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Re-encrypt every address with ``new_key`` (a fresh one if None); the exit code."""
    from bot.storage.db import Database
    from bot.storage.rekey import reencrypt_addresses

    out, err = out or sys.stdout, err or sys.stderr
    if new_key is not None and data_key_problem(new_key) is not None:
        print(f"configuration error: --new-key {data_key_problem(new_key)}", file=err)
        return 2
    try:
        db = Database(
            settings.database_url, data_key=settings.data_key.get_secret_value() if settings.data_key else None
        )
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=err)
        return 2
    try:
        try:
            await db.migrate()  # the columns the addresses live in; refuses a key that does not open them
        except ConfigError as exc:
            print(f"configuration error: {exc}; nothing changed", file=err)
            return 1
        source = db.key_source
        key = (new_key or new_data_key()).strip()
        if key.rstrip("=") == source.key.rstrip("="):
            print("configuration error: --new-key is the key in use; give another one", file=err)
            return 2
        staged = None
        if source.file is not None:  # written before the commit: the database never has a key that is nowhere
            staged = source.file.with_name(source.file.name + ".new")
            write_key_file(staged, key)
        try:
            count = await db.run(functools.partial(reencrypt_addresses, old=db.keys, new=AddressKeys(key)))
        except WrongKey:
            if staged is not None:
                with contextlib.suppress(FileNotFoundError):
                    staged.unlink()
            print("the current DATA_KEY does not open the stored addresses; nothing changed", file=err)
            return 1
        except BaseException:
            if staged is not None:
                with contextlib.suppress(FileNotFoundError):
                    staged.unlink()
            raise
    finally:
        await db.dispose()
    if staged is not None and source.file is not None:
        os.replace(staged, source.file)
        print(f"{count} addresses re-encrypted; the new key is in {source.file} (mode 0600)", file=err)
        return 0
    print(key, file=out, flush=True)  # once, for the operator; never logged
    print(
        f"{count} addresses re-encrypted. Set DATA_KEY to the key printed above in every process's"
        " environment, then start them again: the old key opens nothing any more.",
        file=err,
    )
    return 0
