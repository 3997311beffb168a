"""Telegram through python-telegram-bot's ``Bot`` (no polling, no PTB
``Application``: our aiohttp app receives the webhook and our inbox decides).

Only this module knows Telegram: it verifies the secret header, turns an
``Update`` into :class:`Inbound` messages, sends with inline keyboards,
acknowledges pressed buttons and downloads voice notes and photos. What it
cannot use (a location, a sticker, a video …) becomes a message with
``extra["unsupported"]``; service messages (a pinned message, a changed
auto-delete timer …) are acknowledged and dropped.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import warnings
from dataclasses import dataclass, field
from typing import Any

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.warnings import PTBUserWarning

from bot.values import (
    Capabilities,
    Inbound,
    Media,
    Outgoing,
    ReachabilityChange,
    SendError,
    Sent,
    WebhookRequest,
    WebhookResult,
)
from channels import inputs
from channels.base import BuildContext, ChannelSpec, EntryPoint
from channels.telegram_http import AiohttpRequest

NAME = "telegram"
CAPABILITIES = Capabilities(buttons=True, max_text=4096, media=("voice", "photo"), rate=30.0)
WEBHOOK_PATH = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]
_DEEP_LINK = re.compile(r"^/start(?:@\w+)?(?:\s+([A-Za-z0-9_-]{1,64}))?\s*$")
log = logging.getLogger(__name__)
# we call sendMessage through do_api_request on purpose (see TelegramChannel.send)
warnings.filterwarnings("ignore", message=r"Please use 'Bot\.sendMessage'", category=PTBUserWarning)


@dataclass
class ParsedUpdate:
    """What one webhook brought: messages for the inbox, reachability news,
    and a pressed button to acknowledge."""

    inbound: list[Inbound] = field(default_factory=list)
    reachability: list[ReachabilityChange] = field(default_factory=list)
    callback: dict[str, Any] | None = None  # {"id", "chat_id", "message_id"}


class TelegramChannel:
    name = NAME
    capabilities = CAPABILITIES

    def __init__(self, token: str, secret: str, api_base_url: str = "https://api.telegram.org") -> None:
        root = api_base_url.rstrip("/")
        self.bot = Bot(
            token,
            base_url=f"{root}/bot",
            base_file_url=f"{root}/file/bot",
            request=AiohttpRequest(connection_pool_size=64),
            get_updates_request=AiohttpRequest(connection_pool_size=1),
        )
        self._secret = secret.encode()
        self._ready = False
        self.webhooks = {WEBHOOK_PATH: self.handle_webhook}

    def __repr__(self) -> str:  # never show the token
        return "TelegramChannel()"

    async def _ensure_ready(self) -> None:
        if not self._ready:
            try:
                await self.bot.initialize()
            except InvalidToken:
                raise SendError("telegram rejected the bot token", permanent=False, retry_after=60) from None
            except TelegramError as exc:
                raise SendError(f"telegram not reachable: {type(exc).__name__}", permanent=False) from None
            self._ready = True

    def verify(self, header: str | None) -> bool:
        return header is not None and secrets.compare_digest(header.encode(), self._secret)

    # -- inbound -----------------------------------------------------------------

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResult:
        """Secret first (nothing read without it), then the Update; a poison update is acknowledged and dropped."""
        if not self.verify(request.headers.get(SECRET_HEADER)):
            return _json(403, {"error": "forbidden"})
        try:
            data = json.loads(await request.body())
            if not isinstance(data, dict) or not inputs.int64(data.get("update_id")) or data["update_id"] < 0:
                raise ValueError("not an Update")
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
            return _json(400, {"error": "not a Telegram update"})
        try:
            parsed = self.parse(data)
        except Exception:  # noqa: BLE001 - acknowledged, logged and dropped, never retried forever
            log.exception("could not read Telegram update %s; acknowledged and dropped", data.get("update_id"))
            return _json(200, {})
        callback = parsed.callback
        return WebhookResult(
            status=200,
            body="{}",
            content_type="application/json",
            inbound=tuple(parsed.inbound),
            reachability=tuple(parsed.reachability),
            after_ack=(lambda: self.acknowledge(callback)) if callback else None,
        )

    def parse(self, data: dict[str, Any]) -> ParsedUpdate:
        """The parts of a Bot API ``Update`` the dialogue needs, read straight from its JSON
        (building PTB objects for every update cost more than the rest of the acknowledgement).
        Every field is checked by shape (ids integers of 64 bits, file ids tokens, texts bounded
        and cleaned of NUL bytes and lone surrogates); a wrong one raises ValueError and the
        update is acknowledged and dropped with nothing stored."""
        parsed = ParsedUpdate()
        provider_id = str(data["update_id"])
        if "my_chat_member" in data:
            _parse_membership(_obj(data, "my_chat_member"), parsed)
        elif "callback_query" in data:
            _parse_pressed_button(_obj(data, "callback_query"), provider_id, parsed)
        elif "message" in data and _obj(_obj(data, "message"), "chat").get("type") == "private":
            inbound = _message_inbound(_obj(data, "message"), provider_id)
            if inbound is not None:
                parsed.inbound.append(inbound)
        # edits, channel posts, groups, service messages: acknowledged, not answered
        return parsed

    async def acknowledge(self, callback: dict[str, Any]) -> None:
        """Stop the button's spinner and remove the keyboard so it cannot be pressed twice."""
        try:
            await self._ensure_ready()
            await self.bot.answer_callback_query(callback["id"])
            await self.bot.edit_message_reply_markup(
                chat_id=callback["chat_id"], message_id=callback["message_id"], reply_markup=None
            )
        except (TelegramError, SendError) as exc:
            log.info("could not acknowledge a button press: %s", type(exc).__name__)

    def own_file_url(self, url: str | None) -> bool:
        """``url`` is a file of this bot under the configured Bot API root (what ``getFile``
        answers, joined by PTB): the token goes nowhere else, and no local path is ever read
        (PTB reads a ``file_path`` that names an existing local file from the disk)."""
        prefix = f"{self.bot.base_file_url}/"  # {root}/file/bot{token}/
        if not url or not url.startswith(prefix):
            return False
        rest = url[len(prefix) :]
        return bool(rest) and ".." not in rest.split("/") and "\\" not in rest and "://" not in rest

    async def fetch_media(self, source: dict[str, Any]) -> tuple[str, bytes] | None:
        file_id = source.get("file_id")
        if not isinstance(file_id, str) or not _FILE_ID.fullmatch(file_id):
            return None
        try:
            await self._ensure_ready()
            file = await self.bot.get_file(file_id)
            if not self.own_file_url(file.file_path):
                log.warning("telegram media not fetched: getFile named a path outside the Bot API root")
                return None
            data = await file.download_as_bytearray()
        except (TelegramError, SendError) as exc:
            log.warning("telegram media download failed: %s", type(exc).__name__)
            return None
        return source.get("mime", ""), bytes(data)

    # -- outbound ------------------------------------------------------------------

    async def send(self, address: str, message: Outgoing) -> Sent:
        await self._ensure_ready()
        markup = None
        if message.choices:
            labels = [c.label for c in message.choices]
            if len(labels) <= 3 and sum(len(label) for label in labels) <= 30:
                rows = [[InlineKeyboardButton(c.label, callback_data=c.value) for c in message.choices]]
            else:
                rows = [[InlineKeyboardButton(c.label, callback_data=c.value)] for c in message.choices]
            markup = InlineKeyboardMarkup(rows)
        try:
            # the raw result: building a PTB Message from every answer cost as much as the request itself
            sent = await self.bot.do_api_request(
                "sendMessage", {"chat_id": int(address), "text": message.text, "reply_markup": markup}
            )
        except RetryAfter as exc:
            after = exc.retry_after
            seconds = after.total_seconds() if hasattr(after, "total_seconds") else float(after)
            raise SendError("telegram rate limit", permanent=False, retry_after=seconds) from None
        except Forbidden:
            raise SendError("blocked by the resident", permanent=True, unreachable=True) from None
        except BadRequest as exc:
            unreachable = "chat not found" in str(exc).lower()
            raise SendError(f"rejected: {str(exc)[:80]}", permanent=True, unreachable=unreachable) from None
        except (TimedOut, NetworkError) as exc:
            raise SendError(f"network: {type(exc).__name__}", permanent=False) from None
        except TelegramError as exc:
            raise SendError(f"telegram error: {type(exc).__name__}", permanent=False) from None
        return Sent(provider_id=str(sent["message_id"]) if isinstance(sent, dict) else None)

    async def register_webhook(self, public_url: str) -> str:
        """Tell Telegram where to send updates, with the secret; the URL registered."""
        await self._ensure_ready()
        url = f"{public_url.rstrip('/')}/webhooks/{WEBHOOK_PATH}"
        await self.bot.set_webhook(url=url, secret_token=self._secret.decode(), allowed_updates=ALLOWED_UPDATES)
        return url

    async def close(self) -> None:
        if self._ready:
            await self.bot.shutdown()
            self._ready = False


