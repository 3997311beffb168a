"""Voice notes and photos from residents: checked, then kept under MEDIA_DIR."""

from __future__ import annotations

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
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return Media(kind=kind, ref=ref, mime=mime, size=len(data))
