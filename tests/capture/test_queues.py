"""Queue draining: order kept, end marker reported, a queued error raised after the items before it."""

from __future__ import annotations

import queue

import pytest

from radgaze.capture.live.queues import drain


def test_drain_hands_items_in_order_and_reports_the_end():
    q: queue.Queue = queue.Queue()
    for item in (1, 2, None, 3):
        q.put(item)
    got: list = []
    assert drain(q, got.append) is True and got == [1, 2]
    assert drain(q, got.append) is False and got == [1, 2, 3]


def test_drain_raises_a_queued_error_after_handling_what_came_before():
    q: queue.Queue = queue.Queue()
    for item in ("a", RuntimeError("device lost"), "b"):
        q.put(item)
    got: list = []
    with pytest.raises(RuntimeError, match="device lost"):
        drain(q, got.append)
    assert got == ["a"] and q.get_nowait() == "b"