def _obj(data: Any, key: str) -> dict[str, Any]:
    """A nested object of the update, or ``{}``; anything else is not an Update (ValueError)."""
    value = data.get(key) if isinstance(data, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{key} is not an object")
    return value


def _str(data: dict[str, Any], key: str, limit: int = inputs.MAX_TEXT) -> str | None:
    """A string field, at most ``limit`` characters, cleaned of NUL bytes and lone surrogates."""
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} is not a string")
    if value is not None and len(value) > limit:
        raise ValueError(f"{key} is too long")
    return None if value is None else inputs.clean_text(value)


def _hint(data: dict[str, Any]) -> str | None:
    """The user's ``language_code`` if it looks like a language tag (a hint is never worth a refusal)."""
    return inputs.language_tag(_obj(data, "from").get("language_code"))


_FILE_ID = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _file_id(item: dict[str, Any]) -> str:
    file_id = item.get("file_id")
    if not isinstance(file_id, str) or not _FILE_ID.fullmatch(file_id):
        raise ValueError("file_id is not a file id")
    return file_id


def _chat_id(chat: dict[str, Any]) -> str:
    chat_id = chat.get("id")
    if not inputs.int64(chat_id):
        raise ValueError("chat.id is not a 64-bit integer")
    return str(chat_id)


