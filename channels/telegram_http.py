"""python-telegram-bot's HTTP transport on aiohttp.

PTB's default transport (httpx/httpcore on anyio) costs a few milliseconds of
CPU per request; at broadcast rates that, not Telegram, becomes the limit.
PTB lets a bot bring its own ``BaseRequest``; this one uses the aiohttp
client we already run, with a connection pool sized for concurrent sends.
Everything above the transport (methods, parameters, errors) stays PTB's.
"""

from __future__ import annotations

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

USER_AGENT = "Kiezstimme (python-telegram-bot; aiohttp)"


class AiohttpRequest(BaseRequest):
    def __init__(
        self, connection_pool_size: int = 64, read_timeout: float = 10.0, connect_timeout: float = 5.0
    ) -> None:
        self._pool = connection_pool_size
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool),
                headers={"User-Agent": USER_AGENT},
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = None,
        write_timeout: object = None,
        connect_timeout: object = None,
        pool_timeout: object = None,
    ) -> tuple[int, bytes]:
        await self.initialize()
        assert self._session is not None
        read = read_timeout if isinstance(read_timeout, (int, float)) else self._read_timeout
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout, sock_read=read)
        data: object = None
        headers: dict[str, str] | None = None
        if request_data is not None:
            if request_data.contains_files:
                form = aiohttp.FormData()
                for name, value in request_data.multipart_data.items():
                    if isinstance(value, tuple):
                        filename, content, mime = value
                        form.add_field(name, content, filename=filename, content_type=mime)
                    else:
                        form.add_field(name, value)
                data = form
            else:  # a JSON body: Telegram takes it, and it is cheaper to build than a form
                data = request_data.json_payload
                headers = {"Content-Type": "application/json"}
        try:
            async with self._session.request(method, url, data=data, headers=headers, timeout=timeout) as resp:
                return resp.status, await resp.read()
        except TimeoutError as exc:
            raise TimedOut("Telegram did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp {type(exc).__name__}") from exc
