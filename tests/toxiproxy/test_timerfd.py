"""PreciseTimers: deadlines fire in order, never early, once; cancel works; fallback works.

"Never early" is a property of the clock (both sides read CLOCK_MONOTONIC), not a speed
goal, so it is safe on a noisy machine; how late they fire is measured by
`benchmarks/proxy.py`, not asserted here.
"""

from __future__ import annotations

import asyncio

import pytest

from faults.toxiproxy import timerfd
from faults.toxiproxy.timerfd import PreciseTimers, timers_for


async def _collect(timers: PreciseTimers, offsets: list[float]) -> list[tuple[int, float, float]]:
    """Schedule one callback per offset (seconds from now); (index, when, fired_at)."""
    loop = asyncio.get_running_loop()
    fired: list[tuple[int, float, float]] = []
    done = loop.create_future()
    base = loop.time()

    def hit(index: int, when: float) -> None:
        fired.append((index, when, loop.time()))
        if len(fired) == len(offsets) and not done.done():
            done.set_result(None)

    for index, offset in enumerate(offsets):
        timers.call_at(base + offset, hit, index, base + offset)
    await asyncio.wait_for(done, 10)
    return fired


@pytest.mark.parametrize("precise", [True, False], ids=["timerfd", "call_at-fallback"])
def test_deadlines_fire_in_order_and_never_early(
    monkeypatch: pytest.MonkeyPatch, precise: bool
) -> None:
    if not precise:
        monkeypatch.setattr(timerfd, "_LIBC", None)

    async def main() -> list[tuple[int, float, float]]:
        timers = PreciseTimers(asyncio.get_running_loop())
        assert timers.precise is (precise and timerfd._LIBC is not None)
        try:
            # Out of order on purpose, one already in the past, two at the same time.
            return await _collect(timers, [0.03, 0.001, -1.0, 0.02, 0.02, 0.0005])
        finally:
            timers.close()

    fired = asyncio.run(main())
    assert [index for index, _, _ in fired] == [2, 5, 1, 3, 4, 0]
    assert all(at >= when for _, when, at in fired)


def test_cancelled_deadline_does_not_fire_and_later_ones_still_do() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        timers = timers_for(loop)
        assert timers_for(loop) is timers  # one per loop
        seen: list[str] = []
        now = loop.time()
        first = timers.call_at(now + 0.005, seen.append, "cancelled")
        timers.call_at(now + 0.01, seen.append, "kept")
        first.cancel()
        await asyncio.sleep(0.05)
        timerfd.release(loop)
        return seen

    assert asyncio.run(main()) == ["kept"]


def test_a_failing_callback_is_reported_and_does_not_stall_others() -> None:
    async def main() -> tuple[list[str], list[str]]:
        loop = asyncio.get_running_loop()
        errors: list[str] = []
        loop.set_exception_handler(lambda _, ctx: errors.append(str(ctx.get("exception"))))
        timers = PreciseTimers(loop)
        seen: list[str] = []

        def boom() -> None:
            raise ValueError("boom")

        now = loop.time()
        timers.call_at(now + 0.002, boom)
        timers.call_at(now + 0.002, seen.append, "same deadline")
        timers.call_at(now + 0.004, seen.append, "later")
        await asyncio.sleep(0.05)
        timers.close()
        return seen, errors

    seen, errors = asyncio.run(main())
    assert seen == ["same deadline", "later"]
    assert errors == ["boom"]  # through the loop's exception handler, as asyncio does
