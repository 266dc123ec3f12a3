"""The early Ray start as a handle the run takes up (``dd.run.cluster.EarlyStart``), without
Ray: the start is a stand-in callable."""

from __future__ import annotations

import signal
import threading

import pytest

from dd.run.cluster import EarlyStart, start_ray
from dd.spec.errors import DDError


def test_the_run_taking_an_early_start_waits_for_it_to_end():
    release, order = threading.Event(), []

    def begin() -> bool:
        release.wait()
        order.append("started")
        return False

    early = EarlyStart(begin)
    threading.Timer(0.05, release.set).start()
    early.take()
    assert order == ["started"], "take returns only once the start has ended"


def test_what_the_early_start_raised_is_raised_by_the_run_that_takes_it_up_once():
    def begin() -> bool:
        raise DDError("--address x:1: no answer within 1s")

    early = EarlyStart(begin)
    with pytest.raises(DDError, match="no answer"):
        start_ray("local", timeout=1.0, early=early)
    early.take()  # a refined sweep's next round: the start is already taken up


def test_two_early_starts_share_nothing():
    failing, fine = EarlyStart(lambda: 1 / 0), EarlyStart(lambda: False)
    fine.take()  # not the other handle's error
    with pytest.raises(ZeroDivisionError):
        failing.take()


def test_taking_an_early_start_puts_the_callers_sigterm_handler_back():
    def mine(signum, frame):
        """The caller's handler."""

    before = signal.signal(signal.SIGTERM, mine)
    try:
        early = EarlyStart(lambda: False)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as Ray's core worker leaves it
        early.take()
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)
