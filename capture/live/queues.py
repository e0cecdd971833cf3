"""Draining the queues the capture threads fill: items, then ``None`` when the source ended; an exception
put on the queue by a thread is raised again in the consumer (errors travel on the queue, never swallowed)."""

from __future__ import annotations

import queue
from collections.abc import Callable


def drain(q: queue.Queue, handle: Callable[[object], None], *, timeout_s: float | None = None) -> bool:
    """Pass every item queued now to ``handle``, in order (waiting up to ``timeout_s`` for each when given);
    return True once the end marker ``None`` is met. An exception on the queue is raised where it stands, after
    the items before it were handled, so nothing that arrived before an error is lost."""
    while True:
        try:
            item = q.get(timeout=timeout_s) if timeout_s is not None else q.get_nowait()
        except queue.Empty:
            return False
        if item is None:
            return True
        if isinstance(item, BaseException):
            raise item
        handle(item)
