"""Loopback fake of the Telegram Bot API for tests.

Point the *real* python-telegram-bot client at it (no patching)::

    async with FakeTelegram(token=TOKEN) as tg:
        bot = telegram.Bot(TOKEN, base_url=f"{tg.root}/bot",
                           base_file_url=f"{tg.root}/file/bot")
        await bot.initialize()          # -> getMe
        await bot.send_message(chat_id=42, text="hi")
        assert tg.sent_messages(42)[0]["text"] == "hi"

PTB posts ``{root}/bot{token}/{method}`` form-encoded, with nested objects
(``reply_markup`` …) as JSON strings; the fake also accepts JSON bodies and
multipart uploads. Recorded params are decoded: JSON-valued keys become
dicts/lists, integer keys (``chat_id`` …) ints, boolean keys bools.
Files are served at ``GET {root}/file/bot{token}/{file_path}``.

The module also builds realistic ``Update`` dicts (``make_*_update``) that
``telegram.Update.de_json(data, bot)`` accepts.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web

__all__ = [
    "BOT_USER",
    "Call",
    "FakeTelegram",
    "SERVICE_MESSAGES",
    "UNSUPPORTED_CONTENT",
    "make_album_updates",
    "make_callback_update",
    "make_edited_message_update",
    "make_message_update",
    "make_my_chat_member_blocked",
    "make_my_chat_member_unblocked",
    "make_photo_update",
    "make_service_update",
    "make_sticker_update",
    "make_text_update",
    "make_unsupported_update",
    "make_voice_update",
]

JSONDict = dict[str, Any]

#: The bot user answered by ``getMe`` and used as ``from`` of bot messages.
BOT_USER: JSONDict = {"id": 1, "is_bot": True, "first_name": "T", "username": "t_bot"}

_JSON_KEYS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "link_preview_options",
        "reply_parameters",
        "allowed_updates",
        "media",
        "commands",
        "scope",
        "results",
        "options",
        "permissions",
        "message_ids",
    }
)
_INT_KEYS = frozenset(
    {
        "chat_id",
        "from_chat_id",
        "message_id",
        "user_id",
        "offset",
        "limit",
        "timeout",
        "max_connections",
        "message_thread_id",
        "reply_to_message_id",
        "cache_time",
        "duration",
        "width",
        "height",
    }
)
_BOOL_KEYS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "drop_pending_updates",
        "show_alert",
        "disable_web_page_preview",
        "allow_sending_without_reply",
        "is_personal",
        "has_spoiler",
    }
)
_DEFAULT_DESCRIPTIONS: dict[int, str] = {
    400: "Bad Request: message is not modified",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_NOT_RATE_LIMITED = frozenset({"sendChatAction"})


@dataclass(frozen=True)
class Call:
    """One request received by the fake (recorded even when answered with an error)."""

    method: str
    params: JSONDict
    at: float  #: ``time.monotonic()`` on arrival
    status: int = 200  #: HTTP status the fake answered with


@dataclass
class _Failure:
    status: int
    remaining: int
    description: str
    retry_after: int | None


class _SlidingWindow:
    """Allows ``limit`` events per ``window`` seconds."""

    def __init__(self, rate_per_s: float) -> None:
        self.window = max(1.0, 1.0 / rate_per_s)
        self.limit = max(1, round(rate_per_s * self.window))
        self._events: deque[float] = deque()

    def wait(self, now: float) -> int | None:
        """Seconds to wait before the next event is allowed, or ``None`` if allowed now."""
        while self._events and now - self._events[0] >= self.window:
            self._events.popleft()
        if len(self._events) >= self.limit:
            return max(1, math.ceil(self._events[0] + self.window - now))
        return None

    def record(self, now: float) -> None:
        """Count an allowed event."""
        self._events.append(now)


@dataclass
class _StoredFile:
    file_id: str
    content: bytes
    file_path: str
    file_unique_id: str


def _decode_param(key: str, value: Any) -> Any:
    """Turn a form-encoded string value back into the type PTB serialised."""
    if not isinstance(value, str):
        return value
    if key in _JSON_KEYS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    if key in _INT_KEYS:
        try:
            return int(value)
        except ValueError:
            return value  # e.g. chat_id="@channel"
    if key in _BOOL_KEYS and value in ("true", "false"):
        return value == "true"
    return value


class FakeTelegram:
    """aiohttp loopback server speaking (a subset of) the Telegram Bot API.

    Args:
        token: if given, requests for any other token get 401 ``Unauthorized``.
        rate_limit_per_s: global limit for message-sending methods
            (``send*`` except ``sendChatAction``, ``copyMessage``, ``forwardMessage``);
            exceeding it answers 429 with ``retry_after`` and counts a violation.
        per_chat_rate_limit_per_s: the same limit applied per ``chat_id``.
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        rate_limit_per_s: float | None = None,
        per_chat_rate_limit_per_s: float | None = None,
    ) -> None:
        self.token = token
        self.rate_limit_per_s = rate_limit_per_s
        self.per_chat_rate_limit_per_s = per_chat_rate_limit_per_s
        self.calls: list[Call] = []
        #: Number of requests rejected by the rate limit(s).
        self.violations = 0
        self.webhook: JSONDict = {"url": ""}
        self.blocked_chats: set[int | str] = set()
        #: Extra per-request latency (seconds), to simulate a slow API.
        self.latency: float = 0.0
        self._failures: dict[str, deque[_Failure]] = defaultdict(deque)
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._updates: list[JSONDict] = []
        self._message_ids = itertools.count(1)
        self._global_window = _SlidingWindow(rate_limit_per_s) if rate_limit_per_s else None
        self._chat_windows: dict[Any, _SlidingWindow] = {}
        self._handlers: dict[str, Callable[[JSONDict], Awaitable[Any] | Any]] = {
            "getMe": lambda p: dict(BOT_USER),
            "logOut": lambda p: True,
            "close": lambda p: True,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "answerCallbackQuery": lambda p: True,
            "sendChatAction": lambda p: True,
            "deleteMessage": lambda p: True,
            "setMyCommands": lambda p: True,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "getUpdates": self._get_updates,
            "getFile": self._get_file,
        }
        self._runner: web.AppRunner | None = None
        self.root = ""

    # ------------------------------------------------------------ lifecycle

    def make_app(self) -> web.Application:
        """Build the aiohttp application (``start()`` serves it on loopback)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._handle_api)
        app.router.add_get("/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        return app

    async def start(self) -> None:
        """Serve on ``127.0.0.1`` with a free port; sets :attr:`root`."""
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.root = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """Value for ``telegram.Bot(base_url=...)``."""
        return f"{self.root}/bot"

    @property
    def base_file_url(self) -> str:
        """Value for ``telegram.Bot(base_file_url=...)``."""
        return f"{self.root}/file/bot"

    # ------------------------------------------------------------ scripting

    def fail_next(
        self,
        method: str,
        status: int,
        n: int = 1,
        retry_after: int | None = None,
        description: str | None = None,
    ) -> None:
        """Answer the next ``n`` calls of ``method`` (``"*"`` = any) with an error.

        ``status=429`` gets ``parameters.retry_after`` (default 1) → PTB raises
        ``RetryAfter``; 403 → ``Forbidden``; 400 → ``BadRequest``; 5xx → ``NetworkError``.
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            if status == 429:
                description = f"Too Many Requests: retry after {retry_after}"
            else:
                description = _DEFAULT_DESCRIPTIONS.get(status, f"Error {status}")
        self._failures[method].append(_Failure(status, n, description, retry_after))

    def clear_failures(self) -> None:
        """Drop all scripted failures."""
        self._failures.clear()

    def block_chat(self, chat_id: int | str) -> None:
        """Every later request for ``chat_id`` gets 403 "bot was blocked by the user"."""
        self.blocked_chats.add(_chat_key(chat_id))

    def unblock_chat(self, chat_id: int | str) -> None:
        """Undo :meth:`block_chat`."""
        self.blocked_chats.discard(_chat_key(chat_id))

    def add_file(self, file_id: str, content: bytes, file_path: str | None = None) -> str:
        """Make ``file_id`` known to ``getFile`` and downloadable; returns the file_path."""
        path = file_path or f"documents/file_{len(self._files)}.bin"
        stored = _StoredFile(file_id, content, path, f"AgAD{len(self._files):06d}")
        self._files[file_id] = stored
        self._files_by_path[path] = stored
        return path

    def push_update(self, update: JSONDict) -> None:
        """Queue an Update dict for ``getUpdates`` (long polling)."""
        self._updates.append(update)

    # ------------------------------------------------------------ inspection

    def calls_to(self, method: str) -> list[Call]:
        """All recorded calls of ``method``."""
        return [c for c in self.calls if c.method == method]

    def sent_messages(self, chat_id: int | str | None = None) -> list[JSONDict]:
        """Params of *successful* ``sendMessage`` calls, optionally for one chat."""
        return [
            c.params
            for c in self.calls
            if c.method == "sendMessage"
            and c.status == 200
            and (chat_id is None or _chat_key(c.params.get("chat_id")) == _chat_key(chat_id))
        ]

    # ------------------------------------------------------------ HTTP

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _read_params(request)
        now = time.monotonic()
        if self.latency:
            await asyncio.sleep(self.latency)
        response = self._check(request.match_info["token"], method, params, now)
        if response is None:
            handler = self._handlers.get(method)
            if handler is None:
                response = _error(404, "Not Found: method not found")
            else:
                result = handler(params)
                if asyncio.iscoroutine(result):
                    result = await result
                if isinstance(result, web.Response):
                    response = result
                else:
                    response = web.json_response({"ok": True, "result": result})
        self.calls.append(Call(method, params, now, response.status))
        return response

    def _check(self, token: str, method: str, params: JSONDict, now: float) -> web.Response | None:
        """Return an error response for auth, scripted failures, blocks and rate limits."""
        if self.token is not None and token != self.token:
            return _error(401, "Unauthorized")
        for key in (method, "*"):
            queue = self._failures.get(key)
            if queue:
                failure = queue[0]
                failure.remaining -= 1
                if failure.remaining <= 0:
                    queue.popleft()
                return _error(failure.status, failure.description, failure.retry_after)
        chat = params.get("chat_id")
        if chat is not None and _chat_key(chat) in self.blocked_chats:
            return _error(403, "Forbidden: bot was blocked by the user")
        if self._is_rate_limited(method):
            wait = self._rate_check(chat, now)
            if wait is not None:
                self.violations += 1
                return _error(429, f"Too Many Requests: retry after {wait}", wait)
        return None

    def _is_rate_limited(self, method: str) -> bool:
        return (method.startswith("send") and method not in _NOT_RATE_LIMITED) or method in (
            "copyMessage",
            "forwardMessage",
        )

    def _rate_check(self, chat: Any, now: float) -> int | None:
        """Seconds to wait if a limit is exceeded; otherwise count the request."""
        windows: list[_SlidingWindow] = []
        if self.per_chat_rate_limit_per_s and chat is not None:
            windows.append(
                self._chat_windows.setdefault(_chat_key(chat), _SlidingWindow(self.per_chat_rate_limit_per_s))
            )
        if self._global_window is not None:
            windows.append(self._global_window)
        waits = [w for w in (window.wait(now) for window in windows) if w is not None]
        if waits:
            return max(waits)
        for window in windows:
            window.record(now)
        return None

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if self.token is not None and request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        stored = self._files_by_path.get(request.match_info["path"])
        if stored is None:
            return _error(404, "Not Found")
        return web.Response(body=stored.content, content_type="application/octet-stream")

    # ------------------------------------------------------------ methods

    def _message(self, params: JSONDict, message_id: int | None = None) -> JSONDict:
        chat_id = params.get("chat_id")
        message: JSONDict = {
            "message_id": message_id if message_id is not None else next(self._message_ids),
            "from": dict(BOT_USER),
            "chat": _chat_for(chat_id),
            "date": int(time.time()),
        }
        if "text" in params:
            message["text"] = params["text"]
        if isinstance(params.get("entities"), list):
            message["entities"] = params["entities"]
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        return message

    def _send_message(self, params: JSONDict) -> JSONDict | web.Response:
        if "chat_id" not in params or not params.get("text"):
            return _error(400, "Bad Request: message text is empty")
        if len(str(params["text"])) > 4096:
            return _error(400, "Bad Request: message is too long")
        return self._message(params)

    def _edit_message_text(self, params: JSONDict) -> JSONDict | bool:
        if "inline_message_id" in params:
            return True
        message = self._message(params, params.get("message_id"))
        message["edit_date"] = int(time.time())
        return message

    def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict | bool:
        if "inline_message_id" in params:
            return True
        message = self._message(params, params.get("message_id"))
        message["text"] = "…"
        message["edit_date"] = int(time.time())
        return message

    def _set_webhook(self, params: JSONDict) -> bool:
        self.webhook = dict(params)
        return True

    def _delete_webhook(self, params: JSONDict) -> bool:
        self.webhook = {"url": ""}
        return True

    def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        info: JSONDict = {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": 0,
        }
        if "max_connections" in self.webhook:
            info["max_connections"] = self.webhook["max_connections"]
        if "allowed_updates" in self.webhook:
            info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        offset = params.get("offset")
        if isinstance(offset, int):
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        limit = params.get("limit") if isinstance(params.get("limit"), int) else 100
        return self._updates[:limit]

    def _get_file(self, params: JSONDict) -> JSONDict | web.Response:
        stored = self._files.get(str(params.get("file_id")))
        if stored is None:
            return _error(400, "Bad Request: invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }


def _chat_key(chat_id: Any) -> int | str:
    """Normalise a chat id so ``42`` and ``"42"`` compare equal."""
    if isinstance(chat_id, str):
        try:
            return int(chat_id)
        except ValueError:
            return chat_id
    return chat_id


def _chat_for(chat_id: Any) -> JSONDict:
    """A plausible Chat object for a chat the bot sends to."""
    if isinstance(chat_id, int) and chat_id > 0:
        return _chat(chat_id)
    if isinstance(chat_id, int) and str(chat_id).startswith("-100"):
        return {"id": chat_id, "title": "Group", "type": "supergroup"}
    if isinstance(chat_id, int):
        return {"id": chat_id, "title": "Group", "type": "group"}
    return {"id": -1001, "title": str(chat_id), "username": str(chat_id).lstrip("@"), "type": "channel"}


def _error(status: int, description: str, retry_after: int | None = None) -> web.Response:
    body: JSONDict = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=status)


