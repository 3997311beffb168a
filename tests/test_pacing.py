"""Pacing to a provider's limit: a burst takes the first second's allowance at
once, and no window of one second (as the provider counts) ever holds more."""

from __future__ import annotations

import asyncio
import time

from bot.delivery.pacing import EvenPacer, WindowPacer, pacer_for


def _most_in_one_second(times: list[float]) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


async def _send_all(pacer: WindowPacer, count: int, latency: float) -> tuple[list[float], list[float]]:
    """``count`` sends through the pacer to a provider ``latency`` away; (granted, arrived) times."""
    granted: list[float] = []
    arrived: list[float] = []

    async def one(i: int) -> None:
        answered = await pacer.take()
        granted.append(time.monotonic())
        await asyncio.sleep(latency * (1 + (i % 3)))  # requests bunch up and spread on their way
        arrived.append(time.monotonic())
        await asyncio.sleep(0.001)
        answered()

    await asyncio.gather(*(one(i) for i in range(count)))
    return granted, arrived


async def test_a_burst_goes_out_at_once_and_no_second_holds_more_than_the_limit() -> None:
    pacer = WindowPacer(rate=10)
    started = time.monotonic()
    granted, arrived = await _send_all(pacer, 25, latency=0.02)
    assert sum(1 for t in granted if t - started < 0.2) == 10  # the first second's allowance at once
    assert _most_in_one_second(arrived) <= 10  # as the provider counts them
    assert max(arrived) - started >= 2.0  # 25 at 10 per second cannot be faster


async def test_a_pause_from_the_provider_is_honoured() -> None:
    pacer = WindowPacer(rate=50)
    await pacer.take()
    pacer.pause(0.3)
    before = time.monotonic()
    await pacer.take()
    assert time.monotonic() - before >= 0.29


async def test_low_rates_in_segments_are_spaced_by_what_each_message_costs() -> None:
    pacer = pacer_for(4.0, "segment")
    assert isinstance(pacer, EvenPacer)
    before = time.monotonic()
    await pacer.take(2)  # a two-segment SMS
    await pacer.take(1)
    assert time.monotonic() - before >= 2 / 4.0 * 0.95


def test_unlimited_and_message_rates_get_the_right_pacer() -> None:
    assert isinstance(pacer_for(None, "message"), EvenPacer) and pacer_for(None, "message").rate is None
    assert isinstance(pacer_for(30.0, "message"), WindowPacer)