def _parse_membership(member: dict[str, Any], parsed: ParsedUpdate) -> None:
    """A resident blocked the bot (or unblocked it): reachability news, nothing to answer."""
    chat = _obj(member, "chat")
    if chat.get("type") == "private":
        reachable = _obj(member, "new_chat_member").get("status") not in ("kicked", "left")
        parsed.reachability.append(ReachabilityChange(NAME, _chat_id(chat), reachable))


def _parse_pressed_button(query: dict[str, Any], provider_id: str, parsed: ParsedUpdate) -> None:
    """A pressed inline button: the choice for the inbox, and the button to acknowledge."""
    message = _obj(query, "message")
    chat = _obj(message, "chat")
    if not message or chat.get("type") != "private":
        return
    query_id, message_id = _str(query, "id", 64), message.get("message_id")
    if not query_id or not inputs.int64(message_id):
        raise ValueError("callback_query.id or message.message_id missing")
    parsed.callback = {"id": query_id, "chat_id": int(_chat_id(chat)), "message_id": message_id}
    parsed.inbound.append(
        Inbound(
            channel=NAME,
            address=_chat_id(chat),
            provider_id=provider_id,
            choice=_str(query, "data", 256) or "",
            locale_hint=_hint(query),
        )
    )


# What a resident can send that we cannot use, by the Message field that carries it, and
# the kind the engine is told (``extra["unsupported"]``). Animations also set ``document``,
# venues ``location``; both map to the same kind either way.
UNSUPPORTED: dict[str, str] = {
    "location": "location",
    "venue": "location",
    "contact": "contact",
    "poll": "poll",
    "sticker": "sticker",
    "animation": "other",
    "audio": "other",
    "checklist": "other",
    "dice": "other",
    "document": "other",
    "game": "other",
    "giveaway": "other",
    "giveaway_winners": "other",
    "invoice": "other",
    "live_photo": "other",
    "paid_media": "other",
    "story": "other",
    "video": "other",
    "video_note": "other",
}
# Service messages: something happened in the chat (a message pinned, the auto-delete timer
# changed, the resident allowed the bot to write, a gift, a payment, …); nobody wrote anything,
# so they are acknowledged and nothing is stored or answered. Most only occur in groups.
SERVICE = frozenset(
    {
        "boost_added",
        "channel_chat_created",
        "chat_background_set",
        "chat_owner_changed",
        "chat_owner_left",
        "chat_shared",
        "checklist_tasks_added",
        "checklist_tasks_done",
        "connected_website",
        "delete_chat_photo",
        "direct_message_price_changed",
        "forum_topic_closed",
        "forum_topic_created",
        "forum_topic_edited",
        "forum_topic_reopened",
        "general_forum_topic_hidden",
        "general_forum_topic_unhidden",
        "gift",
        "gift_upgrade_sent",
        "giveaway_completed",
        "giveaway_created",
        "group_chat_created",
        "left_chat_member",
        "managed_bot_created",
        "message_auto_delete_timer_changed",
        "migrate_from_chat_id",
        "migrate_to_chat_id",
        "new_chat_members",
        "new_chat_photo",
        "new_chat_title",
        "paid_message_price_changed",
        "passport_data",
        "pinned_message",
        "poll_option_added",
        "poll_option_deleted",
        "proximity_alert_triggered",
        "refunded_payment",
        "successful_payment",
        "suggested_post_approval_failed",
        "suggested_post_approved",
        "suggested_post_declined",
        "suggested_post_paid",
        "suggested_post_refunded",
        "supergroup_chat_created",
        "unique_gift",
        "users_shared",
        "video_chat_ended",
        "video_chat_participants_invited",
        "video_chat_scheduled",
        "video_chat_started",
        "web_app_data",
        "write_access_allowed",
    }
)