async def _read_params(request: web.Request) -> JSONDict:
    """Parse query, JSON, urlencoded or multipart parameters into decoded values."""
    raw: JSONDict = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                raw.update(body)
        else:
            form = await request.post()
            for key, value in form.items():
                raw[key] = value if isinstance(value, str) else value.file.read()
    return {key: _decode_param(key, value) for key, value in raw.items()}


# ---------------------------------------------------------------- Update builders


def _now() -> int:
    return int(time.time())


def _user(chat_id: int, first_name: str, language_code: str | None) -> JSONDict:
    user: JSONDict = {"id": chat_id, "is_bot": False, "first_name": first_name}
    if language_code is not None:
        user["language_code"] = language_code
    return user


def _chat(chat_id: int, first_name: str = "Ada") -> JSONDict:
    return {"id": chat_id, "first_name": first_name, "type": "private"}


def _private_message(
    chat_id: int,
    message_id: int,
    first_name: str,
    language_code: str | None,
    date: int | None,
) -> JSONDict:
    return {
        "message_id": message_id,
        "from": _user(chat_id, first_name, language_code),
        "chat": _chat(chat_id, first_name),
        "date": date if date is not None else _now(),
    }


def make_text_update(
    update_id: int,
    chat_id: int,
    text: str,
    language_code: str | None = "de",
    first_name: str = "Ada",
    *,
    message_id: int | None = None,
    date: int | None = None,
) -> JSONDict:
    """A private text message; ``/commands`` get a ``bot_command`` entity."""
    message = _private_message(
        chat_id, message_id if message_id is not None else update_id, first_name, language_code, date
    )
    message["text"] = text
    if text.startswith("/"):
        command = text.split()[0]
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    return {"update_id": update_id, "message": message}


