"""Residents' addresses at rest: encrypted, and found through a keyed hash.

A phone number, a WhatsApp number, a Telegram chat id or a web chat client id
is stored twice, neither time in plain text:

- ``address`` holds :meth:`AddressKeys.index` — HMAC-SHA256 of the channel and
  the address, hex. Every equality look-up and grouping uses it (the same
  resident, the same sender, the same recipient), so the queries stay as
  they were;
- ``address_enc`` holds :meth:`AddressKeys.seal` — AES-256-GCM with a random
  nonce, bound to the channel. It is opened only where a message is actually
  sent (the channel's ``send`` needs the plain address).

Both keys come from one secret, ``DATA_KEY`` (32 random bytes, urlsafe
base64), through HKDF. On the embedded default (SQLite, ``DATA_KEY`` unset)
the secret is generated once into a file next to the database (``data_key``,
mode 0600); on PostgreSQL several processes must share one key, so it must be
set. :func:`resolve_data_key` decides; ``python -m bot privacy rotate-key``
(:mod:`bot.cli.privacy_keys`) replaces it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import make_url

from bot.config import NEW_DATA_KEY_HINT, ConfigError, data_key_problem

KEY_FILE = "data_key"  # next to the SQLite database, e.g. data/data_key
_VERSION = "1."  # ciphertexts name their format, so a later one can live beside it


class WrongKey(Exception):
    """A stored address does not open with this key (another DATA_KEY encrypted it)."""


def new_data_key() -> str:
    """A fresh secret: 32 random bytes, urlsafe base64 (the format of ``DATA_KEY``)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def _secret(value: str) -> bytes:
    value = value.strip()
    problem = data_key_problem(value)
    if problem is not None:
        raise ConfigError(f"DATA_KEY {problem}")
    return base64.urlsafe_b64decode(value.rstrip("=") + "=")


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"kiezstimme", info=purpose).derive(secret)


class AddressKeys:
    """The two keys derived from ``DATA_KEY``: one encrypts addresses, one indexes them."""

    def __init__(self, data_key: str) -> None:
        secret = _secret(data_key)
        self._aead = AESGCM(_derive(secret, b"address encryption v1"))
        self._mac = _derive(secret, b"address index v1")

    def __repr__(self) -> str:  # never the keys
        return "AddressKeys(…)"

    def index(self, channel: str, address: str) -> str:
        """The keyed hash stored in ``address`` columns: equal for the same channel and address."""
        message = channel.encode() + b"\x00" + address.encode()
        return hmac.new(self._mac, message, hashlib.sha256).hexdigest()

    def seal(self, channel: str, address: str) -> str:
        """The address encrypted (a fresh nonce each time), bound to its channel."""
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, address.encode(), b"kiezstimme:" + channel.encode())
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")

    def open(self, channel: str, sealed: str) -> str:
        """The plain address of :meth:`seal`'s output; :class:`WrongKey` if this key did not seal it."""
        if not sealed.startswith(_VERSION):
            raise WrongKey("not a sealed address")
        raw = base64.urlsafe_b64decode(sealed[len(_VERSION) :] + "=" * (-len(sealed[len(_VERSION) :]) % 4))
        try:
            return self._aead.decrypt(raw[:12], raw[12:], b"kiezstimme:" + channel.encode()).decode()
        except InvalidTag:
            raise WrongKey("the address was sealed with another key") from None

    def stored(self, channel: str, address: str) -> tuple[str, str]:
        """(index, sealed): the two columns of one address."""
        return self.index(channel, address), self.seal(channel, address)


@dataclass(frozen=True)
class KeySource:
    """The data key and where it came from (``file`` on the embedded default, else None)."""

    key: str
    file: Path | None = None


def key_file_for(url: str) -> Path | None:
    """The key file of a SQLite database file (next to it), None for PostgreSQL or memory."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    if not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).parent / KEY_FILE


def resolve_data_key(url: str, given: str | None = None) -> KeySource:
    """The data key for a database: ``given`` (the settings' DATA_KEY), else the environment's
    ``DATA_KEY``, else — on SQLite — the key file next to the database, generated once.
    PostgreSQL without a key is refused (several processes must share one key)."""
    for value in (given, os.environ.get("DATA_KEY")):
        if value and value.strip():
            _secret(value)  # checked: a wrong one stops start-up naming DATA_KEY, never showing it
            return KeySource(value.strip())
    if make_url(url).drivername.startswith("sqlite"):
        path = key_file_for(url)
        if path is None:  # an in-memory database lives as long as its key
            return KeySource(new_data_key())
        return KeySource(read_or_create_key_file(path), path)
    raise ConfigError(
        "DATA_KEY is required with PostgreSQL (every process must use the same key); make one with " + NEW_DATA_KEY_HINT
    )


def read_or_create_key_file(path: Path) -> str:
    """The key in ``path``, written (mode 0600) by the first process that needs it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process was first: take its key
            write_key_file(path, new_data_key(), replace=False)
    value = path.read_text(encoding="ascii").strip()
    problem = data_key_problem(value)
    if problem is not None:
        raise ConfigError(f"the key file {path} (the embedded database's DATA_KEY) {problem}")
    return value


def write_key_file(path: Path, key: str, *, replace: bool = True) -> None:
    """Write a key file atomically with mode 0600 whatever the umask; with ``replace=False``
    an existing file stays (``FileExistsError``)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (key + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails if the file exists: the first key stays
    finally:
        with contextlib.suppress(FileNotFoundError):
            if not replace:
                os.unlink(temporary)


def private_file(path: Path) -> None:
    """Create an empty file with mode 0600 (umask-independent), or narrow an existing one to 0600."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with contextlib.suppress(OSError):  # not ours to change: leave it
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
