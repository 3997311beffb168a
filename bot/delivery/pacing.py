"""Pacing sends to a provider's rate limit.

Providers count sends per sliding second (Telegram about 30 messages per
second to different chats; Twilio a number's messages or segments per
second). :class:`WindowPacer` keeps a log of recent sends and lets a send go
as soon as the last window still has room — so a burst fills the allowance
of the first second at once instead of trickling out — with a small margin
for requests that bunch up on their way. For low rates counted in SMS
segments (1 per second, one message worth several) :class:`EvenPacer` spaces
sends evenly, each taking as long as its units need.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

MARGIN = 0.02  # on top of the provider's second, for clocks that differ a little


Done = Callable[[], None]  # call when the provider has answered the request


class Pacer(Protocol):
    async def take(self, units: float = 1.0) -> Done: ...

    def pause(self, seconds: float) -> None: ...


def _nothing() -> None:
    return None


class EvenPacer:
    """At most ``rate`` units per second, evenly spaced; ``None`` means unlimited.
    It aims a little below the limit, since requests can bunch up on their way."""

    HEADROOM = 0.97

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.next_at = 0.0
        self._lock = asyncio.Lock()

    async def take(self, units: float = 1.0) -> Done:
        async with self._lock:
            now = time.monotonic()
            start = max(now, self.next_at)
            if self.rate is not None:
                self.next_at = start + units / (self.rate * self.HEADROOM)
            if start > now:
                await asyncio.sleep(start - now)
        return _nothing

    def pause(self, seconds: float) -> None:
        """The provider said "too many": nothing more for that long."""
        self.next_at = max(self.next_at, time.monotonic() + seconds)


class WindowPacer:
    """At most ``rate`` units in any window of ``1 s + margin``, counted from
    when each request was *answered*: the provider has seen it by then, so
    however requests bunch up on their way, no second it counts holds more."""

    def __init__(self, rate: float, margin: float = MARGIN) -> None:
        self.rate = rate
        self.window = 1.0 + margin
        self._sent: deque[list[float]] = deque()  # [answered at (inf while in flight), units]
        self._units = 0.0
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    async def take(self, units: float = 1.0) -> Done:
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._sent and now - self._sent[0][0] >= self.window:
                    self._units -= self._sent.popleft()[1]
                wait = self._paused_until - now
                if wait <= 0 and (self._units + units <= self.rate or not self._sent):
                    entry = [math.inf, units]
                    self._sent.append(entry)
                    self._units += units
                    return lambda: entry.__setitem__(0, time.monotonic())
                if wait <= 0:
                    wait = self._sent[0][0] + self.window - now if self._sent[0][0] != math.inf else 0.005
                await asyncio.sleep(max(wait, 0.001))

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)


def pacer_for(rate: float | None, unit: str) -> Pacer:
    """The pacer for a channel's rate (``None`` = unlimited) and the unit it counts."""
    if rate is None:
        return EvenPacer(None)
    if unit == "segment" or rate < 2:
        return EvenPacer(rate)
    return WindowPacer(rate)
