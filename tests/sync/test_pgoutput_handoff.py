"""The ``pgoutput`` source's handoff between its reader thread and the worker: whatever
arrived while the worker wrote becomes one batch, and the LSN confirmed to the server
never runs ahead of what a batch holds."""

from __future__ import annotations

import threading

from strangler.sync.model import ChangeEvent, Position
from strangler.sync.poison import make_poison
from strangler.sync.sources.pgoutput import _Handoff


def changes(commit: int, count: int) -> list[ChangeEvent]:
    return [
        ChangeEvent("m", "public.t", "c", {"id": i}, None, {"id": i}, Position(commit, i), 0)
        for i in range(count)
    ]


def test_commits_that_arrived_while_the_worker_wrote_make_one_batch() -> None:
    handoff = _Handoff(limit=100)
    for commit in (10, 20, 30):
        assert handoff.put(changes(commit, 3), [], confirm=commit + 1)
    events, poison, confirm = handoff.take(50, timeout=0.1)
    assert len(events) == 9 and poison == [] and confirm == 31


def test_a_partial_take_confirms_only_the_commits_it_holds_whole() -> None:
    handoff = _Handoff(limit=100)
    handoff.put(changes(10, 3), [], confirm=11)
    handoff.put(changes(20, 3), [], confirm=21)
    events, _, confirm = handoff.take(4, timeout=0.1)
    assert len(events) == 4 and confirm == 11  # the second commit is only partly here
    events, _, confirm = handoff.take(4, timeout=0.1)
    assert len(events) == 2 and confirm == 21


def test_a_full_buffer_refuses_until_the_worker_takes() -> None:
    handoff = _Handoff(limit=5)
    assert handoff.put(changes(10, 5), [], confirm=11)
    assert not handoff.put(changes(20, 1), [], confirm=21)
    handoff.take(10, timeout=0.1)
    assert handoff.put(changes(20, 1), [], confirm=21)


def test_once_a_change_is_there_the_batch_fills_for_the_poll_interval() -> None:
    handoff = _Handoff(limit=100, linger=0.3)
    handoff.put(changes(10, 1), [], confirm=11)
    later = threading.Timer(0.1, lambda: handoff.put(changes(20, 1), [], confirm=21))
    later.start()
    events, _, confirm = handoff.take(2, timeout=1.0)
    assert len(events) == 2 and confirm == 21  # the second arrived within the interval


def test_nothing_there_returns_empty_after_the_timeout() -> None:
    assert _Handoff(limit=5, linger=0.05).take(10, timeout=0.05) == ([], [], 0)


def test_poison_counts_as_in_flight_until_the_worker_stores_it() -> None:
    # The reader confirms an idle server's position only when everything it handed over
    # is stored; an undecodable change waiting for its dead letter is part of that.
    handoff = _Handoff(limit=5)
    poison = make_poison({"columns": {"booked": "infinity"}}, None, "bad date", "slot@1")
    assert handoff.put([], [poison], confirm=11)
    assert handoff.put_items == 1
    events, taken, confirm = handoff.take(10, timeout=0.1)
    assert events == [] and taken == [poison] and confirm == 11


def _feed(handoff: _Handoff, at: list[tuple[float, int]]) -> list[threading.Timer]:
    timers = [
        threading.Timer(when, handoff.put, (changes(i + 20, count), []), {"confirm": i + 21})
        for i, (when, count) in enumerate(at)
    ]
    for timer in timers:
        timer.start()
    return timers


def test_while_changes_keep_coming_fast_the_batch_fills_on() -> None:
    # A busy stream (>= 64 changes per linger): fewer, bigger batches, at most 3 lingers.
    handoff = _Handoff(limit=1000, linger=0.2)
    handoff.put(changes(10, 1), [], confirm=11)
    timers = _feed(handoff, [(0.05, 80), (0.3, 80), (0.9, 80)])
    events, _, confirm = handoff.take(1000, timeout=1.0)
    assert len(events) == 161 and confirm == 22  # the third came after the last linger
    for timer in timers:
        timer.join()


def test_a_quiet_stream_fills_for_one_linger_only() -> None:
    handoff = _Handoff(limit=1000, linger=0.2)
    handoff.put(changes(10, 1), [], confirm=11)
    timers = _feed(handoff, [(0.05, 5), (0.6, 5)])
    events, _, confirm = handoff.take(1000, timeout=1.0)
    assert len(events) == 6 and confirm == 21  # lag wins: no second linger for 5 changes
    for timer in timers:
        timer.join()