def make_callback_update(
    update_id: int,
    chat_id: int,
    data: str,
    message_id: int,
    language_code: str | None = "de",
    first_name: str = "Ada",
    *,
    message_text: str = "…",
    callback_id: str | None = None,
    date: int | None = None,
) -> JSONDict:
    """A button press on the bot's message ``message_id``."""
    return {
        "update_id": update_id,
        "callback_query": {
            "id": callback_id or f"{chat_id}{update_id:08d}",
            "from": _user(chat_id, first_name, language_code),
            "chat_instance": f"-{abs(chat_id) * 7919 % 10**18}",
            "data": data,
            "message": {
                "message_id": message_id,
                "from": dict(BOT_USER),
                "chat": _chat(chat_id, first_name),
                "date": date if date is not None else _now(),
                "text": message_text,
            },
        },
    }


def make_voice_update(
    update_id: int,
    chat_id: int,
    file_id: str,
    duration: int,
    file_size: int,
    mime_type: str = "audio/ogg",
    language_code: str | None = "de",
    first_name: str = "Ada",
    *,
    message_id: int | None = None,
    date: int | None = None,
) -> JSONDict:
    """A private voice note."""
    message = _private_message(
        chat_id, message_id if message_id is not None else update_id, first_name, language_code, date
    )
    message["voice"] = {
        "file_id": file_id,
        "file_unique_id": f"u{file_id}",
        "duration": duration,
        "mime_type": mime_type,
        "file_size": file_size,
    }
    return {"update_id": update_id, "message": message}