def _message_inbound(message: dict[str, Any], provider_id: str) -> Inbound | None:
    """A resident's private message: text (a /start deep link keeps its source), voice, photo
    (with its album), something we cannot use (``extra["unsupported"]``; its caption, if any,
    is taken as text instead), or None for a service message."""
    hint = _hint(message)
    address = _chat_id(_obj(message, "chat"))
    caption = _str(message, "caption")

    def inbound(text: str | None, media: Media | None = None, extra: dict[str, Any] | None = None) -> Inbound:
        return Inbound(NAME, address, provider_id, text=text, media=media, locale_hint=hint, extra=extra or {})

    text = _str(message, "text")
    if text is not None:
        extra: dict[str, Any] = {}
        link = _DEEP_LINK.match(text.strip())
        if link:
            text = "/start"
            if link.group(1):
                extra["source"] = link.group(1)
        return inbound(text, extra=extra)
    voice = _obj(message, "voice")
    if voice:
        mime = _str(voice, "mime_type", 127) or "audio/ogg"
        return inbound(caption, _remote("voice", mime, _size(voice), _file_id(voice)))
    photos = message.get("photo")
    if isinstance(photos, list) and photos and all(isinstance(p, dict) for p in photos):
        photo = max(photos, key=lambda p: (_size(p) or 0, int(p.get("width") or 0) * int(p.get("height") or 0)))
        album = _str(message, "media_group_id", 64)
        return inbound(
            caption,
            _remote("photo", "image/jpeg", _size(photo), _file_id(photo)),
            {"album": album} if isinstance(album, str) and album else None,
        )
    if caption and caption.strip():  # a video, a document … with words: the words are what the resident said
        return inbound(caption)
    kind = next((UNSUPPORTED[key] for key in message if key in UNSUPPORTED), None)
    if kind is not None:
        return inbound(None, extra={"unsupported": kind})
    if any(key in SERVICE for key in message):
        return None
    log.info("unknown kind of Telegram message (fields %s); answered as unsupported", sorted(message)[:12])
    return inbound(None, extra={"unsupported": "other"})


def _size(item: dict[str, Any]) -> int | None:
    size = item.get("file_size")
    return size if inputs.int64(size) else None


def _remote(kind: str, mime: str, size: int | None, file_id: str) -> Media:
    """A file still on Telegram's servers; the service fetches it before the step."""
    return Media(kind=kind, ref="", mime=mime, size=size or 0, source={"file_id": file_id, "mime": mime})


def _json(status: int, body: dict[str, Any]) -> WebhookResult:
    return WebhookResult(status=status, body=json.dumps(body), content_type="application/json")


def build(ctx: BuildContext) -> TelegramChannel | None:
    settings = ctx.settings
    if not (settings.telegram_bot_token and settings.telegram_webhook_secret):
        return None
    return TelegramChannel(
        settings.telegram_bot_token.get_secret_value(),
        settings.telegram_webhook_secret.get_secret_value(),
        settings.telegram_api_base_url,
    )


def entry_point(settings: Any, payload: str, keyword: str) -> EntryPoint | None:
    """A t.me deep link whose /start payload names the way in (needs TELEGRAM_BOT_USERNAME)."""
    username = (getattr(settings, "telegram_bot_username", None) or "").strip().lstrip("@")
    if not username:
        return None
    link = f"https://t.me/{username}?start={payload}"
    return EntryPoint(NAME, link, link, keyword, None)


SPEC = ChannelSpec(
    NAME,
    CAPABILITIES,
    build,
    requires="TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET",
    registers_webhook=True,
    entry_point=entry_point,
)
