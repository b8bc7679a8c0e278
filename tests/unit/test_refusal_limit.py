"""The bookkeeping that bounds anonymous refusals in the audit log, on a hand-driven clock."""

from __future__ import annotations

from taskscheduler.api.refusal_limit import OTHERS, RefusalLimiter, Summary


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, max_keys: int = 100) -> RefusalLimiter:
    return RefusalLimiter(window_seconds=60, max_keys=max_keys, clock=clock)


def test_the_first_refusal_of_a_window_is_written_and_the_rest_counted_into_one_summary() -> None:
    clock = Clock()
    limits = limiter(clock)
    decisions = [limits.admit("10.0.0.1", "unauthorized") for _ in range(50)]
    assert [write for write, _ in decisions] == [True] + [False] * 49
    assert all(closed == [] for _, closed in decisions)
    clock.now += 59.9
    assert limits.sweep() == []
    clock.now += 0.1
    assert limits.sweep() == [Summary("10.0.0.1", "unauthorized", 49, 60)]
    assert limits.sweep() == [] and len(limits) == 0


def test_the_next_refusal_after_the_window_closes_it_and_is_written_in_full() -> None:
    clock = Clock()
    limits = limiter(clock)
    limits.admit("10.0.0.1", "unauthorized")
    limits.admit("10.0.0.1", "unauthorized")
    clock.now += 61
    write, closed = limits.admit("10.0.0.2", "forbidden")  # anyone's refusal closes it
    assert write and closed == [Summary("10.0.0.1", "unauthorized", 1, 60)]
    write, closed = limits.admit("10.0.0.1", "unauthorized")
    assert write and closed == []


def test_a_window_of_one_refusal_needs_no_summary() -> None:
    clock = Clock()
    limits = limiter(clock)
    assert limits.admit("10.0.0.1", "unauthorized") == (True, [])
    clock.now += 120
    assert limits.sweep() == [] and len(limits) == 0


def test_addresses_and_outcomes_have_windows_of_their_own() -> None:
    clock = Clock()
    limits = limiter(clock)
    firsts = [
        limits.admit(address, outcome)[0]
        for address in ("10.0.0.1", "10.0.0.2")
        for outcome in ("unauthorized", "forbidden", "too_large")
    ]
    assert all(firsts) and len(limits) == 6


def test_many_addresses_share_one_window_past_the_cap_so_rows_and_memory_stay_bounded() -> None:
    clock = Clock()
    limits = limiter(clock, max_keys=10)
    written = 0
    for i in range(10_000):
        write, closed = limits.admit(f"10.1.{i // 256}.{i % 256}", "unauthorized")
        written += write
        assert closed == []
    assert written == 11, "ten addresses, then one window for all the others"
    assert len(limits) == 11
    clock.now += 60
    summaries = limits.sweep()
    assert summaries == [Summary(OTHERS, "unauthorized", 10_000 - 11, 60)]


def test_drain_returns_every_count_still_held() -> None:
    clock = Clock()
    limits = limiter(clock)
    for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2", "10.0.0.2"):
        limits.admit(address, "unauthorized")
    assert limits.drain() == [
        Summary("10.0.0.1", "unauthorized", 1, 60),
        Summary("10.0.0.2", "unauthorized", 2, 60),
    ]
    assert len(limits) == 0