def make_photo_update(
    update_id: int,
    chat_id: int,
    file_id: str,
    caption: str | None = None,
    width: int = 1280,
    height: int = 960,
    file_size: int = 120_000,
    language_code: str | None = "de",
    first_name: str = "Ada",
    *,
    message_id: int | None = None,
    date: int | None = None,
) -> JSONDict:
    """A private photo: three ``PhotoSize`` entries, the largest has ``file_id``."""
    message = _private_message(
        chat_id, message_id if message_id is not None else update_id, first_name, language_code, date
    )
    sizes = []
    for i, scale in enumerate((0.0703125, 0.25, 1.0)):  # 90px, 320px, full width
        last = scale == 1.0
        sizes.append(
            {
                "file_id": file_id if last else f"{file_id}_{i}",
                "file_unique_id": f"u{file_id}_{i}",
                "width": max(1, round(width * scale)),
                "height": max(1, round(height * scale)),
                "file_size": file_size if last else max(1, round(file_size * scale * scale)),
            }
        )
    message["photo"] = sizes
    if caption is not None:
        message["caption"] = caption
    return {"update_id": update_id, "message": message}


def make_sticker_update(
    update_id: int,
    chat_id: int,
    file_id: str,
    emoji: str = "👍",
    set_name: str | None = None,
    language_code: str | None = "de",
    first_name: str = "Ada",
    *,
    message_id: int | None = None,
    date: int | None = None,
) -> JSONDict:
    """A private (static, regular) sticker."""
    message = _private_message(
        chat_id, message_id if message_id is not None else update_id, first_name, language_code, date
    )
    sticker: JSONDict = {
        "file_id": file_id,
        "file_unique_id": f"u{file_id}",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "emoji": emoji,
        "file_size": 24_000,
    }
    if set_name is not None:
        sticker["set_name"] = set_name
    message["sticker"] = sticker
    return {"update_id": update_id, "message": message}


