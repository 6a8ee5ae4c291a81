"""LagTracker's arithmetic: lag from heartbeats and applied events, never 0 by silence."""

from __future__ import annotations

from strangler.sync.lag import Beat, LagTracker
from strangler.sync.model import ChangeEvent, Position


def change(ts: float) -> ChangeEvent:
    return ChangeEvent("mono", "public.t", "u", {"id": 1}, None, {"id": 1}, Position(1, 1),
                       int(ts * 1000))  # fmt: skip


def beat_event(number: int, source: str = "mono") -> ChangeEvent:
    after = {"source": source, "beat": number, "written_ms": 0}
    return ChangeEvent("mono", "public.strangler_heartbeat", "u", {"source": source}, None,
                       after, Position(1, 1), 0)  # fmt: skip


def test_unknown_until_a_heartbeat_goes_out_and_not_caught_up_until_one_comes_back() -> None:
    lag = LagTracker("mono")
    assert lag.lag(100.0) is None and not lag.caught_up(100.0)
    lag.wrote(Beat(1, 100.0), 0.0)
    assert lag.lag(103.0) == 3.0 and not lag.caught_up(103.0)  # silence is not "caught up"
    lag.applied([beat_event(1)], now=103.2)
    assert not lag.caught_up(104.0)  # it came back, but took 3.2 s
    lag.wrote(Beat(2, 104.0), 0.0)
    lag.applied([beat_event(2)], now=104.1)
    assert round(lag.lag(104.5) or 0, 1) == 0.1 and lag.caught_up(104.5)


def test_a_backlog_reports_the_age_of_what_is_being_applied() -> None:
    lag = LagTracker("mono")
    lag.wrote(Beat(1, 1000.0), 0.0)  # written at start-up, behind 100 s of changes
    lag.applied([change(900.0)], now=1001.0)
    assert lag.lag(1001.0) == 101.0
    # Between the source's batches nothing arrives: still 101 s behind, and growing.
    assert lag.lag(1002.0) == 102.0 and not lag.caught_up(1002.0)
    lag.applied([change(999.5), beat_event(1)], now=1003.0)
    assert lag.lag(1003.0) == 3.0  # the heartbeat's own trip


def test_idle_lag_stays_the_heartbeat_trip_and_other_sources_beats_are_not_ours() -> None:
    lag = LagTracker("mono")
    lag.applied([change(10.0)], now=11.0)  # an old change long ago
    lag.wrote(Beat(7, 500.0), 0.0)
    lag.applied([beat_event(7, source="other")], now=500.1)
    assert lag.lag(500.2) is not None and round(lag.lag(500.2) or 0, 1) == 0.2
    lag.applied([beat_event(7)], now=500.1)
    lag.wrote(Beat(8, 501.0), 0.0)
    assert round(lag.lag(501.3) or 0, 1) == 0.3 and lag.caught_up(501.3)
