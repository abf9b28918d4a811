"""The watchdog's decision, on a controllable clock, and the thread that acts on it."""

from __future__ import annotations

import threading

import pytest

from streams.ops.liveness import Verdict, Watchdog, WatchdogThread


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_nothing_is_stuck_before_the_first_report(clock: Clock) -> None:
    dog = Watchdog(60, clock=clock)
    clock.now += 3600
    assert dog.verdict() == Verdict("starting", 0.0, None, False)


def test_an_idle_worker_is_never_stuck(clock: Clock) -> None:
    dog = Watchdog(60, clock=clock)
    for _ in range(300):
        dog.observe(progress=7, lag=0, busy=False)
        clock.now += 1
    v = dog.verdict()
    assert v.state == "ok" and not v.exit and v.stalled_s == pytest.approx(1.0)


def test_a_busy_worker_that_commits_is_never_stuck(clock: Clock) -> None:
    dog = Watchdog(60, clock=clock)
    for batches in range(300):
        dog.observe(progress=batches, lag=50_000, busy=True)
        clock.now += 1
    assert dog.verdict().state == "ok"


def test_waiting_work_without_progress_is_stuck_then_exits(clock: Clock) -> None:
    dog = Watchdog(60, clock=clock)
    dog.observe(progress=10, lag=0, busy=False)
    for second in range(1, 61):
        clock.now += 1
        dog.observe(progress=10, lag=second * 100, busy=False)
        v = dog.verdict()
        if second < 30:
            assert v.state == "ok", second
        elif second < 60:
            assert (v.state, v.exit) == ("stuck", False), second
            assert v.reason is not None and "no batch committed" in v.reason
            assert f"{second * 100} events waiting" in v.reason
    assert dog.verdict().exit
    assert dog.verdict().stalled_s == pytest.approx(60)


def test_a_batch_in_hand_counts_as_waiting_work(clock: Clock) -> None:
    dog = Watchdog(10, clock=clock)
    dog.observe(progress=3, lag=0, busy=True)
    for _ in range(10):
        clock.now += 1
        dog.observe(progress=3, lag=0, busy=True)
    v = dog.verdict()
    assert v.exit and v.reason is not None and "a batch in hand" in v.reason


def test_progress_or_an_empty_backlog_resets_the_stall(clock: Clock) -> None:
    dog = Watchdog(10, clock=clock)
    dog.observe(progress=1, lag=5, busy=False)
    clock.now += 9
    dog.observe(progress=2, lag=5, busy=False)  # one batch committed
    clock.now += 9
    assert dog.verdict().state == "stuck" and not dog.verdict().exit
    dog.observe(progress=2, lag=0, busy=False)  # caught up
    clock.now += 9
    dog.observe(progress=2, lag=0, busy=False)
    assert dog.verdict().state == "ok"


def test_a_silent_event_loop_is_stuck_whatever_it_last_said(clock: Clock) -> None:
    dog = Watchdog(20, clock=clock)
    dog.observe(progress=1, lag=0, busy=False)
    clock.now += 12
    v = dog.verdict()
    assert v.state == "stuck" and not v.exit
    assert v.reason is not None and "event loop" in v.reason
    clock.now += 8
    assert dog.verdict().exit


def test_report_threshold_and_disabling(clock: Clock) -> None:
    dog = Watchdog(10, report_after_s=2, clock=clock)
    dog.observe(progress=0, lag=1, busy=False)
    clock.now += 2
    assert dog.verdict().state == "stuck"
    dog.disarm()  # shutting down
    clock.now += 100
    assert dog.verdict().state == "ok" and not dog.verdict().exit
    off = Watchdog(0, clock=clock)
    off.observe(progress=0, lag=1, busy=True)
    clock.now += 10_000
    assert not off.verdict().exit


def test_the_thread_acts_once_on_an_exit_verdict(clock: Clock) -> None:
    dog = Watchdog(5, clock=clock)
    dog.observe(progress=0, lag=9, busy=False)
    clock.now += 5
    acted: list[Verdict] = []
    done = threading.Event()

    def on_stuck(verdict: Verdict) -> None:
        acted.append(verdict)
        done.set()

    thread = WatchdogThread(dog, interval_s=0.01, on_stuck=on_stuck)
    thread.start()
    assert done.wait(5)
    thread.join(5)
    assert not thread.is_alive()
    assert len(acted) == 1 and acted[0].exit


def test_the_thread_stops_when_asked(clock: Clock) -> None:
    dog = Watchdog(5, clock=clock)
    thread = WatchdogThread(dog, interval_s=0.01, on_stuck=lambda v: pytest.fail("acted"))
    thread.start()
    thread.stop()
    thread.join(5)
    assert not thread.is_alive()