def make_edited_message_update(
    update_id: int,
    chat_id: int,
    text: str,
    message_id: int,
    language_code: str | None = "de",
    first_name: str = "Ada",
    *,
    date: int | None = None,
    edit_date: int | None = None,
) -> JSONDict:
    """An ``edited_message`` update for the resident's earlier message ``message_id``."""
    message = _private_message(chat_id, message_id, first_name, language_code, date)
    message["text"] = text
    message["edit_date"] = edit_date if edit_date is not None else max(message["date"], _now())
    return {"update_id": update_id, "edited_message": message}


def _my_chat_member(
    update_id: int,
    chat_id: int,
    old: JSONDict,
    new: JSONDict,
    first_name: str,
    language_code: str | None,
    date: int | None,
) -> JSONDict:
    return {
        "update_id": update_id,
        "my_chat_member": {
            "chat": _chat(chat_id, first_name),
            "from": _user(chat_id, first_name, language_code),
            "date": date if date is not None else _now(),
            "old_chat_member": {"user": dict(BOT_USER), **old},
            "new_chat_member": {"user": dict(BOT_USER), **new},
        },
    }


def make_my_chat_member_blocked(
    update_id: int,
    chat_id: int,
    first_name: str = "Ada",
    language_code: str | None = "de",
    *,
    date: int | None = None,
) -> JSONDict:
    """The resident blocked the bot: bot status ``member`` → ``kicked``."""
    return _my_chat_member(
        update_id,
        chat_id,
        {"status": "member"},
        {"status": "kicked", "until_date": 0},
        first_name,
        language_code,
        date,
    )


