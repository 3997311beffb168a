"""A loopback HTTP listener that records every request it gets (method, path, headers)
and answers each with a small JPEG-typed body: a foreign host, to show what the bot
would send there (credentials must never arrive)."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from aiohttp import web


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]


class RecordingListener:
    def __init__(self, body: bytes = b"\xff\xd8\xff" + b"\x00" * 64, content_type: str = "image/jpeg") -> None:
        self.body, self.content_type = body, content_type
        self.requests: list[Recorded] = []
        self.root = ""
        self._runner: web.AppRunner | None = None

    async def _any(self, request: web.Request) -> web.Response:
        self.requests.append(Recorded(request.method, request.path_qs, dict(request.headers)))
        return web.Response(body=self.body, headers={"Content-Type": self.content_type})

    def url(self, path: str) -> str:
        return f"{self.root}/{path.lstrip('/')}"

    @property
    def credentials_seen(self) -> list[str]:
        """Every Authorization header (or URL userinfo) that arrived."""
        return [r.headers["Authorization"] for r in self.requests if "Authorization" in r.headers]

    async def __aenter__(self) -> RecordingListener:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.root = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
