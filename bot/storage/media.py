"""Voice notes and photos from residents: checked, then kept under MEDIA_DIR
under random names, readable by this user only (files 0600, folders 0700)."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from bot.values import MEDIA_TYPES, Media, media_kind

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # what Telegram lets bots download


class MediaStore:
    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def refuse(self, kind: str, mime: str, size: int | None) -> Media | None:
        """A Media saying why the file is not taken, or None if it may be fetched."""
        if size is not None and size > self.max_bytes:
            return Media(kind="too_large", ref="", mime=mime, size=size)
        if media_kind(mime) != kind:
            return Media(kind="unsupported", ref="", mime=mime, size=size or 0)
        return None

    def save(self, kind: str, mime: str, data: bytes) -> Media:
        refused = self.refuse(kind, mime, len(data))
        if refused is not None:
            return refused
        ext = MEDIA_TYPES[kind][mime.split(";")[0].strip().lower()]
        now = datetime.now(UTC)
        ref = f"{now:%Y/%m}/{secrets.token_hex(12)}.{ext}"
        path = self.root / ref
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            with os.fdopen(fd, "wb") as file:
                file.write(data)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return Media(kind=kind, ref=ref, mime=mime, size=len(data))