def make_my_chat_member_unblocked(
    update_id: int,
    chat_id: int,
    first_name: str = "Ada",
    language_code: str | None = "de",
    *,
    date: int | None = None,
) -> JSONDict:
    """The resident unblocked (restarted) the bot: ``kicked`` → ``member``."""
    return _my_chat_member(
        update_id,
        chat_id,
        {"status": "kicked", "until_date": 0},
        {"status": "member"},
        first_name,
        language_code,
        date,
    )


# ---------------------------------------------------------------- odd inputs: recorded shapes

_OTHER_USER: JSONDict = {"id": 7001, "is_bot": False, "first_name": "Bob", "language_code": "de"}
_FILE = {"file_id": "BQACAgIAAxkBAAIBZ2Vx", "file_unique_id": "AgADqQADr8ZxSw"}
_THUMB = {"file_id": "AAMCAgADGQEAAgFnZXE", "file_unique_id": "AQADqQADr8ZxSw", "width": 90, "height": 90}

#: Service messages as Telegram sends them (the field and a recorded value): something
#: happened in the chat, nobody wrote anything. Most occur in groups; the first few also in a
#: private chat with a bot.
SERVICE_MESSAGES: dict[str, Any] = {
    "pinned_message": {
        "message_id": 12,
        "from": dict(BOT_USER),
        "chat": {"id": 0, "first_name": "Ada", "type": "private"},  # chat id filled in by make_service_update
        "date": 1764979200,
        "text": "Zu welchem Thema ist Ihre Idee?",
    },
    "message_auto_delete_timer_changed": {"message_auto_delete_time": 86400},
    "write_access_allowed": {"from_request": True},
    "chat_background_set": {
        "type": {"type": "fill", "fill": {"type": "solid", "color": 16777215}, "dark_theme_dimming": 0}
    },
    "users_shared": {"request_id": 1, "users": [{"user_id": 7001, "first_name": "Bob"}]},
    "chat_shared": {"request_id": 2, "chat_id": -1001234567890, "title": "Kiezgruppe"},
    "proximity_alert_triggered": {"traveler": dict(_OTHER_USER), "watcher": dict(_OTHER_USER), "distance": 40},
    "gift": {
        "gift": {
            "id": "5170145012310081615",
            "sticker": {
                **_FILE,
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": True,
                "is_video": False,
            },
            "star_count": 15,
        },
        "owned_gift_id": "g1",
    },
    "web_app_data": {"data": "{}", "button_text": "Karte"},
    "new_chat_members": [dict(_OTHER_USER)],
    "left_chat_member": dict(_OTHER_USER),
    "new_chat_title": "Kiez Neukölln",
    "new_chat_photo": [dict(_THUMB, file_size=2100)],
    "delete_chat_photo": True,
    "group_chat_created": True,
    "migrate_to_chat_id": -1001234567890,
    "boost_added": {"boost_count": 1},
    "forum_topic_created": {"name": "Ideen", "icon_color": 7322096},
    "forum_topic_edited": {"name": "Ideen für den Kiez"},
    "forum_topic_closed": {},
    "forum_topic_reopened": {},
    "general_forum_topic_hidden": {},
    "video_chat_scheduled": {"start_date": 1764990000},
    "video_chat_started": {},
    "video_chat_ended": {"duration": 1800},
    "video_chat_participants_invited": {"users": [dict(_OTHER_USER)]},
    "giveaway_created": {},
}

