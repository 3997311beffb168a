"""A loopback Telegram Bot API stand-in for the benchmark: answers sendMessage
as fast as it can, optionally enforcing a per-second limit (429 with
retry_after, counted as a violation), and reports counts at ``GET /stats``.

    python -m bench.fake_server PORT [LIMIT_PER_S]
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter, deque
from urllib.parse import parse_qs

from aiohttp import web

ME = {"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "Bench", "username": "bench_bot"}}


def make_app(limit: float) -> web.Application:
    state = {"sent": 0, "violations": 0, "first_at": None, "last_at": None, "next_id": 1}
    per_chat: Counter[str] = Counter()
    window: deque[float] = deque()

    async def api(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if method == "getMe":
            return web.json_response(ME)
        if method != "sendMessage":
            return web.json_response({"ok": True, "result": True})
        body = await request.read()
        if request.content_type == "application/json":
            params = json.loads(body or b"{}")
        else:
            params = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        now = time.monotonic()
        if limit:
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= limit:
                state["violations"] += 1
                return web.json_response(
                    {
                        "ok": False,
                        "error_code": 429,
                        "description": "Too Many Requests: retry after 1",
                        "parameters": {"retry_after": 1},
                    },
                    status=429,
                )
            window.append(now)
        chat = str(params.get("chat_id"))
        per_chat[chat] += 1
        state["sent"] += 1
        state["first_at"] = state["first_at"] or now
        state["last_at"] = now
        message_id = state["next_id"]
        state["next_id"] += 1
        return web.json_response(
            {
                "ok": True,
                "result": {
                    "message_id": message_id,
                    "date": int(time.time()),
                    "text": params.get("text", ""),
                    "chat": {"id": int(chat) if chat.lstrip("-").isdigit() else 0, "type": "private"},
                },
            }
        )

    async def stats(request: web.Request) -> web.Response:
        chat = request.query.get("chat")
        return web.json_response(
            {**state, "chat_sent": per_chat.get(chat, 0) if chat else None, "chats": len(per_chat)}
        )

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", api)
    app.router.add_get("/stats", stats)
    return app


if __name__ == "__main__":
    port = int(sys.argv[1])
    limit = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    web.run_app(make_app(limit), host="127.0.0.1", port=port, access_log=None, print=None)