#: What a resident can send that the dialogue cannot use: field -> (recorded value, the kind
#: the adapter reports in ``extra["unsupported"]``). Some add a second field (a venue is also a
#: ``location``, an animation also a ``document``), as Telegram does.
UNSUPPORTED_CONTENT: dict[str, tuple[JSONDict, str]] = {
    "location": (
        {"location": {"latitude": 52.486861, "longitude": 13.424578, "horizontal_accuracy": 12.5}},
        "location",
    ),
    "venue": (
        {
            "venue": {
                "location": {"latitude": 52.486861, "longitude": 13.424578},
                "title": "Hermannplatz",
                "address": "Hermannplatz, 10967 Berlin",
                "foursquare_id": "4adcdaa3f964a520e94c21e3",
            },
            "location": {"latitude": 52.486861, "longitude": 13.424578},
        },
        "location",
    ),
    "contact": (
        {"contact": {"phone_number": "+4915112345678", "first_name": "Bob", "last_name": "B.", "user_id": 7001}},
        "contact",
    ),
    "poll": (
        {
            "poll": {
                "id": "5368722947591356418",
                "question": "Mehr Bäume?",
                "options": [{"text": "Ja", "voter_count": 0}, {"text": "Nein", "voter_count": 0}],
                "total_voter_count": 0,
                "is_closed": False,
                "is_anonymous": True,
                "type": "regular",
                "allows_multiple_answers": False,
            }
        },
        "poll",
    ),
    "sticker": (
        {
            "sticker": {
                **_FILE,
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": "👍",
                "set_name": "HotCherry",
                "file_size": 24000,
            }
        },
        "sticker",
    ),
    "dice": ({"dice": {"emoji": "🎲", "value": 4}}, "other"),
    "game": (
        {"game": {"title": "Kiezquiz", "description": "Ein Spiel", "photo": [dict(_THUMB, file_size=1200)]}},
        "other",
    ),
    "story": ({"story": {"chat": {"id": 7001, "first_name": "Bob", "type": "private"}, "id": 3}}, "other"),
    "video": (
        {
            "video": {
                **_FILE,
                "width": 1280,
                "height": 720,
                "duration": 9,
                "mime_type": "video/mp4",
                "file_size": 2_400_000,
                "thumbnail": dict(_THUMB),
            }
        },
        "other",
    ),
    "video_note": ({"video_note": {**_FILE, "length": 384, "duration": 6, "file_size": 380_000}}, "other"),
    "document": (
        {"document": {**_FILE, "file_name": "Plan.pdf", "mime_type": "application/pdf", "file_size": 180_000}},
        "other",
    ),
    "animation": (
        {
            "animation": {**_FILE, "width": 320, "height": 240, "duration": 3, "mime_type": "video/mp4"},
            "document": {**_FILE, "file_name": "lol.mp4", "mime_type": "video/mp4"},
        },
        "other",
    ),
    "audio": ({"audio": {**_FILE, "duration": 180, "title": "Kiezlied", "mime_type": "audio/mpeg"}}, "other"),
}


def make_message_update(
    update_id: int,
    chat_id: int,
    fields: JSONDict,
    language_code: str | None = "de",
    first_name: str = "Ada",
    *,
    message_id: int | None = None,
    date: int | None = None,
    chat_type: str = "private",
) -> JSONDict:
    """A message in a private chat (or a group: ``chat_type``) carrying ``fields``."""
    message = _private_message(
        chat_id, message_id if message_id is not None else update_id, first_name, language_code, date
    )
    if chat_type != "private":
        message["chat"] = {"id": chat_id, "title": "Kiez", "type": chat_type}
    message.update(json.loads(json.dumps(fields)))  # a deep copy
    return {"update_id": update_id, "message": message}


def make_service_update(update_id: int, chat_id: int, field: str, **kw: Any) -> JSONDict:
    """A service message (one of :data:`SERVICE_MESSAGES`); no ``from`` language."""
    value = json.loads(json.dumps(SERVICE_MESSAGES[field]))
    if field == "pinned_message":
        value["chat"]["id"] = chat_id
    return make_message_update(update_id, chat_id, {field: value}, **kw)


def make_unsupported_update(
    update_id: int, chat_id: int, field: str, caption: str | None = None, **kw: Any
) -> JSONDict:
    """Something from :data:`UNSUPPORTED_CONTENT` (with a caption where Telegram allows one)."""
    fields = dict(UNSUPPORTED_CONTENT[field][0])
    if caption is not None:
        fields["caption"] = caption
    return make_message_update(update_id, chat_id, fields, **kw)


def make_album_updates(
    first_update_id: int, chat_id: int, file_ids: list[str], media_group_id: str, caption: str | None = None
) -> list[JSONDict]:
    """The updates of one album: a photo message each, all with ``media_group_id``, the caption on the first."""
    updates = []
    for i, file_id in enumerate(file_ids):
        update = make_photo_update(first_update_id + i, chat_id, file_id, caption=caption if i == 0 else None)
        update["message"]["media_group_id"] = media_group_id
        updates.append(update)
    return updates
